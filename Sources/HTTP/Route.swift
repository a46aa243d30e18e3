/// What a request path names. Routing comes before authentication, so an unknown path (or a
/// malformed article id) is 404 whoever asks.
package enum Route: Equatable {
    /// `/healthz`: whether the worker can serve (no token needed).
    case health
    /// `/livez`: whether the worker process answers at all, touching neither the database nor
    /// the keys (a liveness probe, and the benchmark's FastCGI ceiling).
    case live
    /// `/app-config.json`: the sign-in page's settings (no token needed).
    case appConfig
    /// `/metrics`: counters for Prometheus (nginx lets only listed addresses reach it).
    case metrics
    /// `/internal/cognito/post-confirmation`: users created by Cognito's Post Confirmation
    /// trigger (only with a provisioning secret).
    case provisioning
    /// `/articles/` (or `/articles`): the list, and where new articles are posted.
    case articles
    /// `/articles/{id}/` (or without the slash).
    case article(Int64)

    package init?(path: String) {
        switch path {
        case "/healthz": self = .health
        case "/livez": self = .live
        case "/metrics": self = .metrics
        case "/app-config.json": self = .appConfig
        case "/internal/cognito/post-confirmation": self = .provisioning
        case "/articles", "/articles/": self = .articles
        default:
            guard path.hasPrefix("/articles/") else { return nil }
            var id = path.dropFirst("/articles/".count)
            if id.hasSuffix("/") { id = id.dropLast() }
            guard !id.isEmpty, id.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let number = Int64(id)
            else { return nil }
            self = .article(number)
        }
    }

    /// The route's name in metrics: one per route, not per article.
    package var name: String {
        switch self {
        case .health: "health"
        case .live: "live"
        case .metrics: "metrics"
        case .appConfig: "app_config"
        case .provisioning: "provisioning"
        case .articles: "articles"
        case .article: "article"
        }
    }

    /// The methods the route answers, for 405's `Allow` header.
    package var allowedMethods: [String] {
        switch self {
        case .health, .live, .metrics, .appConfig: ["GET", "HEAD", "OPTIONS"]
        case .provisioning: ["POST"]
        case .articles: ["GET", "HEAD", "POST", "OPTIONS"]
        case .article: ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]
        }
    }
}
