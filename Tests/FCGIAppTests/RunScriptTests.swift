@testable import Auth
@testable import FCGIApp
import Foundation
@testable import PG
@testable import Stores
import Testing

/// scripts/run as a new user runs it: ready line, answers through nginx, Ctrl-C stops every
/// process, and the next run keeps the data.
@Suite(.lane(.long)) struct RunScriptTests {
    @Test func runStartsTheStackStopsItCleanlyAndKeepsDataAcrossRuns() throws {
        let runDir = try TestEnvironment.scratchFolder("run")
        let port = try TestEnvironment.freePort()
        var environment = ProcessInfo.processInfo.environment
        environment["RUN_DIR"] = runDir
        environment["HTTP_PORT"] = String(port)
        // Access tokens too, for a machine client's (dev-token --client).
        environment["COGNITO_TOKEN_USE"] = "id,access"
        for name in ["AWS_USER_POOLS_ID", "DATABASE_URL", "DATABASE_FEED_URL", "FCGI_LISTEN"] { environment[name] = nil }

        let first = try start(environment, log: "\(runDir)/first.out")
        let health = try HTTPClient.request(port: port, path: "/healthz")
        #expect(health.status == 200)
        #expect(health.text == #"{"status":"ok"}"#)
        let missing = try HTTPClient.request(port: port, path: "/nope")
        #expect(missing.status == 404)
        #expect(missing.json == ["detail": "Not found."])
        let uri = try String(contentsOfFile: "\(runDir)/database-url", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let inserted = try run("/usr/bin/psql", ["-X", uri, "-c", "INSERT INTO articles (name, owner_id) SELECT 'kept', id FROM users WHERE username = 'demo'"])
        #expect(inserted.output == "INSERT 0 1\n")
        #expect(FileManager.default.fileExists(atPath: "\(runDir)/keys/jwks.json"))
        // The local cluster lets neither of the worker's roles copy it; the feed follows as articles_feed.
        for role in ["articles_app", "articles_feed"] {
            let copy = try run("/usr/bin/pg_basebackup", ["-h", "\(runDir)/pg", "-U", role, "-D", "\(runDir)/copy-\(role)", "-X", "none"])
            #expect(copy.status != 0 && copy.output.contains("pg_hba.conf rejects replication connection"), "\(copy.output)")
        }
        try waitFor("the feed to stream as articles_feed", within: 10) {
            try run("/usr/bin/psql", ["-X", "-tA", uri, "-c", "SELECT usename FROM pg_stat_replication"]).output == "articles_feed\n"
        }

        // The README's way to call the API locally: a token from dev-token, sent both ways.
        let binary = TestEnvironment.path(".build-release/release/articles-fcgi")
        let token = try run(binary, ["dev-token", "--email", "demo@example.com"], environment: environment)
        #expect(token.status == 0, "\(token.output)")
        let jwt = token.output.trimmingCharacters(in: .whitespacesAndNewlines)
        for authorization in ["Bearer \(jwt)", jwt] {
            let articles = try HTTPClient.request(port: port, path: "/articles/", headers: [("Authorization", authorization)])
            #expect(articles.status == 200)
            let list = try JSONDecoder().decode([Article].self, from: articles.body)
            #expect(list.map(\.id) == [1] && list.map(\.name) == ["kept"] && list.map(\.owner) == ["demo"])
        }
        let posted = try HTTPClient.request(
            port: port, method: "POST", path: "/articles/", headers: [("Authorization", jwt), ("Content-Type", "application/json")],
            body: Data(#"{"name":"second"}"#.utf8))
        #expect(posted.status == 201)
        let created = try JSONDecoder().decode(Article.self, from: posted.body)
        #expect(created.id == 2 && created.name == "second" && created.owner == "demo")
        // A token naming the pool's UPDATED issuer is accepted as well.
        let updated = try run(binary, ["dev-token", "--email", "demo@example.com", "--issuer", "updated"], environment: environment)
        #expect(updated.status == 0, "\(updated.output)")
        let updatedJWT = updated.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let payload = Base64URL.decode(updatedJWT.split(separator: ".")[1].utf8).map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(payload.contains(#""iss":"https://issuer-cognito-idp.local-1.amazonaws.com/local-1_ArticlesDev""#), "\(payload)")
        let viaUpdated = try HTTPClient.request(port: port, path: "/articles/", headers: [("Authorization", updatedJWT)])
        #expect(viaUpdated.status == 200)
        // docs/api.md's machine-client flow, locally: register the app client, then its token.
        let registered = try run("/usr/bin/psql", [
            "-X", uri, "-v", "client_id=articles-local", "-v", "name=robot", "-f", TestEnvironment.path("sql/admin/create_client.sql"),
        ])
        #expect(registered.status == 0, "\(registered.output)")
        let machine = try run(binary, ["dev-token", "--client", "articles-local"], environment: environment)
        #expect(machine.status == 0, "\(machine.output)")
        let byMachine = try HTTPClient.request(
            port: port, method: "POST", path: "/articles/",
            headers: [("Authorization", machine.output.trimmingCharacters(in: .whitespacesAndNewlines)), ("Content-Type", "application/json")],
            body: Data(#"{"name":"by robot"}"#.utf8))
        #expect(byMachine.status == 201, "\(byMachine.text)")
        #expect(try JSONDecoder().decode(Article.self, from: byMachine.body).owner == "robot")
        let noKey = try run(binary, ["dev-token", "--email", "demo@example.com"], environment: ["RUN_DIR": "\(runDir)/nowhere"])
        #expect(noKey.status != 0)
        #expect(noKey.output.contains("no local development key"))

        first.signal(SIGINT)
        #expect(first.wait(timeout: 60) == 130)
        #expect(first.output.contains("stopped"))
        #expect(processes(mentioning: runDir).isEmpty, "left running: \(processes(mentioning: runDir))")
        #expect(!FileManager.default.fileExists(atPath: "\(runDir)/fcgi.sock"))
        #expect(!FileManager.default.fileExists(atPath: "\(runDir)/pgdata/postmaster.pid"))

        let second = try start(environment, log: "\(runDir)/second.out")
        // The binary the first run built or found is newer than every source: no build again.
        #expect(second.output.contains("the release build is up to date"), "\(second.output.prefix(500))")
        let kept = try run("/usr/bin/psql", ["-X", "-tA", uri, "-c", "SELECT name FROM articles ORDER BY id"])
        #expect(kept.output == "kept\nsecond\nby robot\n")
        let users = try run("/usr/bin/psql", ["-X", "-tA", uri, "-c", "SELECT count(*) FROM users WHERE username = 'demo'"])
        #expect(users.output == "1\n")
        second.signal(SIGTERM)
        #expect(second.wait(timeout: 60) == 143)
        #expect(processes(mentioning: runDir).isEmpty, "left running: \(processes(mentioning: runDir))")
    }

    @Test func aFailedStartOrADeadWorkerStopsEverythingAndTheNextRunStarts() throws {
        let runDir = try TestEnvironment.scratchFolder("run")
        var environment = ProcessInfo.processInfo.environment
        environment["RUN_DIR"] = runDir
        environment["HTTP_PORT"] = String(try TestEnvironment.freePort())
        for name in ["AWS_USER_POOLS_ID", "DATABASE_URL", "DATABASE_FEED_URL", "FCGI_LISTEN"] { environment[name] = nil }

        // A setting the worker refuses at start-up: the run fails, after stopping the cluster.
        var refused = environment
        refused["PROVISIONING_SECRET"] = "short"
        let failed = try ChildProcess(TestEnvironment.path("scripts/run"), [], environment: refused, log: "\(runDir)/failed.out")
        let status = failed.wait(timeout: 600)
        #expect(status != nil && status != 0, "\(failed.output)")
        #expect(failed.output.contains("the provisioning secret must be at least 32 bytes"), "\(failed.output)")
        #expect(failed.output.contains("stopped"))
        #expect(processes(mentioning: runDir).isEmpty, "left running: \(processes(mentioning: runDir))")

        // The worker killed while the stack runs: the run stops the rest and exits non-zero.
        let running = try start(environment, log: "\(runDir)/killed.out")
        let worker = processes(mentioning: runDir).filter { $0.contains("articles-fcgi serve") }
        try #require(worker.count == 1, "\(worker)")
        kill(pid_t(worker[0].prefix { $0 != ":" })!, SIGKILL)
        let killedStatus = running.wait(timeout: 60)
        #expect(killedStatus == 1, "\(running.output)")
        #expect(running.output.contains("stopped"))
        #expect(processes(mentioning: runDir).isEmpty, "left running: \(processes(mentioning: runDir))")

        // And the next run starts as usual, here in the background of a script (which leaves
        // SIGINT ignored in it): SIGINT stops it all the same.
        let next = try start(environment, log: "\(runDir)/next.out", inBackground: true)
        #expect(try HTTPClient.request(port: Int(environment["HTTP_PORT"]!)!, path: "/healthz").status == 200)
        let script = processes(mentioning: runDir).filter { $0.contains("scripts/run") && !$0.contains(" -c ") }
        try #require(script.count == 1, "\(script)")
        kill(pid_t(script[0].prefix { $0 != ":" })!, SIGINT)
        #expect(next.wait(timeout: 60) == 130, "\(next.output)")
        #expect(processes(mentioning: runDir).isEmpty, "left running: \(processes(mentioning: runDir))")
    }

    /// Starts scripts/run (or a shell that starts it in the background and waits for it) and
    /// waits for its ready line.
    private func start(_ environment: [String: String], log: String, inBackground: Bool = false) throws -> ChildProcess {
        let path = TestEnvironment.path("scripts/run")
        let script = inBackground
            ? try ChildProcess("/bin/bash", ["-c", #""$0" & wait $!"#, path], environment: environment, log: log)
            : try ChildProcess(path, [], environment: environment, log: log)
        let deadline = Date().addingTimeInterval(600)
        while Date() < deadline {
            if script.output.contains("ready http://127.0.0.1:\(environment["HTTP_PORT"]!)/\n") { return script }
            if !script.isRunning { throw HTTPClient.Failure(description: "scripts/run exited: \(script.output)") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw HTTPClient.Failure(description: "no ready line: \(script.output)")
    }

    /// Processes whose command line or environment names `dir` (postgres, nginx, the worker).
    private func processes(mentioning dir: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
        return pids.compactMap { pid -> String? in
            guard pid != String(getpid()) else { return nil }
            let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            let command = String(decoding: cmdline.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            let mentions = command.contains(dir) || String(decoding: environ, as: UTF8.self).contains("RUN_DIR=\(dir)")
                || String(decoding: environ, as: UTF8.self).contains("unix:\(dir)/")
            return mentions ? "\(pid): \(command)" : nil
        }
    }
}
