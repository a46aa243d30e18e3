@testable import FCGIApp
import Foundation
@testable import HTTP
@testable import JSON
@testable import PG
@testable import Stores
@testable import Support
import Testing

/// The JSON writer against exact bytes, and the response bodies against their `Codable` form.
@Suite(.lane()) struct JSONWriterTests {
    private let article = Article(
        id: 7, name: "quote \" backslash \\ tab \t ✓", owner: "ann", createdAt: "2026-12-02T04:00:00.000001Z",
        updatedAt: "2026-12-02T04:00:01.000000Z")

    @Test func membersGetTheirCommasAtEveryDepth() {
        let nested: [String: [App.Health]] = [
            "b": [App.Health(status: "ok"), App.Health(status: "unavailable", detail: "database unavailable")], "a": [],
        ]
        #expect(String(decoding: JSONWriter.bytes(of: nested), as: UTF8.self)
            == #"{"a":[],"b":[{"status":"ok"},{"detail":"database unavailable","status":"unavailable"}]}"#)
        #expect(String(decoding: JSONWriter.bytes(of: [String: String]()), as: UTF8.self) == "{}")
        #expect(String(decoding: JSONWriter.bytes(of: ErrorBody(detail: "a\u{1}b\nc")), as: UTF8.self)
            == #"{"detail":"a\u0001b\nc"}"#)
    }

    @Test func anArticleIsWrittenInTheAPIsMemberOrder() {
        #expect(String(decoding: JSONWriter.bytes(of: [article, article]), as: UTF8.self) == [String](repeating:
            #"{"id":7,"name":"quote \" backslash \\ tab \t ✓","owner":"ann","created_at":"2026-12-02T04:00:00.000001Z","updated_at":"2026-12-02T04:00:01.000000Z"}"#,
            count: 2).joined(separator: ",").wrapped)
    }

    @Test func bodiesDecodeAsTheirCodableForm() throws {
        #expect(try JSONDecoder().decode(Article.self, from: Data(JSONWriter.bytes(of: article))) == article)
        for health in [App.Health(status: "ok"), App.Health(status: "unavailable", detail: "signing keys not loaded yet")] {
            #expect(try JSONDecoder().decode(App.Health.self, from: Data(JSONWriter.bytes(of: health))) == health)
        }
        let error = ErrorBody(detail: "Token has expired.")
        #expect(try JSONDecoder().decode(ErrorBody.self, from: Data(JSONWriter.bytes(of: error))) == error)
    }
}

extension String {
    fileprivate var wrapped: String { "[\(self)]" }
}

@Suite(.lane()) struct HexTests {
    @Test func encodesLowerAndDecodesEitherCase() {
        #expect(Hex.encode([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
        #expect(Hex.decode("000FA5ff") == [0x00, 0x0f, 0xa5, 0xff])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("+f") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(Hex.decode("") == [])
    }
}
