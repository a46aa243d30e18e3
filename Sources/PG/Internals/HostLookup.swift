import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

/// The host names libpq would look up while connecting with a conninfo, which it does with a
/// blocking `getaddrinfo` inside `PQconnectStartParams` and `PQconnectPoll`. A connection that
/// must not block looks them up first, elsewhere (`SocketWaiter.offLoop`), and hands libpq the
/// addresses found as `hostaddr`, keeping `host` for TLS and the messages.
struct HostLookup: Sendable {
    /// The `host` list (else `PGHOST`), and the `port` list (else `PGPORT`) when it has one
    /// entry per host.
    let hosts: [String]
    let ports: [String]?
    /// The conninfo's `connect_timeout`, if it has one.
    let connectTimeout: Int?

    /// What `conninfo` would have libpq look up; nil when nothing: a unix socket, IP addresses,
    /// or a `hostaddr` (or `PGHOSTADDR`) given; nil too when a service (`service`, `PGSERVICE`)
    /// may name the host, which libpq alone reads. The C function is `PQconninfoParse`.
    init?(_ conninfo: String?) {
        var options: [String: String] = [:]
        if let conninfo, let parsed = PQconninfoParse(conninfo, nil) {
            defer { PQconninfoFree(parsed) }
            var option = parsed
            while let keyword = option.pointee.keyword {
                if let value = option.pointee.val { options[String(cString: keyword)] = String(cString: value) }
                option += 1
            }
        }
        func value(_ keyword: String, _ variable: String) -> String? {
            options[keyword] ?? getenv(variable).map { String(cString: $0) }
        }
        guard (value("service", "PGSERVICE") ?? "").isEmpty, (value("hostaddr", "PGHOSTADDR") ?? "").isEmpty,
            let host = value("host", "PGHOST")
        else { return nil }
        hosts = host.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard hosts.contains(where: Self.isName) else { return nil }
        let ports = (value("port", "PGPORT") ?? "").split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        self.ports = ports.count == hosts.count && hosts.count > 1 ? ports : nil
        connectTimeout = options["connect_timeout"].flatMap(Int.init)
    }

    /// Whether libpq would look `host` up: not empty, not a unix socket's directory (or an
    /// abstract socket), not an IPv4 or IPv6 address.
    static func isName(_ host: String) -> Bool {
        guard let first = host.first, first != "/", first != "@" else { return false }
        var address = in6_addr()
        return inet_pton(AF_INET, host, &address) != 1 && inet_pton(AF_INET6, host, &address) != 1
    }

    /// Looks every name up (blocking), and gives the parameters that make libpq try each
    /// address found, in order: `host`, `hostaddr` and, with one port per host, `port`, each
    /// host repeated once per address. A name that has no address is left out; when none is
    /// left, the error is the first name's, in libpq's words.
    func resolve() -> Result<[(String, String)], PGError> {
        var entries: [(host: String, address: String, port: String?)] = []
        var firstFailure: String?
        for (index, host) in hosts.enumerated() {
            let port = ports?[index]
            guard Self.isName(host) else {
                entries.append((host, "", port))
                continue
            }
            switch Self.addresses(of: host) {
            case .success(let addresses): entries += addresses.map { (host, $0, port) }
            case .failure(let reason): firstFailure = firstFailure ?? "could not translate host name \"\(host)\" to address: \(reason)"
            }
        }
        guard !entries.isEmpty else {
            return .failure(PGError(
                kind: .connection, sqlState: .sqlClientUnableToEstablishSQLConnection, message: firstFailure ?? "no host to connect to"))
        }
        var parameters = [("host", entries.map(\.host).joined(separator: ",")), ("hostaddr", entries.map(\.address).joined(separator: ","))]
        if ports != nil { parameters.append(("port", entries.map { $0.port ?? "" }.joined(separator: ","))) }
        return .success(parameters)
    }

    /// `host`'s TCP addresses, as text, in `getaddrinfo`'s order; or its error's text.
    static func addresses(of host: String) -> Result<[String], Failure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &found)
        guard status == 0 else { return .failure(Failure(description: String(cString: gai_strerror(status)))) }
        defer { freeaddrinfo(found) }
        var addresses: [String] = []
        var next = found
        while let entry = next {
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 {
                let address = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !addresses.contains(address) { addresses.append(address) }
            }
            next = entry.pointee.ai_next
        }
        return addresses.isEmpty ? .failure(Failure(description: "no address")) : .success(addresses)
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }
}
