import CFastCGI
import Glibc
import Logging
import Support
import Synchronization

/// Serves FastCGI requests from nginx on a few serving loops until `SIGTERM` or `SIGINT`.
///
/// Each loop (`EventLoop`) is a thread with its own epoll set. Every loop watches the listening
/// socket; a new connection goes to the loop with the fewest, where a task of its own reads
/// the connection's records and serves each request once its last record is in. A request
/// that waits (for the database, the change feed, a shared statement) is parked in its loop,
/// which serves its other connections meanwhile: no thread is held by a request, a connection
/// that has sent part of a request, or a kept connection idling between requests (nginx's
/// `fastcgi_keep_conn`).
///
/// Every request must arrive whole within `requestTimeout` of its first byte (or of the
/// connection's accept): the main thread shuts down connections past that deadline, so
/// clients that stall mid-record cost a descriptor for a few seconds and never a loop.
///
/// The connections and their loops are `ConnectionSet`'s; a connection's requests are read,
/// answered and written by `FastCGIConnection`.
///
/// Stopping takes the listening socket out of every loop, so new connections wait in its
/// backlog for the next worker (systemd's socket unit, or whoever holds it, keeps it open), and
/// goes on serving the connections nginx keeps until nginx closes them (its upstream
/// `keepalive_timeout` and `keepalive_requests`): closing a kept connection from this side
/// could cross a request nginx is sending on it, which nginx would fail rather than retry when
/// it is a POST. Once no connection is left, or after `drainTimeout`, every loop returns.
package final class FastCGIServer: Sendable {
    /// How long a stopping worker waits for nginx to close its kept connections.
    package static let drainTimeout: Duration = .seconds(10)

    package let listener: Listener
    /// How long a client has to send a whole request, and to take its response.
    package let requestTimeout: Duration
    private let allowedPeers: Set<UInt32>
    private let logger: Logger
    /// The serving loops, once running.
    private let loops = Mutex<[EventLoop]>([])

    /// libfcgi's global initialisation: the worker uses libfcgi to open its listening socket
    /// (`FCGX_OpenSocket`) and for the protocol's constants, and reads and writes records itself.
    package static func initialiseLibrary() throws(ConfigError) {
        signal(SIGPIPE, SIG_IGN)
        guard FCGX_Init() == 0 else { throw ConfigError("libfcgi failed to initialise (FCGX_Init)") }
    }

    /// Called for each connection accepted (the worker counts them in its metrics).
    private let onAccept: @Sendable () -> Void

    package init(
        listener: Listener, requestTimeout: Duration = .seconds(5), allowedPeers: Set<UInt32> = [], logger: Logger,
        onAccept: @escaping @Sendable () -> Void = {}
    ) {
        self.onAccept = onAccept
        self.listener = listener
        self.requestTimeout = requestTimeout
        self.allowedPeers = allowedPeers
        self.logger = logger
    }

    /// Serves on `threads` loops until SIGTERM or SIGINT, then waits for in-flight requests,
    /// and removes the socket file if the worker created it. SIGHUP calls `reload` (on this
    /// thread, while the loops go on); `stopping` is called once a stop begins. This thread
    /// also closes the connections whose request is late. `makeResponder` makes each loop's
    /// responder.
    package func run(
        threads: Int, reload: () -> Void = {}, stopping: () -> Void = {},
        makeResponder: (EventLoop) -> any FastCGIResponder
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

        var serving: [(EventLoop, FastCGIConnection.Serving)] = []
        for index in 0..<threads {
            let loop = try EventLoop(index: index) { [logger] error in
                logger.error("a serving loop could not wait for events", metadata: ["loop": "\(index)", "error": "\(error)"])
            }
            serving.append((loop, FastCGIConnection.Serving(responder: makeResponder(loop), logger: logger)))
        }
        let connections = try ConnectionSet(
            listener: listener, timeout: requestTimeout, allowedPeers: allowedPeers, loops: serving, logger: logger, onAccept: onAccept)
        try connections.listen()
        loops.withLock { $0 = serving.map(\.0) }
        var workers: [PosixThread] = []
        for (loop, _) in serving { workers.append(try PosixThread { loop.run() }) }
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
        connections.stopListening()
        let deadline = monotonicNanoseconds() + Self.drainTimeout.nanoseconds
        while connections.count > 0, monotonicNanoseconds() < deadline {
            usleep(20_000)
            connections.closeLate()
        }
        if connections.count > 0 {
            logger.warning("closing the connections still open after the drain timeout", metadata: [
                "connections": "\(connections.count)", "timeout": "\(Self.drainTimeout)",
            ])
            connections.release()
        }
        for worker in workers { worker.join() }
        if listener.createdPath != nil { close(listener.fd) }
        logger.info("stopped")
    }

    /// The loops that have been running for `bound` without waiting for events: what the
    /// systemd watchdog is told (none, or no ping). A request waiting for a lock or the
    /// database is parked and keeps no loop busy; a loop busy for long is stuck.
    package func stuckLoops(after bound: Duration) -> Int {
        loops.withLock { $0.count { $0.busyFor > bound } }
    }
}
