import Foundation

/// A response read by `HTTPClient`.
struct HTTPResponse {
    let status: Int
    let headers: [(name: String, value: String)]
    let body: Data

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object with string values.
    var json: [String: String]? {
        (try? JSONSerialization.jsonObject(with: body)) as? [String: String]
    }
}

/// A minimal HTTP/1.0 client over a TCP socket to 127.0.0.1, so tests can send exactly the
/// bytes they mean (repeated headers, oversized requests) and read exactly what nginx answers.
enum HTTPClient {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// With `from`, the connection comes from that loopback address (127.0.0.2, ...), as a
    /// client on another host would look to nginx's `allow`/`deny`.
    static func request(
        port: Int, method: String = "GET", path: String, headers: [(String, String)] = [], body: Data? = nil,
        timeout: TimeInterval = 10, from source: String? = nil
    ) throws -> HTTPResponse {
        // A Host of the test's own replaces the default one.
        var head = "\(method) \(path) HTTP/1.0\r\n"
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { head += "Host: 127.0.0.1:\(port)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        var raw = Data(head.utf8)
        if let body { raw += body }
        return try parse(exchange(port: port, raw, timeout: timeout, from: source))
    }

    /// Sends `bytes` and reads until the server closes the connection.
    static func exchange(port: Int, _ bytes: Data, timeout: TimeInterval = 10, from source: String? = nil) throws -> Data {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        defer { close(fd) }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw Failure(description: "bind to \(source): errno \(errno)") }
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect to port \(port): errno \(errno)") }
        try bytes.withUnsafeBytes { buffer in
            var sent = 0
            while sent < buffer.count {
                let count = send(fd, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
                // The server may answer (413, 400) and close before reading everything.
                if count <= 0 { if errno == EPIPE || errno == ECONNRESET { return }; throw Failure(description: "send: \(errno)") }
                sent += count
            }
        }
        var received = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count == 0 { break }
            if count < 0 {
                if errno == ECONNRESET, !received.isEmpty { break }
                throw Failure(description: "recv: errno \(errno) after \(received.count) bytes")
            }
            received.append(contentsOf: chunk[0..<count])
        }
        return received
    }

    static func parse(_ data: Data) throws -> HTTPResponse {
        guard let end = data.firstRange(of: Data("\r\n\r\n".utf8)) else {
            throw Failure(description: "no complete response head in \(data.count) bytes: \(String(decoding: data, as: UTF8.self))")
        }
        let lines = String(decoding: data[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line: \(lines[0])")
        }
        let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return HTTPResponse(status: status, headers: headers, body: Data(data[end.upperBound...]))
    }
}
