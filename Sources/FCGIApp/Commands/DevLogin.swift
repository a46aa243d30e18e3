import ArgumentParser
import Auth
import FastCGI
import Foundation
import Logging
import LoginStandIn
import Observability
import Support

struct DevLogin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-login",
        abstract: "Serve the local stand-in for the user pool's managed login over FastCGI (local development only).",
        discussion: """
            What scripts/run starts in local mode, behind the local nginx configuration only: \
            /oauth2/authorize (a form: an email, sign in or sign up), /oauth2/token and /logout, \
            as Cognito's managed login answers them, with tokens signed by the local key (found \
            through RUN_DIR). Sign-up posts a signed Post Confirmation event to the worker, with \
            PROVISIONING_SECRET or PROVISIONING_SECRET_FILE. Refuses to start when \
            AWS_USER_POOLS_ID names a real pool.
            """)

    @Option(help: "Where to accept FastCGI connections: unix:/path/to.sock or HOST:PORT.")
    var listen: String

    @Option(name: .customLong("page-url"), help: "The sign-in page's URL: the app client's callback and sign-out URL (repeatable).")
    var pageURLs: [String]

    @Option(name: .customLong("provisioning-url"), help: "The worker's Post Confirmation endpoint, which sign-up calls.")
    var provisioningURL: String

    func validate() throws {
        guard !pageURLs.isEmpty else { throw ValidationError("--page-url is required") }
        for url in pageURLs where URL(string: url)?.scheme == nil || url.contains("#") {
            throw ValidationError("--page-url must be an absolute URL without a fragment, got \"\(url)\"")
        }
        guard let url = URL(string: provisioningURL), url.scheme == "http" || url.scheme == "https" else {
            throw ValidationError("--provisioning-url must be an http:// or https:// URL")
        }
    }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        if let pool = environment["AWS_USER_POOLS_ID"], !pool.isEmpty, pool != LocalDevelopment.poolID {
            throw ConfigError("dev-login stands in for the local pool only, and AWS_USER_POOLS_ID is \(pool): sign in through that pool's own managed login")
        }
        guard let secret = try ProvisioningSecret.fromEnvironment({ environment[$0].flatMap { $0.isEmpty ? nil : $0 } }) else {
            throw ConfigError("dev-login needs PROVISIONING_SECRET or PROVISIONING_SECRET_FILE (the worker's) to sign up users")
        }
        let (key, kid) = try LocalDevelopment.signingKey(environment: environment)
        Logger.bootstrap(level: .info)
        try LogSink.standardError.flushPeriodically()
        let logger = Logger(label: "articles-fcgi dev-login")
        let standIn = ManagedLoginStandIn(.init(
            pageURLs: pageURLs, provisioningURL: URL(string: provisioningURL)!, provisioningSecret: secret, key: key, kid: kid))
        try FastCGIServer.initialiseLibrary()
        let server = FastCGIServer(listener: try Listener.open(try ListenAddress(parsing: listen)), logger: logger)
        try server.run(threads: 2) { CGIGateway(standIn, on: $0, logRequests: true, logger: logger) }
    }
}
