import Foundation
import PG
import Testing

@Suite struct ReplicationTests {
    @Test func streamsCommittedChangesFromATemporarySlot() throws {
        let db = try TestDatabase.fresh()
        try db.query("CREATE TABLE items (id int PRIMARY KEY, label text)")
        try db.query("CREATE PUBLICATION feed FOR TABLE items")
        let database = try #require(try db.query("SELECT current_database()").first?.decode(String.self, at: 0))
        let stream = try ReplicationStream(try TestDatabase.conninfo(database: database), applicationName: "pg-test")
        try db.query("INSERT INTO items VALUES (0, 'before')")
        // What the slot starts from is loaded in its own snapshot: the row committed before it.
        let (start, loaded) = try stream.createTemporarySlot("pg_test_slot", plugin: "pgoutput") { stream throws(PGError) in
            var labels: [String] = []
            for row in try stream.execute("SELECT label FROM items") { labels.append(try row.decode(String.self, at: 0)) }
            return labels
        }
        #expect(loaded == ["before"])
        try stream.start(slot: "pg_test_slot", options: "proto_version '1', publication_names 'feed'")
        try db.query("INSERT INTO items VALUES (1, 'one')")
        try db.query("UPDATE items SET label = 'uno' WHERE id = 1")
        try db.query("DELETE FROM items WHERE id = 1")
        let flushed = try #require(try db.query("SELECT pg_current_wal_flush_lsn()").first?.decode(LSN.self, at: 0))
        #expect(flushed > start)

        var messages: [PGOutputMessage] = []
        var caughtUp = false
        let deadline = Date().addingTimeInterval(10)
        while !caughtUp, Date() < deadline {
            switch try stream.next(timeout: 0.5) {
            case .data(_, let bytes)?:
                messages.append(try PGOutputMessage(bytes))
            case .keepalive(let walEnd, _)?:
                caughtUp = walEnd >= flushed
                try stream.sendStatus(applied: walEnd, replyRequested: false)
            case nil:
                try stream.sendStatus(applied: start, replyRequested: true)
            }
        }
        #expect(caughtUp, "a keepalive reached the flush position")
        let rows = messages.filter { if case .begin = $0 { false } else if case .commit = $0 { false } else { true } }
        guard case .relation(let relation, "public", "items", ["id", "label"])? = rows.first else {
            Issue.record("no relation message first: \(rows)")
            return
        }
        #expect(Array(rows.dropFirst()) == [
            .insert(relation: relation, new: [.text("1"), .text("one")]),
            .update(relation: relation, old: nil, new: [.text("1"), .text("uno")]),
            .delete(relation: relation, key: [.text("1"), .null]),
        ])
        let commits = messages.compactMap { if case .commit(let end, _) = $0 { end } else { nil } }
        #expect(commits.count == 3 && commits == commits.sorted() && commits.allSatisfy { $0 <= flushed })
        stream.close()
        // The slot was temporary: gone with its connection.
        let deadlineGone = Date().addingTimeInterval(5)
        while try db.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pg_test_slot'").first!.decode(Int.self, at: 0) > 0,
            Date() < deadlineGone
        {
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(try db.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pg_test_slot'").first!.decode(Int.self, at: 0) == 0)
    }

    @Test func parsesPositionsAndSnapshots() throws {
        #expect(LSN("16/B374D848")?.value == 0x16_B374_D848)
        #expect(LSN("0/0")?.value == 0)
        #expect(LSN("16/B374D848")?.description == "16/B374D848")
        for bad in ["", "1", "/1", "1/", "x/1", "123456789/0", "1/2/3"] { #expect(LSN(bad) == nil, "\(bad)") }
        #expect(Snapshot("10:20:12,15") == Snapshot(xmax: 20, running: [12, 15]))
        #expect(Snapshot("10:20:12,15")?.hides(15) == true && Snapshot("10:20:")?.hides(20) == true)
        #expect(Snapshot("10:20:12")?.hides(13) == false)
        #expect(Snapshot("10:10:")?.running == [])
        #expect(Snapshot("4294967306:4294967310:4294967307")?.running == [11], "the epoch is dropped")
        for bad in ["", "1:2", "a:2:", "1:2:x"] { #expect(Snapshot(bad) == nil, "\(bad)") }
        #expect(throws: PGError.self) { try PGOutputMessage([UInt8(ascii: "I"), 0, 0]) }
        #expect(throws: PGError.self) { try PGOutputMessage([UInt8(ascii: "Z")]) }
        #expect(try PGOutputMessage([UInt8(ascii: "I"), 0, 0, 0, 7, UInt8(ascii: "N"), 0, 1, UInt8(ascii: "t"), 0, 0, 0, 2, 0x68, 0x69])
            == .insert(relation: 7, new: [.text("hi")]))
    }
}
