import HTTP
import JSON
import PG
import Stores

/// The operations routes' own work: `/healthz` and the replication slots `/metrics` reports.
extension App {
    /// The cluster's replication slots now, for `/metrics`: how many of each kind, and the WAL
    /// they hold back. Left as last read when the database does not answer.
    func readSlots() async {
        do {
            let row = try await database.query(Self.slots)[0]
            metrics.shared.temporarySlots.set(to: Double(try row.decode(Int64.self, at: 0)))
            metrics.shared.persistentSlots.set(to: Double(try row.decode(Int64.self, at: 1)))
            metrics.shared.slotsRetainedWAL.set(to: Double(try row.decode(Int64.self, at: 2)))
        } catch {
            logger.debug("metrics: replication slots not read", metadata: ["error": "\(error)"])
        }
    }

    private static let slots = PreparedStatement(
        name: "replication_slots",
        sql: """
            SELECT count(*) FILTER (WHERE temporary), count(*) FILTER (WHERE NOT temporary),
              coalesce(sum(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)), 0)::int8
            FROM pg_replication_slots
            """)

    struct Health: Codable, Equatable, JSONWritable {
        var status: String
        var detail: String?

        func write(to json: inout JSONWriter) {
            json.beginObject()
            if let detail { json.member("detail", detail) }
            json.member("status", status)
            json.endObject()
        }
    }

    /// 200 when signing keys are loaded and a connection of this loop answers (reconnecting if
    /// it was dropped), 503 with the reason otherwise.
    func health() async -> Response {
        if let summary = authenticator.verifier.keys.unavailableSummary {
            return .json(Health(status: "unavailable", detail: summary), status: .serviceUnavailable)
        }
        do {
            try await database.query("SELECT 1")
            return .json(Health(status: "ok"))
        } catch {
            logger.warning("health check: database unavailable", metadata: ["error": "\(error)"])
            return .json(Health(status: "unavailable", detail: "database unavailable"), status: .serviceUnavailable)
        }
    }
}
