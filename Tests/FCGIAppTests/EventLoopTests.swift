import Foundation
@testable import Support
import Synchronization
import Testing

/// Every wait on a loop ends: a second waiter on a descriptor, a forgotten descriptor and a
/// timed-out wait each resume their waiter, and a loop turn runs a bounded number of jobs.
@Suite struct EventLoopTests {
    /// A pipe whose read end nobody writes to.
    private func pipeEnds() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        return (fds[0], fds[1])
    }

    @Test func aSecondWaiterOnADescriptorWakesTheFirst() throws {
        let loop = try TestLoop()
        let (read, write) = try pipeEnds()
        defer { close(read); close(write) }
        let first = Mutex<Bool?>(nil)
        loop.start { let woken = await loop.loop.ready(read); first.withLock { $0 = woken } }
        let second = Mutex<Bool?>(nil)
        loop.start { let woken = await loop.loop.ready(read, until: monotonicNanoseconds() + 200_000_000); second.withLock { $0 = woken } }
        try waitFor("the first waiter woken", within: 1) { first.withLock { $0 } == true }
        try waitFor("the second to time out", within: 2) { second.withLock { $0 } == false }
    }

    @Test func forgettingADescriptorResumesItsWaiter() throws {
        let loop = try TestLoop()
        let (read, write) = try pipeEnds()
        defer { close(read); close(write) }
        let woken = Mutex<Bool?>(nil)
        loop.start { let result = await loop.loop.ready(read); woken.withLock { $0 = result } }
        // A task started after it runs once it is parked (the loop runs its tasks in order).
        try loop.run { loop.loop.forget(read) }
        try waitFor("the waiter resumed", within: 1) { woken.withLock { $0 } == true }
    }

    @Test func aTimedOutWaitLeavesTheEpollSetAndTheNextWaitWorks() throws {
        let loop = try TestLoop()
        let (read, write) = try pipeEnds()
        defer { close(read); close(write) }
        let outcomes = try loop.run { () async -> [Bool] in
            let timedOut = await loop.loop.ready(read, until: monotonicNanoseconds() + 20_000_000)
            // Data arrives while nobody waits: the next wait sees it.
            var byte: UInt8 = 1
            _ = Glibc.write(write, &byte, 1)
            let readable = await loop.loop.ready(read, until: monotonicNanoseconds() + 1_000_000_000)
            return [timedOut, readable]
        }
        #expect(outcomes == [false, true])
    }

    @Test func aTurnRunsABoundedNumberOfJobs() throws {
        let loop = try TestLoop()
        let (read, write) = try pipeEnds()
        defer { close(read); close(write) }
        // A task that yields forever keeps the loop's ready queue full; a descriptor becoming
        // readable is still noticed.
        let stop = Atomic<Bool>(false)
        loop.start {
            while !stop.load(ordering: .relaxed) { await Task.yield() }
        }
        let noticed = Mutex<Bool?>(nil)
        loop.start { let result = await loop.loop.ready(read, until: monotonicNanoseconds() + 2_000_000_000); noticed.withLock { $0 = result } }
        var byte: UInt8 = 1
        _ = Glibc.write(write, &byte, 1)
        try waitFor("the readable descriptor noticed", within: 1) { noticed.withLock { $0 } == true }
        stop.store(true, ordering: .relaxed)
    }
}
