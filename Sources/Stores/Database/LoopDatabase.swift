import Logging
import Observability
import PG
import Support

/// The PostgreSQL connections of one serving loop, lent to one statement (or one transaction)
/// at a time, whose requests are parked while they wait for the server (the connections wait on
/// the loop, `SocketWaiter`).
///
/// A loop keeps `usual` connections: with one statement in flight, the next request's statement
/// (a write beside a reading of the WAL's end) needs no wait. When every connection is lent and
/// the one lent longest has been out for `stuckAfter` (a row lock, a slow plan), the loop takes
/// another, up to `most`, so a stuck statement does not hold up the loop's other requests; a
/// connection beyond `usual` is closed as soon as nobody waits for it. A request that finds
/// none to take waits its turn, first come first served.
///
/// Touched on its loop only.
package final class LoopDatabase: Database {
    package static let usual = 2
    package static let most = 8
    package static let stuckAfter: Duration = .milliseconds(100)

    private let make: () -> Connection
    private let loop: EventLoop
    /// The sessions gauge, and where a loop that reached `most` says so.
    private let metrics: Metrics?
    private let logger: Logger?
    private var idle: [Connection] = []
    /// The connections lent, and since when (monotonic nanoseconds).
    private var lent: [ObjectIdentifier: Int64] = [:]
    private var waiting: [UnsafeContinuation<Handed, Never>] = []
    private var growing: EventLoop.Alarm?
    /// Connections open or lent now, for the sessions gauge; and every connection this loop made
    /// (each counts its reconnects).
    package private(set) var made: [Connection] = []

    /// `make` makes a connection (lazily, on the loop's waiter).
    package init(loop: EventLoop, metrics: Metrics? = nil, logger: Logger? = nil, make: @escaping (EventLoop) -> Connection) {
        self.loop = loop
        self.metrics = metrics
        self.logger = logger
        self.make = { make(loop) }
    }

    /// Connections this loop holds.
    package var count: Int { idle.count + lent.count }

    package func query(_ sql: String, _ parameters: [(any PGEncodable)?]) async throws(PGError) -> QueryResult {
        let db = await borrow()
        defer { giveBack(db) }
        return try await db.query(sql, parameters)
    }

    package func query(_ statement: PreparedStatement, _ parameters: [(any PGEncodable)?]) async throws(PGError) -> QueryResult {
        let db = await borrow()
        defer { giveBack(db) }
        return try await db.query(statement, parameters)
    }

    package func transaction<T>(_ body: (Connection) async throws -> T) async throws -> T {
        let db = await borrow()
        defer { giveBack(db) }
        return try await db.transaction(body)
    }

    /// A connection for the caller alone until it gives it back.
    package func borrow() async -> Connection {
        if let db = idle.popLast() { return lend(db) }
        if count < Self.usual { return lend(open()) }
        return await withUnsafeContinuation { continuation in
            waiting.append(continuation)
            growIfStuck()
        }.db
    }

    /// A connection handed to a parked request: on the same loop, so never used by two threads.
    private struct Handed: @unchecked Sendable {
        let db: Connection
    }

    package func giveBack(_ db: Connection) {
        lent[ObjectIdentifier(db)] = nil
        if !waiting.isEmpty { return waiting.removeFirst().resume(returning: Handed(db: lend(db))) }
        if count >= Self.usual {
            made.removeAll { $0 === db }
            db.close()
            metrics?.databaseSessions.decrement()
        } else {
            idle.append(db)
        }
    }

    private func lend(_ db: Connection) -> Connection {
        lent[ObjectIdentifier(db)] = monotonicNanoseconds()
        return db
    }

    private func open() -> Connection {
        let db = make()
        made.append(db)
        metrics?.databaseSessions.increment()
        if made.count > Self.usual {
            logger?.log(level: made.count == Self.most ? .warning : .info, "a statement is stuck: the loop opens another database connection", metadata: [
                "loop": "\(loop.index)", "connections": "\(made.count)", "most": "\(Self.most)",
            ])
        }
        return db
    }

    /// Opens another connection for the first waiting request once the one lent longest has
    /// been out for `stuckAfter`, checking again then if it is not yet.
    private func growIfStuck() {
        guard growing == nil, !waiting.isEmpty, count < Self.most, let oldest = lent.values.min() else { return }
        let due = oldest + Self.stuckAfter.nanoseconds
        if due <= monotonicNanoseconds() {
            waiting.removeFirst().resume(returning: Handed(db: lend(open())))
            return growIfStuck()
        }
        growing = loop.at(due) { [self] in
            growing = nil
            growIfStuck()
        }
    }
}

extension EventLoop: SocketWaiter {
    package func wait(for fd: Int32, writable: Bool, timeout: Duration?) async -> Bool {
        await ready(fd, writable: writable, until: timeout.map { monotonicNanoseconds() + $0.nanoseconds })
    }
    // offLoop(timeout:_:) is the loop's own (Support/LoopWait.swift).
}
