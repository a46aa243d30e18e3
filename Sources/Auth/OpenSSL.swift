import COpenSSL

/// An error from OpenSSL, with the reason from its error queue (`ERR_get_error`).
package struct OpenSSLError: Error, CustomStringConvertible {
    package let description: String

    package init(_ what: String) {
        let code = ERR_get_error()
        var reason = ""
        if code != 0, let text = ERR_reason_error_string(code) { reason = ": " + String(cString: text) }
        ERR_clear_error()
        description = what + reason
    }
}

/// An RSA public key, built once (from a JWK's `n` and `e`) and used by any thread to verify
/// RS256 signatures. The C type is `EVP_PKEY`, which OpenSSL allows to be shared for verifying.
package final class RSAPublicKey: @unchecked Sendable {
    package let pkey: OpaquePointer
    /// The modulus size in bits.
    package let bits: Int

    /// Builds the key from big-endian modulus and exponent bytes. The C functions are
    /// `OSSL_PARAM_BLD_push_BN` and `EVP_PKEY_fromdata`.
    package init(modulus: [UInt8], exponent: [UInt8]) throws(OpenSSLError) {
        guard let builder = OSSL_PARAM_BLD_new() else { throw OpenSSLError("OSSL_PARAM_BLD_new") }
        defer { OSSL_PARAM_BLD_free(builder) }
        let n = BN_bin2bn(modulus, Int32(modulus.count), nil)
        defer { BN_free(n) }
        let e = BN_bin2bn(exponent, Int32(exponent.count), nil)
        defer { BN_free(e) }
        // The builder keeps the name pointers until OSSL_PARAM_BLD_to_param: static strings.
        let nName: StaticString = "n"
        let eName: StaticString = "e"
        guard n != nil, e != nil,
            OSSL_PARAM_BLD_push_BN(builder, UnsafeRawPointer(nName.utf8Start).assumingMemoryBound(to: CChar.self), n) == 1,
            OSSL_PARAM_BLD_push_BN(builder, UnsafeRawPointer(eName.utf8Start).assumingMemoryBound(to: CChar.self), e) == 1,
            let params = OSSL_PARAM_BLD_to_param(builder)
        else { throw OpenSSLError("cannot build RSA parameters") }
        defer { OSSL_PARAM_free(params) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else { throw OpenSSLError("EVP_PKEY_CTX_new_from_name") }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_fromdata_init(context) == 1,
            EVP_PKEY_fromdata(context, &key, COPENSSL_PKEY_PUBLIC_KEY, params) == 1, let key
        else { throw OpenSSLError("not a valid RSA public key") }
        pkey = key
        bits = Int(EVP_PKEY_get_bits(key))
    }

    fileprivate init(taking pkey: OpaquePointer) {
        self.pkey = pkey
        bits = Int(EVP_PKEY_get_bits(pkey))
    }

    deinit { EVP_PKEY_free(pkey) }

    /// Whether `signature` is an RSASSA-PKCS1-v1_5 SHA-256 signature of `message`. The C
    /// functions are `EVP_DigestVerifyInit` and `EVP_DigestVerify`.
    package func verifyRS256(signature: [UInt8], message: UnsafeRawBufferPointer) -> Bool {
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        let verified = EVP_DigestVerifyInit(context, nil, EVP_sha256(), nil, pkey) == 1
            && EVP_DigestVerify(
                context, signature, signature.count, message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                message.count) == 1
        if !verified { ERR_clear_error() }
        return verified
    }

    /// The big-endian bytes of a key parameter ("n" or "e"). The C function is
    /// `EVP_PKEY_get_bn_param`.
    package func parameter(_ name: String) -> [UInt8] {
        var number: OpaquePointer?
        guard EVP_PKEY_get_bn_param(pkey, name, &number) == 1, let number else { return [] }
        defer { BN_free(number) }
        var bytes = [UInt8](repeating: 0, count: Int((BN_num_bits(number) + 7) / 8))
        BN_bn2bin(number, &bytes)
        return bytes
    }
}

/// An RSA private key that signs RS256, for `dev-token` and tests. OpenSSL allows an `EVP_PKEY`
/// to be shared by threads that only sign with it.
package final class RSAPrivateKey: @unchecked Sendable {
    package let pkey: OpaquePointer

    /// Reads a PEM private key (PKCS#8 or traditional). The C function is
    /// `PEM_read_bio_PrivateKey`.
    package init(pem: [UInt8]) throws(OpenSSLError) {
        // The BIO reads the array's memory in place, so it is used only inside this closure.
        let key = pem.withUnsafeBytes { bytes -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let key else { throw OpenSSLError("not a private key in PEM form") }
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA else {
            EVP_PKEY_free(key)
            throw OpenSSLError("not an RSA private key")
        }
        pkey = key
    }

    /// A new key of `bits` bits. The C function is `EVP_RSA_gen`.
    package init(generatingBits bits: Int) throws(OpenSSLError) {
        guard let key = copenssl_rsa_generate(UInt32(bits)) else { throw OpenSSLError("RSA key generation") }
        pkey = key
    }

    deinit { EVP_PKEY_free(pkey) }

    /// The public half.
    package var publicKey: RSAPublicKey {
        EVP_PKEY_up_ref(pkey)
        return RSAPublicKey(taking: pkey)
    }

    /// An RSASSA-PKCS1-v1_5 SHA-256 signature of `message`. The C function is `EVP_DigestSign`.
    package func signRS256(_ message: [UInt8]) throws(OpenSSLError) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw OpenSSLError("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        var length = 0
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, pkey) == 1,
            EVP_DigestSign(context, nil, &length, message, message.count) == 1
        else { throw OpenSSLError("EVP_DigestSign") }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, message, message.count) == 1 else {
            throw OpenSSLError("EVP_DigestSign")
        }
        return Array(signature.prefix(length))
    }
}

/// SHA-256 of `bytes`. The C function is `EVP_Digest`.
package func sha256(_ bytes: [UInt8]) -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    EVP_Digest(bytes, bytes.count, &digest, &length, EVP_sha256(), nil)
    return digest
}

/// HMAC-SHA256 of `data` under `key`. The C function is `HMAC`.
package func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
    var mac = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    _ = HMAC(EVP_sha256(), key, Int32(key.count), data, data.count, &mac, &length)
    return mac
}
