@testable import Auth
@testable import FCGIApp
import Foundation
@testable import JSON

/// A user pool of the tests' own: its ids, signing keys, JWKS documents and tokens.
enum TestPool {
    static let poolID = "us-test-1_TestPool1"
    static let clientID = "test-client-1"
    static let issuer = "https://cognito-idp.us-test-1.amazonaws.com/\(poolID)"
    /// Shaped like Cognito's kids: standard base64, with `+`, `/` and `=`.
    static let kid = "Zm9v+YmFy/primary="
    static let key = try! RSAPrivateKey(generatingBits: 2048)
    static let otherKey = try! RSAPrivateKey(generatingBits: 2048)

    /// The worker's Cognito variables, with the JWKS written to `dir/jwks.json`.
    static func environment(dir: String, keys: [[String: Any]] = [jwk(key, kid: kid)]) throws -> [String: String] {
        try writeJWKS(keys, to: "\(dir)/jwks.json")
        return [
            "AWS_USER_POOLS_ID": poolID, "AWS_APP_CLIENT_ID": clientID, "COGNITO_JWKS_FILE": "\(dir)/jwks.json",
        ]
    }

    static func writeJWKS(_ keys: [[String: Any]], to path: String) throws {
        try JSONSerialization.data(withJSONObject: ["keys": keys]).write(to: URL(fileURLWithPath: path))
    }

    /// A JWK for the public half of `key`.
    static func jwk(_ key: RSAPrivateKey, kid: String, extra: [String: Any] = [:]) -> [String: Any] {
        var entry: [String: Any] = [
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
            "n": Base64URL.encode(key.publicKey.parameter("n")), "e": Base64URL.encode(key.publicKey.parameter("e")),
        ]
        entry.merge(extra) { $1 }
        return entry
    }

    /// Claims of a valid ID token for `email`, issued now.
    static func idClaims(sub: String = UUID().uuidString.lowercased(), email: String, now: Int = Int(Date().timeIntervalSince1970)) -> [String: Any] {
        [
            "sub": sub, "email": email, "email_verified": true, "cognito:username": String(email.prefix { $0 != "@" }),
            "iss": issuer, "aud": clientID, "token_use": "id", "auth_time": now, "iat": now, "exp": now + 3600,
            "jti": UUID().uuidString,
        ]
    }

    /// Claims of a valid access token.
    static func accessClaims(sub: String, now: Int = Int(Date().timeIntervalSince1970)) -> [String: Any] {
        [
            "sub": sub, "iss": issuer, "client_id": clientID, "token_use": "access", "scope": "aws.cognito.signin.user.admin",
            "auth_time": now, "iat": now, "exp": now + 3600, "username": "someone",
        ]
    }

    /// A token with `header` and `claims` as JSON, signed by `key`.
    static func token(
        header: [String: Any] = ["alg": "RS256", "kid": kid], claims: [String: Any], key signer: RSAPrivateKey = key
    ) -> String {
        let headerJSON = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        let claimsJSON = try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])
        return token(headerBytes: Array(headerJSON), payloadBytes: Array(claimsJSON), key: signer)
    }

    /// A token over exactly these header and payload bytes (duplicate members, invalid UTF-8).
    static func token(headerBytes: [UInt8], payloadBytes: [UInt8], key signer: RSAPrivateKey = key) -> String {
        let signingInput = Base64URL.encode(headerBytes) + "." + Base64URL.encode(payloadBytes)
        let signature = try! signer.signRS256(Array(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }
}
