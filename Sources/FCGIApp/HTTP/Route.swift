/// What a request path names. Routing comes before authentication, so an unknown path is 404
/// whoever asks.
enum Route: Equatable {
    /// `/healthz`: whether the worker can serve (no token needed).
    case health

    init?(path: String) {
        switch path {
        case "/healthz": self = .health
        default: return nil
        }
    }

    /// The methods the route answers, for 405's `Allow` header.
    var allowedMethods: [String] {
        switch self {
        case .health: ["GET", "HEAD"]
        }
    }
}
