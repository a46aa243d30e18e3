import Glibc

/// CLOCK_MONOTONIC in nanoseconds: the worker's one clock for durations and deadlines
/// (connections, the loops' alarms, the change feed, the key store, request timings). Wall
/// time (`wallSeconds`) is only for what is wall time by nature: tokens' `exp` and `iat`,
/// signed requests' timestamps, log lines.
package func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// The wall time (CLOCK_REALTIME), for what is wall time: never a duration or a deadline.
package func wallTime() -> timespec {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return now
}

/// `wallTime()` in seconds since 1970.
package func wallSeconds() -> Double {
    let now = wallTime()
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// The duration from `start` (a `monotonicNanoseconds()` reading) to now.
package func elapsed(since start: Int64) -> Duration { .nanoseconds(monotonicNanoseconds() - start) }

extension Duration {
    /// The duration in whole nanoseconds.
    package var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
