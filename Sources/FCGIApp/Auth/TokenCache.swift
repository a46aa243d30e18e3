import Synchronization

/// Tokens whose signature has been verified, so RS256 runs once per distinct token.
///
/// Entries remember the key that verified them: once the key set no longer holds that key
/// under that `kid`, the entry is not used. Entries are not used past the token's `exp` (plus
/// leeway). When full, expired entries are dropped first, then everything.
final class TokenCache: Sendable {
    struct Entry: Sendable {
        let claims: Claims
        let kid: KeyID
        let key: RSAPublicKey
    }

    let capacity: Int
    private let entries = Mutex<[String: Entry]>([:])

    init(capacity: Int = 10_000) { self.capacity = capacity }

    func entry(for token: String) -> Entry? {
        entries.withLock { $0[token] }
    }

    func insert(_ entry: Entry, for token: String, now: Double, leeway: Double) {
        entries.withLock { entries in
            if entries.count >= capacity {
                entries = entries.filter { $0.value.claims.expiresAt + leeway > now }
                if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            }
            entries[token] = entry
        }
    }

    func remove(_ token: String) {
        _ = entries.withLock { $0.removeValue(forKey: token) }
    }

    var count: Int { entries.withLock { $0.count } }
}
