@testable import Auth
@testable import FCGIApp
import Foundation
@testable import PG
import Testing

/// The Wycheproof RSASSA-PKCS1-v1_5 SHA-256 vectors, through the same path as a Cognito key:
/// each group's JWK loaded by `KeySet.parse`, each signature checked by `verifyRS256`.
@Suite(.lane()) struct WycheproofTests {
    struct File: Decodable {
        struct Group: Decodable {
            let keyJwk: [String: String]
            let tests: [Vector]
        }
        struct Vector: Decodable {
            let tcId: Int
            let comment: String
            let msg: String
            let sig: String
            let result: String
        }
        let testGroups: [Group]
    }

    @Test(arguments: ["rsa_signature_2048_sha256_test", "rsa_signature_3072_sha256_test", "rsa_signature_4096_sha256_test"])
    func verifiesExactlyTheValidSignatures(name: String) throws {
        let url = try #require(Bundle.module.url(forResource: "Vectors/wycheproof/\(name)", withExtension: "json"))
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
        var checked = 0
        for group in file.testGroups {
            var jwk = group.keyJwk
            jwk["kid"] = "wycheproof"
            let document = try JSONSerialization.data(withJSONObject: ["keys": [jwk]])
            let key = try #require(try KeySet.parse(Array(document))[KeyID("wycheproof")])
            for vector in group.tests {
                let message = try hex(vector.msg)
                let verified = message.withUnsafeBytes { key.verifyRS256(signature: (try? hex(vector.sig)) ?? [], message: $0) }
                switch vector.result {
                case "valid": #expect(verified, "tcId \(vector.tcId) \(vector.comment)")
                case "invalid": #expect(!verified, "tcId \(vector.tcId) \(vector.comment)")
                default: break
                }
                checked += 1
            }
        }
        #expect(checked > 250)
    }

    private func hex(_ text: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(try #require(UInt8(text[index..<next], radix: 16)))
            index = next
        }
        return bytes
    }
}
