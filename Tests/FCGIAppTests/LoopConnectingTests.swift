@testable import FCGIApp
import Foundation
import Glibc
@testable import PG
@testable import Stores
@testable import Support
import Synchronization
import Testing

/// Connecting a loop's database session parks too: whatever the server (or the name's lookup)
/// makes the connection wait for, the loop's other tasks run on time.
@Suite(.lane()) struct LoopConnectingTests {
    /// Connecting parks too: a server that takes the connection and never answers holds no loop
    /// while the connection is tried, within its `connect_timeout`.
    @Test(.lane(.waiting)) func aServerThatNeverAnswersHoldsNoLoopWhileItIsConnectedTo() throws {
        // A listening socket nobody accepts on: the kernel completes the handshake, and libpq
        // waits for the server's answer.
        let (listener, port) = try TestEnvironment.loopbackListener()
        defer { close(listener) }
        let loop = try TestLoop()
        let db = LoopDatabase(loop: loop.loop) {
            Connection(lazy: "host=127.0.0.1 port=\(port) user=nobody dbname=nothing connect_timeout=1", waiter: $0)
        }
        let outcome = Mutex<(String, Double)?>(nil)
        let began = Date()
        loop.start {
            let message: String
            do throws(PGError) {
                try await db.query("SELECT 1")
                message = "answered"
            } catch {
                message = error.message
            }
            outcome.withLock { $0 = (message, Date().timeIntervalSince(began)) }
        }
        #expect(Self.runsOnTime(loop), "the loop was held while the server was connected to")
        #expect(outcome.withLock { $0 } == nil, "still connecting")
        try waitFor("the connection to be given up", within: 5) { outcome.withLock { $0 } != nil }
        let (message, took) = try #require(outcome.withLock { $0 })
        #expect(message.contains("did not answer within connect_timeout") && took >= 0.9 && took < 3, "\(message) after \(took) s")
    }

    /// Setting a new session up parks too: a server that lets the client in (AuthenticationOk,
    /// ReadyForQuery) and never answers its first statement holds no loop; the statement fails
    /// when the server closes the connection.
    @Test(.lane(.waiting)) func aServerThatNeverAnswersTheSessionSetUpHoldsNoLoop() throws {
        let server = try OneConnectionServer { connection in
            // The startup message (length-prefixed), then "you are in" and "ready".
            var length: UInt32 = 0
            guard recv(connection, &length, 4, Int32(MSG_WAITALL)) == 4 else { return }
            var startup = [UInt8](repeating: 0, count: Int(UInt32(bigEndian: length)) - 4)
            guard recv(connection, &startup, startup.count, Int32(MSG_WAITALL)) == startup.count else { return }
            let answer: [UInt8] = [UInt8(ascii: "R"), 0, 0, 0, 8, 0, 0, 0, 0, UInt8(ascii: "Z"), 0, 0, 0, 5, UInt8(ascii: "I")]
            _ = send(connection, answer, answer.count, Int32(MSG_NOSIGNAL))
        }
        let loop = try TestLoop()
        let db = LoopDatabase(loop: loop.loop) {
            Connection(
                lazy: "host=127.0.0.1 port=\(server.port) user=nobody dbname=nothing sslmode=disable gssencmode=disable connect_timeout=5",
                waiter: $0)
        }
        let outcome = Self.select(on: db, in: loop)
        try waitFor("the client to send the session's first statement", within: 5) { server.received.contains("DateStyle") }
        #expect(Self.runsOnTime(loop), "the loop was held while the session was set up")
        #expect(outcome.value == nil, "still setting the session up")
        server.close()
        try waitFor("the statement to fail", within: 5) { outcome.value != nil }
        let message = try #require(outcome.value)
        #expect(message.contains("server closed the connection"), "\(message)")
    }

    /// A host name is looked up on a thread of its own: a lookup that takes a second (the
    /// machine's own `getaddrinfo`, one second slower) holds no loop, and libpq then connects to
    /// the address found.
    @Test(.lane(.waiting)) func aHostNameIsLookedUpOffTheLoop() throws {
        let server = try OneConnectionServer { _ in }
        let loop = try TestLoop()
        let waiter = SlowLookups(loop.loop)
        let db = Connection(
            lazy: "host=localhost port=\(server.port) user=nobody dbname=nothing sslmode=disable gssencmode=disable connect_timeout=5",
            waiter: waiter)
        let outcome = Self.select(on: db, in: loop)
        try waitFor("the lookup to begin", within: 5) { waiter.lookups.withLock { $0 } == 1 }
        #expect(Self.runsOnTime(loop), "the loop was held while a host name was looked up")
        // localhost's addresses are tried in order; the server listens on 127.0.0.1.
        try waitFor("the startup message", within: 5) { server.received.contains("nobody") }
        server.close()
        try waitFor("the statement to fail", within: 5) { outcome.value != nil }
        #expect(outcome.value?.contains("server closed the connection") == true, "\(outcome.value ?? "")")
    }

    /// What a statement started on a loop ended with: "answered", or its error's message.
    final class Outcome: Sendable {
        private let ended = Mutex<String?>(nil)
        var value: String? { ended.withLock { $0 } }
        func end(_ text: String) { ended.withLock { $0 = text } }
    }

    /// Starts `SELECT 1` on `db`, on `loop`.
    static func select(on db: any Database, in loop: TestLoop) -> Outcome {
        let outcome = Outcome()
        loop.start {
            do throws(PGError) {
                try await db.query("SELECT 1")
                outcome.end("answered")
            } catch {
                outcome.end(error.message)
            }
        }
        return outcome
    }

    /// Whether the loop runs its other tasks meanwhile: a 50 ms sleep of its own ends within
    /// 0.5 s (a loop held by a blocking call ends it only once the call returns).
    static func runsOnTime(_ loop: TestLoop) -> Bool {
        let slept = Mutex(false)
        loop.start {
            await loop.loop.sleep(until: monotonicNanoseconds() + 50_000_000)
            slept.withLock { $0 = true }
        }
        return (try? waitFor("the loop's sleep to end", within: 0.5) { slept.withLock { $0 } }) != nil
    }

    /// A loop's waiter whose host name lookups take a second longer.
    private final class SlowLookups: SocketWaiter {
        let loop: EventLoop
        let lookups = Mutex(0)

        init(_ loop: EventLoop) { self.loop = loop }

        func wait(for fd: Int32, readable: Bool, writable: Bool, timeout: Duration?) async -> Bool {
            await loop.wait(for: fd, readable: readable, writable: writable, timeout: timeout)
        }

        func offLoop<T: Sendable>(timeout: Duration, _ work: @escaping @Sendable () -> T) async -> T? {
            lookups.withLock { $0 += 1 }
            return await loop.offLoop(timeout: timeout) {
                usleep(1_000_000)
                return work()
            }
        }
    }
}
