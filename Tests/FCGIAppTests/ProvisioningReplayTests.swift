import Foundation
@testable import PG
import Testing

/// A signed provisioning request is taken once, whether or not it succeeded.
@Suite(.lane()) struct ProvisioningReplayTests {
    private let provisioning = ProvisioningTests()

    /// A refused signed request is not accepted later either, once what refused it is gone:
    /// a pool trusted since, a username freed since.
    @Test func aRefusedSignedRequestIsNotAcceptedLater() throws {
        let stack = try Stack(environment: ["PROVISIONING_SECRET": ProvisioningTests.secret])
        try stack.waitForChangeFeed()
        let received = ["detail": "This signed request was received before; sign it again to resend it."]
        let signedAt = Int(Date().timeIntervalSince1970)
        let tenant = provisioning.event(sub: "sub-tenant", userName: "tenant", email: "tenant@example.com", pool: TrustedPoolTests.poolID)
        #expect(try provisioning.post(stack, tenant, timestamp: signedAt).status == 403)
        let trusted = try stack.database.admin("trust_pool.sql", ["pool_id": TrustedPoolTests.poolID, "client_ids": "c"])
        try #require(trusted.status == 0, "\(trusted.output)")
        // A fresh event of that pool shows it trusted; the refused one stays refused.
        let other = provisioning.event(sub: "sub-other", userName: "other", email: "other@example.com", pool: TrustedPoolTests.poolID)
        var attempt = 0
        try waitFor("the pool to be trusted", within: 1) {
            attempt += 1
            return try provisioning.post(stack, other, timestamp: signedAt - attempt).status == 200
        }
        #expect(try provisioning.post(stack, tenant, timestamp: signedAt).json == received)

        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('grace', 'someone@example.com')")
        let grace = provisioning.event(sub: "sub-grace", userName: "grace", email: "grace@example.com")
        #expect(try provisioning.post(stack, grace, timestamp: signedAt).json == ["detail": "The username is taken by another user."])
        try stack.database.connect().query("UPDATE users SET username = 'grace-old' WHERE username = 'grace'")
        #expect(try provisioning.post(stack, grace, timestamp: signedAt).json == received)
        #expect(try provisioning.users(stack) == ["other other@example.com sub-other", "grace-old someone@example.com -"])
    }
}
