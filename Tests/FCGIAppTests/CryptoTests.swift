@testable import Auth
@testable import FCGIApp
import Foundation
import Testing

@Suite(.lane()) struct CryptoTests {
    @Test func readsAPEMKeyMadeByTheOpenSSLCommand() throws {
        let dir = try TestEnvironment.scratchFolder("pem")
        let made = try run("/usr/bin/openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "\(dir)/key.pem"])
        try #require(made.status == 0, "\(made.output)")
        let pem = try #require(FileManager.default.contents(atPath: "\(dir)/key.pem"))
        let key = try RSAPrivateKey(pem: Array(pem))
        let message = Array("header.payload".utf8)
        let signature = try key.signRS256(message)
        #expect(signature.count == 256)
        #expect(message.withUnsafeBytes { key.publicKey.verifyRS256(signature: signature, message: $0) })
        #expect(key.publicKey.bits == 2048)
    }
}

extension CryptoTests {
    @Test func aPublicKeyRebuiltFromItsJWKParametersVerifies() throws {
        let key = try RSAPrivateKey(generatingBits: 2048)
        let n = key.publicKey.parameter("n")
        let e = key.publicKey.parameter("e")
        #expect(n.count == 256)
        #expect(e == [1, 0, 1])
        let rebuilt = try RSAPublicKey(modulus: n, exponent: e)
        let message = Array("a.b".utf8)
        let signature = try key.signRS256(message)
        #expect(message.withUnsafeBytes { rebuilt.verifyRS256(signature: signature, message: $0) })
    }
}
