import Support

/// Where the worker accepts FastCGI connections (`FCGI_LISTEN`).
package enum ListenAddress: Equatable, Sendable, CustomStringConvertible {
    /// `unix:/path/to.sock`: a unix socket the worker creates, and removes when it stops.
    case unix(path: String)
    /// `HOST:PORT`: a TCP socket on an IPv4 address or host name (`:PORT` for every address).
    case tcp(host: String, port: Int)

    /// The longest path a `sockaddr_un` holds, less its terminating NUL.
    package static let maxUnixPathBytes = 107

    package init(parsing text: String) throws(ConfigError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") else {
                throw ConfigError("FCGI_LISTEN: the unix socket path must be absolute, got \"\(path)\"")
            }
            guard !path.contains(":") else {
                throw ConfigError("FCGI_LISTEN: the unix socket path must not contain \":\" (libfcgi would read it as HOST:PORT)")
            }
            guard path.utf8.count <= Self.maxUnixPathBytes else {
                throw ConfigError("FCGI_LISTEN: the unix socket path is longer than \(Self.maxUnixPathBytes) bytes")
            }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"),
            let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else {
            throw ConfigError("FCGI_LISTEN must be unix:/path/to.sock or HOST:PORT, got \"\(text)\"")
        }
        let host = String(text[..<colon])
        guard !host.contains(":"), !host.contains(where: \.isWhitespace) else {
            throw ConfigError("FCGI_LISTEN: the host must be an IPv4 address or a host name, got \"\(host)\"")
        }
        self = .tcp(host: host, port: port)
    }

    /// The address in libfcgi's `FCGX_OpenSocket` form.
    package var fcgiPath: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): "\(host):\(port)"
        }
    }

    package var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): "\(host):\(port)"
        }
    }
}
