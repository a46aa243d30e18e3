@testable import PG
import Testing

/// What a connection looks up before libpq connects, and the parameters that then name the
/// addresses found.
@Suite struct HostLookupTests {
    @Test func onlyHostNamesAreLookedUp() {
        #expect(HostLookup("host=/run/postgresql dbname=articles") == nil)
        #expect(HostLookup("host=127.0.0.1 port=5432") == nil)
        #expect(HostLookup("postgresql://[::1]:5432/articles") == nil)
        #expect(HostLookup("host=db.example hostaddr=10.0.0.5") == nil)
        #expect(HostLookup("service=articles host=db.example") == nil)
        let named = HostLookup("host=db.example,/run/postgresql port=6432,5432 connect_timeout=3")
        #expect(named?.hosts == ["db.example", "/run/postgresql"])
        #expect(named?.ports == ["6432", "5432"])
        #expect(named?.connectTimeout == 3)
        let uri = HostLookup("postgresql://app@db.example:6432,db2.example:6433/articles")
        #expect(uri?.hosts == ["db.example", "db2.example"] && uri?.ports == ["6432", "6433"] && uri?.connectTimeout == nil)
        #expect(HostLookup("host=db.example port=6432")?.ports == nil)
    }

    @Test func eachAddressFoundIsTriedInOrderUnderItsHostName() throws {
        let lookup = try #require(HostLookup("host=localhost,/run/postgresql port=6432,5432"))
        let addresses = try HostLookup.addresses(of: "localhost").get()
        #expect(addresses.contains("127.0.0.1"))
        let parameters = try lookup.resolve().get()
        #expect(parameters.map(\.0) == ["host", "hostaddr", "port"])
        #expect(parameters[0].1 == (Array(repeating: "localhost", count: addresses.count) + ["/run/postgresql"]).joined(separator: ","))
        #expect(parameters[1].1 == (addresses + [""]).joined(separator: ","))
        #expect(parameters[2].1 == (Array(repeating: "6432", count: addresses.count) + ["5432"]).joined(separator: ","))
    }

    @Test func aNameWithoutAnAddressIsLeftOutOrIsTheError() throws {
        let rest = try HostLookup("host=no-such-host.invalid,127.0.0.1")?.resolve().get()
        #expect(rest?.map(\.1) == ["127.0.0.1", ""])
        guard case .failure(let error)? = HostLookup("host=no-such-host.invalid")?.resolve() else {
            Issue.record("no error")
            return
        }
        #expect(error.message.hasPrefix(#"could not translate host name "no-such-host.invalid" to address: "#), "\(error.message)")
    }
}
