@testable import FCGIApp
import Foundation
@testable import HTTP
import Logging

/// What a test sends requests to: the worker behind nginx (`Stack`) or its responder in
/// process (`InProcess`).
protocol Service: AnyObject, Sendable {
    var database: TestDatabase { get }
    func request(_ method: String, _ path: String, headers: [(String, String)], body: Data?) throws -> HTTPResponse
}

extension Service {
    func get(_ path: String, headers: [(String, String)] = []) throws -> HTTPResponse {
        try request("GET", path, headers: headers, body: nil)
    }

    func request(_ method: String, _ path: String, headers: [(String, String)] = []) throws -> HTTPResponse {
        try request(method, path, headers: headers, body: nil)
    }
}

/// The worker's responder called in process, on a migrated database of its own: the same
/// configuration, keys, change feed and caches as `serve` builds from the environment, without
/// nginx and libfcgi in between. Requests are built as nginx would pass them (path and query
/// apart, header names in lower case, the body's length, `Host` without its port), and answered
/// by one `App` on a serving loop of its own, whose requests interleave as a serving loop's do.
final class InProcess: Service, @unchecked Sendable {
    let database: TestDatabase
    let services: Services
    private let loop: TestLoop
    private let app: App

    init(database: TestDatabase? = nil, environment: [String: String] = [:]) throws {
        let dir = try TestEnvironment.scratchFolder("in-process")
        self.database = try database ?? TestDatabase.migrated()
        var settings = try self.database.workerEnvironment()
        settings.merge(try TestPool.environment(dir: dir)) { $1 }
        settings.merge(environment) { $1 }
        let logger = Logger(label: "in-process") { _ in SwiftLogNoOpLogHandler() }
        services = try Services(config: Config.fromEnvironment(settings), logger: logger)
        loop = try TestLoop()
        app = services.app(on: loop.loop)
    }

    /// The change feed's session ends with the test (its walsender would otherwise read every
    /// database's WAL until the run ends).
    deinit { services.changes.stop() }

    func request(_ method: String, _ path: String, headers: [(String, String)] = [], body: Data? = nil) throws -> HTTPResponse {
        let target = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var fields = ["host": "127.0.0.1"]
        for (name, value) in headers { fields[name.lowercased()] = value }
        if let body { fields["content-length"] = "\(body.count)" }
        let request = Request(
            method: method, path: String(target[0]).removingPercentEncoding ?? String(target[0]),
            query: target.count > 1 ? String(target[1]) : "", headers: fields, body: body.map(Array.init) ?? [])
        let response = try loop.run { [app] in await app.respond(to: request).response }
        return HTTPResponse(
            status: response.status.code, headers: response.headers, body: Data(method == "HEAD" ? [] : response.body))
    }
}
