@testable import Auth
@testable import FCGIApp
@testable import JSON
@testable import PG
import Testing

@Suite(.lane()) struct StrictJSONTests {
    @Test func parsesWhatCognitoWrites() throws {
        let value = try StrictJSON.parse(Array(#"{"iss":"https:\/\/cognito-idp.x.amazonaws.com\/p","exp":1700000000,"ok":true,"g":["a","b"],"n":null,"e":"caf\u00e9 \ud83d\ude00"}"#.utf8))
        #expect(value["iss"] == .string("https://cognito-idp.x.amazonaws.com/p"))
        #expect(value["exp"] == .number(1_700_000_000))
        #expect(value["ok"] == .bool(true))
        #expect(value["g"] == .array([.string("a"), .string("b")]))
        #expect(value["n"] == .null)
        #expect(value["e"] == .string("café 😀"))
    }

    @Test(arguments: [
        (#"{"a":1,"a":2}"#, "duplicate member \"a\" at offset 10"),
        (#"{"a":1} x"#, "unexpected text after the value at offset 8"),
        (#"{"a":"\ud800"}"#, "lone surrogate at offset 12"),
        ("{\"a\":\"tab\there\"}", "control character in a string at offset 9"),
        (#"{"a":01}"#, "expected ',' or '}' at offset 6"),
        (#"{"a":1,}"#, "expected a member name at offset 7"),
        (#"{'a':1}"#, "expected a member name at offset 1"),
        (#"[1e999]"#, "number out of range at offset 6"),
    ])
    func refuses(text: String, reason: String) {
        #expect(throws: JSONError(description: reason)) { try StrictJSON.parse(Array(text.utf8)) }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONError(description: "not valid UTF-8")) { try StrictJSON.parse([0x7B, 0x22, 0xC3, 0x28, 0x22, 0x3A, 0x31, 0x7D]) }
    }

    @Test func refusesDeepNesting() {
        #expect(throws: JSONError.self) { try StrictJSON.parse(Array((String(repeating: "[", count: 100) + String(repeating: "]", count: 100)).utf8)) }
    }
}

@Suite(.lane()) struct Base64URLTests {
    @Test func roundTrips() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes).utf8) == bytes)
        }
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
    }

    @Test(arguments: ["QQ==", "QQ=", "Q", "QR", "a+b/", "ab c", "ab\n", "QUI="])
    func refusesNonCanonicalText(text: String) {
        #expect(Base64URL.decode(text.utf8) == nil)
    }
}
