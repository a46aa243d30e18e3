@testable import FCGIApp
import Foundation
@testable import Stores
import Testing

/// A principal's token bucket, with a clock the test moves.
@Suite(.lane()) struct RateLimitTests {
    @Test func aMinutesRequestsInABurstThenOneAtTheRefillRate() {
        let limit = RateLimit(perMinute: 60)
        let second: Int64 = 1_000_000_000
        for _ in 0..<60 { #expect(limit.take("alice", now: 0) == nil) }
        #expect(limit.take("alice", now: 0) == 1, "the 61st waits a second")
        #expect(limit.take("bob", now: 0) == nil, "another principal has a bucket of its own")
        #expect(limit.take("alice", now: second / 2) == 1, "half a token is not a request")
        #expect(limit.take("alice", now: second) == nil)
        #expect(limit.take("alice", now: second) == 1)
        // Idle for a minute: a full bucket again, never more.
        for _ in 0..<60 { #expect(limit.take("alice", now: 70 * second) == nil) }
        #expect(limit.take("alice", now: 70 * second) == 1)
        let slow = RateLimit(perMinute: 2)
        #expect(slow.take("carol", now: 0) == nil && slow.take("carol", now: 0) == nil)
        #expect(slow.take("carol", now: 0) == 30, "one request every 30 s")
    }

    @Test func memoryStaysBoundedAndIdlePrincipalsAreForgotten() {
        let limit = RateLimit(perMinute: 1)
        let bound = RateLimit.shardCount * RateLimit.principalsPerShard
        for n in 0..<(2 * bound) { _ = limit.take("p\(n)", now: Int64(n)) }
        #expect(limit.principals <= bound)
        // A minute later every bucket is full again: the shards forget them as new ones come.
        let minute: Int64 = 61_000_000_000
        for n in 0..<(bound / 4) { #expect(limit.take("q\(n)", now: minute) == nil) }
        for n in 0..<(bound / 4) { _ = limit.take("r\(n)", now: minute) }
        #expect(limit.principals <= bound)
        // The active principals are limited all the same.
        #expect(limit.take("q0", now: minute) == 60)
    }
}
