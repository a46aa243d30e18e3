@testable import FastCGI
@testable import FCGIApp
import Foundation
import Testing

/// The worker's socket facing clients that are not nginx: hostile records, stalled requests.
@Suite(.lane()) struct FastCGIClientTests {
    /// The record that aborted the worker through libfcgi: a PARAMS name length of 0x7ffffffe.
    @Test func aHugeParameterLengthIsRefusedAndTheWorkerServesOn() throws {
        let stack = try Stack()
        let socket = try RawSocket(unixPath: stack.socketPath)
        try socket.send([1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0] + [1, 4, 0, 1, 0, 8, 0, 0, 0xff, 0xff, 0xff, 0xfe, 0x01, 0, 0, 0]
            + [1, 4, 0, 1, 0, 0, 0, 0] + [1, 5, 0, 1, 0, 0, 0, 0])
        let answer = String(decoding: try socket.readToEnd(), as: UTF8.self)
        #expect(answer.contains("Status: 400 Bad Request\r\n"))
        #expect(answer.contains(#"{"detail":"Malformed FastCGI parameters."}"#))
        #expect(stack.worker.isRunning)
        #expect(try stack.get("/healthz").status == 200)
    }

    @Test(.lane(.long)) func stalledClientsHoldNoThreadAndAreClosedWithinTheBound() throws {
        let threads = 2, bound = 2.0
        let stack = try Stack(environment: ["FCGI_THREADS": "\(threads)", "FCGI_REQUEST_TIMEOUT_SECONDS": "\(Int(bound))"])
        // A kept connection that idles past the bound between requests is not closed.
        let kept = try FastCGIClient(unixPath: stack.socketPath)
        try kept.begin(["REQUEST_METHOD": "GET", "DOCUMENT_URI": "/healthz"], keep: true)
        try kept.body([])
        #expect(try kept.response().hasSuffix(#"{"status":"ok"}"#))

        // Half a record each, then nothing; one more that trickles a byte every 300 ms; one that
        // connects and never sends.
        let began = Date()
        var stalled: [RawSocket] = []
        for _ in 0..<(4 * threads) {
            let socket = try RawSocket(unixPath: stack.socketPath)
            try socket.send([1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 4, 0, 1])
            stalled.append(socket)
        }
        stalled.append(try RawSocket(unixPath: stack.socketPath))
        let trickling = try RawSocket(unixPath: stack.socketPath)
        let trickle = Thread {
            for byte: UInt8 in [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 4, 0, 1, 0, 0, 0, 0] {
                guard (try? trickling.send([byte])) != nil else { return }
                Thread.sleep(forTimeInterval: 0.3)  // a trickle: the test is about time
            }
        }
        trickle.start()
        stalled.append(trickling)
        let closes = Results()
        for socket in stalled {
            Thread {
                let closedAt = (try? socket.waitForClose(timeout: bound + 3))?.timeIntervalSince(began) ?? -1
                closes.add(Int(closedAt * 1000), "")
            }.start()
        }

        // /healthz through nginx answers within a second throughout.
        var slowest = 0.0
        while Date().timeIntervalSince(began) < bound + 1.5 {
            let asked = Date()
            let health = try HTTPClient.request(port: stack.httpPort, path: "/healthz", timeout: 5)
            slowest = max(slowest, Date().timeIntervalSince(asked))
            #expect(health.status == 200 && health.text == #"{"status":"ok"}"#)
            Thread.sleep(forTimeInterval: 0.05)  // probes paced through the bound
        }
        #expect(slowest < 1, "slowest /healthz took \(slowest) s")
        // Every stalled connection was closed within the bound (and the sweep's tenth of a second).
        let deadline = Date().addingTimeInterval(5)
        while closes.all.count < stalled.count, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let milliseconds = closes.all.map(\.status).sorted()
        #expect(milliseconds.count == stalled.count)
        #expect(milliseconds.allSatisfy { (Int(bound * 1000) - 100)..<(Int(bound * 1000) + 500) ~= $0 }, "closed after \(milliseconds) ms")
        try kept.begin(["REQUEST_METHOD": "GET", "DOCUMENT_URI": "/healthz"], keep: true)
        try kept.body([])
        #expect(try kept.response().hasSuffix(#"{"status":"ok"}"#))
        #expect(stack.worker.output.contains("closed connections that sent no whole request in time"))
    }

    /// Thousands of random and structured malformed record sequences, each on a connection of
    /// its own; after each, the worker is alive and answers a well-formed request (`/livez`,
    /// which is the worker alone; `/healthz`, which also asks the database, at the end).
    @Test(.lane(.heavy)) func fuzzedRecordsNeverStopTheWorker() throws {
        let stack = try Stack(environment: ["LOG_LEVEL": "error"])
        var generator = FuzzCases(seed: UInt64(Date().timeIntervalSince1970 * 1000))
        let started = Date()
        var cases = 0
        while cases < 20_000, Date().timeIntervalSince(started) < 40 {
            let bytes = generator.next()
            let socket = try RawSocket(unixPath: stack.socketPath)
            // The worker may close while the case is still being sent; that is an answer too.
            try? socket.send(bytes)
            socket.shutdownWrite()
            _ = try? socket.readToEnd()
            cases += 1
            try #require(stack.worker.isRunning, "the worker exited on case \(cases) (seed \(generator.seed)): \(bytes.prefix(64))")
            let answer: String
            do {
                let probe = try FastCGIClient(unixPath: stack.socketPath)
                try probe.begin(["REQUEST_METHOD": "GET", "DOCUMENT_URI": "/livez"])
                try probe.body([])
                answer = try probe.response()
            } catch {
                answer = "\(error)"
            }
            try #require(answer.hasSuffix(#"{"status":"ok"}"#),
                         "after case \(cases) (seed \(generator.seed)): \(answer); case \(bytes.prefix(64)); worker: \(stack.worker.output.suffix(2000))")
        }
        #expect(cases >= 1000, "only \(cases) cases in the time allowed")
        #expect(try stack.get("/healthz").status == 200)
    }
}

/// Malformed FastCGI input: random bytes, and records with lengths at and past every boundary,
/// unknown types and roles, several request ids, aborts, input past CONTENT_LENGTH, and cuts.
struct FuzzCases {
    let seed: UInt64
    private var state: UInt64
    private var count = 0

    init(seed: UInt64) {
        self.seed = seed
        state = seed | 1
    }

    private mutating func random() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    private mutating func below(_ limit: Int) -> Int { Int(random() % UInt64(limit)) }
    private mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    private func record(_ type: UInt8, _ id: UInt16, _ content: [UInt8], padding: Int = 0, declared: Int? = nil) -> [UInt8] {
        let length = declared ?? content.count
        return [1, type, UInt8(id >> 8), UInt8(id & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), UInt8(padding), 0]
            + content + [UInt8](repeating: 0, count: padding)
    }

    private mutating func length() -> [UInt8] {
        let value = pick([0, 1, 127, 128, 255, 0x7fff, 0xffff, 0x10000, 0x7ffffffe, 0x7fffffff, below(300)])
        return value < 128 && below(2) == 0
            ? [UInt8(value)] : [UInt8(value >> 24 & 0x7f) | 0x80, UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    private mutating func parameters() -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<below(4) {
            bytes += length() + length()
            bytes += (0..<below(40)).map { _ in UInt8(truncatingIfNeeded: random()) }
        }
        if below(3) == 0 {
            FastCGIParameters.append(name: "REQUEST_METHOD", value: pick(["GET", "POST", "PATCH", "HEAD", "", "\u{0}"]), to: &bytes)
            FastCGIParameters.append(name: "DOCUMENT_URI", value: pick(["/healthz", "/articles/", "/articles/1/", "/"]), to: &bytes)
            FastCGIParameters.append(name: "CONTENT_LENGTH", value: pick(["0", "5", "-1", "99999999999999999999", "x", "65536"]), to: &bytes)
        }
        return bytes
    }

    /// The next case: one connection's bytes.
    mutating func next() -> [UInt8] {
        count += 1
        let id = UInt16(pick([0, 1, 1, 1, 2, 0xffff]))
        var bytes: [UInt8] = []
        switch count % 6 {
        case 0:
            return (0..<below(200)).map { _ in UInt8(truncatingIfNeeded: random()) }
        case 1:
            // A request whose records carry random lengths and paddings.
            bytes += record(1, id, [0, UInt8(below(5)), UInt8(below(2)), 0, 0, 0, 0, 0])
            for _ in 0..<(1 + below(4)) {
                let content = parameters()
                bytes += record(4, id, content, padding: below(3) == 0 ? below(256) : 0,
                                declared: below(4) == 0 ? pick([0, 1, content.count + 1, 0xffff]) : nil)
            }
            bytes += record(4, id, []) + record(5, id, Array("hello".utf8)) + record(5, id, [])
        case 2:
            // Unknown types, management records, several ids, aborts.
            for _ in 0..<(1 + below(8)) {
                let type = UInt8(pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 200, 255]))
                let content: [UInt8] = type == 1 ? [0, UInt8(below(4)), UInt8(below(2)), 0, 0, 0, 0, 0] : parameters()
                bytes += record(type, UInt16(pick([0, 1, 2, 3, 0xffff])), content)
            }
        case 3:
            // Parameters or input at and past the limits.
            bytes += record(1, id, [0, 1, 1, 0, 0, 0, 0, 0])
            let chunk = [UInt8](repeating: UInt8(below(256)), count: pick([65_535, 65_528, 32_768]))
            for _ in 0..<below(3) { bytes += record(4, id, chunk) }
            bytes += record(4, id, [])
            for _ in 0..<below(3) { bytes += record(5, id, chunk) }
            bytes += record(5, id, [])
        case 4:
            // A well-formed request with more input than CONTENT_LENGTH, or less, then an abort.
            var stream: [UInt8] = []
            FastCGIParameters.append(name: "REQUEST_METHOD", value: "POST", to: &stream)
            FastCGIParameters.append(name: "DOCUMENT_URI", value: "/healthz", to: &stream)
            FastCGIParameters.append(name: "CONTENT_LENGTH", value: String(below(20)), to: &stream)
            bytes += record(1, id, [0, 1, UInt8(below(2)), 0, 0, 0, 0, 0]) + record(4, id, stream) + record(4, id, [])
            bytes += record(5, id, (0..<below(40)).map { _ in UInt8(truncatingIfNeeded: random()) })
            if below(2) == 0 { bytes += record(2, id, []) }
            bytes += record(5, id, [])
        default:
            // A valid request, mutated.
            var stream: [UInt8] = []
            FastCGIParameters.append(name: "REQUEST_METHOD", value: "GET", to: &stream)
            FastCGIParameters.append(name: "DOCUMENT_URI", value: "/healthz", to: &stream)
            bytes += record(1, 1, [0, 1, 1, 0, 0, 0, 0, 0]) + record(4, 1, stream) + record(4, 1, []) + record(5, 1, [])
            for _ in 0..<(1 + below(4)) { bytes[below(bytes.count)] = UInt8(truncatingIfNeeded: random()) }
        }
        // Cut short sometimes: a truncated record.
        if below(4) == 0, !bytes.isEmpty { bytes = Array(bytes.prefix(below(bytes.count))) }
        return bytes
    }
}
