import Logging
import Observability
import PG
import Support

/// What the request a loop's task serves brings to its database work: the deadline of its
/// waits for a connection (inside the request's budget, so nothing it sends can outlast
/// nginx's wait for the answer), and, once its token is verified, its principal, which holds
/// at most `ConnectionLending.perPrincipal` of the loop's connections. Loop-only, like the
/// task that carries it.
package final class RequestScope: @unchecked Sendable {
    package let deadline: Int64
    package var principal: String?

    package init(deadline: Int64, principal: String? = nil) {
        self.deadline = deadline
        self.principal = principal
    }
}

/// The PostgreSQL connections of one serving loop, lent to one statement (or one transaction)
/// at a time, whose requests are parked while they wait for the server (the connections wait on
/// the loop, `SocketWaiter`). Which request gets which connection, and when the loop opens or
/// closes one, is `ConnectionLending`'s to decide; this carries its actions out.
///
/// Touched on its loop only.
package final class LoopDatabase: Database {
    package static let usual = ConnectionLending.usual
    package static let most = ConnectionLending.most
    /// How long a request's waits for a connection may take, from its arrival: a loop whose
    /// connections are all that busy for that long is overloaded, and a quick 503 (nothing
    /// sent) serves the client better than a late answer.
    package static let defaultWait: Duration = .seconds(2)

    /// The request the calling task serves (`App` binds it per request).
    @TaskLocal package static var scope: RequestScope?

    private let make: () -> Connection
    private let loop: EventLoop
    /// The sessions gauge, and where a loop that reached `most` says so.
    private let metrics: Metrics?
    private let logger: Logger?
    private var lending = ConnectionLending()
    private var connections: [Int: Connection] = [:]
    /// Parked requests by ticket: resumed with their connection's number, or nil at their deadline.
    private var parked: [Int: UnsafeContinuation<Int?, Never>] = [:]
    private var nextTicket = 0
    private var alarm: EventLoop.Alarm?
    /// Every connection this loop made and has not closed (each counts its reconnects).
    package private(set) var made: [Connection] = []

    /// `make` makes a connection (lazily, on the loop's waiter).
    package init(loop: EventLoop, metrics: Metrics? = nil, logger: Logger? = nil, make: @escaping (EventLoop) -> Connection) {
        self.loop = loop
        self.metrics = metrics
        self.logger = logger
        self.make = { make(loop) }
    }

    /// Connections this loop holds.
    package var count: Int { lending.count }

    package func query(_ sql: String, _ parameters: [(any PGEncodable)?]) async throws(PGError) -> QueryResult {
        // Typed as async: the closure's body would otherwise pick `Connection`'s blocking overload.
        try await lent { (db: Connection) async throws(PGError) -> QueryResult in try await db.query(sql, parameters) }
    }

    package func query(_ statement: PreparedStatement, _ parameters: [(any PGEncodable)?]) async throws(PGError) -> QueryResult {
        try await lent { (db: Connection) async throws(PGError) -> QueryResult in try await db.query(statement, parameters) }
    }

    package func transaction<T>(_ body: (Connection) async throws -> T) async throws -> T {
        // The body's own errors pass through; the database's count as `lent`'s.
        var outcome: Result<T, any Error>?
        try await lent { (db: Connection) async throws(PGError) in
            do {
                outcome = .success(try await db.transaction(body))
            } catch let error as PGError {
                throw error
            } catch {
                outcome = .failure(error)
            }
        }
        return try outcome!.get()
    }

    /// `work` on a connection lent for it, noting whether it had to connect and could.
    private func lent<T>(_ work: (Connection) async throws(PGError) -> T) async throws(PGError) -> T {
        let (number, db) = try await borrow()
        defer { giveBack(number) }
        let connecting = !db.isConnected
        do {
            let result = try await work(db)
            if connecting { lending.connected() }
            return result
        } catch {
            if connecting, error.isConnectionError {
                lending.connectFailed(now: monotonicNanoseconds(), jitter: Double.random(in: 0...1))
            }
            throw error
        }
    }

    /// What a request gets that would need a connection made while the loop pauses after a
    /// failed connect.
    package static let unreachable = PGError(
        kind: .connection, sqlState: .sqlClientUnableToEstablishSQLConnection,
        message: "the database could not be reached; this loop tries again after a pause")

    /// What a request gets when no connection was free for it within its deadline: no
    /// statement of it was sent.
    package static let busy = PGError(
        kind: .client, sqlState: .tooManyConnections, message: "no database connection of this loop was free within the request's bound")

    /// A connection for the caller alone until it gives it back, within the scope's deadline.
    private func borrow() async throws(PGError) -> (Int, Connection) {
        let scope = Self.scope
        let now = monotonicNanoseconds()
        nextTicket += 1
        let ticket = nextTicket
        let number: Int?
        switch lending.borrow(
            ticket: ticket, principal: scope?.principal, deadline: scope?.deadline ?? now + Self.defaultWait.nanoseconds, now: now)
        {
        case .lent(let connection): number = connection
        case .open(let connection): number = open(connection)
        case .failed: number = nil
        case .waiting:
            number = await withUnsafeContinuation { continuation in
                parked[ticket] = continuation
                schedule()
            }
        }
        guard let number, let db = connections[number] else { throw Self.busy }
        guard db.isConnected || lending.mayConnect(now: monotonicNanoseconds()) else {
            giveBack(number)
            throw Self.unreachable
        }
        return (number, db)
    }

    private func giveBack(_ number: Int) {
        carryOut(lending.giveBack(number, now: monotonicNanoseconds()))
    }

    private func carryOut(_ actions: [ConnectionLending.Action]) {
        for action in actions {
            switch action {
            case .hand(let connection, let ticket): parked.removeValue(forKey: ticket)?.resume(returning: connection)
            case .open(let connection, let ticket): parked.removeValue(forKey: ticket)?.resume(returning: open(connection))
            case .fail(let ticket): parked.removeValue(forKey: ticket)?.resume(returning: nil)
            case .close(let connection):
                guard let db = connections.removeValue(forKey: connection) else { continue }
                made.removeAll { $0 === db }
                db.close()
                metrics?.databaseSessions.decrement()
            }
        }
        schedule()
    }

    /// An alarm for the next moment the lending has something to decide.
    private func schedule() {
        alarm?.cancel()
        alarm = lending.nextTick().map { due in
            loop.at(due) { [self] in
                alarm = nil
                carryOut(lending.tick(now: monotonicNanoseconds()))
            }
        }
    }

    private func open(_ number: Int) -> Int {
        let db = make()
        connections[number] = db
        made.append(db)
        metrics?.databaseSessions.increment()
        if made.count > Self.usual {
            logger?.log(level: made.count == Self.most ? .warning : .info, "a statement is stuck: the loop opens another database connection", metadata: [
                "loop": "\(loop.index)", "connections": "\(made.count)", "most": "\(Self.most)",
            ])
        }
        return number
    }
}

extension EventLoop: SocketWaiter {
    package func wait(for fd: Int32, readable: Bool, writable: Bool, timeout: Duration?) async -> Bool {
        await ready(fd, readable: readable, writable: writable, until: timeout.map { monotonicNanoseconds() + $0.nanoseconds })
    }
    // offLoop(timeout:_:) is the loop's own (Support/LoopWait.swift).
}
