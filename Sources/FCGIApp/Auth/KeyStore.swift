import Foundation
import Logging
import Synchronization

/// The user pool's signing keys, loaded at start and kept in memory.
///
/// A `kid` not in the set triggers a reload, at most one per `refetchInterval`; threads that
/// miss while a reload runs wait for it and share its result. A failed reload keeps the last
/// good keys. Until keys have loaded once, verification answers 503.
final class KeyStore: @unchecked Sendable {
    typealias Fetch = @Sendable (CognitoConfig.KeySource) throws -> [UInt8]

    static let refetchInterval: Duration = .seconds(10)

    let source: CognitoConfig.KeySource
    private let fetch: Fetch
    private let logger: Logger
    // Guards everything below.
    private let condition = NSCondition()
    private var keySet: KeySet?
    private var lastAttempt: ContinuousClock.Instant?
    private var lastError: String?
    private var fetching = false
    private let loads = Atomic<Int>(0)

    private let metrics: Metrics?

    init(source: CognitoConfig.KeySource, logger: Logger, metrics: Metrics? = nil, fetch: @escaping Fetch = KeyFetcher.fetch) {
        self.source = source
        self.fetch = fetch
        self.logger = logger
        self.metrics = metrics
    }

    /// The keys now loaded, if any.
    var current: KeySet? {
        condition.lock()
        defer { condition.unlock() }
        return keySet
    }

    /// Changes whenever a key set is loaded: a caller that remembers it can tell, without a
    /// lock, that the keys it took from `current` are still the current ones.
    var generation: Int { loads.load(ordering: .acquiring) }

    /// Why no keys are loaded, when none are.
    var unavailableReason: String? {
        condition.lock()
        defer { condition.unlock() }
        return keySet == nil ? (lastError ?? "not loaded yet") : nil
    }

    /// The key for `kid`, reloading the set once if it is not there (rate-limited).
    func key(for kid: KeyID) throws(AuthError) -> RSAPublicKey {
        if let key = current?[kid] { return key }
        reload(force: false)
        condition.lock()
        defer { condition.unlock() }
        guard let keySet else { throw .keysUnavailable(lastError ?? "signing keys not loaded") }
        guard let key = keySet[kid] else {
            throw .invalid("Token signed by an unknown key.", "unknown kid \(kid)")
        }
        return key
    }

    /// Loads the key set now (`force`, as at start and on reload) or if the last attempt is
    /// older than `refetchInterval`. Concurrent callers share one fetch.
    func reload(force: Bool) {
        condition.lock()
        if fetching {
            while fetching { condition.wait() }
            condition.unlock()
            return
        }
        let now = ContinuousClock.now
        if !force, let lastAttempt, now - lastAttempt < Self.refetchInterval {
            condition.unlock()
            return
        }
        fetching = true
        lastAttempt = now
        condition.unlock()

        let outcome: Result<KeySet, any Error> = Result { try KeySet.parse(fetch(source)) }

        condition.lock()
        switch outcome {
        case .success(let keys):
            keySet = keys
            loads.add(1, ordering: .releasing)
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
        condition.broadcast()
        condition.unlock()
    }
}

extension CognitoConfig.KeySource: CustomStringConvertible {
    var description: String {
        switch self {
        case .url(let url): url
        case .file(let path): path
        }
    }
}
