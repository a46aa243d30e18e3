import Auth
import FoundationEssentials
import HTTP
import JSON
import PG
import Support

/// `POST /internal/cognito/post-confirmation`: the event Cognito passes to a Post Confirmation
/// Lambda trigger, forwarded by that function (examples/post-confirmation-lambda) and signed
/// with the shared secret, creates or updates the user it names.
///
/// The caller signs `timestamp + "." + body` with HMAC-SHA256 and sends the timestamp (Unix
/// seconds) in `X-Signature-Timestamp` and `sha256=<hex>` in `X-Signature`; a timestamp more
/// than 5 minutes off is refused, and a signature accepted before is refused (the database keeps
/// them for the window, for every worker and host), so a captured call cannot be replayed.
///
/// Only a verified email is stored or binds a row: an event whose `email_verified` is not true
/// creates or renames its user without one.
package struct Provisioning {
    package static let maxSkewSeconds: Double = 300

    package let secret: ProvisioningSecret
    /// The worker's own pool and those trusted beside it: events of any of them are taken.
    package let pools: TrustedPools
    package let db: any Database
    package let now: Double

    package init(secret: ProvisioningSecret, pools: TrustedPools, db: any Database, now: Double) {
        self.secret = secret
        self.pools = pools
        self.db = db
        self.now = now
    }

    /// The event's user, as it comes out of the `users` table.
    package struct Provisioned: JSONWritable {
        package let id: Int64
        package let username: String
        package let email: String?

        package func write(to json: inout JSONWriter) {
            json.beginObject()
            json.member("id", id)
            json.member("username", username)
            json.member("email", email)
            json.endObject()
        }
    }

    /// A request whose signature checked out, to be accepted once.
    private struct Signed {
        let signature: [UInt8]
        let timestamp: Double
    }

    package func handle(_ request: Request) async throws -> Response {
        let signed = try checkSignature(request)
        // Remembered before anything else is decided, in a statement of its own: a request
        // refused now (a pool not trusted yet, a username taken) is not accepted later either.
        guard try await db.query(Self.remember, Hex.encode(signed.signature), signed.timestamp).first?.isNull(0) == false else {
            throw HTTPError(status: .unauthorized, detail: "This signed request was received before; sign it again to resend it.")
        }
        let event = try Event(request.body)
        guard pools.accepts(poolID: event.userPoolID) else {
            throw HTTPError(status: .forbidden, detail: "The event is for another user pool.")
        }
        return .json(try await provision(event))
    }

    private func checkSignature(_ request: Request) throws(HTTPError) -> Signed {
        guard let timestampText = request.header("x-signature-timestamp"), let signature = request.header("x-signature"),
            !timestampText.isEmpty, timestampText.utf8.count <= 12,
            timestampText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let timestamp = Double(timestampText), signature.hasPrefix("sha256="),
            let sent = Hex.decode(signature.dropFirst("sha256=".count)), sent.count == 32
        else {
            throw HTTPError(status: .unauthorized, detail: "Missing or malformed request signature.")
        }
        guard abs(now - timestamp) <= Self.maxSkewSeconds else {
            throw HTTPError(status: .unauthorized, detail: "The request's timestamp is more than 5 minutes off.")
        }
        let expected = hmacSHA256(key: secret.bytes, data: Array(timestampText.utf8) + [UInt8(ascii: ".")] + request.body)
        // Constant time: every byte is compared whatever the first difference.
        guard zip(expected, sent).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else {
            throw HTTPError(status: .unauthorized, detail: "Invalid request signature.")
        }
        return Signed(signature: sent, timestamp: timestamp)
    }

    /// What the worker needs of a Post Confirmation event.
    package struct Event {
        package let userPoolID: String
        package let userName: String
        package let sub: String
        /// Absent in a pool whose users sign up without one.
        package let email: String?
        package let emailVerified: Bool

        package init(_ body: [UInt8]) throws(HTTPError) {
            func malformed(_ what: String) -> HTTPError { HTTPError(status: .badRequest, detail: "Malformed event: \(what).") }
            let root: [String: JSONValue]
            do {
                guard let object = try StrictJSON.parse(body).object else { throw malformed("not a JSON object") }
                root = object
            } catch let error as HTTPError {
                throw error
            } catch {
                throw malformed("\(error)")
            }
            func text(_ value: JSONValue?, _ name: String, max: Int) throws(HTTPError) -> String {
                guard let text = value?.string, !text.isEmpty, text.unicodeScalars.count <= max else {
                    throw malformed("\(name) must be a string of 1 to \(max) characters")
                }
                return text
            }
            userPoolID = try text(root["userPoolId"], "userPoolId", max: 128)
            userName = try text(root["userName"], "userName", max: 128)
            guard let attributes = root["request"]?.object?["userAttributes"]?.object else {
                throw malformed("request.userAttributes is missing")
            }
            sub = try text(attributes["sub"], "request.userAttributes.sub", max: 128)
            if attributes["email"] == nil {
                email = nil
            } else {
                let address = try text(attributes["email"], "request.userAttributes.email", max: 254)
                guard address.wholeMatch(of: /[^@\s]+@[^@\s]+/) != nil else {
                    throw malformed("request.userAttributes.email is not an address")
                }
                email = address
            }
            // Cognito passes every attribute as a string.
            switch attributes["email_verified"] {
            case nil, .string("false"), .bool(false): emailVerified = false
            case .string("true"), .bool(true): emailVerified = true
            default: throw malformed("request.userAttributes.email_verified must be \"true\" or \"false\"")
            }
        }
    }

    package static let bySub = PreparedStatement(
        name: "provision_by_sub",
        sql: "SELECT id, username, email FROM users WHERE coalesce(pool_id, '') = $2 AND cognito_sub = $1 FOR UPDATE")
    package static let byEmail = PreparedStatement(
        name: "provision_by_email",
        sql: "SELECT id, username, email, cognito_sub, coalesce(pool_id, '') FROM users WHERE lower(email) = lower($1) FOR UPDATE")
    package static let rename = PreparedStatement(
        name: "provision_rename", sql: "UPDATE users SET username = $2, email = $3 WHERE id = $1 RETURNING id, username, email")
    package static let bind = PreparedStatement(
        name: "provision_bind",
        sql: "UPDATE users SET cognito_sub = $2 WHERE id = $1 AND cognito_sub IS NULL RETURNING id, username, email")
    /// Remembers a signature (migration 0016: the one way the serving role may): true, or null
    /// when it was seen before. Signatures too old to be accepted again are forgotten.
    package static let remember = PreparedStatement(
        name: "provision_remember", sql: "SELECT remember_provisioning_request(decode($1, 'hex'), to_timestamp($2::float8))")

    /// Creates or updates the event's user in one transaction: by `sub`; else an unbound row
    /// with the (verified) email that waits for the event's pool; else a new row. 409 when the
    /// email belongs to another `sub` or pool, or the username to another user.
    private func provision(_ event: Event) async throws -> Provisioned {
        func conflict(_ detail: String) -> HTTPError { HTTPError(status: .conflict, detail: detail) }
        // An address Cognito has not verified is neither stored nor used to bind.
        let email = event.emailVerified ? event.email : nil
        let pool = Claims.poolKey(event.userPoolID == pools.ownPoolID ? nil : event.userPoolID)
        do {
            return try await db.transaction { db in
                if let row = try await db.query(Self.bySub, event.sub, pool).first {
                    let current = try Self.provisioned(row)
                    let newEmail = email ?? current.email
                    if current.username == event.userName && current.email == newEmail { return current }
                    return try await Self.provisioned(db.query(Self.rename, current.id, event.userName, newEmail)[0])
                }
                if let email, let row = try await db.query(Self.byEmail, email).first {
                    guard row.isNull(3) else { throw conflict("A user with this email belongs to another Cognito user.") }
                    guard try row.decode(String.self, at: 4) == pool else {
                        throw conflict("A user with this email waits for a sign-in from another user pool.")
                    }
                    // Only the same ASCII address is bound: lower() folds some other letters
                    // onto ASCII ones, so a row found by it may hold a different address.
                    guard let folded = EmailAddress.asciiFolded(email),
                        EmailAddress.asciiFolded(try row.decode(String.self, at: 2)) == folded
                    else {
                        throw conflict("A user with a similar email exists; an administrator must bind it.")
                    }
                    guard let bound = try await db.query(Self.bind, try row.decode(Int64.self, at: 0), event.sub).first else {
                        throw conflict("The user changed meanwhile; try again.")
                    }
                    return try Self.provisioned(bound)
                }
                if let row = try await db.query(UserStore.create, event.userName, email, event.sub, pool).first {
                    return try Self.provisioned(row)
                }
                // The same event, provisioned by another request a moment ago.
                guard let row = try await db.query(Self.bySub, event.sub, pool).first else { throw conflict("The user changed meanwhile; try again.") }
                return try Self.provisioned(row)
            }
        } catch let error as PGError where error.sqlState == .uniqueViolation {
            throw conflict(error.constraint == "users_email_key"
                ? "A user with this email belongs to another Cognito user."
                : "The username is taken by another user.")
        }
    }

    private static func provisioned(_ row: Row) throws(PGError) -> Provisioned {
        Provisioned(
            id: try row.decode(Int64.self, at: 0), username: try row.decode(String.self, at: 1),
            email: try row.decode(String?.self, at: 2))
    }
}
