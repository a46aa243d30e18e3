import Foundation
import PG
import Testing

@Suite struct DecodingTests {
    let db: Connection
    init() throws { db = try TestDatabase.fresh() }

    @Test func decodesEachTypeByIndexAndName() throws {
        let row = try #require(try db.query("""
            SELECT 42::int AS i, 9007199254740993::bigint AS big, 'Zürich ✓ 😀 日本'::text AS t,
                   true AS yes, false AS no, 1.5::float8 AS d, 2.25::numeric AS n, 3::smallint AS s,
                   '2024-02-29 12:34:56.123456+00'::timestamptz AS ts
            """).first)
        #expect(try row.decode(Int.self, "i") == 42)
        #expect(try row.decode(Int.self, at: 0) == 42)
        #expect(try row.decode(Int64.self, "big") == 9_007_199_254_740_993)
        #expect(try row.decode(String.self, "t") == "Zürich ✓ 😀 日本")
        #expect(row["t"] == "Zürich ✓ 😀 日本")
        #expect(row[2] == "Zürich ✓ 😀 日本")
        #expect(try row.decode(Bool.self, "yes") == true)
        #expect(try row.decode(Bool.self, "no") == false)
        #expect(try row.decode(Double.self, "d") == 1.5)
        #expect(try row.decode(Double.self, "n") == 2.25)
        #expect(try row.decode(Int.self, "s") == 3)
    }

    @Test func nullDecodesAsNilOnlyIntoOptionals() throws {
        let row = try #require(try db.query(
            "SELECT NULL::int AS i, NULL::text AS t, NULL::bool AS b, NULL::float8 AS d, NULL::timestamptz AS ts, NULL::bigint AS big"
        ).first)
        #expect(try row.decode(Int?.self, "i") == nil)
        #expect(try row.decode(Int64?.self, "big") == nil)
        #expect(try row.decode(String?.self, "t") == nil)
        #expect(try row.decode(Bool?.self, "b") == nil)
        #expect(try row.decode(Double?.self, "d") == nil)
        #expect(try row.decode(String?.self, "ts") == nil)
        #expect(row.isNull(0))
        #expect(row["t"] == nil)
        let error = try #require(throws: PGError.self) { try row.decode(Int.self, "i") }
        #expect(error.kind == .decoding)
        #expect(error.message == "column \"i\" is NULL; decode it as Optional<Int>")
    }

    @Test func typeMismatchThrowsAClearError() throws {
        let row = try #require(try db.query("SELECT 'abc'::text AS t, 7 AS i, now() AS ts, now()::timestamp AS local").first)
        let textAsInt = try #require(throws: PGError.self) { try row.decode(Int.self, "t") }
        #expect(textAsInt.kind == .decoding)
        #expect(textAsInt.message == "column \"t\" has type text, which cannot be decoded as Int")
        let intAsBool = try #require(throws: PGError.self) { try row.decode(Bool.self, "i") }
        #expect(intAsBool.message == "column \"i\" has type integer, which cannot be decoded as Bool")
        let timeAsDouble = try #require(throws: PGError.self) { try row.decode(Double.self, "local") }
        #expect(timeAsDouble.message == "column \"local\" has type timestamp without time zone, which cannot be decoded as Double")
        let missing = try #require(throws: PGError.self) { try row.decode(Int.self, "nope") }
        #expect(missing.kind == .decoding)
        #expect(missing.message.hasPrefix("no column \"nope\""))
        // Any column reads as its text.
        #expect(try row.decode(String.self, "i") == "7")
    }

    @Test func parametersRoundTripWithTheirTypes() throws {
        let row = try #require(try db.query(
            "SELECT $1::text AS t, $2::bigint AS big, $3::int AS i, $4::bool AS b, $5::float8 AS d, $6::text AS n, $7::float8 AS inf",
            "naïve café — 😀", Int64.min, Int(-12), true, 0.1, nil, Double.infinity
        ).first)
        #expect(try row.decode(String.self, "t") == "naïve café — 😀")
        #expect(try row.decode(Int64.self, "big") == Int64.min)
        #expect(try row.decode(Int.self, "i") == -12)
        #expect(try row.decode(Bool.self, "b") == true)
        #expect(try row.decode(Double.self, "d") == 0.1)
        #expect(try row.decode(String?.self, "n") == nil)
        #expect(try row.decode(Double.self, "inf") == .infinity)
    }
}
