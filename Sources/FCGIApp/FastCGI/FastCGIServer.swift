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
/// A connection is only ever touched by the one thread its one-shot event woke, which is also
/// the only one that closes it, so no event can name a closed connection and the request path
/// takes no lock. The table of open connections (under a lock taken at accept and close) is
/// for the main thread's deadline sweep, which never closes a descriptor itself: it shuts the
/// socket down, which wakes the connection's event, and its thread closes it.
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
    private let timeoutNanoseconds: Int64
    /// `Config.allowedPeers`: the IPv4 addresses TCP clients may connect from; empty, any.
    private let allowedPeers: Set<UInt32>
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// Connections accepted and not yet closed, by descriptor; the table holds their reference.
    private let connections = Mutex<[Int32: Connection]>([:])
    private let openConnections = Atomic<Int>(0)
    private let runningThreads = Atomic<Int>(0)
    /// Events being handled, and requests answered since start: together they tell a worker
    /// that is idle or making progress from one whose threads are all stuck.
    private let busy = Atomic<Int>(0)
    private let answered = Atomic<Int>(0)
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// The one epoll set every serving thread waits on: the listener, the wake-up pipe, and
    /// the connections, each of those registered one-shot and re-armed when it is put back.
    private let events: Int32
    private let threadCount = Atomic<Int>(0)

    /// One accepted connection. Its fields are touched only by the thread its event woke;
    /// `deadline` is also read by the sweep.
    private final class Connection: @unchecked Sendable {
        let fd: Int32
        var input: [UInt8] = []
        var reader: RecordReader
        var registered = false
        /// When the request being received must be complete, in `monotonicNanoseconds()`; 0
        /// while idle between requests.
        let deadline = Atomic<Int64>(0)

        init(fd: Int32, reader: RecordReader) {
            self.fd = fd
            self.reader = reader
        }

        var isLate: Bool {
            let deadline = deadline.load(ordering: .relaxed)
            return deadline != 0 && deadline <= monotonicNanoseconds()
        }

        /// Starts the clock of a request: it must be whole within `timeout` nanoseconds.
        func expect(within timeout: Int64) {
            deadline.store(monotonicNanoseconds() + timeout, ordering: .relaxed)
        }
    }

    /// The epoll data of the listener and of the wake-up pipe; a connection's is its address.
    private static let listenerEvent: UInt64 = 1
    private static let wakeEvent: UInt64 = 2

    /// libfcgi's global initialisation: the worker uses libfcgi to open its listening socket
    /// (`FCGX_OpenSocket`) and for the protocol's constants, and reads and writes records itself.
    static func initialiseLibrary() throws(ConfigError) {
        signal(SIGPIPE, SIG_IGN)
        guard FCGX_Init() == 0 else { throw ConfigError("libfcgi failed to initialise (FCGX_Init)") }
    }

    init(
        listener: Listener, requestTimeout: Duration = .seconds(5), allowedPeers: Set<UInt32> = [], logger: Logger
    ) throws(ConfigError) {
        self.listener = listener
        self.requestTimeout = requestTimeout
        timeoutNanoseconds = requestTimeout.nanoseconds
        self.logger = logger
        self.allowedPeers = allowedPeers
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw ConfigError("cannot create the wake-up pipe: \(String(cString: strerror(errno)))")
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        events = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard events >= 0 else { throw ConfigError("epoll_create1: \(String(cString: strerror(errno)))") }
        for (fd, data) in [(listener.fd, Self.listenerEvent), (wakeRead, Self.wakeEvent)] {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.u64 = data
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
    /// thread, while the serving threads go on); `stopping` is called once a stop begins. This
    /// thread also closes the connections whose request is late.
    func run(
        threads: Int, reload: () -> Void = {}, stopping: () -> Void = {},
        makeResponder: @escaping @Sendable () -> any Responder
    ) throws(ConfigError) {
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
        threadCount.store(threads, ordering: .relaxed)
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
            received = sigtimedwait(&signals, nil, &tick)
            if received < 0 {
                closeLateConnections()
                continue
            }
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
        while runningThreads.load(ordering: .acquiring) > 0, ContinuousClock.now < deadline {
            usleep(20_000)
            closeLateConnections()
        }
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

    /// Shuts down the connections whose request did not arrive whole in time: each becomes
    /// readable at its end, and the thread that takes it closes it.
    private func closeLateConnections() {
        let late = connections.withLock { table in
            var late = 0
            for connection in table.values where connection.isLate {
                connection.deadline.store(0, ordering: .relaxed)
                shutdown(connection.fd, Int32(SHUT_RDWR))
                late += 1
            }
            return late
        }
        guard late > 0 else { return }
        logger.warning("closed connections that sent no whole request in time", metadata: [
            "connections": "\(late)", "timeout": "\(requestTimeout)",
        ])
    }

    /// Closes a connection this thread owns.
    private func end(_ connection: Connection) {
        connections.withLock { table in
            table[connection.fd] = nil
            close(connection.fd)
        }
        closed()
    }

    /// A connection was closed: the last one of a stopping worker lets the threads go.
    private func closed() {
        let left = openConnections.subtract(1, ordering: .acquiringAndReleasing).newValue
        if left == 0, stopping.load(ordering: .acquiring) { release() }
    }

    /// Hands a connection this thread owns back to the epoll set until it is readable again.
    /// From the moment it is armed another thread may own it: nothing here touches it after.
    private func park(_ connection: Connection) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLONESHOT.rawValue
        event.data.u64 = UInt64(UInt(bitPattern: Unmanaged.passUnretained(connection).toOpaque()))
        let operation = connection.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD
        connection.registered = true
        guard epoll_ctl(events, operation, connection.fd, &event) == 0 else {
            logger.warning("cannot wait for a connection; closing it", metadata: ["error": "\(String(cString: strerror(errno)))"])
            return end(connection)
        }
    }

    private func serveLoop(responder: any Responder) {
        let log = logger.logLevel <= .info ? LogSink.standardError.gathering() : nil
        var scratch = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            var event = epoll_event()
            let count = epoll_wait(events, &event, 1, -1)
            if count < 0 {
                if errno == EINTR { continue }
                logger.error("epoll_wait failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
                return
            }
            if count == 0 { continue }
            if event.data.u64 == Self.wakeEvent { return }
            busy.add(1, ordering: .relaxed)
            // A connection's event names it: the table keeps it alive until this thread, the
            // only one its one-shot event woke, closes it.
            let connection = event.data.u64 == Self.listenerEvent
                ? acceptConnection()
                : Unmanaged<Connection>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(event.data.u64))!).takeUnretainedValue()
            if let connection { handle(connection, responder, scratch: &scratch, log: log) }
            busy.subtract(1, ordering: .relaxed)
        }
    }

    /// A new connection from the listening socket, owned by this thread; nil when another
    /// thread took it first.
    private func acceptConnection() -> Connection? {
        if stopping.load(ordering: .acquiring) { return nil }
        let fd = accept(listener.fd, nil, nil)
        guard fd >= 0, fcntl(fd, F_SETFL, O_NONBLOCK) == 0, fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 else {
            if fd >= 0 {
                logger.error("cannot make a connection non-blocking", metadata: ["error": "\(String(cString: strerror(errno)))"])
                Glibc.close(fd)
                return nil
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED:
                break  // another thread took the connection, or the client left
            default:
                logger.error("accept failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
                usleep(10_000)
            }
            return nil
        }
        if !allowedPeers.isEmpty, !isAllowedPeer(fd) {
            Glibc.close(fd)
            return nil
        }
        openConnections.add(1, ordering: .relaxed)
        let threads = String(threadCount.load(ordering: .relaxed))
        let connection = Connection(
            fd: fd, reader: RecordReader(values: ["FCGI_MAX_CONNS": threads, "FCGI_MAX_REQS": threads, "FCGI_MPXS_CONNS": "0"]))
        connection.expect(within: timeoutNanoseconds)
        connections.withLock { $0[fd] = connection }
        return connection
    }

    /// Whether a connection may be served under `FCGI_WEB_SERVER_ADDRS`: unix socket peers
    /// always; TCP peers from a listed IPv4 address.
    private func isAllowedPeer(_ fd: Int32) -> Bool {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let known = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
        }
        guard known else { return false }
        switch Int32(address.ss_family) {
        case AF_UNIX: return true
        case AF_INET:
            let peer = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr } }
            if allowedPeers.contains(peer) { return true }
        default: break
        }
        logger.warning("refused a connection from an address FCGI_WEB_SERVER_ADDRS does not list")
        return false
    }

    /// Reads what `connection` has sent, serves each request it completes, and parks or closes
    /// the connection once it has nothing more to read.
    private func handle(_ connection: Connection, _ responder: any Responder, scratch: inout [UInt8], log: LogSink.Gathered?) {
        while true {
            var input = connection.input[...]
            while let event = connection.reader.next(&input) {
                switch event {
                case .request(let request):
                    connection.input = Array(input)
                    let kept = serve(request, on: connection, responder, log: log)
                    guard kept, request.keepConnection else { return end(connection) }
                    input = connection.input[...]
                    guard !connection.reader.isIdle(input) else {
                        // Between requests: nothing to read yet, most likely, and the re-armed
                        // event fires at once if something is.
                        connection.deadline.store(0, ordering: .relaxed)
                        return park(connection)
                    }
                    connection.expect(within: timeoutNanoseconds)
                case .reply(let records, let thenClose):
                    guard writeAll(records, to: connection), !thenClose else { return end(connection) }
                case .violation(let reason):
                    logger.warning("closed a FastCGI connection that broke the protocol", metadata: ["reason": "\(reason)"])
                    return end(connection)
                }
            }
            connection.input = Array(input)
            if connection.isLate { return end(connection) }
            let count = scratch.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                connection.input += scratch[0..<count]
                if connection.deadline.load(ordering: .relaxed) == 0 { connection.expect(within: timeoutNanoseconds) }
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return park(connection)
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return end(connection)  // the client closed the connection, or it failed
            }
        }
    }

    /// Writes `bytes` to the connection, waiting for room at most `requestTimeout`; false when
    /// the client went away or would not take them in time.
    private func writeAll(_ bytes: [UInt8], to connection: Connection) -> Bool {
        let deadline = monotonicNanoseconds() + timeoutNanoseconds
        return bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let sent = send(connection.fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if sent > 0 {
                    offset += sent
                    continue
                }
                guard sent < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { return false }
                let left = deadline - monotonicNanoseconds()
                guard left > 0 else { return false }
                var ready = pollfd(fd: connection.fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&ready, 1, Int32(left / 1_000_000) + 1)
            }
            return true
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

    /// Answers one complete request; false when the response could not be written.
    private func serve(_ fastCGI: FastCGIRequest, on connection: Connection, _ responder: any Responder, log: LogSink.Gathered?) -> Bool {
        let started = ContinuousClock.now
        let parsed = fastCGI.parametersTooLarge ? nil : fastCGI.parameters.withUnsafeBytes { Request(fastCGIParameters: $0) }
        var incoming = parsed ?? Request(method: "", path: "")
        let response: Response
        if fastCGI.parametersTooLarge {
            response = HTTPError(
                status: .requestHeaderFieldsTooLarge,
                detail: "Request headers are larger than \(RecordReader.maxParameterBytes) bytes.").response
        } else if parsed == nil {
            response = HTTPError(status: .badRequest, detail: "Malformed FastCGI parameters.").response
        } else {
            switch Self.body(of: fastCGI, contentLength: incoming.header("content-length")) {
            case .success(let body):
                incoming.body = body
                response = responder.respond(to: incoming)
            case .failure(let error):
                response = error.response
            }
        }
        let written = writeAll(RecordReader.response(id: fastCGI.id, payload: response.cgiBytes(includeBody: incoming.method != "HEAD")), to: connection)
        if !written { logger.debug("client went away before the response was written") }
        answered.add(1, ordering: .releasing)
        let duration = ContinuousClock.now - started
        responder.answered(response, after: duration)
        if let log { log.add(Self.logLine(incoming, response, duration: duration)) }
        return written
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

    /// The body: `CONTENT_LENGTH` bytes of the STDIN stream, refusing one over
    /// `Request.maxBodyBytes` or one that ended early. (A CGI program reads no more than
    /// `CONTENT_LENGTH`: STDIN past it is not part of the body.)
    private static func body(of request: FastCGIRequest, contentLength: String?) -> Result<[UInt8], HTTPError> {
        guard let contentLength, !contentLength.isEmpty else { return .success([]) }
        guard let length = Int(contentLength), length >= 0 else {
            return .failure(HTTPError(status: .badRequest, detail: "Invalid Content-Length."))
        }
        guard length <= Request.maxBodyBytes else {
            return .failure(HTTPError(
                status: .contentTooLarge,
                detail: "Request body is larger than \(Request.maxBodyBytes) bytes."))
        }
        guard request.stdin.count >= length else {
            return .failure(HTTPError(status: .badRequest, detail: "Request body ended before Content-Length bytes."))
        }
        return .success(request.stdin.count == length ? request.stdin : Array(request.stdin.prefix(length)))
    }
}

/// CLOCK_MONOTONIC in nanoseconds: what connection deadlines and the change feed's clocks are
/// kept in.
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

extension Duration {
    /// The duration in whole nanoseconds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
