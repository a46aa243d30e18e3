import CLinux
import Glibc
import Synchronization

// Kept whole (about 260 lines): the executor, the epoll set and the timers are one loop, run by
// one thread, and share its private state (the ready jobs, the watched descriptors, the alarms).

/// A serving loop: one thread with its own epoll set, running the tasks given to it (a Swift
/// `TaskExecutor`: `Task(executorPreference: loop)`). A task that waits for a descriptor
/// (`ready(_:writable:until:)`), a moment (`sleep(until:)`) or another thread (`execute`) is
/// parked: the loop runs the other tasks meanwhile, and resumes it once what it waits for
/// happened. Nothing here blocks but `epoll_wait`, which waits for the next event, the next
/// alarm, or a second, whichever comes first.
///
/// Only the loop's thread touches its state; other threads hand it work through `execute`
/// (and the runtime through `enqueue`), which wakes it with an eventfd.
package final class EventLoop: TaskExecutor, @unchecked Sendable {
    /// The loop's number in its worker (from 0), in its request log lines and its database
    /// sessions' `application_name`.
    package let index: Int
    /// Since when (monotonic nanoseconds) the loop has been running what it woke for; 0 while
    /// it waits for events. A loop busy for long is stuck (the watchdog's measure).
    package let busySince = Atomic<Int64>(0)
    private let epoll: Int32
    private let wakeFD: Int32
    /// Jobs to run on this thread, and the ones being run.
    private var ready: [UnownedJob] = []
    private var running: [UnownedJob] = []
    private let incoming = Mutex<[Incoming]>([])
    private var watches: [Int32: Watch] = [:]
    /// Alarms not yet due, soonest first.
    private var alarms: [Alarm] = []
    private var stopped = false
    /// Told of each `epoll_wait` failure (the worker logs it), on the loop's thread.
    private let onPollFailure: (@Sendable (SystemError) -> Void)?
    /// The most jobs one turn runs before the loop looks at its descriptors again: tasks that
    /// keep handing work to each other cannot keep the loop from its sockets and alarms.
    package static let jobsPerTurn = 1024

    private enum Incoming {
        case job(UnownedJob)
        case call(@Sendable () -> Void)
    }

    /// A descriptor in the epoll set: one task waiting on it (one-shot), or a handler called at
    /// each event (level-triggered).
    private final class Watch {
        var registered = false
        var waiter: UnsafeContinuation<Bool, Never>?
        var alarm: Alarm?
        var handler: (() -> Void)?
    }

    /// Something to do at a moment; cancelled by dropping its action.
    package final class Alarm {
        package let deadline: Int64
        fileprivate var action: (() -> Void)?
        package init(deadline: Int64, action: @escaping () -> Void) {
            self.deadline = deadline
            self.action = action
        }

        package func cancel() { action = nil }
    }

    /// The epoll data that names the wake-up eventfd; a descriptor's is its number.
    private static let wakeEvent = UInt64.max

    package init(index: Int = 0, onPollFailure: (@Sendable (SystemError) -> Void)? = nil) throws(SystemError) {
        self.index = index
        self.onPollFailure = onPollFailure
        epoll = try systemCall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        wakeFD = try systemCall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeEvent
        try systemCall("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_ADD, wakeFD, &event) }
    }

    deinit {
        close(wakeFD)
        close(epoll)
    }

    /// The loop the calling thread runs, if it runs one.
    package static var current: EventLoop? {
        pthread_getspecific(currentKey).map { Unmanaged<EventLoop>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Whether the caller runs on this loop's thread.
    package var isCurrent: Bool { pthread_getspecific(currentKey) == Unmanaged.passUnretained(self).toOpaque() }

    // MARK: - Running

    /// Runs the loop on the calling thread until `stop`.
    package func run() {
        pthread_setspecific(currentKey, Unmanaged.passUnretained(self).toOpaque())
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while !stopped {
            runReady()
            let timeout = ready.isEmpty ? millisecondsToNextAlarm() : 0
            busySince.store(0, ordering: .relaxed)
            var count: Int32 = 0
            do throws(SystemError) {
                count = try systemCall("epoll_wait") { epoll_wait(epoll, &events, Int32(events.count), timeout) }
            } catch {
                // systemCall has retried an interrupted wait already.
                onPollFailure?(error)
            }
            busySince.store(monotonicNanoseconds(), ordering: .relaxed)
            for index in 0..<Int(count) {
                let data = events[index].data.u64
                if data == Self.wakeEvent { takeIncoming() } else { fire(Int32(truncatingIfNeeded: data)) }
            }
            ringAlarms()
        }
        pthread_setspecific(currentKey, nil)
        busySince.store(0, ordering: .relaxed)
    }

    /// How long the loop has been running without waiting for events.
    package var busyFor: Duration {
        let since = busySince.load(ordering: .relaxed)
        return since == 0 ? .zero : .nanoseconds(monotonicNanoseconds() - since)
    }

    /// Ends `run` after the current turn; from any thread.
    package func stop() { execute { [self] in stopped = true } }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if isCurrent { ready.append(job) } else { hand(.job(job)) }
    }

    /// Runs `work` on the loop's thread; from any thread.
    package func execute(_ work: @escaping @Sendable () -> Void) { hand(.call(work)) }

    /// Starts a task on this loop running `body`, which may use what only this loop touches:
    /// from the loop itself, or with what no other thread touches after.
    package func spawn(_ body: @escaping () async -> Void) {
        let body = LoopOnly(body)
        Task(executorPreference: self) { await body.value() }
    }

    /// What a task of this loop carries that only this loop touches.
    private struct LoopOnly<Value>: @unchecked Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    private func hand(_ work: Incoming) {
        incoming.withLock { $0.append(work) }
        var one: UInt64 = 1
        _ = try? systemCall("cannot wake a serving loop") { Glibc.write(wakeFD, &one, 8) }
    }

    private func takeIncoming() {
        var count: UInt64 = 0
        _ = try? systemCall("read") { read(wakeFD, &count, 8) }
        let work = incoming.withLock { work in
            defer { work.removeAll(keepingCapacity: true) }
            return work
        }
        for each in work {
            switch each {
            case .job(let job): ready.append(job)
            case .call(let call): call()
            }
        }
    }

    /// Runs the jobs ready, and those they make ready, up to `jobsPerTurn`; the rest wait for
    /// the next turn, after the descriptors and alarms.
    private func runReady() {
        var left = Self.jobsPerTurn
        while !ready.isEmpty, left > 0 {
            let taken = min(left, ready.count)
            left -= taken
            running.append(contentsOf: ready.prefix(taken))
            ready.removeFirst(taken)
            for job in running { job.runSynchronously(on: asUnownedTaskExecutor()) }
            running.removeAll(keepingCapacity: true)
        }
    }

    // MARK: - Descriptors

    /// Waits until `fd` is readable (by default, unless `writable` alone is asked for) or
    /// writable (with `writable`), or has failed: true; false once `deadline` (monotonic
    /// nanoseconds) passed first. One task at a time waits on a descriptor.
    package func ready(_ fd: Int32, readable: Bool? = nil, writable: Bool = false, until deadline: Int64? = nil) async -> Bool {
        let events = ((readable ?? !writable) ? EPOLLIN.rawValue : 0) | (writable ? EPOLLOUT.rawValue : 0)
        return await withUnsafeContinuation { continuation in
            let watch = watches[fd] ?? Watch()
            watches[fd] = watch
            // A waiter already there is woken, never dropped: it looks again and finds what it
            // finds (a descriptor has one reader at a time, so this is a caller's slip).
            release(watch, returning: true)
            guard arm(fd, watch, events: events | EPOLLONESHOT.rawValue) else {
                // The call that follows meets the descriptor's error itself.
                return continuation.resume(returning: true)
            }
            watch.waiter = continuation
            if let deadline {
                watch.alarm = at(deadline) { [self] in
                    guard watch.waiter != nil else { return }
                    // Out of the epoll set: nothing of it arrives for nobody.
                    if watch.registered {
                        _ = try? systemCall("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil) }
                        watch.registered = false
                    }
                    release(watch, returning: false)
                }
            }
        }
    }

    /// Calls `handler` on this loop at each event of `fd` while it is readable (level-triggered);
    /// with `exclusive`, one of the loops watching it is woken (`EPOLLEXCLUSIVE`).
    package func watch(_ fd: Int32, exclusive: Bool, handler: @escaping () -> Void) throws(SystemError) {
        let watch = Watch()
        watch.handler = handler
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | (exclusive ? EPOLLEXCLUSIVE.rawValue : 0)
        event.data.u64 = UInt64(UInt32(bitPattern: fd))
        try systemCall("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) }
        watch.registered = true
        watches[fd] = watch
    }

    /// Takes `fd` out of the epoll set, before it is closed (or handed on).
    package func forget(_ fd: Int32) {
        guard let watch = watches.removeValue(forKey: fd) else { return }
        if watch.registered { _ = try? systemCall("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil) } }
        // Whoever waited on it goes on, and meets the closed descriptor's error.
        release(watch, returning: true)
    }

    /// Resumes `watch`'s waiter, if any, with `result`, and cancels its alarm.
    private func release(_ watch: Watch, returning result: Bool) {
        watch.alarm?.cancel()
        watch.alarm = nil
        guard let waiter = watch.waiter else { return }
        watch.waiter = nil
        waiter.resume(returning: result)
    }

    /// Registers or re-arms `fd` for `events`; false when the epoll set refuses it.
    private func arm(_ fd: Int32, _ watch: Watch, events: UInt32) -> Bool {
        var event = epoll_event()
        event.events = events
        event.data.u64 = UInt64(UInt32(bitPattern: fd))
        if watch.registered {
            do throws(SystemError) {
                try systemCall("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event) }
                return true
            } catch {
                // Closed and opened again since (a database connection made again): a new
                // descriptor under the old number.
                guard error.code == ENOENT else { return false }
            }
        }
        watch.registered = (try? systemCall("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) }) != nil
        return watch.registered
    }

    private func fire(_ fd: Int32) {
        guard let watch = watches[fd] else { return }
        if let handler = watch.handler { return handler() }
        release(watch, returning: true)
    }

    // MARK: - Alarms

    /// Calls `action` on this loop at `deadline` (monotonic nanoseconds), unless cancelled.
    @discardableResult
    package func at(_ deadline: Int64, _ action: @escaping () -> Void) -> Alarm {
        let alarm = Alarm(deadline: deadline, action: action)
        var low = 0, high = alarms.count
        while low < high {
            let middle = (low + high) / 2
            if alarms[middle].deadline <= deadline { low = middle + 1 } else { high = middle }
        }
        alarms.insert(alarm, at: low)
        return alarm
    }

    /// Parks the calling task until `deadline` (monotonic nanoseconds).
    package func sleep(until deadline: Int64) async {
        await withUnsafeContinuation { continuation in at(deadline) { continuation.resume() } }
    }

    private func millisecondsToNextAlarm() -> Int32 {
        while let first = alarms.first, first.action == nil { alarms.removeFirst() }
        guard let first = alarms.first else { return 1000 }
        let left = first.deadline - monotonicNanoseconds()
        return left <= 0 ? 0 : Int32(min(1000, (left + 999_999) / 1_000_000))
    }

    private func ringAlarms() {
        guard let first = alarms.first, first.deadline <= monotonicNanoseconds() || first.action == nil else { return }
        let now = monotonicNanoseconds()
        let due = alarms.prefix { $0.deadline <= now || $0.action == nil }
        alarms.removeFirst(due.count)
        for alarm in due {
            let action = alarm.action
            alarm.action = nil
            action?()
        }
    }
}

/// The thread-specific slot that names the loop a thread runs.
private let currentKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
}()
