import Support
import Synchronization

/// A per-principal limit on one kind of request (`RATE_LIMIT_READS_PER_MINUTE`,
/// `RATE_LIMIT_WRITES_PER_MINUTE`), shared by a worker's loops: a token bucket per principal
/// that holds a minute's requests and refills continuously, so a principal may spend its minute
/// in a burst, then one request per `60 / perMinute` seconds. Asked before the database and
/// after the token's verification (which the token cache usually answers), so a refused
/// request costs neither. A principal idle long enough for its bucket to be full again is
/// forgotten when a shard grows past its bound, so memory follows the principals active in the
/// last minute.
package final class RateLimit: Sendable {
    package let perMinute: Int
    private struct Bucket {
        var tokens: Double
        var updated: Int64
    }
    private final class Shard: Sendable {
        let buckets = Mutex<[String: Bucket]>([:])
    }
    /// Sharded by principal, so loops seldom wait for each other.
    private let shards: [Shard]
    package static let shardCount = 16
    /// Principals a shard keeps before it forgets the idle ones.
    package static let principalsPerShard = 8_192

    package init(perMinute: Int) {
        self.perMinute = perMinute
        shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    /// The principals remembered now.
    package var principals: Int { shards.reduce(0) { $0 + $1.buckets.withLock { $0.count } } }

    /// Counts a request of `principal` at `now` (monotonic nanoseconds): nil when it is within
    /// the limit, else the whole seconds until one would be (the request is not counted).
    package func take(_ principal: String, now: Int64 = monotonicNanoseconds()) -> Int? {
        let capacity = Double(perMinute)
        let perNanosecond = capacity / 60e9
        var hasher = Hasher()
        hasher.combine(principal)
        let shard = shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(Self.shardCount))]
        return shard.buckets.withLock { buckets in
            var bucket = buckets[principal] ?? Bucket(tokens: capacity, updated: now)
            bucket.tokens = min(capacity, bucket.tokens + Double(max(0, now - bucket.updated)) * perNanosecond)
            bucket.updated = now
            defer {
                buckets[principal] = bucket
                if buckets.count > Self.principalsPerShard { Self.forgetIdle(&buckets, now: now, perNanosecond: perNanosecond, capacity: capacity) }
            }
            guard bucket.tokens < 1 else {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / perNanosecond / 1e9).rounded(.up)))
        }
    }

    /// Forgets the principals whose buckets are full again (they would start full anyway); if
    /// every one was active within the minute, all of them.
    private static func forgetIdle(_ buckets: inout [String: Bucket], now: Int64, perNanosecond: Double, capacity: Double) {
        buckets = buckets.filter { $0.value.tokens + Double(now - $0.value.updated) * perNanosecond < capacity }
        if buckets.count > principalsPerShard { buckets.removeAll() }
    }
}
