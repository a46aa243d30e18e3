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
