import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

/// A logical replication connection (`replication=database`) that streams a database's changes
/// from a temporary slot: dropped by the server when the connection ends, so a worker that is
/// gone never keeps WAL from being recycled. The C functions are `PQexec`, `PQgetCopyData`,
/// `PQputCopyData` and `PQflush`.
///
/// Used by one thread. Every failure throws; make a new stream to start again.
public final class ReplicationStream {
    /// What the server sends while streaming.
    public enum Message {
        /// WAL data (for `pgoutput`, one `PGOutputMessage`) starting at `start`.
        case data(start: LSN, bytes: [UInt8])
        /// The server sent everything up to `walEnd`; `replyRequested` asks for a status update.
        case keepalive(walEnd: LSN, replyRequested: Bool)
    }

    private var conn: OpaquePointer?

    /// Connects to the database `conninfo` names, in logical replication mode, or with
    /// `physical` in physical replication mode (the whole cluster's WAL and files, what
    /// `pg_basebackup` copies it with).
    public init(_ conninfo: String?, connectTimeout: Int = 5, applicationName: String, physical: Bool = false) throws(PGError) {
        conn = try connectToServer(
            conninfo, connectTimeout: connectTimeout, applicationName: applicationName, replication: physical ? "true" : "database")
    }

    deinit { close() }

    public func close() {
        if let conn { PQfinish(conn) }
        conn = nil
    }

    /// Runs a replication command or a simple SQL statement (no parameters: trusted text only).
    @discardableResult
    public func execute(_ command: String) throws(PGError) -> QueryResult {
        let conn = try open()
        return try checked(PQexec(conn, command), conn)
    }

    /// Creates a temporary logical slot named `slot` for `plugin` and returns the position from
    /// which it streams: every change committed after it. `load` runs meanwhile, in a read-only
    /// transaction whose snapshot is the slot's own (`SNAPSHOT 'use'`): it sees exactly the
    /// transactions whose commits precede that position, even one whose commit other sessions
    /// cannot see yet (waiting for a synchronous standby), so together with the stream it
    /// misses no commit and sees none twice.
    public func createTemporarySlot<T>(_ slot: String, plugin: String, load: (ReplicationStream) throws(PGError) -> T) throws(PGError)
        -> (start: LSN, loaded: T)
    {
        try execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        let result = try execute("CREATE_REPLICATION_SLOT \(slot) TEMPORARY LOGICAL \(plugin) (SNAPSHOT 'use')")
        guard let row = result.first, let position = LSN(try row.decode(String.self, at: 1)) else {
            throw PGError(kind: .decoding, message: "CREATE_REPLICATION_SLOT returned no consistent point")
        }
        let loaded = try load(self)
        try execute("COMMIT")
        return (position, loaded)
    }

    /// Starts streaming `slot` with `options` (already quoted as the plugin needs them).
    public func start(slot: String, options: String) throws(PGError) {
        let conn = try open()
        guard let result = PQexec(conn, "START_REPLICATION SLOT \(slot) LOGICAL 0/0 (\(options))") else {
            throw PGError(connection: conn)
        }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_BOTH else { throw PGError(result: result, connection: conn) }
    }

    /// The next message, waiting up to `timeout` seconds; nil when none came in time.
    public func next(timeout: Double) throws(PGError) -> Message? {
        let conn = try open()
        var waited = false
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(conn, &buffer, 1)
            if length > 0, let buffer {
                defer { PQfreemem(buffer) }
                return try Self.parse(UnsafeRawBufferPointer(start: buffer, count: Int(length)))
            }
            if length == -1 {
                // The server ended the stream: its result says why.
                let result = PQgetResult(conn)
                defer { if let result { PQclear(result) } }
                throw result.map { PGError(result: $0, connection: conn) }
                    ?? PGError(kind: .connection, sqlState: .connectionFailure, message: "the server ended replication")
            }
            if length < -1 { throw PGError(connection: conn) }
            if waited { return nil }
            var pollfd = Glibc.pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            let ready = poll(&pollfd, 1, Int32(max(0, timeout) * 1000))
            if ready < 0 && errno != EINTR { throw PGError(kind: .connection, message: "poll failed: errno \(errno)") }
            if ready > 0 && PQconsumeInput(conn) == 0 { throw PGError(connection: conn) }
            waited = ready <= 0
        }
    }

    /// Tells the server everything up to `position` is applied (so a slot may move on), asking
    /// for a keepalive back when `replyRequested`.
    public func sendStatus(applied position: LSN, replyRequested: Bool) throws(PGError) {
        let conn = try open()
        var message: [UInt8] = [UInt8(ascii: "r")]
        for value in [position.value, position.value, position.value, UInt64(bitPattern: Self.postgresMicroseconds())] {
            withUnsafeBytes(of: value.bigEndian) { message.append(contentsOf: $0) }
        }
        message.append(replyRequested ? 1 : 0)
        let sent = message.withUnsafeBytes { bytes in
            PQputCopyData(conn, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
        }
        guard sent == 1, PQflush(conn) == 0 else { throw PGError(connection: conn) }
    }

    /// Microseconds since 2000-01-01 UTC, the replication protocol's clock.
    public static func postgresMicroseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return (Int64(now.tv_sec) - 946_684_800) * 1_000_000 + Int64(now.tv_nsec) / 1000
    }

    private func open() throws(PGError) -> OpaquePointer {
        guard let conn else {
            throw PGError(kind: .connection, sqlState: .connectionDoesNotExist, message: "the connection was closed")
        }
        return conn
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) throws(PGError) -> Message {
        var reader = ByteReader(bytes)
        switch reader.byte() {
        case UInt8(ascii: "w"):
            let start = LSN(reader.uint64())
            _ = reader.uint64()  // the server's end of WAL
            _ = reader.uint64()  // its clock
            guard reader.isValid else { break }
            return .data(start: start, bytes: Array(bytes[reader.offset...]))
        case UInt8(ascii: "k"):
            let end = LSN(reader.uint64())
            _ = reader.uint64()
            let reply = reader.byte()
            guard reader.isValid else { break }
            return .keepalive(walEnd: end, replyRequested: reply == 1)
        default:
            break
        }
        throw PGError(kind: .decoding, message: "unexpected replication message of \(bytes.count) bytes")
    }
}
