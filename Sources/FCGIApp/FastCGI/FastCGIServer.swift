import CFastCGI
import Glibc
import Logging
import Synchronization

/// Handles requests on one thread. Each serving thread makes its own, so a responder may hold
/// state that is not thread-safe, such as a database connection.
protocol Responder {
    func respond(to request: Request) -> Response
}

/// Serves FastCGI requests from nginx on a pool of threads, each with its own `FCGX_Request`
/// and `Responder`, until `SIGTERM` or `SIGINT`.
///
/// Threads wait with epoll on the listening socket (registered `EPOLLEXCLUSIVE`, so one idle
/// thread wakes per connection; the socket is non-blocking, so a thread that loses the race to
/// `accept` goes back to waiting) and on a wake-up pipe. Stopping sets a flag and writes to the
/// pipe: each thread finishes the request it is serving, then returns.
final class FastCGIServer: Sendable {
    let listener: Listener
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let wakeRead: Int32
    private let wakeWrite: Int32

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
        let flags = fcntl(listener.fd, F_GETFL)
        guard flags >= 0, fcntl(listener.fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw ConfigError("cannot make the listening socket non-blocking: \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// Serves on `threads` threads until SIGTERM or SIGINT, then waits for in-flight requests,
    /// and removes the socket file if the worker created it.
    func run(threads: Int, makeResponder: @escaping @Sendable () -> any Responder) throws(ConfigError) {
        // A shell starts background jobs with SIGINT ignored; an ignored signal never reaches
        // sigwait, so take both back to their defaults before blocking them.
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        // Blocked here, so every thread started below inherits the mask; only sigwait takes them.
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        var workers: [PosixThread] = []
        for _ in 0..<threads {
            workers.append(try PosixThread { [self] in serveLoop(responder: makeResponder()) })
        }
        logger.info("serving", metadata: ["listen": "\(listener.description)", "threads": "\(threads)"])

        var received: Int32 = 0
        while sigwait(&signals, &received) != 0 {}
        logger.info("stopping: finishing in-flight requests", metadata: ["signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")"])
        stop()
        for worker in workers { worker.join() }
        if let path = listener.createdPath {
            unlink(path)
            close(listener.fd)
        }
        logger.info("stopped")
    }

    /// Asks every serving thread to return once its current request is answered.
    func stop() {
        stopping.store(true, ordering: .releasing)
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Waits for a new connection on the listener: an epoll set per thread with the listener
    /// registered `EPOLLEXCLUSIVE`, so a connection wakes one idle thread rather than all of
    /// them, and the wake-up pipe, which wakes every thread.
    private struct ListenerWait: ~Copyable {
        let epoll: Int32
        let wake: Int32

        init(listener: Int32, wake: Int32) throws(ConfigError) {
            let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
            guard epoll >= 0 else { throw ConfigError("epoll_create1: \(String(cString: strerror(errno)))") }
            var onListener = epoll_event()
            onListener.events = EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue
            onListener.data.fd = listener
            var onWake = epoll_event()
            onWake.events = EPOLLIN.rawValue
            onWake.data.fd = wake
            guard epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &onListener) == 0,
                epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &onWake) == 0
            else {
                let reason = String(cString: strerror(errno))
                close(epoll)
                throw ConfigError("epoll_ctl: \(reason)")
            }
            self.epoll = epoll
            self.wake = wake
        }

        deinit { close(epoll) }

        /// `true` when a connection may be waiting, `false` when the worker is stopping.
        func wait() throws(ConfigError) -> Bool {
            var events = (epoll_event(), epoll_event())
            while true {
                let count = withUnsafeMutableBytes(of: &events) {
                    epoll_wait(epoll, $0.baseAddress!.assumingMemoryBound(to: epoll_event.self), 2, -1)
                }
                if count < 0 {
                    if errno == EINTR { continue }
                    throw ConfigError("epoll_wait: \(String(cString: strerror(errno)))")
                }
                let fired = [events.0, events.1].prefix(Int(count))
                return !fired.contains { $0.data.fd == wake }
            }
        }
    }

    private func serveLoop(responder: any Responder) {
        var request = FCGX_Request()
        guard FCGX_InitRequest(&request, listener.fd, 0) == 0 else {
            logger.error("FCGX_InitRequest failed")
            return
        }
        defer { FCGX_Free(&request, 1) }
        let listenerWait: ListenerWait
        do {
            listenerWait = try ListenerWait(listener: listener.fd, wake: wakeRead)
        } catch {
            logger.error("cannot wait on the listening socket", metadata: ["error": "\(error)"])
            return
        }
        while !stopping.load(ordering: .acquiring) {
            if request.ipcFd >= 0 {
                // A kept connection (fastcgi_keep_conn) brings its next request on the same socket.
                var fds = [
                    pollfd(fd: request.ipcFd, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                ]
                guard poll(&fds, 2, -1) >= 0 else {
                    if errno == EINTR { continue }
                    logger.error("poll failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
                    return
                }
                if fds[1].revents != 0 { return }
            } else {
                do {
                    guard try listenerWait.wait() else { return }
                } catch {
                    logger.error("waiting for connections failed", metadata: ["error": "\(error)"])
                    return
                }
            }
            let status = FCGX_Accept_r(&request)
            if status < 0 {
                switch -status {
                case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED:
                    continue  // another thread took the connection, or the client left
                default:
                    logger.error("FCGX_Accept_r failed", metadata: ["error": "\(String(cString: strerror(-status)))"])
                    usleep(10_000)
                    continue
                }
            }
            serve(&request, responder)
            FCGX_Finish_r(&request)
        }
    }

    private func serve(_ request: inout FCGX_Request, _ responder: any Responder) {
        let started = ContinuousClock.now
        let parameters = Self.parameters(request.envp)
        let method = parameters["REQUEST_METHOD"] ?? "GET"
        let response: Response
        switch Self.readBody(&request, contentLength: parameters["CONTENT_LENGTH"]) {
        case .success(let body):
            response = responder.respond(to: Request(parameters: parameters, body: body))
        case .failure(let error):
            response = error.response
        }
        let bytes = response.cgiBytes(includeBody: method != "HEAD")
        let written = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { FCGX_PutStr($0.baseAddress, Int32($0.count), request.out) }
        }
        if written < 0 {
            logger.debug("client went away before the response was written")
        }
        // Method, path and status only: the query string and headers may carry tokens.
        logger.debug("request", metadata: [
            "method": "\(method)", "path": "\(parameters["DOCUMENT_URI"] ?? "")",
            "status": "\(response.status.code)", "duration": "\(ContinuousClock.now - started)",
        ])
    }

    /// The CGI parameters of a request, from libfcgi's `NAME=value` array.
    static func parameters(_ envp: FCGX_ParamArray?) -> [String: String] {
        var parameters: [String: String] = [:]
        guard var cursor = envp else { return parameters }
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                parameters[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            cursor += 1
        }
        return parameters
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
