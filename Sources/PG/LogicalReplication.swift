import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

/// A position in the server's write-ahead log, as `pg_current_wal_flush_lsn()` and the
/// replication protocol give it (`16/B374D848` in text).
public struct LSN: Sendable, Hashable, Comparable, CustomStringConvertible, PGDecodable {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// Parses `X/Y` (two hexadecimal numbers of up to 8 digits each).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ (1...8).contains($0.count) }),
            let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16)
        else { return nil }
        value = high << 32 | low
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xffff_ffff, radix: 16, uppercase: true)
    }

    public static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }

    public static func accepts(_ type: PGType) -> Bool { type == .pgLSN }

    public static func decode(pgText text: UnsafeBufferPointer<UInt8>) -> LSN? {
        LSN(String(decoding: text, as: UTF8.self))
    }
}

/// A transaction snapshot as `pg_current_snapshot()` writes it (`xmin:xmax:xip,...`), by 32-bit
/// transaction ids (the epoch dropped), as logical decoding names them: a transaction is visible
/// to it when its id is below `xmax` and not in `running`.
public struct Snapshot: Sendable, Equatable, PGDecodable {
    /// The first id not yet completed when the snapshot was taken (ids from it on are invisible).
    public let xmax: UInt32
    /// Ids below `xmax` still running (`xip`).
    public let running: [UInt32]

    public init(xmax: UInt32, running: [UInt32]) {
        self.xmax = xmax
        self.running = running
    }

    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, UInt64(parts[0]) != nil, let xmax = UInt64(parts[1]) else { return nil }
        var running: [UInt32] = []
        for item in parts[2].split(separator: ",") {
            guard let xid = UInt64(item) else { return nil }
            running.append(UInt32(truncatingIfNeeded: xid))
        }
        self.xmax = UInt32(truncatingIfNeeded: xmax)
        self.running = running
    }

    /// Whether transaction `xid` is invisible to the snapshot (ids compare modulo 2^32, as
    /// PostgreSQL compares them).
    public func hides(_ xid: UInt32) -> Bool {
        Int32(bitPattern: xid &- xmax) >= 0 || running.contains(xid)
    }

    public static func accepts(_ type: PGType) -> Bool { type == .text }

    public static func decode(pgText text: UnsafeBufferPointer<UInt8>) -> Snapshot? {
        Snapshot(String(decoding: text, as: UTF8.self))
    }
}

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

    /// Connects to the database `conninfo` names, in logical replication mode.
    public init(_ conninfo: String?, connectTimeout: Int = 5, applicationName: String) throws(PGError) {
        conn = try connectToServer(
            conninfo, connectTimeout: connectTimeout, applicationName: applicationName, replication: "database")
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
    /// which it streams: every change committed after it.
    public func createTemporarySlot(_ slot: String, plugin: String) throws(PGError) -> LSN {
        let result = try execute("CREATE_REPLICATION_SLOT \(slot) TEMPORARY LOGICAL \(plugin) NOEXPORT_SNAPSHOT")
        guard let row = result.first, let position = LSN(try row.decode(String.self, at: 1)) else {
            throw PGError(kind: .decoding, message: "CREATE_REPLICATION_SLOT returned no consistent point")
        }
        return position
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

/// A message of the `pgoutput` plugin, protocol version 1 (PostgreSQL's "Logical Replication
/// Message Formats"). Column values are in text form.
public enum PGOutputMessage: Equatable {
    public enum Value: Equatable {
        case null
        /// A TOASTed value the change left as it was.
        case unchanged
        case text(String)
    }

    /// A transaction begins; `xid` is its transaction id.
    case begin(xid: UInt32)
    /// A transaction committed at `commitTime` (microseconds since 2000-01-01 UTC); every change
    /// of it was sent before, and the next one starts after `end`.
    case commit(end: LSN, commitTime: Int64)
    /// Describes relation `id` before the first change to it in the stream.
    case relation(id: UInt32, schema: String, name: String, columns: [String])
    case insert(relation: UInt32, new: [Value])
    /// `old` is the old key (or whole row) when the key changed or the replica identity is full.
    case update(relation: UInt32, old: [Value]?, new: [Value])
    /// `key` holds the key columns (others are null), or the whole row.
    case delete(relation: UInt32, key: [Value])
    case truncate(relations: [UInt32])
    /// Origins, types and logical messages: nothing a cache depends on.
    case other

    public init(_ bytes: [UInt8]) throws(PGError) {
        let decoded: PGOutputMessage? = bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let message = Self.decode(&reader)
            return reader.isValid ? message : nil
        }
        guard let decoded else {
            throw PGError(kind: .decoding, message: "malformed pgoutput message of \(bytes.count) bytes")
        }
        self = decoded
    }

    private static func decode(_ reader: inout ByteReader) -> PGOutputMessage? {
        switch reader.byte() {
        case UInt8(ascii: "B"):
            _ = reader.uint64()  // the commit's position
            _ = reader.uint64()  // its time
            return .begin(xid: reader.uint32())
        case UInt8(ascii: "C"):
            _ = reader.byte()  // flags
            _ = reader.uint64()  // the commit's own position
            let end = LSN(reader.uint64())
            return .commit(end: end, commitTime: Int64(bitPattern: reader.uint64()))
        case UInt8(ascii: "R"):
            let id = reader.uint32()
            let schema = reader.cString()
            let name = reader.cString()
            _ = reader.byte()  // replica identity
            let count = Int(reader.uint16())
            var columns: [String] = []
            for _ in 0..<count where reader.isValid {
                _ = reader.byte()  // flags
                columns.append(reader.cString())
                _ = reader.uint32()  // type
                _ = reader.uint32()  // modifier
            }
            return .relation(id: id, schema: schema, name: name, columns: columns)
        case UInt8(ascii: "I"):
            let relation = reader.uint32()
            guard reader.byte() == UInt8(ascii: "N") else { return nil }
            return .insert(relation: relation, new: tuple(&reader))
        case UInt8(ascii: "U"):
            let relation = reader.uint32()
            var kind = reader.byte()
            var old: [Value]?
            if kind == UInt8(ascii: "K") || kind == UInt8(ascii: "O") {
                old = tuple(&reader)
                kind = reader.byte()
            }
            guard kind == UInt8(ascii: "N") else { return nil }
            return .update(relation: relation, old: old, new: tuple(&reader))
        case UInt8(ascii: "D"):
            let relation = reader.uint32()
            let kind = reader.byte()
            guard kind == UInt8(ascii: "K") || kind == UInt8(ascii: "O") else { return nil }
            return .delete(relation: relation, key: tuple(&reader))
        case UInt8(ascii: "T"):
            let count = Int(reader.uint32())
            _ = reader.byte()  // options
            var relations: [UInt32] = []
            for _ in 0..<count where reader.isValid { relations.append(reader.uint32()) }
            return .truncate(relations: relations)
        case UInt8(ascii: "O"), UInt8(ascii: "Y"), UInt8(ascii: "M"):
            return .other
        default:
            return nil
        }
    }

    private static func tuple(_ reader: inout ByteReader) -> [Value] {
        let count = Int(reader.uint16())
        var values: [Value] = []
        values.reserveCapacity(count)
        for _ in 0..<count where reader.isValid {
            switch reader.byte() {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchanged)
            case UInt8(ascii: "t"): values.append(.text(reader.string(length: Int(reader.uint32()))))
            default: reader.isValid = false
            }
        }
        return values
    }
}

/// Big-endian fields of a protocol message; reading past the end marks it invalid (and reads
/// zeros), so a short message is one check at the end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    var isValid = true

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private mutating func take(_ count: Int) -> UnsafeRawBufferPointer? {
        guard isValid, count >= 0, bytes.count - offset >= count else {
            isValid = false
            return nil
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T {
        guard let raw = take(MemoryLayout<T>.size) else { return 0 }
        return raw.reduce(T(0)) { $0 << 8 | T($1) }
    }

    mutating func byte() -> UInt8 { integer(UInt8.self) }
    mutating func uint16() -> UInt16 { integer(UInt16.self) }
    mutating func uint32() -> UInt32 { integer(UInt32.self) }
    mutating func uint64() -> UInt64 { integer(UInt64.self) }

    mutating func string(length: Int) -> String {
        take(length).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// A NUL-terminated string.
    mutating func cString() -> String {
        guard isValid, let end = bytes[offset...].firstIndex(of: 0) else {
            isValid = false
            return ""
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]), as: UTF8.self)
        offset = end + 1
        return text
    }
}
