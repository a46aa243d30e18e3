@testable import FCGIApp
import Foundation
@testable import Support

/// A serving loop on a thread of its own, for tests that call what runs on one (an `App`, the
/// shared create statement, a loop's connections) in process: `run` waits for its body to end
/// on the loop, `start` does not.
final class TestLoop: @unchecked Sendable {
    let loop: EventLoop
    private let thread: PosixThread

    /// Carries what the loop's task hands back.
    private struct Unchecked<T>: @unchecked Sendable {
        let value: T
    }

    init() throws {
        let loop = try EventLoop()
        self.loop = loop
        thread = try PosixThread { loop.run() }
    }

    deinit {
        loop.stop()
        thread.join()
    }

    /// Starts `body` on the loop.
    func start(_ body: @escaping () async -> Void) { loop.spawn(body) }

    /// Runs `body` on the loop, waiting here for what it returns.
    func run<T>(_ body: @escaping () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let result = Unchecked(value: ResultBox<T>())
        start {
            do { result.value.result = .success(try await body()) } catch { result.value.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try result.value.result!.get()
    }

    private final class ResultBox<T> {
        var result: Result<T, any Error>?
    }
}
