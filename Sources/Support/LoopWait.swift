import Synchronization

/// A task parked in its serving loop until another thread ends the wait or a deadline passes:
/// a request waiting for the change feed, or for a reload of the signing keys.
package final class LoopWait: @unchecked Sendable {
    package let loop: EventLoop
    // Touched on `loop` only.
    private var continuation: UnsafeContinuation<Void, Never>?
    private var alarm: EventLoop.Alarm?

    package init(loop: EventLoop) {
        self.loop = loop
    }

    /// Parks the calling task, which runs on `loop`, until `end` or `deadline` (monotonic
    /// nanoseconds). `list` makes the wait findable by the thread that ends it (and may end it
    /// at once, when what it waits for already happened); `unlist` undoes that at the deadline.
    package func park(until deadline: Int64, list: () -> Void, unlist: @escaping () -> Void) async {
        await withUnsafeContinuation { continuation in
            self.continuation = continuation
            alarm = loop.at(deadline) { [self] in
                unlist()
                resume()
            }
            list()
        }
    }

    /// Ends the wait; from any thread.
    package func end() { loop.execute { [self] in resume() } }

    /// Resumes the task, once; on `loop`.
    package func resume() {
        guard let continuation else { return }
        self.continuation = nil
        alarm?.cancel()
        continuation.resume()
    }
}

extension EventLoop {
    /// Runs `work`, which blocks (a host name's lookup), on a thread of its own, the calling
    /// task parked on this loop until it returns; nil when `timeout` passed first (`work` then
    /// ends unawaited). When no thread can be had, `work` runs here.
    package func offLoop<T: Sendable>(timeout: Duration, _ work: @escaping @Sendable () -> T) async -> T? {
        let handoff = Handoff<T>(loop: self)
        do {
            try PosixThread { handoff.finish(work()) }.detach()
        } catch {
            return work()
        }
        await handoff.wait.park(until: monotonicNanoseconds() + timeout.nanoseconds, list: {}, unlist: {})
        return handoff.value
    }

    /// What the thread of `offLoop` hands back, and the wait it ends.
    private final class Handoff<T: Sendable>: Sendable {
        let wait: LoopWait
        private let result = Mutex<T?>(nil)

        init(loop: EventLoop) { wait = LoopWait(loop: loop) }

        func finish(_ value: T) {
            result.withLock { $0 = value }
            wait.end()
        }

        var value: T? { result.withLock { $0 } }
    }
}
