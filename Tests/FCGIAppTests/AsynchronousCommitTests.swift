import Foundation
@testable import PG
import Testing

/// Read-your-writes whatever `synchronous_commit` the writer used: an asynchronous commit is
/// visible before its WAL is flushed, so a read waits for the end of the WAL, not its flush.
@Suite(.lane()) struct AsynchronousCommitTests {
    @Test func aDeleteCommittedAsynchronouslyIsNeverReadFromACache() throws {
        let database = try TestDatabase.migrated()
        let admin = try database.connect()
        // This database's sessions of the worker's role, and the psql writer's below.
        try admin.query("ALTER ROLE articles_app IN DATABASE \(database.name) SET synchronous_commit = off")
        // One thread each, so the one GET before a delete fills the cache the GET after it reads.
        let stacks = [
            try Stack(database: database, environment: ["FCGI_THREADS": "1"]),
            try Stack(database: database, environment: ["FCGI_THREADS": "1"]),
        ]
        let owner = try admin.query("INSERT INTO users (username, email) VALUES ('async', 'async@example.com') RETURNING id")
            .first!.decode(Int64.self, at: 0)
        let token = TestPool.token(claims: TestPool.idClaims(email: "async@example.com"))
        let ids = try admin.query(
            "INSERT INTO articles (name, owner_id) SELECT 'a' || g, $1 FROM generate_series(1, 200) g RETURNING id", owner
        ).map { try $0.decode(Int64.self, at: 0) }
        let psql = try database.connect()
        try psql.query("SET synchronous_commit = off")
        #expect(try psql.query("SHOW synchronous_commit").first?.decode(String.self, at: 0) == "off")

        // The caches are in play: both feeds follow the database.
        for stack in stacks { try stack.waitForChangeFeed() }
        var stale: [String] = []
        for (index, id) in ids.enumerated() {
            let (writer, reader) = (stacks[index % 2], stacks[(index + 1) % 2])
            let cached = try reader.get("/articles/\(id)/", headers: [("Authorization", token)])
            try #require(cached.status == 200, "\(cached.text)")
            if index < 100 {
                let deleted = try writer.request("DELETE", "/articles/\(id)/", headers: [("Authorization", token)])
                try #require(deleted.status == 204, "\(deleted.text)")
            } else {
                try #require(try psql.query("DELETE FROM articles WHERE id = $1", id).rowsAffected == 1)
            }
            let after = try reader.get("/articles/\(id)/", headers: [("Authorization", token)])
            if after.status != 404 { stale.append("\(index < 100 ? "worker" : "psql") DELETE of \(id), then GET: \(after.status)") }
        }
        #expect(stale == [])
        #expect(try stacks.allSatisfy { try $0.metric("articles_fcgi_change_feed_up") == 1 }, "the feeds stayed up")
    }
}
