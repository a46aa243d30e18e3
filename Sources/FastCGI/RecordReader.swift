import CFastCGI

/// One request as a FastCGI client sent it: what the worker serves once its closing empty
/// STDIN record has arrived.
package struct FastCGIRequest: Sendable, Equatable {
    package var id: UInt16
    /// `FCGI_KEEP_CONN`: the client (nginx's `fastcgi_keep_conn`) reuses the connection.
    package var keepConnection: Bool
    /// The PARAMS stream: name-value pairs, not yet checked (`Request(fastCGIParameters:)`).
    package var parameters: [UInt8] = []
    /// The STDIN stream, at most `RecordReader.maxBodyBytes` of it; `stdinBytes` counts it all.
    package var stdin: [UInt8] = []
    package var stdinBytes = 0
    /// The PARAMS stream was longer than `RecordReader.maxParameterBytes`; none of it is kept.
    package var parametersTooLarge = false
}

/// Reads FastCGI records (the FastCGI 1.0 specification) from a connection's bytes as they
/// arrive, trusting no length until it has checked it: the worker's own reader, so that no
/// byte sequence reaches libfcgi's parser, whose lengths are computed in 32 bits and whose
/// failed allocations abort the process.
///
/// One request at a time per connection (`FCGI_MPXS_CONNS` is 0): a BEGIN_REQUEST for another
/// id while one is open is refused with `FCGI_CANT_MPX_CONN`, as the specification says;
/// records for request ids that are not open are skipped; what only an application sends
/// (STDOUT, END_REQUEST, ...) or a record out of order ends the connection.
package struct RecordReader {
    /// The most PARAMS bytes a request may carry: nginx's own header limits stay well below it.
    package static let maxParameterBytes = 64 * 1024
    /// The most STDIN bytes kept (and counted past): what a body may be, as the responder sees
    /// it, is at most this (`CGIGateway` checks `Request.maxBodyBytes` against it).
    package static let maxBodyBytes = 64 * 1024

    package enum Event: Equatable {
        /// A complete request.
        case request(FastCGIRequest)
        /// Records to write back at once (management answers, refused or aborted requests);
        /// with `thenClose`, the connection ends after them.
        case reply([UInt8], thenClose: Bool)
        /// A record no client may send: the connection ends.
        case violation(String)
    }

    /// The answers to FCGI_GET_VALUES.
    private let values: [String: String]
    private var open: FastCGIRequest?
    private var parametersDone = false

    package init(values: [String: String]) {
        self.values = values
    }

    /// Whether the bytes read so far end between requests: no request open and no partial
    /// record waiting.
    package func isIdle(_ input: ArraySlice<UInt8>) -> Bool { open == nil && input.isEmpty }

    /// The next event the complete records at the start of `input` make, consuming them;
    /// nil when more bytes are needed.
    package mutating func next(_ input: inout ArraySlice<UInt8>) -> Event? {
        while input.count >= Int(FCGI_HEADER_LEN) {
            let start = input.startIndex
            let version = input[start], type = Int32(input[start + 1])
            let id = UInt16(input[start + 2]) << 8 | UInt16(input[start + 3])
            let length = Int(input[start + 4]) << 8 | Int(input[start + 5])
            let padding = Int(input[start + 6])
            guard version == UInt8(FCGI_VERSION_1) else { return .violation("record version \(version)") }
            let total = Int(FCGI_HEADER_LEN) + length + padding
            guard input.count >= total else { return nil }
            let content = input[(start + Int(FCGI_HEADER_LEN))..<(start + Int(FCGI_HEADER_LEN) + length)]
            input = input[(start + total)...]
            if let event = record(type: type, id: id, content: content) { return event }
        }
        return nil
    }

    private mutating func record(type: Int32, id: UInt16, content: ArraySlice<UInt8>) -> Event? {
        if id == FCGI_NULL_REQUEST_ID {
            guard type == FCGI_GET_VALUES else {
                return .reply(Self.record(type: FCGI_UNKNOWN_TYPE, id: 0, content: [UInt8(truncatingIfNeeded: type)] + [UInt8](repeating: 0, count: 7)), thenClose: false)
            }
            return getValues(content)
        }
        switch type {
        case FCGI_BEGIN_REQUEST:
            guard content.count == 8 else { return .violation("BEGIN_REQUEST of \(content.count) bytes") }
            let role = Int32(content[content.startIndex]) << 8 | Int32(content[content.startIndex + 1])
            let keep = content[content.startIndex + 2] & UInt8(FCGI_KEEP_CONN) != 0
            if let open {
                guard open.id != id else { return .violation("a second BEGIN_REQUEST for request \(id)") }
                return .reply(Self.endRequest(id: id, status: FCGI_CANT_MPX_CONN), thenClose: false)
            }
            guard role == FCGI_RESPONDER else {
                return .reply(Self.endRequest(id: id, status: FCGI_UNKNOWN_ROLE), thenClose: !keep)
            }
            open = FastCGIRequest(id: id, keepConnection: keep)
            parametersDone = false
        case FCGI_ABORT_REQUEST:
            guard let request = open, request.id == id else { return nil }
            open = nil
            return .reply(Self.endRequest(id: id, status: FCGI_REQUEST_COMPLETE), thenClose: !request.keepConnection)
        case FCGI_PARAMS:
            guard open?.id == id else { return nil }
            guard !parametersDone else { return .violation("PARAMS after the end of the parameters") }
            if content.isEmpty {
                parametersDone = true
            } else if open!.parametersTooLarge || open!.parameters.count + content.count > Self.maxParameterBytes {
                open!.parametersTooLarge = true
                open!.parameters = []
            } else {
                open!.parameters += content
            }
        case FCGI_STDIN:
            guard open?.id == id else { return nil }
            guard parametersDone else { return .violation("STDIN before the end of the parameters") }
            if content.isEmpty {
                defer { open = nil }
                return .request(open!)
            }
            open!.stdinBytes += content.count
            let room = Self.maxBodyBytes - open!.stdin.count
            if room > 0 { open!.stdin += content.prefix(room) }
        case FCGI_DATA:
            return nil  // the filter role's stream; a responder has none
        case FCGI_END_REQUEST, FCGI_STDOUT, FCGI_STDERR, FCGI_GET_VALUES_RESULT, FCGI_UNKNOWN_TYPE:
            return .violation("record type \(type), which only an application sends")
        default:
            return nil  // a type of a later protocol version, for no open request of ours
        }
        return nil
    }

    /// FCGI_GET_VALUES_RESULT with the values asked for that this worker knows.
    private func getValues(_ content: ArraySlice<UInt8>) -> Event {
        var answer: [UInt8] = []
        let complete = content.withUnsafeBytes { bytes in
            FastCGIParameters.forEach(in: bytes) { name, _ in
                let key = String(decoding: name, as: UTF8.self)
                if let value = values[key] { FastCGIParameters.append(name: key, value: value, to: &answer) }
            }
        }
        guard complete else { return .violation("malformed GET_VALUES") }
        return .reply(Self.record(type: FCGI_GET_VALUES_RESULT, id: 0, content: answer), thenClose: false)
    }

    package static func endRequest(id: UInt16, status: Int32) -> [UInt8] {
        record(type: FCGI_END_REQUEST, id: id, content: [0, 0, 0, 0, UInt8(status), 0, 0, 0])
    }

    /// One record; `content` at most 65,535 bytes.
    package static func record(type: Int32, id: UInt16, content: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        appendHeader(type: type, id: id, length: content.count, to: &bytes)
        return bytes + content
    }

    package static func appendHeader(type: Int32, id: UInt16, length: Int, to bytes: inout [UInt8]) {
        bytes += [UInt8(FCGI_VERSION_1), UInt8(type), UInt8(id >> 8), UInt8(id & 0xff),
                  UInt8(length >> 8), UInt8(length & 0xff), 0, 0]
    }

    /// A response's records: `payload` (the CGI response) as STDOUT records, the empty STDOUT
    /// record that closes the stream, and END_REQUEST.
    package static func response(id: UInt16, payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(payload.count + 32 + payload.count / Int(FCGI_MAX_LENGTH) * 8)
        var offset = 0
        while offset < payload.count {
            let end = min(offset + Int(FCGI_MAX_LENGTH), payload.count)
            appendHeader(type: FCGI_STDOUT, id: id, length: end - offset, to: &bytes)
            bytes += payload[offset..<end]
            offset = end
        }
        appendHeader(type: FCGI_STDOUT, id: id, length: 0, to: &bytes)
        bytes += endRequest(id: id, status: FCGI_REQUEST_COMPLETE)
        return bytes
    }
}

/// FastCGI name-value pairs: each length one byte (below 128) or four (the high bit set, 31
/// bits of length), then the name and value bytes.
package enum FastCGIParameters {
    /// Calls `body` with each pair; false when a length runs past the end of `bytes`.
    package static func forEach(
        in bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void
    ) -> Bool {
        var offset = 0
        func length() -> Int? {
            guard offset < bytes.count else { return nil }
            let first = bytes[offset]
            if first & 0x80 == 0 {
                offset += 1
                return Int(first)
            }
            guard bytes.count - offset >= 4 else { return nil }
            let value = Int(first & 0x7f) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            offset += 4
            return value
        }
        while offset < bytes.count {
            guard let nameLength = length(), let valueLength = length(),
                nameLength <= bytes.count - offset, valueLength <= bytes.count - offset - nameLength
            else { return false }
            let name = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + nameLength)])
            let value = UnsafeRawBufferPointer(rebasing: bytes[(offset + nameLength)..<(offset + nameLength + valueLength)])
            body(name, value)
            offset += nameLength + valueLength
        }
        return true
    }

    package static func append(name: String, value: String, to bytes: inout [UInt8]) {
        for length in [name.utf8.count, value.utf8.count] {
            if length < 128 {
                bytes.append(UInt8(length))
            } else {
                bytes += [UInt8(length >> 24 & 0x7f) | 0x80, UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
            }
        }
        bytes += name.utf8
        bytes += value.utf8
    }
}
