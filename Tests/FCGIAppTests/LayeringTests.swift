import Foundation
import Testing

/// The worker's layers are SwiftPM targets, and the target graph is the layering: a target can
/// import only the targets it names as dependencies, so what a layer must never know is a
/// dependency it must not have. These tests read the graph from `swift package dump-package`
/// and check each target's imports against it.
@Suite(.lane()) struct LayeringTests {
    /// Each target's direct dependencies (targets and products, by name).
    typealias Graph = [String: Set<String>]

    /// The worker's own Swift targets (PG, a library of its own, is checked with them).
    static let layers = ["Support", "JSON", "Observability", "FastCGI", "HTTP", "Auth", "Stores", "LoginStandIn", "FCGIApp"]

    /// Who must never know whom: a target and the targets it must not reach, directly or not.
    static let never: [(target: String, mustNotReach: Set<String>)] = [
        ("PG", ["Support", "FastCGI", "HTTP", "Auth", "Stores", "CFastCGI", "COpenSSL", "CCurl"]),
        ("Support", ["PG", "FastCGI", "HTTP", "Auth", "Stores", "Observability", "CFastCGI", "CLibPQ", "COpenSSL"]),
        // The transport knows bytes and loops: no HTTP meaning, no tokens, no database.
        ("FastCGI", ["HTTP", "Auth", "Stores", "PG", "CLibPQ", "Observability", "JSON", "COpenSSL", "CCurl", "LoginStandIn"]),
        ("HTTP", ["FastCGI", "CFastCGI", "Auth", "Stores", "PG", "CLibPQ"]),
        // Tokens, keys and claims: no database.
        ("Auth", ["PG", "CLibPQ", "Stores", "FastCGI", "CFastCGI"]),
        ("Stores", ["FastCGI", "CFastCGI", "LoginStandIn"]),
        ("LoginStandIn", ["PG", "CLibPQ", "Stores", "FastCGI", "CFastCGI"]),
    ]

    /// The package's target graph, as SwiftPM reads `Package.swift`.
    static func packageGraph() throws -> Graph {
        let scratch = try TestEnvironment.scratchFolder("dump-package")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let dump = try run(
            "/usr/bin/env", ["swift", "package", "--package-path", TestEnvironment.path(""), "--scratch-path", scratch, "dump-package"])
        try #require(dump.status == 0, "\(dump.output)")
        let json = try #require(dump.output.firstIndex(of: "{").map { dump.output[$0...] })
        let package = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        var graph: Graph = [:]
        for target in package["targets"] as? [[String: Any]] ?? [] {
            guard let name = target["name"] as? String else { continue }
            // Each dependency is {"byName"|"target"|"product": [name, ...]}.
            let dependencies = (target["dependencies"] as? [[String: Any]] ?? []).compactMap {
                ($0.values.first as? [Any])?.first as? String
            }
            graph[name] = Set(dependencies)
        }
        return graph
    }

    /// Everything `target` depends on, directly or through other targets.
    static func reach(_ target: String, in graph: Graph) -> Set<String> {
        var seen = Set<String>()
        var next = Array(graph[target] ?? [])
        while let name = next.popLast() {
            if seen.insert(name).inserted { next += graph[name] ?? [] }
        }
        return seen
    }

    /// What in `graph` breaks the layering: a "never" rule, or a target other than the
    /// executable that reaches the transport, HTTP, Auth and the stores all together.
    static func violations(_ graph: Graph) -> [String] {
        var found: [String] = []
        for rule in never {
            guard graph[rule.target] != nil else {
                found.append("no target \(rule.target)")
                continue
            }
            for name in reach(rule.target, in: graph).intersection(rule.mustNotReach).sorted() {
                found.append("\(rule.target) depends on \(name)")
            }
        }
        let layersAll: Set = ["FastCGI", "HTTP", "Auth", "Stores"]
        let composers = graph.keys.filter { !$0.hasSuffix("Tests") && reach($0, in: graph).union([$0]).isSuperset(of: layersAll) }
        if composers != ["FCGIApp"] { found.append("targets that see every layer: \(composers.sorted())") }
        return found
    }

    @Test func theTargetGraphIsTheLayering() throws {
        let graph = try Self.packageGraph()
        #expect(Self.violations(graph) == [])
        // The rules see a dependency that breaks them, and what reaches it through another.
        var broken = graph
        broken["HTTP", default: []].insert("FastCGI")
        #expect(Self.violations(broken) == [
            "HTTP depends on CFastCGI", "HTTP depends on FastCGI", "Auth depends on CFastCGI", "Auth depends on FastCGI",
            "Stores depends on CFastCGI", "Stores depends on FastCGI", "LoginStandIn depends on CFastCGI",
            "LoginStandIn depends on FastCGI", #"targets that see every layer: ["FCGIApp", "Stores"]"#,
        ])
        broken = graph
        broken["Auth", default: []].insert("PG")
        #expect(Self.violations(broken) == [
            "Auth depends on CLibPQ", "Auth depends on PG", "LoginStandIn depends on CLibPQ", "LoginStandIn depends on PG",
        ])
        broken = graph
        broken["Stores", default: []].insert("FastCGI")
        #expect(Self.violations(broken) == [
            "Stores depends on CFastCGI", "Stores depends on FastCGI", #"targets that see every layer: ["FCGIApp", "Stores"]"#,
        ])
    }

    /// Every import of a package target names one the importing target depends on directly
    /// (SwiftPM puts every built module on the search path, so the compiler alone would let
    /// an undeclared import through once its module happened to be built first).
    @Test func everyImportIsADeclaredDependency() throws {
        let graph = try Self.packageGraph()
        var found: [String] = []
        for target in Self.layers + ["PG"] {
            for (file, text) in try Self.code(of: target) {
                for module in text.matches(of: try Regex(#"(?m)^\s*(?:@testable\s+)?import\s+(\w+)"#)) {
                    let imported = String(module.output[1].substring ?? "")
                    if graph[imported] != nil && !(graph[target] ?? []).contains(imported) {
                        found.append("\(Self.relative(file)) imports \(imported), which \(target) does not depend on")
                    }
                }
            }
        }
        #expect(found == [], "\(found.joined(separator: "\n"))")
    }

    /// The handlers, in the executable beside the transport, see requests and responses, never
    /// FastCGI.
    @Test func handlersDoNotSeeTheTransport() throws {
        let handlers = ["Sources/FCGIApp/App.swift", "Sources/FCGIApp/ArticlesAPI.swift"].map(TestEnvironment.path)
        let seen = try Self.code(of: "FCGIApp").filter { handlers.contains($0.file) }
        #expect(seen.count == handlers.count)
        for (file, text) in seen {
            #expect(!text.contains(try Regex(#"(?m)^\s*import\s+C?FastCGI\b"#)), "\(Self.relative(file))")
        }
    }

    /// Swift files of `folder` under `Sources/`, with comments and string literals removed.
    static func code(of folder: String) throws -> [(file: String, text: String)] {
        let root = TestEnvironment.path("Sources/\(folder)")
        let files = try FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.hasSuffix(".swift") }
        return try files.sorted().map { name in
            let file = "\(root)/\(name)"
            let text = try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(
                of: #"(?s)""".*?"""|/\*.*?\*/|//[^\n]*|"(?:[^"\\\n]|\\.)*""#, with: " ", options: .regularExpression)
            return (file, text)
        }
    }

    /// The worker's Swift files, as `code(of:)` gives them.
    static func workerCode() throws -> [(file: String, text: String)] { try layers.flatMap { try code(of: $0) } }

    static func relative(_ file: String) -> String { file.replacingOccurrences(of: TestEnvironment.path(""), with: "") }

    /// The worker makes its system calls through `systemCall`, which alone retries `EINTR` and
    /// reads `errno`: no other file of it names either.
    @Test func systemCallsGoThroughOneHelper() throws {
        let helper = TestEnvironment.path("Sources/Support/SystemError.swift")
        let named = try Self.workerCode().filter { $0.file != helper }.compactMap { file, text in
            text.contains(try! Regex(#"\b(EINTR|errno)\b"#)) ? Self.relative(file) : nil
        }
        #expect(named == [], "\(named)")
    }

    /// One clock and one way to lock: durations and deadlines in `monotonicNanoseconds()` and
    /// wall time through `wallSeconds()` (`Support/Clock.swift`); locks are `Mutex`, with
    /// `ConditionLock` (`Support/Threads.swift`) where a thread sleeps until another's event.
    @Test func oneClockAndOneKindOfLock() throws {
        let own = ["Sources/Support/Threads.swift", "Sources/Support/Clock.swift"].map(TestEnvironment.path)
        let other = try Regex(
            #"\b(ContinuousClock|SuspendingClock|DispatchTime|DispatchSemaphore|NSLock|NSCondition|NSRecursiveLock|pthread_mutex_\w+|pthread_cond_\w+|clock_gettime)\b|\bDate\(\)"#)
        let named = try Self.workerCode().filter { !own.contains($0.file) }.flatMap { file, text in
            text.matches(of: other).map { "\(Self.relative(file)): \(text[$0.range])" }
        }
        #expect(named == [], "\(named)")
    }

    /// A Swift file longer than `longFile` lines says near its top why it stays whole
    /// (`// Kept whole ...`); otherwise it is split by concern.
    @Test func longFilesSayWhyTheyStayWhole() throws {
        let longFile = 250
        var unexplained: [String] = []
        for folder in ["Sources", "Tests"] {
            let root = TestEnvironment.path(folder)
            for file in try FileManager.default.subpathsOfDirectory(atPath: root).filter({ $0.hasSuffix(".swift") }).sorted() {
                let lines = try String(contentsOfFile: "\(root)/\(file)", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
                if lines.count > longFile && !lines.prefix(15).contains(where: { $0.hasPrefix("// Kept whole") }) {
                    unexplained.append("\(folder)/\(file): \(lines.count) lines")
                }
            }
        }
        #expect(unexplained.isEmpty, "\(unexplained.joined(separator: "\n"))")
    }
}
