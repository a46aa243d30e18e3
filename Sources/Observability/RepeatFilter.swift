import Support
import Synchronization

/// Holds back a warning or error that repeats: the same message is written at most once per
/// `interval`, and the next one written says how many were held back (`repeated=N`). A failure
/// that hits every request (the database gone under load, a flood of broken FastCGI records)
/// then writes a line every few seconds rather than one per request, so a journal's rate limit
/// is never reached and never drops the worker's other lines.
package final class RepeatFilter: Sendable {
    package static let shared = RepeatFilter()

    private let interval: Int64
    private let now: @Sendable () -> Int64
    /// By message (the worker's messages are fixed text; what varies is in the metadata): when
    /// the next may be written, and how many were held back since the last.
    private let seen = Mutex<[String: (next: Int64, held: Int)]>([:])

    package init(interval: Duration = .seconds(5), now: @escaping @Sendable () -> Int64 = monotonicNanoseconds) {
        self.interval = interval.nanoseconds
        self.now = now
    }

    /// nil when this one is held back; else how many were held back before it.
    package func admit(_ message: String) -> Int? {
        let time = now()
        return seen.withLock { seen in
            if let entry = seen[message], time < entry.next {
                seen[message]!.held += 1
                return nil
            }
            let held = seen[message]?.held ?? 0
            seen[message] = (time + interval, 0)
            return held
        }
    }
}
