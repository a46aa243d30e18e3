import Auth
import Logging
import Observability
import Synchronization

/// The user pools trusted beside the worker's own (`trusted_pools`, sql/admin/trust_pool.sql):
/// the whole table loaded by the change feed each time it connects, then kept current from the
/// changes it streams. A pool's signing keys are fetched at its first token, with the same
/// limits as the worker's own pool's (a key store of its own); a pool trusted again with the
/// same key source keeps its keys.
package final class TrustedPools: PoolDirectory {
    private struct State {
        var byID: [String: TrustedPool] = [:]
        var byIssuer: [String: String] = [:]
    }
    private let state = Mutex(State())
    /// The worker's own pool (never trusted twice), and the settings every pool shares.
    private let own: CognitoConfig
    private let logger: Logger
    private let metrics: Metrics?

    package init(own: CognitoConfig, logger: Logger, metrics: Metrics? = nil) {
        self.own = own
        self.logger = logger
        self.metrics = metrics
    }

    package func pool(issuer: String) -> TrustedPool? { state.withLock { state in state.byIssuer[issuer].flatMap { state.byID[$0] } } }

    package func pool(id: String) -> TrustedPool? { state.withLock { $0.byID[id] } }

    package var ownPoolID: String { own.poolID }

    /// Whether provisioning may take events of `poolID`: the worker's own pool or a trusted one.
    package func accepts(poolID: String) -> Bool { poolID == own.poolID || pool(id: poolID) != nil }

    /// The table as the feed loaded it.
    package func replace(with rows: [String: PoolRow]) {
        state.withLock { state in
            let previous = state.byID
            state = State()
            for (id, row) in rows { trust(id, row, in: &state, previous: previous) }
        }
    }

    /// Applies a transaction's changes, in order.
    package func apply(_ changes: [PoolChange]) {
        guard !changes.isEmpty else { return }
        state.withLock { state in
            for change in changes {
                switch change {
                case .trust(let id, let row): trust(id, row, in: &state, previous: state.byID)
                case .distrust(let id): forget(id, in: &state, logged: true)
                case .clear: state = State()
                }
            }
        }
    }

    private func trust(_ id: String, _ row: PoolRow, in state: inout State, previous: [String: TrustedPool]) {
        forget(id, in: &state)
        guard id != own.poolID else { return }
        let region = String(id.prefix { $0 != "_" })
        let uses = Set(row.tokenUse.split(separator: ",").compactMap { CognitoConfig.TokenUse(rawValue: String($0)) })
        let source = row.jwksURL.map(CognitoConfig.KeySource.url)
            ?? .url(CognitoConfig.IssuerForm.original.issuer(region: region, poolID: id) + "/.well-known/jwks.json")
        let config = CognitoConfig(
            poolID: id, region: region, clientIDs: row.clientIDs.split(separator: ",").map(String.init), tokenUses: uses,
            keySource: source, leewaySeconds: own.leewaySeconds)
        let keys = previous[id].flatMap { $0.keys.source == source ? $0.keys : nil }
            ?? KeyStore(source: source, logger: logger, metrics: metrics)
        state.byID[id] = TrustedPool(config: config, keys: keys)
        for issuer in config.acceptedIssuers { state.byIssuer[issuer] = id }
        logger.info("trusting a user pool", metadata: ["pool": "\(id)", "clients": "\(row.clientIDs)", "keys": "\(source.description)"])
    }

    private func forget(_ id: String, in state: inout State, logged: Bool = false) {
        guard let pool = state.byID.removeValue(forKey: id) else { return }
        for issuer in pool.config.acceptedIssuers { state.byIssuer[issuer] = nil }
        if logged { logger.info("no longer trusting a user pool", metadata: ["pool": "\(id)"]) }
    }
}
