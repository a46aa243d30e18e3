import CFastCGI
import Glibc
import Logging
import Synchronization

/// The epoll set every serving thread waits on, and the connections in it: the listening
/// socket, a wake-up pipe, and each open connection, registered one-shot and re-armed when a
/// thread puts it back (`park`).
///
/// A connection is only ever touched by the one thread its one-shot event woke, which is also
/// the only one that closes it, so no event can name a closed connection and the request path
/// takes no lock. The table of open connections (under a lock taken at accept and close) is
/// for the deadline sweep, which never closes a descriptor itself: it shuts the socket down,
/// which wakes the connection's event, and its thread closes it.
final class ConnectionSet: Sendable {
    enum Event {
        /// Readable: this thread owns it until it parks or ends it.
        case connection(FastCGIConnection)
        /// The listener had nothing for this thread, or the client left.
        case nothing
        /// Return: the worker stops.
        case release
    }

    let listener: Listener
    /// How long a client has to send a whole request (and to take its response), in nanoseconds.
    let timeout: Int64
    /// `Config.allowedPeers`: the IPv4 addresses TCP clients may connect from; empty, any.
    private let allowedPeers: Set<UInt32>
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// Connections accepted and not yet closed, by descriptor; the table holds their reference.
    private let table = Mutex<[Int32: FastCGIConnection]>([:])
    private let open = Atomic<Int>(0)
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let events: Int32
    /// Serving threads: the FastCGI values a connection is told, and the bytes written to release them all.
    let threads = Atomic<Int>(0)

    /// The epoll data of the listener and of the wake-up pipe; a connection's is its address.
    private static let listenerEvent: UInt64 = 1
    private static let wakeEvent: UInt64 = 2

    init(listener: Listener, timeout: Duration, allowedPeers: Set<UInt32>, logger: Logger) throws(SystemError) {
        self.listener = listener
        self.timeout = timeout.nanoseconds
        self.allowedPeers = allowedPeers
        self.logger = logger
        var fds: [Int32] = [0, 0]
        try systemCall("cannot create the wake-up pipe") { pipe(&fds) }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        events = try systemCall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        for (fd, data) in [(listener.fd, Self.listenerEvent), (wakeRead, Self.wakeEvent)] {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.u64 = data
            try systemCall("epoll_ctl") { epoll_ctl(events, EPOLL_CTL_ADD, fd, &event) }
        }
        let flags = try systemCall("cannot make the listening socket non-blocking") { fcntl(listener.fd, F_GETFL) }
        try systemCall("cannot make the listening socket non-blocking") { fcntl(listener.fd, F_SETFL, flags | O_NONBLOCK) }
    }

    deinit {
        for fd in [wakeRead, wakeWrite, events] { close(fd) }
    }

    /// Connections open now.
    var count: Int { open.load(ordering: .relaxed) }

    /// Waits for the next event; nil when waiting failed (logged).
    func next() -> Event? {
        var event = epoll_event()
        while true {
            do {
                guard try systemCall("epoll_wait", { epoll_wait(events, &event, 1, -1) }) > 0 else { continue }
            } catch {
                logger.error("epoll_wait failed", metadata: ["error": "\(error)"])
                return nil
            }
            switch event.data.u64 {
            case Self.wakeEvent: return .release
            case Self.listenerEvent: return accept().map { .connection($0) } ?? .nothing
            default:
                // A connection's event names it: the table keeps it alive until this thread,
                // the only one its one-shot event woke, closes it.
                return .connection(
                    Unmanaged<FastCGIConnection>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(event.data.u64))!)
                        .takeUnretainedValue())
            }
        }
    }

    /// Stops taking new connections; the threads are released once the open ones are closed.
    func stopListening() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        do {
            try systemCall("cannot stop waiting for new connections") { epoll_ctl(events, EPOLL_CTL_DEL, listener.fd, nil) }
            // A socket the worker made has nobody to hand it on to: new connections fail at once
            // rather than wait in a backlog nobody will serve.
            if let path = listener.createdPath { try systemCall("cannot remove \(path)") { unlink(path) } }
        } catch {
            logger.warning("stopping", metadata: ["error": "\(error)"])
        }
        if open.load(ordering: .acquiring) == 0 { release() }
    }

    /// Wakes every thread to return: the pipe stays readable, one byte per thread.
    func release() {
        var byte: UInt8 = 1
        do {
            for _ in 0..<max(1, threads.load(ordering: .relaxed)) { try systemCall("cannot wake the serving threads") { write(wakeWrite, &byte, 1) } }
        } catch {
            logger.error("stopping", metadata: ["error": "\(error)"])
        }
    }

    /// Shuts down the connections whose request did not arrive whole in time: each becomes
    /// readable at its end, and the thread that takes it closes it.
    func closeLate() {
        let late = table.withLock { table in
            var late = 0
            for connection in table.values where connection.isLate {
                connection.deadline.store(0, ordering: .relaxed)
                // Fails only when the client already left: its thread closes it all the same.
                _ = try? systemCall("shutdown") { shutdown(connection.fd, Int32(SHUT_RDWR)) }
                late += 1
            }
            return late
        }
        guard late > 0 else { return }
        logger.warning("closed connections that sent no whole request in time", metadata: [
            "connections": "\(late)", "timeout": "\(Duration.nanoseconds(timeout))",
        ])
    }

    /// Closes a connection this thread owns; the last one of a stopping worker releases the threads.
    func end(_ connection: FastCGIConnection) {
        table.withLock { table in
            table[connection.fd] = nil
            close(connection.fd)
        }
        let left = open.subtract(1, ordering: .acquiringAndReleasing).newValue
        if left == 0, stopping.load(ordering: .acquiring) { release() }
    }

    /// Hands a connection this thread owns back to the epoll set until it is readable again.
    /// From the moment it is armed another thread may own it: nothing here touches it after.
    func park(_ connection: FastCGIConnection) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLONESHOT.rawValue
        event.data.u64 = UInt64(UInt(bitPattern: Unmanaged.passUnretained(connection).toOpaque()))
        let operation = connection.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD
        connection.registered = true
        do {
            try systemCall("epoll_ctl") { epoll_ctl(events, operation, connection.fd, &event) }
        } catch {
            logger.warning("cannot wait for a connection; closing it", metadata: ["error": "\(error)"])
            return end(connection)
        }
    }

    /// A new connection from the listening socket, owned by this thread; nil when another
    /// thread took it first.
    private func accept() -> FastCGIConnection? {
        if stopping.load(ordering: .acquiring) { return nil }
        let fd: Int32
        do {
            fd = try systemCall("accept") { Glibc.accept(listener.fd, nil, nil) }
        } catch {
            // Another thread took the connection, or the client left; else (out of descriptors)
            // a moment's pause, rather than a busy loop on the still-readable listener.
            guard !error.wouldBlock, error.code != ECONNABORTED else { return nil }
            logger.error("accept failed", metadata: ["error": "\(error)"])
            usleep(10_000)
            return nil
        }
        do {
            try systemCall("cannot make a connection non-blocking") { fcntl(fd, F_SETFL, O_NONBLOCK) }
            try systemCall("cannot make a connection non-blocking") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
        } catch {
            logger.error("accept failed", metadata: ["error": "\(error)"])
            Glibc.close(fd)
            return nil
        }
        if !allowedPeers.isEmpty, !isAllowedPeer(fd) {
            Glibc.close(fd)
            return nil
        }
        open.add(1, ordering: .relaxed)
        let threads = String(threads.load(ordering: .relaxed))
        let connection = FastCGIConnection(
            fd: fd, reader: RecordReader(values: ["FCGI_MAX_CONNS": threads, "FCGI_MAX_REQS": threads, "FCGI_MPXS_CONNS": "0"]))
        connection.expect(within: timeout)
        table.withLock { $0[fd] = connection }
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
}
