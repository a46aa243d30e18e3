@testable import FCGIApp
import Foundation

/// Speaks FastCGI to the worker directly, record by record, so a test can hold a request
/// half-sent (in flight) or send what nginx never would.
final class FastCGIClient {
    enum RecordType: UInt8 {
        case beginRequest = 1, endRequest = 3, params = 4, stdin = 5, stdout = 6, stderr = 7
    }

    private let socket: RawSocket
    private let requestID: UInt16 = 1

    init(unixPath: String) throws {
        socket = try RawSocket(unixPath: unixPath)
    }

    /// BEGIN_REQUEST (responder role) and the CGI parameters, with the closing empty PARAMS
    /// record only if `finish` is true.
    /// With `keep`, the FCGI_KEEP_CONN flag asks the worker to keep the connection open after the
    /// response, as nginx's `fastcgi_keep_conn` does.
    func begin(_ parameters: [String: String], finish: Bool = true, keep: Bool = false) throws {
        try send(.beginRequest, [0, 1, keep ? 1 : 0, 0, 0, 0, 0, 0])
        var encoded: [UInt8] = []
        for (name, value) in parameters {
            for length in [name.utf8.count, value.utf8.count] {
                if length < 128 {
                    encoded.append(UInt8(length))
                } else {
                    encoded += [UInt8(length >> 24) | 0x80, UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
                }
            }
            encoded += Array(name.utf8) + Array(value.utf8)
        }
        try send(.params, encoded)
        if finish { try send(.params, []) }
    }

    func finishParameters() throws { try send(.params, []) }

    /// The body in STDIN records, then the closing empty one.
    func body(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + 65_535, bytes.count)
            try send(.stdin, Array(bytes[offset..<end]))
            offset = end
        }
        try send(.stdin, [])
    }

    /// Reads STDOUT until END_REQUEST; the response as the worker wrote it (CGI form).
    func response() throws -> String {
        var stdout: [UInt8] = []
        while true {
            let header = try read(8)
            let length = Int(header[4]) << 8 | Int(header[5])
            let content = try read(length + Int(header[6]))
            switch RecordType(rawValue: header[1]) {
            case .stdout: stdout += content.prefix(length)
            case .endRequest: return String(decoding: stdout, as: UTF8.self)
            default: continue
            }
        }
    }

    private func send(_ type: RecordType, _ content: [UInt8]) throws {
        let padding = (8 - content.count % 8) % 8
        try socket.send([1, type.rawValue, UInt8(requestID >> 8), UInt8(requestID & 0xff),
                         UInt8(content.count >> 8), UInt8(content.count & 0xff), UInt8(padding), 0]
            + content + [UInt8](repeating: 0, count: padding))
    }

    private func read(_ count: Int) throws -> [UInt8] { try socket.read(exactly: count) }
}
