import Glibc

/// A POSIX thread running a closure; `join()` waits for it to return.
package struct PosixThread: Sendable {
    private let thread: pthread_t

    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    /// Starts a thread running `body`, with SIGTERM, SIGINT and SIGHUP blocked: only the
    /// thread that waits for them (`FastCGIServer.run`) takes them, and a thread that did not
    /// block them would take one meant for it while it is between two waits, where the default
    /// action ends the process without draining. The C function is `pthread_create`.
    package init(_ body: @escaping @Sendable () -> Void) throws(SystemError) {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        // The new thread inherits the creating thread's mask, which is then put back.
        var stopSignals = sigset_t(), previous = sigset_t()
        sigemptyset(&stopSignals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&stopSignals, signal) }
        pthread_sigmask(SIG_BLOCK, &stopSignals, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let status = pthread_create(&thread, nil, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw SystemError("cannot start a thread", code: status)
        }
        self.thread = thread
    }

    /// Waits for the thread to finish. The C function is `pthread_join`.
    package func join() {
        pthread_join(thread, nil)
    }

    /// Lets the thread end without a `join`. The C function is `pthread_detach`.
    package func detach() {
        pthread_detach(thread)
    }
}

/// A POSIX mutex with condition variables (one, or `conditions`), whose timed waits run on the
/// monotonic clock. Waiting for different events on different conditions wakes only the threads
/// an event concerns.
package final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private let count: Int

    package init(conditions: Int = 1) {
        count = conditions
        condition = .allocate(capacity: conditions)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        for index in 0..<conditions { pthread_cond_init(condition + index, &attributes) }
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        for index in 0..<count { pthread_cond_destroy(condition + index) }
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }

    /// Waits on condition `index`, with the lock held, until woken.
    package func wait(_ index: Int = 0) { pthread_cond_wait(condition + index, mutex) }

    /// Waits, with the lock held, until woken or `deadline` (monotonic nanoseconds) passed;
    /// false once it passed.
    package func wait(until deadline: Int64) -> Bool {
        var end = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &end) == 0
    }

    /// Wakes every waiter of condition `index`; call with the lock held.
    package func broadcast(_ index: Int = 0) { pthread_cond_broadcast(condition + index) }

    /// Wakes one waiter of condition `index`; call with the lock held.
    package func signal(_ index: Int) { pthread_cond_signal(condition + index) }
}
