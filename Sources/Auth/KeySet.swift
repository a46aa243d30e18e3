import JSON

/// A `kid`, compared byte for byte (Swift's `String ==` would treat canonically equivalent
/// Unicode as equal; Cognito kids are base64 text and are matched exactly).
package struct KeyID: Hashable, Sendable, CustomStringConvertible {
    package let bytes: [UInt8]
    package init(_ text: String) { bytes = Array(text.utf8) }
    package var description: String { String(decoding: bytes, as: UTF8.self) }
}

/// The usable signing keys of a JWKS document, by `kid`.
package struct KeySet: Sendable {
    package static let minimumModulusBits = 2048

    package let keys: [KeyID: RSAPublicKey]
    /// Why each skipped key was skipped, for the log.
    package let skipped: [String]

    package subscript(kid: KeyID) -> RSAPublicKey? { keys[kid] }

    /// Parses a JWKS document (`{"keys": [...]}`), keeping RSA signing keys of at least 2048
    /// bits whose `use` is absent or `sig` and `alg` absent or `RS256`, with strict unpadded
    /// base64url `n` and `e`. Throws when the document is not a key set or no key is usable.
    package static func parse(_ document: [UInt8]) throws(JSONError) -> KeySet {
        guard case .array(let entries)? = try StrictJSON.parse(document)["keys"] else {
            throw JSONError(description: "not a JWKS document: no \"keys\" array")
        }
        var keys: [KeyID: RSAPublicKey] = [:]
        var skipped: [String] = []
        for (position, entry) in entries.enumerated() {
            let kid = entry["kid"]?.string
            let name = kid.map { "key \"\($0)\"" } ?? "key #\(position)"
            func skip(_ reason: String) { skipped.append("\(name): \(reason)") }
            guard let kid, !kid.isEmpty else { skip("no kid"); continue }
            guard entry["kty"]?.string == "RSA" else { skip("kty is not RSA"); continue }
            if let use = entry["use"], use.string != "sig" { skip("use is not sig"); continue }
            if let alg = entry["alg"], alg.string != "RS256" { skip("alg is not RS256"); continue }
            guard let n = entry["n"]?.string.flatMap({ Base64URL.decode($0.utf8) }), !n.isEmpty,
                let e = entry["e"]?.string.flatMap({ Base64URL.decode($0.utf8) }), !e.isEmpty
            else { skip("n or e is not unpadded base64url"); continue }
            guard keys[KeyID(kid)] == nil else { skip("a second key with the same kid"); continue }
            do {
                let key = try RSAPublicKey(modulus: n, exponent: e)
                guard key.bits >= minimumModulusBits else { skip("\(key.bits)-bit modulus, under \(minimumModulusBits)"); continue }
                keys[KeyID(kid)] = key
            } catch {
                skip("\(error)")
            }
        }
        guard !keys.isEmpty else {
            throw JSONError(description: "no usable signing key (\(skipped.joined(separator: "; ")))")
        }
        return KeySet(keys: keys, skipped: skipped)
    }
}
