import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

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

    /// Whether this snapshot hides a transaction that `other` shows: one below `other`'s xmax
    /// that `other` does not list as running. (An id from this snapshot's xmax to `other`'s
    /// counts as shown: taken for true without looking further.)
    public func hidesAny(shownBy other: Snapshot) -> Bool {
        if Int32(bitPattern: other.xmax &- xmax) > 0 { return true }
        return running.contains { !other.hides($0) }
    }

    public static func accepts(_ type: PGType) -> Bool { type == .text }

    public static func decode(pgText text: UnsafeBufferPointer<UInt8>) -> Snapshot? {
        Snapshot(String(decoding: text, as: UTF8.self))
    }
}
