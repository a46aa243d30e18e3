@testable import FastCGI
@testable import FCGIApp
import Foundation
@testable import HTTP
import Testing

/// The worker's own FastCGI record reader, in process: what each record sequence makes.
@Suite(.lane()) struct RecordReaderTests {
    private func record(_ type: UInt8, id: UInt16 = 1, _ content: [UInt8], padding: UInt8 = 0) -> [UInt8] {
        [1, type, UInt8(id >> 8), UInt8(id & 0xff), UInt8(content.count >> 8), UInt8(content.count & 0xff), padding, 0]
            + content + [UInt8](repeating: 0, count: Int(padding))
    }

    private func begin(id: UInt16 = 1, role: UInt16 = 1, keep: Bool = false) -> [UInt8] {
        record(1, id: id, [UInt8(role >> 8), UInt8(role & 0xff), keep ? 1 : 0, 0, 0, 0, 0, 0])
    }

    private func params(_ pairs: [(String, String)], id: UInt16 = 1) -> [UInt8] {
        var stream: [UInt8] = []
        for (name, value) in pairs { FastCGIParameters.append(name: name, value: value, to: &stream) }
        return (stream.isEmpty ? [] : record(4, id: id, stream)) + record(4, id: id, [])
    }

    /// Every event `bytes` make, fed one byte at a time.
    private func events(_ bytes: [UInt8]) -> [RecordReader.Event] {
        var reader = RecordReader(values: ["FCGI_MPXS_CONNS": "0"])
        var input: [UInt8] = []
        var events: [RecordReader.Event] = []
        for byte in bytes {
            input.append(byte)
            var slice = input[...]
            while let event = reader.next(&slice) {
                events.append(event)
                if case .violation = event { return events }  // the connection ends there
            }
            input = Array(slice)
        }
        return events
    }

    @Test func aRequestIsCompleteAtTheEndOfItsInput() {
        let bytes = begin(keep: true) + params([("REQUEST_METHOD", "POST")]) + record(5, Array("ab".utf8), padding: 6)
            + record(5, Array("c".utf8)) + record(5, [])
        var expected = FastCGIRequest(id: 1, keepConnection: true)
        FastCGIParameters.append(name: "REQUEST_METHOD", value: "POST", to: &expected.parameters)
        expected.stdin = Array("abc".utf8)
        expected.stdinBytes = 3
        #expect(events(bytes) == [.request(expected)])
        #expect(events(Array(bytes.dropLast(8))) == [], "no request before the closing STDIN record")
    }

    @Test func lengthsPastTheEndAreRefusedWithoutAllocating() {
        // A name length of 0x7ffffffe, as in the record that made libfcgi abort.
        let hostile = begin() + record(4, [0xff, 0xff, 0xff, 0xfe, 0x01, 0x41, 0x42]) + record(4, []) + record(5, [])
        guard case .request(let request) = events(hostile).first else {
            Issue.record("no request")
            return
        }
        let parsed = CGIGateway.request(request.parameters)
        #expect(parsed == nil)
        var lengths: [UInt8] = []
        FastCGIParameters.append(name: String(repeating: "n", count: 200), value: "v", to: &lengths)
        #expect(lengths.prefix(4) == [0x80, 0, 0, 200])
        #expect(lengths.withUnsafeBytes { FastCGIParameters.forEach(in: $0) { _, _ in } })
        #expect(Array(lengths.dropLast()).withUnsafeBytes { !FastCGIParameters.forEach(in: $0) { _, _ in } })
        #expect(([0x80, 0, 0] as [UInt8]).withUnsafeBytes { !FastCGIParameters.forEach(in: $0) { _, _ in } })
    }

    @Test func tooManyParameterOrBodyBytesAreKeptWithinTheLimits() {
        let big = [UInt8](repeating: 0x41, count: 60_000)
        let manyParams = begin() + record(4, [0x01, 0x80, 0x00, 0xea, 0x5e] + [0x41] + big.prefix(59_999))
            + record(4, big) + record(4, []) + record(5, [])
        guard case .request(let request) = events(manyParams).first else {
            Issue.record("no request")
            return
        }
        #expect(request.parametersTooLarge && request.parameters.isEmpty)
        let longBody = begin() + params([]) + record(5, big) + record(5, big) + record(5, [])
        guard case .request(let body) = events(longBody).first else {
            Issue.record("no request")
            return
        }
        #expect(body.stdin.count == RecordReader.maxBodyBytes && body.stdinBytes == 120_000)
    }

    @Test func managementRecordsMultiplexingRolesAndAbortsAreAnswered() {
        var values: [UInt8] = []
        FastCGIParameters.append(name: "FCGI_MPXS_CONNS", value: "", to: &values)
        FastCGIParameters.append(name: "FCGI_UNKNOWN", value: "", to: &values)
        var answer: [UInt8] = []
        FastCGIParameters.append(name: "FCGI_MPXS_CONNS", value: "0", to: &answer)
        #expect(events(record(9, id: 0, values)) == [.reply(record(10, id: 0, answer), thenClose: false)])
        #expect(events(record(42, id: 0, [])) == [.reply(record(11, id: 0, [42, 0, 0, 0, 0, 0, 0, 0]), thenClose: false)])
        #expect(events(begin(role: 2)) == [.reply(RecordReader.endRequest(id: 1, status: 3), thenClose: true)])
        #expect(events(begin(role: 3, keep: true)) == [.reply(RecordReader.endRequest(id: 1, status: 3), thenClose: false)])
        #expect(events(begin() + begin(id: 2)) == [.reply(RecordReader.endRequest(id: 2, status: 1), thenClose: false)])
        #expect(events(begin(keep: true) + params([]) + record(2, [])) == [.reply(RecordReader.endRequest(id: 1, status: 0), thenClose: false)])
        // Records of requests that are not open are skipped.
        #expect(events(record(5, id: 7, [1, 2]) + record(4, id: 7, []) + record(2, id: 7, []) + record(200, id: 1, [9])) == [])
    }

    @Test func recordsOutOfOrderOrOfTheApplicationEndTheConnection() {
        #expect(events([2, 1, 0, 1, 0, 8, 0, 0]) == [.violation("record version 2")])
        #expect(events(record(1, [0, 1, 0])) == [.violation("BEGIN_REQUEST of 3 bytes")])
        #expect(events(begin() + begin()) == [.violation("a second BEGIN_REQUEST for request 1")])
        #expect(events(begin() + record(5, [1])) == [.violation("STDIN before the end of the parameters")])
        #expect(events(begin() + params([]) + record(4, [1, 0, 65])) == [.violation("PARAMS after the end of the parameters")])
        for type: UInt8 in [3, 6, 7, 10, 11] {
            #expect(events(record(type, [])) == [.violation("record type \(type), which only an application sends")])
        }
    }

    @Test func aResponseIsStdoutRecordsThenEndRequest() {
        let payload = [UInt8](repeating: 0x61, count: 70_000)
        let bytes = RecordReader.response(id: 3, payload: payload)
        #expect(Array(bytes.prefix(8)) == [1, 6, 0, 3, 0xff, 0xff, 0, 0])
        #expect(Array(bytes[(8 + 65_535)..<(16 + 65_535)]) == [1, 6, 0, 3, 0x11, 0x71, 0, 0])
        #expect(Array(bytes.suffix(24)) == [1, 6, 0, 3, 0, 0, 0, 0] + [1, 3, 0, 3, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(bytes.count == 70_000 + 4 * 8 + 8)
    }
}
