import Foundation
@testable import PG
import Synchronization
import Testing

/// PostgreSQL stopped for 10 s under a light load of reads and POSTs through nginx: while it is
/// down, each loop tries to connect again only after a pause (doubling up to 1 s) and answers
/// the requests meanwhile at once, so the outage costs the worker no more than serving did.
@Suite(.lane(.heavy)) struct DatabaseOutageTests {
    struct Answer {
        let status: Int
        let seconds: Double
        let name: String?
        let at: Date
    }

    @Test func everyRequestIsAnsweredInTimeAndTheWorkerIdlesWhileTheDatabaseIsDown() throws {
        let cluster = try OwnCluster()
        defer { cluster.stopAtEnd() }
        let database = cluster.database
        let stack = try Stack(environment: ["DATABASE_URL": database, "DATABASE_FEED_URL": database, "FCGI_THREADS": "2", "LOG_REQUESTS": "false"])
        try Connection(database).query("INSERT INTO users (username, email) VALUES ('steady', 'steady@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "steady@example.com"))

        // 40 requests a second, reads and POSTs in turn, each POST named apart.
        let answers = Mutex<[Answer]>([])
        let stop = Mutex(false)
        let load = Thread {
            var n = 0
            while !stop.withLock({ $0 }) {
                n += 1
                let name = n % 2 == 0 ? "post \(n)" : nil
                let began = Date()
                let response = try? stack.request(
                    name == nil ? "GET" : "POST", name == nil ? "/articles/?limit=1" : "/articles/",
                    headers: [("Authorization", token), ("Content-Type", "application/json")],
                    body: name.map { Data(#"{"name": "\#($0)"}"#.utf8) })
                answers.withLock { $0.append(Answer(status: response?.status ?? -1, seconds: Date().timeIntervalSince(began), name: name, at: began)) }
                Thread.sleep(until: began.addingTimeInterval(0.025))  // the load's pace
            }
        }
        load.start()
        defer { stop.withLock { $0 = true } }
        try waitFor("the first answers", within: 5) { answers.withLock { $0.count } >= 20 }
        let upCPU = try stack.worker.cpuSeconds()
        Thread.sleep(forTimeInterval: 3)  // a span of serving, to measure: about time
        let upCost = (try stack.worker.cpuSeconds() - upCPU) / 3

        try cluster.stop()
        let down = Date()
        let downCPU = try stack.worker.cpuSeconds()
        let logBefore = stack.worker.output.split(separator: "\n").count
        Thread.sleep(forTimeInterval: 10)  // the outage: about time
        let downCost = (try stack.worker.cpuSeconds() - downCPU) / 10
        let logged = stack.worker.output.split(separator: "\n").count - logBefore

        let restarting = Date()
        try cluster.start()
        let back = Date()
        try waitFor("a 2xx after the restart", within: 1.5) {
            answers.withLock { $0.contains { $0.at > back && (200..<300).contains($0.status) } }
        }
        Thread.sleep(forTimeInterval: 0.5)
        stop.withLock { $0 = true }
        try waitFor("the load to stop", within: 5) { load.isFinished }

        let all = answers.withLock { $0 }
        print("database outage: worker CPU \(downCost) s/s down, \(upCost) s/s up; \(logged) log lines in 10 s; \(all.count) requests")
        #expect(all.allSatisfy { $0.status != -1 }, "every request answered")
        #expect(Set(all.map(\.status)).isSubset(of: [200, 201, 503]), "\(Set(all.map(\.status)))")
        let duringOutage = all.filter { $0.at > down.addingTimeInterval(0.5) && $0.at < restarting }
        #expect(duringOutage.count > 100 && duringOutage.allSatisfy { $0.status == 503 && $0.seconds < 1 },
                "\(duringOutage.filter { $0.status != 503 || $0.seconds >= 1 }.prefix(5))")
        // The kernel counts a process's CPU in ticks of 10 ms: one tick over the 3 s up is the
        // measurement's own grain.
        #expect(downCost <= upCost + 0.01 / 3, "CPU per second: \(downCost) down, \(upCost) up")
        #expect(logged <= 10, "\(logged) log lines in the 10 s outage")
        // Every 201 stored exactly once.
        let created = all.filter { $0.status == 201 }.compactMap(\.name)
        let stored = try Connection(database).query("SELECT name FROM articles").map { try $0.decode(String.self, at: 0) }
        #expect(created.count > 20 && Set(created).isSubset(of: Set(stored)) && stored.count == Set(stored).count, "\(created.count) created")
    }
}
