import Synchronization

/// Tokens whose signature has been verified, so RS256 runs once per distinct token.
///
/// Entries remember the key that verified them: once the key set no longer holds that key
/// under that `kid`, the entry is not used. Entries are not used past the token's `exp` (plus
/// leeway). When full, expired entries are dropped first, then everything.
///
/// Every serving loop looks a token up on every request, so the entries are split into
/// shards, each behind its own lock, chosen by characters of the signature (random for every
/// token): loops looking up different tokens rarely wait for each other.
package final class TokenCache: Sendable {
    package struct Entry: Sendable {
        package let claims: Claims
        package let kid: KeyID
        package let key: RSAPublicKey
        /// `KeyStore.generation` when the key was taken from the key set.
        package let keySetGeneration: Int
    }

    private final class Shard: Sendable {
        let capacity: Int
        let entries = Mutex<[String: Entry]>([:])
        init(capacity: Int) { self.capacity = capacity }
    }

    private let shards: [Shard]

    /// Room for `capacity` tokens, in `shards` shards (a power of two). Tokens do not spread
    /// evenly, so each shard holds up to a quarter more than its share: `capacity` tokens in
    /// use at once all stay, and the cache never holds more than 1.25 × `capacity`.
    package init(capacity: Int = 10_000, shards: Int = 16) {
        precondition(shards > 0 && shards & (shards - 1) == 0, "shards must be a power of two")
        let share = (capacity + shards - 1) / shards
        self.shards = (0..<shards).map { _ in Shard(capacity: shards == 1 ? capacity : share + (share + 3) / 4) }
    }

    private func shard(for token: String) -> Shard {
        // The last character of an RS256 signature carries only 2 bits: take the two before it.
        let utf8 = token.utf8
        guard utf8.count >= 3 else { return shards[0] }
        let end = utf8.index(utf8.endIndex, offsetBy: -3)
        let mixed = Int(utf8[end]) &* 31 &+ Int(utf8[utf8.index(after: end)])
        return shards[mixed & (shards.count - 1)]
    }

    package func entry(for token: String) -> Entry? {
        shard(for: token).entries.withLock { $0[token] }
    }

    package func insert(_ entry: Entry, for token: String, now: Double, leeway: Double) {
        let shard = shard(for: token)
        shard.entries.withLock { entries in
            if entries.count >= shard.capacity {
                entries = entries.filter { $0.value.claims.expiresAt + leeway > now }
                if entries.count >= shard.capacity { entries.removeAll(keepingCapacity: true) }
            }
            entries[token] = entry
        }
    }

    package func remove(_ token: String) {
        _ = shard(for: token).entries.withLock { $0.removeValue(forKey: token) }
    }

    package var count: Int { shards.reduce(0) { total, shard in total + shard.entries.withLock { $0.count } } }

    /// One serving loop's most recently used entries, in front of the shared cache: a token
    /// that many requests reuse at once (one user's session, a service's token) would otherwise
    /// have every loop waiting on the same shard's lock. Emptied when full.
    ///
    /// It also remembers the tokens whose signature it found bad, with the key set it checked
    /// them against, so a client repeating a forged or corrupted token costs no RS256.
    package final class Recent {
        /// What this loop last found a token to be.
        package enum Outcome {
            case verified(Entry)
            /// Refused for a bad signature under these keys' key set of that generation.
            case forged(AuthError, keys: KeyStore, keySetGeneration: Int)
        }

        package let capacity: Int
        private var outcomes: [String: Outcome] = [:]

        package init(capacity: Int = 512) { self.capacity = capacity }

        package subscript(token: String) -> Outcome? {
            get { outcomes[token] }
            set {
                if newValue != nil, outcomes.count >= capacity { outcomes.removeAll(keepingCapacity: true) }
                outcomes[token] = newValue
            }
        }
    }
}
