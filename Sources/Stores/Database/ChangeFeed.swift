import Auth
import Glibc
import Logging
import Observability
import PG
import Support
import Synchronization

/// A committed change that may make a cached answer wrong.
package enum Change: Equatable, Sendable {
    case articleInserted(Int64)
    case articleUpdated(Int64)
    case articleDeleted(Int64)
    /// A user's row changed or was deleted: its cache entry, and the articles that show its name.
    case userChanged(Int64)
    /// Anything may have changed: a table truncated, a change the feed could not read, or the
    /// feed (re)connected after a time it heard nothing.
    case everything
}

/// A committed change to `revoked_sessions`, by the `origin_jti` of its row.
package enum SessionChange: Equatable, Sendable {
    case revoke(String)
    case unrevoke(String)
    /// The table was emptied.
    case clear
}

/// A committed change to `group_roles`, by pool and group name, and role.
package enum RoleChange: Equatable, Sendable {
    case grant(Authorization.Group, String)
    case revoke(Authorization.Group)
    /// The table was emptied.
    case clear
}

/// A row of `trusted_pools`, as its text: app client ids comma-separated, `id`, `access` or
/// `id,access`, and the JWKS URL if one was given.
package struct PoolRow: Equatable, Sendable {
    package let clientIDs: String
    package let tokenUse: String
    package let jwksURL: String?
}

/// A committed change to `trusted_pools`, by pool id.
package enum PoolChange: Equatable, Sendable {
    case trust(String, PoolRow)
    case distrust(String)
    /// The table was emptied.
    case clear
}

/// What the worker hears of committed changes to the tables its serving loops cache (users,
/// articles) and to the revoked sessions, through PostgreSQL's logical decoding: a temporary
/// replication slot streamed with the built-in `pgoutput` plugin for the `articles_fcgi`
/// publication (migration 0009), on a connection and thread of its own. Writers pay nothing at
/// commit, and a change made by psql, another worker or another host arrives the same way.
///
/// Each committed transaction's changes go to the `ChangeLog` (the serving loops apply them
/// to their own caches) and its revocations and roles to the `FeedHandlers`; then `applied` moves to the
/// transaction's end. A serving loop uses its caches only when `applied` has reached the
/// end of the server's WAL read after the request arrived (`WALPositionReader`,
/// `isCurrent(for:waiting:)`), so an answer reflects every commit visible before the request
/// began, by any worker or psql.
///
/// The feed proves it is alive: it asks the server for a keepalive every second and counts
/// three seconds without any message as down. While it is down nothing is current, so caches
/// are bypassed and revocations are checked against the database; it connects again every
/// second, with a new slot, and everything cached before is dropped.
package final class ChangeFeed: Sendable {
    package static let publication = "articles_fcgi"
    /// How often the feed asks the server for a keepalive, and how long a silence counts as down.
    package static let statusInterval: Duration = .seconds(1)
    package static let silenceBound: Duration = .seconds(3)
    /// A change applied later than this after its commit is logged.
    package static let lagBound = 1.0

    package let log = ChangeLog()
    package let applied = AppliedPosition()
    private let handlers: FeedHandlers
    private let up = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    private let metrics: Metrics?

    /// A feed that is down until `start`.
    package init(handlers: FeedHandlers, metrics: Metrics? = nil) {
        self.handlers = handlers
        self.metrics = metrics
    }

    package var isUp: Bool { up.load(ordering: .acquiring) }

    /// Whether everything committed up to `position` has been applied, waiting up to `timeout`
    /// for it, parked in `loop`; false while the feed is down.
    package func isCurrent(for position: LSN, waiting timeout: Duration, on loop: EventLoop) async -> Bool {
        guard isUp else { return false }
        return await applied.wait(for: position.value, timeout: timeout, on: loop) && isUp
    }

    /// Adds the changes of transaction `xid`, committed at `position`.
    private func publish(_ changes: [Change], of xid: UInt32, at position: LSN) {
        log.append(changes, of: xid)
        applied.advance(to: position.value)
    }

    /// Follows changes from now on, on a replication connection made with `conninfo` and a
    /// thread of its own, until the process exits or `stop`.
    package func start(conninfo: String?, logger: Logger) throws(SystemError) {
        _ = try PosixThread { [self] in
            var lastError = ""
            while !stopped.load(ordering: .relaxed) {
                do {
                    try follow(conninfo: conninfo, logger: logger)
                } catch {
                    let wasUp = up.exchange(false, ordering: .acquiringAndReleasing)
                    metrics?.feedUp.set(to: 0)
                    let text = "\(error)"
                    if wasUp || text != lastError {
                        logger.warning(
                            "not following database changes; serving without caches until it is back",
                            metadata: ["error": "\(text)"])
                        if wasUp { metrics?.feedLosses.increment() }
                    }
                    lastError = text
                    sleep(1)
                }
            }
            up.store(false, ordering: .releasing)
            metrics?.feedUp.set(to: 0)
        }
    }

    /// Ends the replication session (its temporary slot goes with it) within a quarter of a
    /// second, or within a second while it waits to connect again; the feed is down from then on.
    package func stop() { stopped.store(true, ordering: .relaxed) }

    /// One replication session: throws when the connection fails or goes silent.
    private func follow(conninfo: String?, logger: Logger) throws {
        let stream = try ReplicationStream(conninfo, applicationName: "articles-fcgi changes")
        defer { stream.close() }
        var random = SystemRandomNumberGenerator()
        let slot = "articles_fcgi_\(getpid())_\(String(random.next() as UInt32, radix: 16))"
        // The revoked sessions and the groups' roles as of the slot's start, in its own
        // snapshot: every commit is either loaded or in the stream, one whose commit other
        // sessions cannot see yet (waiting for a synchronous standby) included.
        let (start, loaded) = try stream.createTemporarySlot(slot, plugin: "pgoutput") { stream throws(PGError) in
            (try Self.revokedSessions(stream), try Self.groupRoles(stream), try Self.trustedPools(stream),
             try stream.execute("SELECT pg_current_snapshot()::text").first?.decode(Snapshot.self, at: 0))
        }
        handlers.loadSessions(loaded.0)
        handlers.loadRoles(loaded.1)
        handlers.loadPools(loaded.2)
        try stream.start(slot: slot, options: "proto_version '1', publication_names '\(Self.publication)'")
        // Whatever the caches kept may be older than the slot: dropped before they are used
        // again, and an answer loaded in a snapshot that hides a commit before the slot's start
        // is not kept.
        log.restart(from: loaded.3)
        applied.reset(to: start.value)
        up.store(true, ordering: .releasing)
        metrics?.feedUp.set(to: 1)
        logger.info("following database changes", metadata: ["slot": "\(slot)", "from": "\(start)"])

        var decoder = ChangeDecoder()
        var heard = monotonicNanoseconds()
        var asked = Int64.min
        var behind = false
        while !stopped.load(ordering: .relaxed) {
            let now = monotonicNanoseconds()
            if asked == .min || now - asked >= Self.statusInterval.nanoseconds {
                try stream.sendStatus(applied: LSN(applied.value), replyRequested: true)
                asked = now
            }
            guard let message = try stream.next(timeout: 0.25) else {
                if monotonicNanoseconds() - heard > Self.silenceBound.nanoseconds {
                    throw PGError(kind: .connection, message: "the server sent nothing for \(Self.silenceBound)")
                }
                continue
            }
            heard = monotonicNanoseconds()
            switch message {
            case .keepalive(let walEnd, _):
                // Everything before walEnd was sent, so it has been applied (outside a transaction).
                if !decoder.inTransaction { applied.advance(to: walEnd.value) }
                try stream.sendStatus(applied: LSN(applied.value), replyRequested: false)
            case .data(_, let bytes):
                guard let commit = try decoder.decode(PGOutputMessage(bytes)) else { continue }
                if commit.unreadable {
                    // Only a new session can load them again (no statements while streaming).
                    throw PGError(kind: .decoding, message: "a change to revoked_sessions, group_roles or trusted_pools could not be read")
                }
                handlers.applySessions(commit.revocations)
                handlers.applyRoles(commit.roles)
                handlers.applyPools(commit.pools)
                publish(commit.changes, of: commit.xid, at: commit.end)
                let lag = Double(ReplicationStream.postgresMicroseconds() - commit.commitTime) / 1_000_000
                metrics?.feedLag.set(to: max(0, lag))
                if (lag > Self.lagBound) != behind {
                    behind.toggle()
                    if behind {
                        logger.warning("database changes arrive late", metadata: ["lag_seconds": "\(lag)"])
                    } else {
                        logger.info("database changes arrive on time again", metadata: ["lag_seconds": "\(lag)"])
                    }
                }
            }
        }
    }
}

extension ChangeFeed {
    fileprivate static func revokedSessions(_ stream: ReplicationStream) throws(PGError) -> Set<String> {
        var sessions = Set<String>()
        for row in try stream.execute("SELECT origin_jti FROM revoked_sessions") {
            sessions.insert(try row.decode(String.self, at: 0))
        }
        return sessions
    }

    fileprivate static func trustedPools(_ stream: ReplicationStream) throws(PGError) -> [String: PoolRow] {
        var pools: [String: PoolRow] = [:]
        for row in try stream.execute("SELECT pool_id, client_ids, token_use, jwks_url FROM trusted_pools") {
            pools[try row.decode(String.self, at: 0)] = PoolRow(
                clientIDs: try row.decode(String.self, at: 1), tokenUse: try row.decode(String.self, at: 2),
                jwksURL: try row.decode(String?.self, at: 3))
        }
        return pools
    }

    fileprivate static func groupRoles(_ stream: ReplicationStream) throws(PGError) -> [Authorization.Group: String] {
        var roles: [Authorization.Group: String] = [:]
        for row in try stream.execute("SELECT pool_id, group_name, role FROM group_roles") {
            roles[Authorization.Group(pool: try row.decode(String.self, at: 0), name: try row.decode(String.self, at: 1))] =
                try row.decode(String.self, at: 2)
        }
        return roles
    }
}
