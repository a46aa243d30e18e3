/// Which request of a serving loop gets which of the loop's database connections, and when the
/// loop opens or closes one: the decisions of `LoopDatabase`, as a value driven by events and
/// the time they happen at, with no I/O (the loop's connections are numbers here; the shell
/// makes, closes and hands them out as the returned actions say). Tests drive it with their
/// own clock.
///
/// - A loop keeps `usual` connections; when every one is lent and the one lent longest has
///   been out `stuckAfter`, it opens another for the first request waiting, up to `most`; a
///   connection beyond `usual` closes as soon as nobody waits for it.
/// - One principal holds at most `perPrincipal` connections at once: its stuck statements (a
///   user whose row another session locks) cannot take the loop's connections from the others.
///   The connections it holds at that bound do not count towards `usual`, so the others get
///   theirs at once. Shared statements (the loop's WAL reading, the shared create statement)
///   belong to no principal.
/// - A waiting request is served first come, first served among those whose principal is
///   below its bound, and fails at its deadline (answered 503 before any statement was sent).
/// - Once a connection could not be made, none is tried again for a while: the pause doubles
///   from `firstRetry` at each failure up to `lastRetry`, each drawn between half and all of
///   that (so the loops of a worker, and the workers of a farm, do not all try at once), and
///   the first connection made ends it. Meanwhile a request that would need a connection made
///   fails at once (503), costing neither the database nor the loop a connect.
package struct ConnectionLending {
    package static let usual = 2
    package static let most = 8
    package static let perPrincipal = 4
    package static let stuckAfter: Duration = .milliseconds(100)
    package static let firstRetry: Duration = .milliseconds(50)
    package static let lastRetry: Duration = .seconds(1)

    /// A request waiting for a connection, by the shell's ticket.
    package struct Waiter: Equatable {
        package let ticket: Int
        package let principal: String?
        /// Monotonic nanoseconds.
        package let deadline: Int64
    }

    package enum Action: Equatable {
        /// Give connection `connection` to the waiting request `ticket`.
        case hand(connection: Int, ticket: Int)
        /// Make a connection numbered `connection` and give it to `ticket`.
        case open(connection: Int, ticket: Int)
        /// The request `ticket` waited until its deadline: answer it 503.
        case fail(ticket: Int)
        /// Close connection `connection`: nobody waits for it, and the loop has `usual` beside it.
        case close(connection: Int)
    }

    /// What `borrow` decides at once.
    package enum Borrowed: Equatable {
        /// An idle connection.
        case lent(connection: Int)
        /// None idle: make one, numbered `connection`.
        case open(connection: Int)
        /// Parked until an action names its ticket.
        case waiting
        /// Its deadline has passed and nothing is free.
        case failed
    }

    private struct Lend {
        let since: Int64
        let principal: String?
    }

    private var idle: [Int] = []
    private var lent: [Int: Lend] = [:]
    private(set) package var waiting: [Waiter] = []
    private var nextConnection = 0
    /// Connects that failed in a row, and when the next may be tried.
    private var failures = 0
    private(set) package var retryAt: Int64?

    package init() {}

    /// Whether a connection may be made (or made again) now.
    package func mayConnect(now: Int64) -> Bool { retryAt.map { now >= $0 } ?? true }

    /// A connection could not be made: the next try waits. `jitter`, from 0 to 1, picks the
    /// pause between half and all of the current step.
    package mutating func connectFailed(now: Int64, jitter: Double) {
        failures += 1
        let step = min(Self.lastRetry.nanoseconds, Self.firstRetry.nanoseconds << min(failures - 1, 20))
        retryAt = now + step / 2 + Int64(Double(step / 2) * min(max(jitter, 0), 1))
    }

    /// A connection was made: the next failure starts the pauses anew.
    package mutating func connected() {
        failures = 0
        retryAt = nil
    }

    /// Connections open now, idle or lent.
    package var count: Int { idle.count + lent.count }

    private func held(by principal: String) -> Int { lent.values.reduce(0) { $0 + ($1.principal == principal ? 1 : 0) } }

    private func mayHold(_ principal: String?) -> Bool { principal.map { held(by: $0) < Self.perPrincipal } ?? true }

    /// Connections lent to principals at their bound: not counted towards `usual`.
    private var heldAtBound: Int {
        var counts: [String: Int] = [:]
        for lend in lent.values { if let principal = lend.principal { counts[principal, default: 0] += 1 } }
        return counts.values.reduce(0) { $0 + ($1 >= Self.perPrincipal ? $1 : 0) }
    }

    private mutating func lend(_ connection: Int, to principal: String?, now: Int64) -> Int {
        lent[connection] = Lend(since: now, principal: principal)
        return connection
    }

    private mutating func made(for principal: String?, now: Int64) -> Int {
        nextConnection += 1
        return lend(nextConnection, to: principal, now: now)
    }

    /// A request of `principal` (nil: a shared statement) asks for a connection.
    package mutating func borrow(ticket: Int, principal: String?, deadline: Int64, now: Int64) -> Borrowed {
        if mayHold(principal) {
            if let connection = idle.popLast() { return .lent(connection: lend(connection, to: principal, now: now)) }
            if count - heldAtBound < Self.usual, count < Self.most { return .open(connection: made(for: principal, now: now)) }
        }
        guard deadline > now else { return .failed }
        waiting.append(Waiter(ticket: ticket, principal: principal, deadline: deadline))
        return .waiting
    }

    /// The request holding `connection` is done with it.
    package mutating func giveBack(_ connection: Int, now: Int64) -> [Action] {
        lent[connection] = nil
        if let next = waiting.firstIndex(where: { mayHold($0.principal) }) {
            let waiter = waiting.remove(at: next)
            return [.hand(connection: lend(connection, to: waiter.principal, now: now), ticket: waiter.ticket)] + tick(now: now)
        }
        if count >= Self.usual { return [.close(connection: connection)] + tick(now: now) }
        idle.append(connection)
        return tick(now: now)
    }

    /// What time alone decides: waiters past their deadline fail, and the first waiter that may
    /// hold a connection gets a new one once the connection lent longest is stuck.
    package mutating func tick(now: Int64) -> [Action] {
        var actions: [Action] = []
        waiting.removeAll { waiter in
            guard waiter.deadline <= now else { return false }
            actions.append(.fail(ticket: waiter.ticket))
            return true
        }
        while let next = waiting.firstIndex(where: { mayHold($0.principal) }), count < Self.most {
            let waiter = waiting[next]
            let roomy = count - heldAtBound < Self.usual
            guard roomy || (lent.values.map(\.since).min().map { $0 + Self.stuckAfter.nanoseconds <= now } ?? true) else { break }
            waiting.remove(at: next)
            actions.append(.open(connection: made(for: waiter.principal, now: now), ticket: waiter.ticket))
        }
        return actions
    }

    /// When `tick` next has something to do, if ever: a waiter's deadline, or the moment the
    /// connection lent longest counts as stuck.
    package func nextTick() -> Int64? {
        var next = waiting.map(\.deadline).min()
        if count < Self.most, waiting.contains(where: { mayHold($0.principal) }), let oldest = lent.values.map(\.since).min() {
            next = min(next ?? .max, oldest + Self.stuckAfter.nanoseconds)
        }
        return next
    }
}
