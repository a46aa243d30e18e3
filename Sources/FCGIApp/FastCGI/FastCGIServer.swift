import CFastCGI
import Glibc
import Logging
import Synchronization

/// Serves FastCGI requests from nginx on a pool of threads until `SIGTERM` or `SIGINT`.
///
/// Threads wait on one shared epoll set holding the listening socket (non-blocking, so a
/// thread that loses the race to `accept` goes back to waiting), every open connection
/// (non-blocking, registered one-shot) and a wake-up pipe; each event wakes one thread, which
/// reads what the connection has sent, and serves the request once its last record is in.
/// A connection that has sent part of a request holds no thread while it waits for the rest,
/// nor does a kept connection idling between requests (nginx's `fastcgi_keep_conn`).
///
/// Every request must arrive whole within `requestTimeout` of its first byte (or of the
/// connection's accept): the main thread shuts down connections past that deadline, so
/// clients that stall mid-record cost a descriptor for a few seconds and never a thread.
///
/// The epoll set and the connections in it are `ConnectionSet`'s; a connection's requests are
/// read, answered and written by `FastCGIConnection`.
///
/// Stopping takes the listening socket out of the set, so new connections wait in its backlog
/// for the next worker (systemd's socket unit, or whoever holds it, keeps it open), and goes on
/// serving the connections nginx keeps until nginx closes them (its upstream `keepalive_timeout`
/// and `keepalive_requests`): closing a kept connection from this side could cross a request
/// nginx is sending on it, which nginx would fail rather than retry when it is a POST. Once no
/// connection is left, or after `drainTimeout`, every thread returns.
final class FastCGIServer: Sendable {
    /// How long a stopping worker waits for nginx to close its kept connections.
    static let drainTimeout: Duration = .seconds(10)

    let listener: Listener
    /// How long a client has to send a whole request, and to take its response.
    let requestTimeout: Duration
    private let connections: ConnectionSet
    private let logger: Logger
    private let runningThreads = Atomic<Int>(0)
    /// `LOG_REQUESTS`: a line per request at `info`.
    private let logRequests: Bool
    /// Events being handled, and requests answered since start: together they tell a worker
    /// that is idle or making progress from one whose threads are all stuck.
    private let busy = Atomic<Int>(0)
    private let answered = Atomic<Int>(0)

    /// libfcgi's global initialisation: the worker uses libfcgi to open its listening socket
    /// (`FCGX_OpenSocket`) and for the protocol's constants, and reads and writes records itself.
    static func initialiseLibrary() throws(ConfigError) {
        signal(SIGPIPE, SIG_IGN)
        guard FCGX_Init() == 0 else { throw ConfigError("libfcgi failed to initialise (FCGX_Init)") }
    }

    /// With `logRequests`, a line per request at `info` (gathered per thread).
    init(
        listener: Listener, requestTimeout: Duration = .seconds(5), allowedPeers: Set<UInt32> = [], logRequests: Bool = true,
        logger: Logger
    ) throws(SystemError) {
        self.listener = listener
        self.requestTimeout = requestTimeout
        self.logRequests = logRequests
        self.logger = logger
        connections = try ConnectionSet(listener: listener, timeout: requestTimeout, allowedPeers: allowedPeers, logger: logger)
    }

    /// Serves on `threads` threads until SIGTERM or SIGINT, then waits for in-flight requests,
    /// and removes the socket file if the worker created it. SIGHUP calls `reload` (on this
    /// thread, while the serving threads go on); `stopping` is called once a stop begins. This
    /// thread also closes the connections whose request is late.
    func run(
        threads: Int, reload: () -> Void = {}, stopping: () -> Void = {},
        makeResponder: @escaping @Sendable () -> any Responder
    ) throws(SystemError) {
        // A shell starts background jobs with SIGINT ignored; an ignored signal never reaches
        // sigtimedwait, so take them back to their defaults before blocking them.
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        signal(SIGHUP, SIG_DFL)
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGHUP)
        // Blocked here, so every thread started below inherits the mask; only sigtimedwait below
        // takes them.
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        var workers: [PosixThread] = []
        connections.threads.store(threads, ordering: .relaxed)
        for _ in 0..<threads {
            runningThreads.add(1, ordering: .relaxed)
            workers.append(try PosixThread { [self] in
                serveLoop(responder: makeResponder())
                runningThreads.subtract(1, ordering: .releasing)
            })
        }
        logger.info("serving", metadata: [
            "listen": "\(listener.description)", "threads": "\(threads)", "request_timeout": "\(requestTimeout)",
        ])

        var received: Int32 = 0
        var tick = timespec(tv_sec: 0, tv_nsec: 100_000_000)
        while true {
            do {
                received = try systemCall("sigtimedwait") { sigtimedwait(&signals, nil, &tick) }
            } catch {
                // No signal within the tick (EAGAIN): time to close the late connections.
                if !error.wouldBlock { logger.error("waiting for signals failed", metadata: ["error": "\(error)"]) }
                connections.closeLate()
                continue
            }
            guard received == SIGHUP else { break }
            logger.info("reloading", metadata: ["signal": "SIGHUP"])
            reload()
        }
        logger.info("stopping: finishing in-flight requests and kept connections", metadata: [
            "signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")",
            "connections": "\(connections.count)",
        ])
        stopping()
        stop()
        let deadline = ContinuousClock.now + Self.drainTimeout
        while runningThreads.load(ordering: .acquiring) > 0, ContinuousClock.now < deadline {
            usleep(20_000)
            connections.closeLate()
        }
        if runningThreads.load(ordering: .acquiring) > 0 {
            logger.warning("closing the connections still open after the drain timeout", metadata: [
                "connections": "\(connections.count)", "timeout": "\(Self.drainTimeout)",
            ])
            connections.release()
        }
        for worker in workers { worker.join() }
        if listener.createdPath != nil { close(listener.fd) }
        logger.info("stopped")
    }

    /// Stops taking new connections; the threads return once the open ones are closed.
    func stop() { connections.stopListening() }

    private func serveLoop(responder: any Responder) {
        let serving = FastCGIConnection.Serving(
            responder: responder, log: logRequests && logger.logLevel <= .info ? LogSink.standardError.gathering() : nil,
            logger: logger,
            answered: { [self] in answered.add(1, ordering: .releasing) })
        var scratch = [UInt8](repeating: 0, count: 64 * 1024)
        while let event = connections.next() {
            busy.add(1, ordering: .relaxed)
            defer { busy.subtract(1, ordering: .relaxed) }
            switch event {
            case .release: return
            case .nothing: continue
            case .connection(let connection): connection.handle(in: connections, serving, scratch: &scratch)
            }
        }
    }

    /// Whether the worker answered a request since `progress` was taken, or has a thread free:
    /// what the systemd watchdog is told. One slow request (a lock wait) is not a stuck worker;
    /// every thread busy and nothing answered is. Updates the progress mark.
    func isHealthy(since progress: inout Int) -> Bool {
        let now = answered.load(ordering: .acquiring)
        defer { progress = now }
        return now != progress || busy.load(ordering: .acquiring) < connections.threads.load(ordering: .relaxed)
    }
}
