import FoundationEssentials
import Logging
import Observability
import Support
import Synchronization

/// The user pool's signing keys, loaded at start and kept in memory.
///
/// A `kid` not in the set starts a reload on a thread of its own, at most one per
/// `refetchInterval`; requests that miss wait for it until `missWait` after it began, then
/// are answered with what is loaded, so a slow key server never holds a request long. One on
/// a serving loop is parked there meanwhile (`AuthError.keysReloading`), so it holds no loop. A
/// failed reload keeps the last good keys. Until keys have loaded once, verification answers 503.
/// The fetch and the clock the rate limit reads are the caller's to choose (tests pass their
/// own, so the 10 s pass without waiting).
package final class KeyStore: @unchecked Sendable {
    package typealias Fetch = @Sendable (CognitoConfig.KeySource) throws -> [UInt8]
    /// `monotonicNanoseconds()`, unless a test's clock.
    package typealias Now = @Sendable () -> Int64

    package static let refetchInterval: Duration = .seconds(10)
    /// Whether a miss on a serving loop parks (`AuthError.keysReloading`) rather than waits:
    /// off for the second look of a request that parked once.
    @TaskLocal package static var mayPark = true
    /// How long requests with an unknown kid wait for the reload, from its start.
    package static let missWait: Duration = .seconds(1)

    package let source: CognitoConfig.KeySource
    private let fetch: Fetch
    private let now: Now
    private let logger: Logger
    // Guards everything below; its condition wakes the threads that wait for a reload.
    private let condition = ConditionLock()
    private var keySet: KeySet?
    private var lastAttempt: Int64?
    private var lastError: String?
    private var fetching = false
    /// Requests parked in their loops until the reload in flight ends.
    private var parked: [LoopWait] = []
    /// The loaded key set's number, unique across the process (`generations`).
    private let loaded: Atomic<Int>
    /// Numbers every key set any store loads, so that no two key sets share one: a store made
    /// anew for a pool (a new `jwks_url`, distrusted then trusted) never takes another store's
    /// cached verifications for its own.
    private static let generations = Atomic<Int>(0)

    private let metrics: Metrics?

    package init(
        source: CognitoConfig.KeySource, logger: Logger, metrics: Metrics? = nil,
        fetch: @escaping Fetch = KeyFetcher.fetch, now: @escaping Now = monotonicNanoseconds
    ) {
        self.source = source
        self.fetch = fetch
        self.now = now
        self.logger = logger
        self.metrics = metrics
        loaded = Atomic(Self.generations.add(1, ordering: .relaxed).newValue)
    }

    /// The keys now loaded, if any.
    package var current: KeySet? {
        condition.lock()
        defer { condition.unlock() }
        return keySet
    }

    /// Changes whenever a key set is loaded, and is never the same for two key sets of the
    /// process: a caller that remembers it can tell, without a lock, that the keys it took from
    /// `current` are still the current ones.
    package var generation: Int { loaded.load(ordering: .acquiring) }

    /// What `/healthz` says when no keys are loaded: only what is wrong, not where they are.
    package var unavailableSummary: String? {
        condition.lock()
        defer { condition.unlock() }
        guard keySet == nil else { return nil }
        return lastError == nil ? "signing keys not loaded yet" : "signing keys could not be loaded"
    }

    /// The key for `kid`, reloading the set in the background if it is not there
    /// (rate-limited) and waiting for that until `missWait` after the reload began.
    package func key(for kid: KeyID) throws(AuthError) -> RSAPublicKey {
        if let key = current?[kid] { return key }
        condition.lock()
        defer { condition.unlock() }
        if !fetching, beginAttempt(force: false) {
            do {
                _ = try PosixThread { [self] in load() }
            } catch {
                fetching = false
                logger.error("cannot start the signing key reload", metadata: ["error": "\(error)"])
            }
        }
        // Every miss waits for the same deadline: once a reload has run for `missWait`, later
        // misses are answered at once with what is loaded.
        let left = Self.missWait.nanoseconds - (now() - lastAttempt!)
        if fetching, left > 0, Self.mayPark, let loop = EventLoop.current {
            throw .keysReloading { [self] in await reloaded(within: left, on: loop) }
        }
        let deadline = monotonicNanoseconds() + left
        while fetching, condition.wait(until: deadline) {}
        guard let keySet else { throw .keysUnavailable(lastError ?? "signing keys not loaded") }
        guard let key = keySet[kid] else {
            throw .invalid("Token signed by an unknown key.", "unknown kid \(kid)")
        }
        return key
    }

    /// Parks the calling task in `loop` until the reload in flight ends, `nanoseconds` at most.
    private func reloaded(within nanoseconds: Int64, on loop: EventLoop) async {
        let wait = LoopWait(loop: loop)
        await wait.park(until: monotonicNanoseconds() + nanoseconds) {
            condition.lock()
            defer { condition.unlock() }
            if fetching { parked.append(wait) } else { wait.resume() }
        } unlist: { [self] in
            condition.lock()
            defer { condition.unlock() }
            parked.removeAll { $0 === wait }
        }
    }

    /// Loads the key set now, on this thread (`force`, as at start and on SIGHUP), or if the
    /// last attempt is older than `refetchInterval`. A reload already running is waited for.
    package func reload(force: Bool) {
        condition.lock()
        if fetching {
            while fetching { condition.wait() }
            condition.unlock()
            return
        }
        let started = beginAttempt(force: force)
        condition.unlock()
        if started { load() }
    }

    /// Marks a fetch as running, unless the last attempt is too recent; the lock is held.
    private func beginAttempt(force: Bool) -> Bool {
        let now = now()
        if !force, let lastAttempt, now - lastAttempt < Self.refetchInterval.nanoseconds { return false }
        fetching = true
        lastAttempt = now
        return true
    }

    /// Fetches and parses the key set, keeps it (or the error), and wakes whoever waits.
    private func load() {
        let outcome: Result<KeySet, any Error> = Result { try KeySet.parse(fetch(source)) }

        condition.lock()
        switch outcome {
        case .success(let keys):
            keySet = keys
            loaded.store(Self.generations.add(1, ordering: .relaxed).newValue, ordering: .releasing)
            metrics?.keyFetches.increment()
            lastError = nil
            logger.info("signing keys loaded", metadata: [
                "kids": "\(keys.keys.keys.map(\.description).sorted().joined(separator: ","))",
                "skipped": "\(keys.skipped.joined(separator: "; "))",
            ])
        case .failure(let error):
            metrics?.keyFetchFailures.increment()
            lastError = "cannot load the signing keys from \(source.description): \(error)"
            logger.error("signing keys not loaded\(keySet == nil ? "" : "; keeping the previous keys")", metadata: [
                "error": "\(lastError!)"
            ])
        }
        fetching = false
        let waking = parked
        parked.removeAll()
        condition.broadcast()
        condition.unlock()
        for wait in waking { wait.end() }
    }
}

extension CognitoConfig.KeySource: CustomStringConvertible {
    package var description: String {
        switch self {
        case .url(let url): url
        case .file(let path): path
        }
    }
}
