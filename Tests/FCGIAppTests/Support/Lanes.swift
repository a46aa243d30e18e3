import Foundation
import Testing

/// Runs each test of a suite on a thread of its own, a few at a time.
///
/// Swift Testing calls a synchronous test on its cooperative thread pool, which has one thread
/// per core: on this 2-core machine two tests ran at a time, and most of a test here is waiting
/// (for a worker, nginx, psql or a deadline), so the run was mostly idle. A test in a lane runs
/// its body on a thread of its own (a task executor preference), so waiting blocks only that
/// thread, and `ARTICLES_TEST_LANES` (default 4) of them run at once. A test that keeps the
/// machine busy (a fuzzer, a load with no time bound) takes half the lanes (`.lane(.heavy)`),
/// and a test whose bound is about time (a deadline, a lag, a load against a bound) takes every
/// lane (`.lane(.alone)`), so nothing else runs beside it. The heavy ones go first, then the
/// tests that take long (`.lane(.long)`, a few seconds or more), then the rest, so no long test
/// starts late and runs on by itself; the ones alone go last, when the lanes empty anyway
/// (taken first, they kept the lanes idle while the long tests that started before them ran on).
/// A test that spends its seconds waiting out a deadline with next to no work (a key server
/// that never answers, a token's expiry, a lock timeout) takes no lane (`.lane(.waiting)`): it
/// starts at once, and the lanes stay free for tests that keep the machine busy.
struct Lane: TestTrait, SuiteTrait, TestScoping {
    enum Width: Sendable { case shared, long, heavy, alone, waiting }
    let width: Width

    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // A suite's own scope runs as it is, and so does a test already in its lane: a test
        // with a lane of its own inside a suite with one gets both traits, and the first
        // takes the test's (the last listed) for both.
        guard testCase != nil, !Lane.inLane else { return try await function() }
        let width = test.traits.compactMap { $0 as? Lane }.last?.width ?? width
        let weight = switch width {
        case .waiting: 0
        case .shared, .long: 1
        case .heavy: max(1, Lanes.shared.count / 2)
        case .alone: Lanes.shared.count
        }
        let priority = switch width {
        case .alone: 0
        case .shared: 1
        case .long: 2
        case .heavy, .waiting: 3
        }
        await Lanes.shared.acquire(weight, priority: priority)
        let executor = ThreadExecutor()
        var failure: (any Error)?
        do {
            try await Lane.$inLane.withValue(true) {
                try await withTaskExecutorPreference(executor) { try await function() }
            }
        } catch {
            failure = error
        }
        executor.finish()
        await Lanes.shared.release(weight)
        if let failure { throw failure }
    }

    @TaskLocal static var inLane = false
}

extension Trait where Self == Lane {
    /// A test or suite in a lane of its own beside up to three others (`.shared`, or `.long`
    /// to start early), in half the lanes (`.heavy`), alone, or in none (`.waiting`).
    static func lane(_ width: Lane.Width = .shared) -> Self { Lane(width: width) }
}

/// The lanes: a count of free places, handed out by priority, then first come, first served.
actor Lanes {
    static let shared = Lanes(count: Int(ProcessInfo.processInfo.environment["ARTICLES_TEST_LANES"] ?? "") ?? 4)

    nonisolated let count: Int
    private var free: Int
    private var waiting: [(weight: Int, priority: Int, resume: CheckedContinuation<Void, Never>)] = []

    init(count: Int) {
        self.count = max(1, count)
        free = self.count
    }

    func acquire(_ weight: Int, priority: Int) async {
        if weight == 0 || waiting.isEmpty && free >= weight {
            free -= weight
            return
        }
        await withCheckedContinuation { resume in
            let place = waiting.firstIndex { $0.priority < priority } ?? waiting.endIndex
            waiting.insert((weight, priority, resume), at: place)
        }
    }

    func release(_ weight: Int) {
        free += weight
        while let first = waiting.first, free >= first.weight {
            free -= first.weight
            waiting.removeFirst().resume.resume()
        }
    }
}

/// A task executor with one thread, which runs its jobs in order until `finish()`.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var finished = false

    init() {
        let thread = Thread { [self] in run() }
        thread.name = "test lane"
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    func finish() {
        condition.lock()
        finished = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty, !finished { condition.wait() }
            guard !jobs.isEmpty else { return condition.unlock() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
