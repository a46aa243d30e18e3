import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

/// A position in the server's write-ahead log, as `pg_current_wal_insert_lsn()` and the
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
