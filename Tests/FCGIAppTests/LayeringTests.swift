import Foundation
import Testing

/// The parts of the worker and what each must never know, checked in the sources: an import, or
/// a use of a type declared (at the top level) in a part it must not know, fails the test.
@Suite(.lane()) struct LayeringTests {
    /// A part: a folder under `Sources/` (or a file).
    struct Part: Hashable, CustomStringConvertible {
        let path: String
        var description: String { path }
    }

    static let pg = Part(path: "PG")
    static let auth = Part(path: "FCGIApp/Auth")
    static let fastCGI = Part(path: "FCGIApp/FastCGI")
    static let database = Part(path: "FCGIApp/Database")
    static let http = Part(path: "FCGIApp/HTTP")
    static let observability = Part(path: "FCGIApp/Observability")
    /// Handlers: they see Request and Response, never libfcgi.
    static let handlers = [
        Part(path: "FCGIApp/App.swift"), Part(path: "FCGIApp/HTTP"), Part(path: "FCGIApp/Articles"),
        Part(path: "FCGIApp/Users"),
    ]

    /// Who must not know whom: the modules it must not import, the parts whose types it must not use.
    static let rules: [(part: Part, imports: Set<String>, types: [Part])] =
        [
            (pg, ["FCGIApp", "CFastCGI", "COpenSSL", "CCurl"], []),
            (auth, ["PG", "CLibPQ", "CFastCGI", "CCurl"], [pg, database, fastCGI]),
            (fastCGI, ["PG", "CLibPQ", "COpenSSL", "CCurl"], [pg, auth, database, http, observability]),
            (database, ["CFastCGI", "COpenSSL", "CCurl"], [auth, fastCGI]),
        ] + handlers.map { ($0, ["CFastCGI", "CCurl"], [fastCGI]) }

    /// Swift files of `part`, with comments and string literals removed.
    static func code(of part: Part) throws -> [(file: String, text: String)] {
        let root = TestEnvironment.path("Sources/\(part.path)")
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isFolder) else { return [] }
        let files = isFolder.boolValue
            ? try FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.hasSuffix(".swift") }.map { "\(root)/\($0)" }
            : [root]
        return try files.sorted().map { file in
            var text = try String(contentsOfFile: file, encoding: .utf8)
            for pattern in [#"(?s)""".*?""""#, #"(?s)/\*.*?\*/"#, #"//[^\n]*"#, #""(?:[^"\\\n]|\\.)*""#] {
                text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
            }
            return (file, text)
        }
    }

    /// The types a part declares at the top level.
    static func declaredTypes(_ part: Part) throws -> Set<String> {
        let declaration = try Regex(
            #"(?m)^(?:(?:public|package|internal|fileprivate|private|final|indirect|@\w+)\s+)*(?:struct|class|enum|protocol|actor|typealias)\s+(\w+)"#)
        var names = Set<String>()
        for (_, text) in try code(of: part) {
            for match in text.matches(of: declaration) {
                if let name = match.output[1].substring { names.insert(String(name)) }
            }
        }
        return names
    }

    @Test func noPartKnowsWhatItMustNot() throws {
        var found: [String] = []
        for rule in Self.rules {
            let forbidden = try rule.types.map { ($0, try Self.declaredTypes($0)) }
            for (file, text) in try Self.code(of: rule.part) {
                let name = file.replacingOccurrences(of: TestEnvironment.path(""), with: "")
                for module in text.matches(of: try Regex(#"(?m)^\s*(?:@testable\s+)?import\s+(\w+)"#)) {
                    let imported = String(module.output[1].substring ?? "")
                    if rule.imports.contains(imported) { found.append("\(name) imports \(imported)") }
                }
                let words = Set(text.matches(of: try Regex(#"\b[A-Za-z_]\w*\b"#)).map { String(text[$0.range]) })
                for (part, types) in forbidden {
                    for type in types.intersection(words).sorted() { found.append("\(name) uses \(part)'s \(type)") }
                }
            }
        }
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
    }

    /// The check itself finds what it is for.
    @Test func theCheckSeesTypesAndImports() throws {
        #expect(try Self.declaredTypes(Self.pg).isSuperset(of: ["Connection", "PGError", "QueryResult"]))
        #expect(try Self.declaredTypes(Self.auth).isSuperset(of: ["TokenVerifier", "Claims", "KeyStore"]))
        #expect(try Self.declaredTypes(Self.fastCGI).contains("FastCGIServer"))
        let articles = try Self.code(of: Part(path: "FCGIApp/Articles")).map(\.text).joined()
        #expect(articles.contains("import PG") && !articles.contains("SELECT"))
    }

    /// The worker makes its system calls through `systemCall`, which alone retries `EINTR` and
    /// reads `errno`: no other file of it names either.
    @Test func systemCallsGoThroughOneHelper() throws {
        let helper = TestEnvironment.path("Sources/FCGIApp/Support/SystemError.swift")
        let named = try Self.code(of: Part(path: "FCGIApp")).filter { $0.file != helper }.compactMap { file, text in
            text.contains(try! Regex(#"\b(EINTR|errno)\b"#)) ? file.replacingOccurrences(of: TestEnvironment.path(""), with: "") : nil
        }
        #expect(named == [], "\(named)")
    }

    /// One clock and one way to lock: durations and deadlines in `monotonicNanoseconds()` and
    /// wall time through `wallSeconds()` (`Support/Clock.swift`); locks are `Mutex`, with
    /// `ConditionLock` (`Support/Threads.swift`) where a thread sleeps until another's event.
    @Test func oneClockAndOneKindOfLock() throws {
        let own = [TestEnvironment.path("Sources/FCGIApp/Support/Threads.swift"), TestEnvironment.path("Sources/FCGIApp/Support/Clock.swift")]
        let other = try Regex(
            #"\b(ContinuousClock|SuspendingClock|DispatchTime|DispatchSemaphore|NSLock|NSCondition|NSRecursiveLock|pthread_mutex_\w+|pthread_cond_\w+|clock_gettime)\b|\bDate\(\)"#)
        let named = try Self.code(of: Part(path: "FCGIApp")).filter { !own.contains($0.file) }.flatMap { file, text in
            text.matches(of: other).map { "\(file.replacingOccurrences(of: TestEnvironment.path(""), with: "")): \(text[$0.range])" }
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
