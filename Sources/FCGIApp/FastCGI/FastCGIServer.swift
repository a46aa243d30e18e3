import CFastCGI
import Glibc
import Logging
import Synchronization

/// Handles requests on one thread. Each serving thread makes its own, so a responder may hold
/// state that is not thread-safe, such as a database connection.
protocol Responder {
    func respond(to request: Request) -> Response
    /// Called once `response` is written, `duration` after the request's parameters arrived.
    func answered(_ response: Response, after duration: Duration)
}

/// Serves FastCGI requests from nginx on a pool of threads, each with its own `FCGX_Request`
/// and `Responder`, until `SIGTERM` or `SIGINT`.
///
/// Threads wait on one shared epoll set holding the listening socket (non-blocking, so a
/// thread that loses the race to `accept` goes back to waiting), the kept connections between
/// their requests, and a wake-up pipe; each event wakes one thread.
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
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// Connections accepted and not yet closed: in flight or parked.
    private let openConnections = Atomic<Int>(0)
    private let runningThreads = Atomic<Int>(0)
    /// Requests being served, and requests answered since start: together they tell a worker
    /// that is idle or making progress from one whose threads are all stuck.
    private let busy = Atomic<Int>(0)
    private let answered = Atomic<Int>(0)
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// The one epoll set every serving thread waits on: the listener, the wake-up pipe, and the
    /// kept FastCGI connections (nginx's `fastcgi_keep_conn`) between their requests, each of
    /// those registered one-shot. Threads waiting on one epoll set are woken one per event, and
    /// an idle kept connection holds no thread.
    private let events: Int32
    private let threadCount = Atomic<Int>(0)

    /// libfcgi's global initialisation. It installs its own SIGPIPE/SIGTERM/SIGUSR1 handlers
    /// where the disposition is still the default; `run` blocks SIGTERM and SIGINT in every
    /// thread and takes them with `sigwait`, so those handlers never run.
    static func initialiseLibrary() throws(ConfigError) {
        signal(SIGPIPE, SIG_IGN)
        guard FCGX_Init() == 0 else { throw ConfigError("libfcgi failed to initialise (FCGX_Init)") }
    }

    init(listener: Listener, logger: Logger) throws(ConfigError) {
        self.listener = listener
        self.logger = logger
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw ConfigError("cannot create the wake-up pipe: \(String(cString: strerror(errno)))")
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        events = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard events >= 0 else { throw ConfigError("epoll_create1: \(String(cString: strerror(errno)))") }
        for fd in [listener.fd, wakeRead] {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.fd = fd
            guard epoll_ctl(events, EPOLL_CTL_ADD, fd, &event) == 0 else {
                throw ConfigError("epoll_ctl: \(String(cString: strerror(errno)))")
            }
        }
        let flags = fcntl(listener.fd, F_GETFL)
        guard flags >= 0, fcntl(listener.fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw ConfigError("cannot make the listening socket non-blocking: \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
        close(events)
    }

    /// Serves on `threads` threads until SIGTERM or SIGINT, then waits for in-flight requests,
    /// and removes the socket file if the worker created it. SIGHUP calls `reload` (on this
    /// thread, while the serving threads go on); `stopping` is called once a stop begins.
    func run(
        threads: Int, reload: () -> Void = {}, stopping: () -> Void = {},
        makeResponder: @escaping @Sendable () -> any Responder
    ) throws(ConfigError) {
        // A shell starts background jobs with SIGINT ignored; an ignored signal never reaches
        // sigwait, so take them back to their defaults before blocking them.
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        signal(SIGHUP, SIG_DFL)
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGHUP)
        // Blocked here, so every thread started below inherits the mask; only sigwait takes them.
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        var workers: [PosixThread] = []
        threadCount.store(threads, ordering: .relaxed)
        for _ in 0..<threads {
            runningThreads.add(1, ordering: .relaxed)
            workers.append(try PosixThread { [self] in
                serveLoop(responder: makeResponder())
                runningThreads.subtract(1, ordering: .releasing)
            })
        }
        logger.info("serving", metadata: ["listen": "\(listener.description)", "threads": "\(threads)"])

        var received: Int32 = 0
        while true {
            guard sigwait(&signals, &received) == 0 else { continue }
            guard received == SIGHUP else { break }
            logger.info("reloading", metadata: ["signal": "SIGHUP"])
            reload()
        }
        logger.info("stopping: finishing in-flight requests and kept connections", metadata: [
            "signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")",
            "connections": "\(openConnections.load(ordering: .relaxed))",
        ])
        stopping()
        stop()
        let deadline = ContinuousClock.now + Self.drainTimeout
        while runningThreads.load(ordering: .acquiring) > 0, ContinuousClock.now < deadline { usleep(20_000) }
        if runningThreads.load(ordering: .acquiring) > 0 {
            logger.warning("closing the connections still open after the drain timeout", metadata: [
                "connections": "\(openConnections.load(ordering: .relaxed))", "timeout": "\(Self.drainTimeout)",
            ])
            release()
        }
        for worker in workers { worker.join() }
        if listener.createdPath != nil { close(listener.fd) }
        logger.info("stopped")
    }

    /// Stops taking new connections; the threads return once the open ones are closed.
    func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        epoll_ctl(events, EPOLL_CTL_DEL, listener.fd, nil)
        // A socket the worker made has nobody to hand it on to: new connections fail at once
        // rather than wait in a backlog nobody will serve.
        if let path = listener.createdPath { unlink(path) }
        if openConnections.load(ordering: .acquiring) == 0 { release() }
    }

    /// Wakes every thread to return: the pipe stays readable, one byte per thread.
    private func release() {
        var byte: UInt8 = 1
        for _ in 0..<max(1, threadCount.load(ordering: .relaxed)) { _ = write(wakeWrite, &byte, 1) }
    }

    /// A connection was closed: the last one of a stopping worker lets the threads go.
    private func closed() {
        let left = openConnections.subtract(1, ordering: .acquiringAndReleasing).newValue
        if left == 0, stopping.load(ordering: .acquiring) { release() }
    }

    /// Whether the peer closed `fd` (or it failed): what a readable idle connection means when
    /// no request bytes are waiting.
    private static func peerClosed(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let count = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    }

    /// Parks a kept connection until its next request arrives (one-shot, re-armed each time).
    private func park(_ fd: Int32) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLONESHOT.rawValue
        event.data.fd = fd
        if epoll_ctl(events, EPOLL_CTL_MOD, fd, &event) != 0,
            errno != ENOENT || epoll_ctl(events, EPOLL_CTL_ADD, fd, &event) != 0
        {
            logger.warning("cannot park a kept connection; closing it", metadata: ["error": "\(String(cString: strerror(errno)))"])
            close(fd)
            closed()
        }
    }

    private func serveLoop(responder: any Responder) {
        var request = FCGX_Request()
        guard FCGX_InitRequest(&request, listener.fd, 0) == 0 else {
            logger.error("FCGX_InitRequest failed")
            return
        }
        defer { FCGX_Free(&request, 1) }
        let log = logger.logLevel <= .info ? LogSink.standardError.gathering() : nil
        while true {
            var event = epoll_event()
            let count = epoll_wait(events, &event, 1, -1)
            if count < 0 {
                if errno == EINTR { continue }
                logger.error("epoll_wait failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
                return
            }
            if count == 0 { continue }
            if event.data.fd == wakeRead { return }
            busy.add(1, ordering: .relaxed)
            handle(event.data.fd, &request, responder, log: log)
            busy.subtract(1, ordering: .relaxed)
        }
    }

    /// Takes the next request from the listening socket or the kept connection `fd`, serves it,
    /// and parks or closes the connection.
    private func handle(_ fd: Int32, _ request: inout FCGX_Request, _ responder: any Responder, log: LogSink.Gathered?) {
        var kept: Int32?
        if fd == listener.fd {
            if stopping.load(ordering: .acquiring) { return }
        } else {
            // nginx closing a kept connection makes it readable too. While running, libfcgi
            // finds the end itself; while stopping, it must not go on to accept a new one.
            if stopping.load(ordering: .acquiring), Self.peerClosed(fd) {
                close(fd)
                closed()
                return
            }
            // libfcgi reads the next request from the connection the request names (and,
            // were keepConnection 0, would close it before reading).
            request.ipcFd = fd
            request.keepConnection = 1
            kept = fd
        }
        let status = FCGX_Accept_r(&request)
        // libfcgi closes a kept connection it cannot read a request from, then accepts
        // a new one from the listening socket instead if one is waiting.
        if status < 0 || kept == nil || request.ipcFd != kept {
            if kept != nil { closed() }
            if status >= 0 { openConnections.add(1, ordering: .relaxed) }
        }
        if status < 0 {
            switch -status {
            case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED:
                return  // another thread took the connection, or the client left
            default:
                logger.error("FCGX_Accept_r failed", metadata: ["error": "\(String(cString: strerror(-status)))"])
                usleep(10_000)
                return
            }
        }
        serve(&request, responder, log: log)
        answered.add(1, ordering: .releasing)
        FCGX_Finish_r(&request)
        if request.ipcFd >= 0 {
            // nginx keeps the connection: park it for whichever thread is free next.
            park(request.ipcFd)
            request.ipcFd = -1
        } else {
            closed()
        }
    }

    /// Whether the worker answered a request since `progress` was taken, or has a thread free:
    /// what the systemd watchdog is told. One slow request (a lock wait) is not a stuck worker;
    /// every thread busy and nothing answered is. Updates the progress mark.
    func isHealthy(since progress: inout Int) -> Bool {
        let now = answered.load(ordering: .acquiring)
        defer { progress = now }
        return now != progress || busy.load(ordering: .acquiring) < threadCount.load(ordering: .relaxed)
    }

    private func serve(_ request: inout FCGX_Request, _ responder: any Responder, log: LogSink.Gathered?) {
        let started = ContinuousClock.now
        var incoming = Request(cgi: request.envp)
        let response: Response
        switch Self.readBody(&request, contentLength: incoming.header("content-length")) {
        case .success(let body):
            incoming.body = body
            response = responder.respond(to: incoming)
        case .failure(let error):
            response = error.response
        }
        if request.keepConnection != 0 { Self.drainInput(&request) }
        let bytes = response.cgiBytes(includeBody: incoming.method != "HEAD")
        let written = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { FCGX_PutStr($0.baseAddress, Int32($0.count), request.out) }
        }
        if written < 0 {
            logger.debug("client went away before the response was written")
        }
        let duration = ContinuousClock.now - started
        responder.answered(response, after: duration)
        if let log { log.add(Self.logLine(incoming, response, duration: duration)) }
    }

    /// The request's log line: method, path (without the query, and no header: either may
    /// carry a token), status, duration, the user, and why it was refused.
    static func logLine(_ request: Request, _ response: Response, duration: Duration) -> [UInt8] {
        var line = LogfmtHandler.start(level: .info, message: "request")
        LogfmtHandler.append(field: "method", request.method, to: &line)
        LogfmtHandler.append(field: "path", request.path, to: &line)
        line += " status=".utf8
        LogfmtHandler.appendDigits(response.status.code, 1, to: &line)
        let (seconds, attoseconds) = duration.components
        let micros = Int(seconds) * 1_000_000 + Int(attoseconds / 1_000_000_000_000)
        line += " duration_ms=".utf8
        LogfmtHandler.appendDigits(micros / 1000, 1, to: &line)
        line.append(UInt8(ascii: "."))
        LogfmtHandler.appendDigits(micros % 1000, 3, to: &line)
        if let user = response.notes.user {
            line += " user=".utf8
            LogfmtHandler.appendDigits(Int(user), 1, to: &line)
        }
        if let refusal = response.notes.refusal { LogfmtHandler.append(field: "reason", refusal, to: &line) }
        line.append(UInt8(ascii: "\n"))
        return line
    }

    /// Reads what is left of a kept connection's input up to the request's closing empty STDIN
    /// record. libfcgi frees the request's input buffer when the request finishes: a closing
    /// record still in the socket would be read as part of the next request, which libfcgi
    /// refuses as a protocol error by closing the connection nginx is about to reuse. Input
    /// past 64 KiB the request did not ask for closes the connection instead.
    private static func drainInput(_ request: inout FCGX_Request) {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 4096) { scratch in
            var discarded = 0
            while true {
                let count = FCGX_GetStr(scratch.baseAddress, Int32(scratch.count), request.in)
                guard count > 0 else { return }
                discarded += Int(count)
                if discarded > 65_536 {
                    request.keepConnection = 0
                    return
                }
            }
        }
    }

    /// Reads a body of `CONTENT_LENGTH` bytes, refusing one over `Request.maxBodyBytes`.
    private static func readBody(_ request: inout FCGX_Request, contentLength: String?) -> Result<[UInt8], HTTPError> {
        guard let contentLength, !contentLength.isEmpty else { return .success([]) }
        guard let length = Int(contentLength), length >= 0 else {
            return .failure(HTTPError(status: .badRequest, detail: "Invalid Content-Length."))
        }
        guard length <= Request.maxBodyBytes else {
            // Unread input would corrupt a kept connection: close it after the response.
            request.keepConnection = 0
            return .failure(HTTPError(
                status: .contentTooLarge,
                detail: "Request body is larger than \(Request.maxBodyBytes) bytes."))
        }
        var body = [UInt8](repeating: 0, count: length)
        var filled = 0
        while filled < length {
            let count = body.withUnsafeMutableBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) {
                    FCGX_GetStr($0.baseAddress! + filled, Int32(length - filled), request.in)
                }
            }
            guard count > 0 else {
                return .failure(HTTPError(status: .badRequest, detail: "Request body ended before Content-Length bytes."))
            }
            filled += Int(count)
        }
        return .success(body)
    }
}
