/// What a request path names. Routing comes before authentication, so an unknown path is 404
/// whoever asks.
enum Route: Equatable {
    /// `/healthz`: whether the worker can serve (no token needed).
    case health
    /// `/articles/` (or `/articles`): the list, and where new articles are posted.
    case articles

    init?(path: String) {
        switch path {
        case "/healthz": self = .health
        case "/articles", "/articles/": self = .articles
        default: return nil
        }
    }

    /// The methods the route answers, for 405's `Allow` header.
    var allowedMethods: [String] {
        switch self {
        case .health: ["GET", "HEAD"]
        case .articles: ["GET", "HEAD", "POST"]
        }
    }
}
