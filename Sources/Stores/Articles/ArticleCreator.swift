import Auth
import Observability
import PG
import Support

/// Creates the articles of `POST /articles/` for the requests of one serving loop, several in
/// one statement when they arrive together: the way PostgreSQL shares one WAL flush among
/// concurrent commits, one commit (one flush, one decoded transaction) then serves several
/// requests, and writes cost the database a fraction of a statement each under load.
///
/// Nothing waits to fill a batch. A request that finds no statement in flight runs one at once
/// with every request queued by then (up to `maxBatch`); the requests it took are parked until
/// it ends, and the requests that arrive meanwhile go in the next. So a lone request costs what
/// it did alone, and one in a batch waits at most for the statement in flight and its own.
///
/// The shared statement never waits for a user's row: a row another session holds (a
/// deletion, a rename, a psql `FOR UPDATE`) is skipped, and that user's requests run alone,
/// each waiting within its own lock bound, so one user's locked row costs only that user's
/// requests. So do the requests whose user the statement did not find (to be looked up:
/// bound, or told why not).
///
/// A statement that fails on a request's data (a data exception or a constraint, class 22 or
/// 23, or a value libpq refuses), or that a lock or statement timeout cancelled, wrote nothing;
/// each of its requests then runs alone, so a request gets its own answer within its own
/// bound. Any other failure (a lost connection) is every request's answer, as it would have
/// been alone: the statement may have committed, and a retry could write an article twice.
///
/// Touched on its loop only.
package final class ArticleCreator {
    /// The most requests one statement takes.
    package static let maxBatch = 64

    private final class Pending {
        let name: String
        let claims: Claims
        /// Set when the request's statement ended.
        var outcome: Outcome?
        /// The request's task, while it is parked.
        var parked: UnsafeContinuation<Void, Never>?
        init(name: String, claims: Claims) {
            self.name = name
            self.claims = claims
        }

        func resume() {
            parked?.resume()
            parked = nil
        }
    }

    private enum Outcome {
        case created(ArticleStore.Owned)
        case failed(PGError)
        case alone
    }

    private let metrics: Metrics
    private var queue: [Pending] = []
    /// Whether a statement is in flight.
    private var running = false

    package init(metrics: Metrics) {
        self.metrics = metrics
    }

    /// The new article, if the token's user may write (`ArticleStore.createAsUser`); nil when
    /// the caller must be looked up.
    package func create(name: String, asUserOf claims: Claims, using db: any Database) async throws(PGError) -> ArticleStore.Owned? {
        let request = Pending(name: name, claims: claims)
        queue.append(request)
        metrics.articleCreatesQueued.increment()
        while request.outcome == nil {
            if running {
                await withUnsafeContinuation { request.parked = $0 }
                continue
            }
            running = true
            let batch = Array(queue.prefix(Self.maxBatch))
            queue.removeFirst(batch.count)
            metrics.articleCreatesQueued.decrement(by: Double(batch.count))
            // The shared statement is no one principal's: it never waits behind a principal's
            // own statements for a connection.
            let shared = RequestScope(deadline: LoopDatabase.scope?.deadline ?? monotonicNanoseconds() + LoopDatabase.defaultWait.nanoseconds)
            let outcomes = await LoopDatabase.$scope.withValue(shared) { await Self.run(batch, on: db) }
            metrics.articleCreateStatements.increment()
            for (each, outcome) in zip(batch, outcomes) { each.outcome = outcome }
            running = false
            // Its own requests, and the first queued one, to run the next.
            for each in batch { each.resume() }
            queue.first?.resume()
        }
        switch request.outcome! {
        case .created(let article):
            return article
        case .failed(let error):
            throw error
        case .alone:
            metrics.articleCreateStatements.increment()
            return try await ArticleStore.create(name: name, asUserOf: claims, in: db)
        }
    }

    private static func run(_ batch: [Pending], on db: any Database) async -> [Outcome] {
        do throws(PGError) {
            let created = batch.count == 1
                ? [try await ArticleStore.create(name: batch[0].name, asUserOf: batch[0].claims, unlessLocked: true, in: db)]
                : try await ArticleStore.create(batch.map(\.name), asUsersOf: batch.map(\.claims), in: db)
            // No row: the user's row is held by another session, or the caller must be looked up.
            return created.map { $0.map { .created($0) } ?? .alone }
        } catch {
            let onData = error.kind == .client
                || (error.kind == .server && (error.sqlState?.errorClass == "22" || error.sqlState?.errorClass == "23"))
            let cancelled = error.sqlState == .queryCanceled || error.sqlState == .lockNotAvailable
            return batch.map { _ in batch.count > 1 && (onData || cancelled) ? .alone : .failed(error) }
        }
    }
}
