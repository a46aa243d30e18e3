import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

/// The rows or command status of `result`, or the error it reports (freeing it).
func checked(_ result: OpaquePointer?, _ conn: OpaquePointer) throws(PGError) -> QueryResult {
    guard let result else { throw PGError(connection: conn) }
    switch PQresultStatus(result) {
    case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
        return QueryResult(ResultHandle(result))
    default:
        defer { PQclear(result) }
        throw PGError(result: result, connection: conn)
    }
}

/// Calls `body` with a NULL-terminated array of C strings, freed afterwards.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { UnsafePointer(strdup($0)) } + [nil]
    defer { for copy in copies { free(UnsafeMutablePointer(mutating: copy)) } }
    return copies.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// libpq's TCP keepalive and `tcp_user_timeout` settings every connection starts with.
private let tcpBounds = [
    ("keepalives", "1"), ("keepalives_idle", "5"), ("keepalives_interval", "2"), ("keepalives_count", "3"),
    ("tcp_user_timeout", "10000"),
]

/// A new libpq connection made with `conninfo`, in UTF-8, or the error that kept it from being
/// made. `replication` (`database` for logical replication) opens a replication connection.
///
/// Later entries win, so conninfo may override connect_timeout and the TCP bounds, while
/// client_encoding stays UTF8 (text is decoded as UTF-8) and application_name is only a
/// fallback. Over TCP, a server that vanished without a reset (a failover, a cut link) is
/// noticed within seconds, not when TCP gives up hours later: keepalive probes after 5 s of
/// silence, 3 more 2 s apart, and sent data left unacknowledged for 10 s ends the connection.
/// Unix sockets ignore these.
func connectToServer(
    _ conninfo: String?, connectTimeout: Int, applicationName: String, replication: String? = nil
) throws(PGError) -> OpaquePointer {
    let (keywords, values) = connectionParameters(conninfo, connectTimeout: connectTimeout, applicationName: applicationName, replication: replication)
    let fresh = withCStrings(keywords) { keys in
        withCStrings(values) { vals in PQconnectdbParams(keys, vals, 1) }
    }
    guard let fresh else { throw PGError(connection: nil) }
    guard PQstatus(fresh) == CONNECTION_OK else {
        defer { PQfinish(fresh) }
        throw PGError(connection: fresh, sqlState: .sqlClientUnableToEstablishSQLConnection)
    }
    return fresh
}

/// A connection to be made with `PQconnectPoll`, as `connectToServer` makes one: started, not
/// yet made; `overriding` wins over `conninfo` (the addresses a `HostLookup` found). The C
/// function is `PQconnectStartParams`.
func startConnecting(
    _ conninfo: String?, connectTimeout: Int, applicationName: String, overriding: [(String, String)] = []
) throws(PGError) -> OpaquePointer {
    var (keywords, values) = connectionParameters(conninfo, connectTimeout: connectTimeout, applicationName: applicationName)
    keywords += overriding.map(\.0)
    values += overriding.map(\.1)
    let fresh = withCStrings(keywords) { keys in
        withCStrings(values) { vals in PQconnectStartParams(keys, vals, 1) }
    }
    guard let fresh else { throw PGError(connection: nil) }
    guard PQstatus(fresh) != CONNECTION_BAD else {
        defer { PQfinish(fresh) }
        throw PGError(connection: fresh, sqlState: .sqlClientUnableToEstablishSQLConnection)
    }
    return fresh
}

/// The keywords and values both ways of connecting pass libpq.
private func connectionParameters(
    _ conninfo: String?, connectTimeout: Int, applicationName: String, replication: String? = nil
) -> (keywords: [String], values: [String]) {
    var keywords = ["connect_timeout"] + tcpBounds.map(\.0)
    var values = [String(connectTimeout)] + tcpBounds.map(\.1)
    if let conninfo {
        keywords.append("dbname")
        values.append(conninfo)
    }
    keywords += ["client_encoding", "fallback_application_name"]
    values += ["UTF8", applicationName]
    if let replication {
        keywords.append("replication")
        values.append(replication)
    }
    return (keywords, values)
}

/// The value libpq uses for option `keyword` of `conn`, after its conninfo, the defaults and
/// the environment. The C function is `PQconninfo`.
func optionValue(_ conn: OpaquePointer, _ keyword: String) -> String? {
    guard let options = PQconninfo(conn) else { return nil }
    defer { PQconninfoFree(options) }
    var option = options
    while let name = option.pointee.keyword {
        if String(cString: name) == keyword { return option.pointee.val.map { String(cString: $0) } }
        option += 1
    }
    return nil
}
