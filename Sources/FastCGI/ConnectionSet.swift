import CFastCGI
import Glibc
import Logging
import Support
import Synchronization

/// The open connections of a worker and the serving loops they are spread over: each loop
/// watches the listening socket (`EPOLLEXCLUSIVE`, so a new connection wakes one), accepts what
/// is waiting, and gives each new connection to the loop with the fewest, which serves it until
/// it closes.
///
/// A connection is only ever touched by its loop, which is also the only one that closes it.
/// The table of open connections (under a lock taken at accept and close) is for the deadline
/// sweep, which never closes a descriptor itself: it shuts the socket down, which wakes the
/// connection's task, and its loop closes it.
package final class ConnectionSet: Sendable {
    package let listener: Listener
    /// How long a client has to send a whole request (and to take its response), in nanoseconds.
    package let timeout: Int64
    /// `Config.allowedPeers`: the IPv4 addresses TCP clients may connect from; empty, any.
    private let allowedPeers: Set<UInt32>
    private let logger: Logger
    /// Called for each connection accepted.
    private let onAccept: @Sendable () -> Void
    private let stopping = Atomic<Bool>(false)
    /// Connections accepted and not yet closed, by descriptor; the table holds their reference.
    private let table = Mutex<[Int32: FastCGIConnection]>([:])
    private let open = Atomic<Int>(0)
    /// The serving loops, what each serves with, and how many connections each has.
    private let loops: [Place]

    private final class Place: Sendable {
        let loop: EventLoop
        let serving: FastCGIConnection.Serving
        let open = Atomic<Int>(0)
        init(_ loop: EventLoop, _ serving: FastCGIConnection.Serving) {
            self.loop = loop
            self.serving = serving
        }
    }

    package init(
        listener: Listener, timeout: Duration, allowedPeers: Set<UInt32>, loops: [(EventLoop, FastCGIConnection.Serving)],
        logger: Logger, onAccept: @escaping @Sendable () -> Void = {}
    ) throws(SystemError) {
        self.onAccept = onAccept
        self.listener = listener
        self.timeout = timeout.nanoseconds
        self.allowedPeers = allowedPeers
        self.logger = logger
        self.loops = loops.map { Place($0.0, $0.1) }
        let flags = try systemCall("cannot make the listening socket non-blocking") { fcntl(listener.fd, F_GETFL) }
        try systemCall("cannot make the listening socket non-blocking") { fcntl(listener.fd, F_SETFL, flags | O_NONBLOCK) }
    }

    /// Connections open now.
    package var count: Int { open.load(ordering: .relaxed) }

    /// Starts accepting on every loop; call before the loops run.
    package func listen() throws(SystemError) {
        for place in loops { try watchListener(on: place.loop) }
    }

    /// Stops taking new connections; the loops stop once the open ones are closed.
    package func stopListening() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for place in loops {
            let loop = place.loop
            loop.execute { [self] in loop.forget(listener.fd) }
        }
        // A socket the worker made has nobody to hand it on to: new connections fail at once
        // rather than wait in a backlog nobody will serve.
        if let path = listener.createdPath {
            do {
                try systemCall("cannot remove \(path)") { unlink(path) }
            } catch {
                logger.warning("stopping", metadata: ["error": "\(error)"])
            }
        }
        if open.load(ordering: .acquiring) == 0 { release() }
    }

    /// Stops every loop.
    package func release() {
        for place in loops { place.loop.stop() }
    }

    /// Shuts down the connections whose request did not arrive whole in time: each becomes
    /// readable at its end, and its loop closes it.
    package func closeLate() {
        let late = table.withLock { table in
            var late = 0
            for connection in table.values where connection.isLate {
                connection.deadline.store(0, ordering: .relaxed)
                // Fails only when the client already left: its loop closes it all the same.
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

    /// Closes a connection of `loop` (on it); the last one of a stopping worker stops the loops.
    package func end(_ connection: FastCGIConnection, on loop: EventLoop) {
        loop.forget(connection.fd)
        table.withLock { table in
            table[connection.fd] = nil
            close(connection.fd)
        }
        loops.first { $0.loop === loop }?.open.subtract(1, ordering: .relaxed)
        let left = open.subtract(1, ordering: .acquiringAndReleasing).newValue
        if left == 0, stopping.load(ordering: .acquiring) { release() }
    }

    /// Has `loop` accept from the listening socket when it is readable.
    private func watchListener(on loop: EventLoop) throws(SystemError) {
        try loop.watch(listener.fd, exclusive: true) { [self] in acceptWaiting(on: loop) }
    }

    /// Accepts the connections waiting (on `loop`, which the listener woke) and starts each on
    /// the loop with the fewest. When accepting fails (out of descriptors), `loop` stops
    /// watching the listener for a moment, rather than go round on it.
    private func acceptWaiting(on loop: EventLoop) {
        for _ in 0..<16 {
            let connection: FastCGIConnection?
            do {
                connection = try accept()
            } catch {
                logger.error("accept failed", metadata: ["error": "\(error)"])
                loop.forget(listener.fd)
                loop.at(monotonicNanoseconds() + 10_000_000) { [self] in
                    guard !stopping.load(ordering: .acquiring) else { return }
                    try? watchListener(on: loop)
                }
                return
            }
            guard let connection else { return }
            onAccept()
            let target = loops.min { $0.open.load(ordering: .relaxed) < $1.open.load(ordering: .relaxed) }!
            target.open.add(1, ordering: .relaxed)
            let (loop, serving) = (target.loop, target.serving)
            // Nothing here touches the connection after: it is its loop's.
            loop.spawn { [self] in await connection.serve(in: self, on: loop, serving) }
        }
    }

    /// A new connection from the listening socket; nil when there is none (another loop took
    /// it first, or the client left).
    private func accept() throws(SystemError) -> FastCGIConnection? {
        if stopping.load(ordering: .acquiring) { return nil }
        let fd: Int32
        do {
            fd = try systemCall("accept") { Glibc.accept(listener.fd, nil, nil) }
        } catch {
            guard !error.wouldBlock, error.code != ECONNABORTED else { return nil }
            throw error
        }
        do {
            try systemCall("cannot make a connection non-blocking") { fcntl(fd, F_SETFL, O_NONBLOCK) }
            try systemCall("cannot make a connection non-blocking") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        if !allowedPeers.isEmpty, !isAllowedPeer(fd) {
            Glibc.close(fd)
            return nil
        }
        open.add(1, ordering: .relaxed)
        let loops = String(loops.count)
        let connection = FastCGIConnection(
            fd: fd, reader: RecordReader(values: ["FCGI_MAX_CONNS": loops, "FCGI_MAX_REQS": loops, "FCGI_MPXS_CONNS": "0"]))
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
