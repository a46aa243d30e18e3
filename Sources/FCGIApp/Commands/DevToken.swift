import ArgumentParser
import Auth
import FoundationEssentials
import LoginStandIn
import Support

extension CognitoConfig.IssuerForm: ExpressibleByArgument {}
extension LocalDevelopment.TokenUse: ExpressibleByArgument {}

struct DevToken: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-token",
        abstract: "Print a token signed with the local development key that scripts/run makes.",
        discussion: """
            For calling a local stack without AWS. The key is found through RUN_DIR (default: .run); \
            without it the command refuses to run. A worker accepts such a token only if its \
            configured JWKS holds the local key, as the local stack's does.
            """)

    @Option(help: "The user's email (claims email and, with --use id, cognito:username from its local part).")
    var email: String?

    @Option(
        help: ArgumentHelp(
            "Instead of a user's token, a machine client's (client credentials): an access token whose sub and client_id are "
                + "this app client id, with no username. The worker accepts it for an id in AWS_APP_CLIENT_ID (locally "
                + "\(LocalDevelopment.clientID)) once sql/admin/create_client.sql registered it.",
            valueName: "id"))
    var client: String?

    @Option(help: "The token's sub (default: derived from the email, so repeated tokens map to the same user).")
    var sub: String?

    @Option(help: "id or access.")
    var use: LocalDevelopment.TokenUse = .id

    @Option(name: .customLong("expires-in"), help: "Seconds until the token expires.")
    var expiresIn: Int = 3600

    @Option(help: "How many tokens to print, one a line, each distinct (its own jti).")
    var count: Int = 1

    @Option(help: "The pool's issuer the token names: original (cognito-idp.) or updated (issuer-cognito-idp.).")
    var issuer: CognitoConfig.IssuerForm = .original

    @Option(help: "An access token's scopes, space-separated (e.g. \"articles/read articles/write\").")
    var scope: String = "aws.cognito.signin.user.admin"

    @Option(name: .customLong("group"), help: "A Cognito group the user is in (cognito:groups); repeat for several.")
    var groups: [String] = []

    func validate() throws {
        switch (email, client) {
        case (nil, nil): throw ValidationError("give --email for a user's token, or --client for a machine client's")
        case (.some, .some): throw ValidationError("give --email or --client, not both")
        case (let email?, nil): guard email.contains("@") else { throw ValidationError("--email must be an email address") }
        case (nil, let client?): guard !client.isEmpty else { throw ValidationError("--client must be an app client id") }
        }
        guard expiresIn > 0 else { throw ValidationError("--expires-in must be positive") }
        guard count > 0 else { throw ValidationError("--count must be positive") }
    }

    func run() throws {
        let (key, kid) = try LocalDevelopment.signingKey()
        let now = Int(wallSeconds())
        var output = ""
        for _ in 0..<count {
            if let client {
                output += try LocalDevelopment.token(
                    key: key, kid: kid, email: "", sub: client, use: .access, issuedAt: now, expiresIn: expiresIn, issuer: issuer,
                    scope: scope, groups: groups, client: client) + "\n"
            } else if let email {
                output += try LocalDevelopment.token(
                    key: key, kid: kid, email: email, sub: sub ?? LocalDevelopment.sub(forEmail: email), use: use,
                    issuedAt: now, expiresIn: expiresIn, issuer: issuer, scope: scope, groups: groups) + "\n"
            }
        }
        print(output, terminator: "")
    }
}
