@testable import Stores
import Testing

/// `ConnectionLending` driven by events and a clock of the test's own: no sockets, no sleeps.
@Suite struct ConnectionLendingTests {
    typealias Lending = ConnectionLending
    static let ms: Int64 = 1_000_000
    static let far: Int64 = 10_000 * ms

    @Test func lendsItsUsualConnectionsThenGrowsOnlyWhenTheOldestLendIsStuck() {
        var lending = Lending()
        #expect(lending.borrow(ticket: 1, principal: "a", deadline: Self.far, now: 0) == .open(connection: 1))
        #expect(lending.borrow(ticket: 2, principal: "b", deadline: Self.far, now: 0) == .open(connection: 2))
        #expect(lending.borrow(ticket: 3, principal: "c", deadline: Self.far, now: 10 * Self.ms) == .waiting)
        #expect(lending.nextTick() == 100 * Self.ms, "when the first lend counts as stuck")
        #expect(lending.tick(now: 99 * Self.ms) == [])
        #expect(lending.tick(now: 100 * Self.ms) == [.open(connection: 3, ticket: 3)])
        // Given back with nobody waiting: the one beyond the usual two closes, then they stay.
        #expect(lending.giveBack(3, now: 110 * Self.ms) == [.close(connection: 3)])
        #expect(lending.giveBack(1, now: 110 * Self.ms) == [])
        #expect(lending.count == 2)
        #expect(lending.borrow(ticket: 4, principal: "d", deadline: Self.far, now: 120 * Self.ms) == .lent(connection: 1))
    }

    @Test func neverMoreThanTheMost() {
        var lending = Lending()
        for ticket in 1...Lending.usual { _ = lending.borrow(ticket: ticket, principal: "p\(ticket)", deadline: Self.far, now: 0) }
        for ticket in (Lending.usual + 1)...(Lending.most + 3) {
            #expect(lending.borrow(ticket: ticket, principal: "p\(ticket)", deadline: Self.far, now: 0) == .waiting)
        }
        let grown = lending.tick(now: 200 * Self.ms)
        #expect(grown.count == Lending.most - Lending.usual && lending.count == Lending.most)
        #expect(lending.tick(now: 400 * Self.ms) == [] && lending.waiting.map(\.ticket) == [9, 10, 11])
        #expect(lending.nextTick() == Self.far, "only the deadlines are left to wait for")
    }

    @Test func aWaiterFailsAtItsDeadlineAndANewOneAtOnce() {
        var lending = Lending()
        _ = lending.borrow(ticket: 1, principal: "a", deadline: Self.far, now: 0)
        _ = lending.borrow(ticket: 2, principal: "b", deadline: Self.far, now: 0)
        // Every connection of the loop busy at the most: only deadlines move things.
        for ticket in 3...8 { _ = lending.borrow(ticket: ticket, principal: "x\(ticket)", deadline: Self.far, now: 0) }
        _ = lending.tick(now: 100 * Self.ms)
        #expect(lending.count == Lending.most)
        #expect(lending.borrow(ticket: 9, principal: "c", deadline: 300 * Self.ms, now: 150 * Self.ms) == .waiting)
        #expect(lending.nextTick() == 300 * Self.ms)
        #expect(lending.tick(now: 300 * Self.ms) == [.fail(ticket: 9)])
        #expect(lending.borrow(ticket: 10, principal: "c", deadline: 300 * Self.ms, now: 300 * Self.ms) == .failed)
    }

    @Test func oneStuckPrincipalHoldsAtMostItsShareAndOthersGetTheirsAtOnce() {
        var lending = Lending()
        var now: Int64 = 0
        // The stuck principal's statements: two at once, two more as each is found stuck.
        for ticket in 1...6 {
            let borrowed = lending.borrow(ticket: ticket, principal: "stuck", deadline: 5_000 * Self.ms, now: now)
            #expect(ticket <= 2 ? borrowed == .open(connection: ticket) : borrowed == .waiting, "\(ticket)")
        }
        now = 100 * Self.ms
        #expect(lending.tick(now: now) == [.open(connection: 3, ticket: 3), .open(connection: 4, ticket: 4)])
        // At its share: its fifth and sixth wait, and are not grown for.
        now = 300 * Self.ms
        #expect(lending.tick(now: now) == [])
        #expect(lending.nextTick() == 5_000 * Self.ms)
        // Another principal, and a shared statement, get a connection at once.
        #expect(lending.borrow(ticket: 7, principal: "free", deadline: 5_000 * Self.ms, now: now) == .open(connection: 5))
        #expect(lending.borrow(ticket: 8, principal: nil, deadline: 5_000 * Self.ms, now: now) == .open(connection: 6))
        // A connection given back goes to the first waiter that may hold it.
        #expect(lending.borrow(ticket: 9, principal: "other", deadline: 5_000 * Self.ms, now: now) == .waiting)
        #expect(lending.giveBack(5, now: now) == [.hand(connection: 5, ticket: 9)])
        #expect(lending.giveBack(1, now: now) == [.hand(connection: 1, ticket: 5)])
        // The stuck principal's last waiter fails at its deadline, with nothing sent.
        #expect(lending.tick(now: 5_000 * Self.ms) == [.fail(ticket: 6)])
    }
}

extension ConnectionLendingTests {
    @Test func reconnectingBacksOffUnderAnOutageAndTheFirstSuccessEndsIt() {
        var lending = Lending()
        #expect(lending.mayConnect(now: 0))
        // Pauses from 50 ms, doubling, capped at 1 s; at most jitter (1) each is the whole step.
        var now: Int64 = 0
        var pauses: [Int64] = []
        for _ in 0..<8 {
            lending.connectFailed(now: now, jitter: 1)
            let due = lending.retryAt!
            #expect(!lending.mayConnect(now: due - 1) && lending.mayConnect(now: due))
            pauses.append((due - now) / Self.ms)
            now = due
        }
        #expect(pauses == [50, 100, 200, 400, 800, 1000, 1000, 1000])
        // With the least jitter, half the step.
        lending.connectFailed(now: now, jitter: 0)
        #expect(lending.retryAt! - now == 500 * Self.ms)
        lending.connected()
        #expect(lending.mayConnect(now: now) && lending.retryAt == nil)
        lending.connectFailed(now: now, jitter: 1)
        #expect(lending.retryAt! - now == 50 * Self.ms, "anew after a success")
    }
}
