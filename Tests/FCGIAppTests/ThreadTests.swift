@testable import FCGIApp
import Glibc
@testable import Support
import Synchronization
import Testing

/// Threads the worker starts leave SIGTERM, SIGINT and SIGHUP to the thread that waits for
/// them: a thread taking one would end the process by the default action, without draining
/// (seen as a worker killed by its SIGTERM while the waiting thread was between two waits).
@Suite struct ThreadTests {
    @Test func aPosixThreadBlocksTheStopSignalsAndLeavesItsCreatorsMaskAlone() throws {
        // The creator takes them, as the worker's main thread does until it serves (the test's
        // own thread, from Swift Testing's pool, blocks every signal).
        var stopSignals = sigset_t(), original = sigset_t(), before = sigset_t()
        sigemptyset(&stopSignals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&stopSignals, signal) }
        pthread_sigmask(SIG_UNBLOCK, &stopSignals, &original)
        defer { pthread_sigmask(SIG_SETMASK, &original, nil) }
        pthread_sigmask(SIG_SETMASK, nil, &before)
        let blocked = Mutex<[Int32: Bool]>([:])
        let thread = try PosixThread {
            var mask = sigset_t()
            pthread_sigmask(SIG_SETMASK, nil, &mask)
            blocked.withLock { found in
                for signal in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] { found[signal] = sigismember(&mask, signal) == 1 }
            }
        }
        thread.join()
        #expect(blocked.withLock { $0 } == [SIGTERM: true, SIGINT: true, SIGHUP: true, SIGUSR1: sigismember(&before, SIGUSR1) == 1])
        var after = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &after)
        for signal in [SIGTERM, SIGINT, SIGHUP] { #expect(sigismember(&after, signal) == sigismember(&before, signal)) }
    }
}

/// `systemCall`, the one way the worker makes a system call.
@Suite struct SystemCallTests {
    @Test func retriesAnInterruptedCallAndNamesAFailure() throws {
        var calls = 0
        let result = try systemCall("interrupted twice") { () -> Int in
            calls += 1
            guard calls > 2 else {
                errno = EINTR
                return -1
            }
            return 5
        }
        #expect(result == 5 && calls == 3)

        let closed = #expect(throws: SystemError.self) { try systemCall("closing nothing") { close(-1) } }
        #expect(closed?.code == EBADF && closed?.description == "closing nothing: Bad file descriptor")
        #expect(closed?.wouldBlock == false)

        // A non-blocking pipe with nothing in it would block.
        var fds: [Int32] = [0, 0]
        try systemCall("pipe") { pipe(&fds) }
        defer { for fd in fds { close(fd) } }
        try systemCall("fcntl") { fcntl(fds[0], F_SETFL, O_NONBLOCK) }
        var byte: UInt8 = 0
        let empty = #expect(throws: SystemError.self) { try systemCall("read") { read(fds[0], &byte, 1) } }
        #expect(empty?.wouldBlock == true)

        // nanosleep says it failed with anything but 0.
        var pause = timespec(tv_sec: 0, tv_nsec: -1)
        let invalid = #expect(throws: SystemError.self) { try systemCall("nanosleep", failure: .nonZero) { nanosleep(&pause, nil) } }
        #expect(invalid?.code == EINVAL)
    }
}
