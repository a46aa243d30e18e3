@testable import FCGIApp
import Foundation
@testable import Support

/// A unix stream socket a test writes raw bytes to.
final class RawSocket: @unchecked Sendable {
    private let fd: Int32

    init(unixPath: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard withUnixAddress(unixPath, { connect(fd, $0, $1) }) == 0 else {
            close(fd)
            throw HTTPClient.Failure(description: "connect to \(unixPath): errno \(errno)")
        }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw HTTPClient.Failure(description: "send: errno \(errno)") }
            offset += sent
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Exactly `count` bytes from the peer.
    func read(exactly count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + filled, count - filled, 0) }
            guard got > 0 else { throw HTTPClient.Failure(description: got == 0 ? "recv: the peer closed the connection" : "recv: errno \(errno)") }
            filled += got
        }
        return buffer
    }

    /// What the peer sends until it closes the connection (10 s at most).
    func readToEnd() throws -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return bytes }
            guard count > 0 else {
                if errno == ECONNRESET { return bytes }
                throw HTTPClient.Failure(description: "recv: errno \(errno)")
            }
            bytes += buffer[0..<count]
        }
    }

    /// When the peer closed the connection, waiting at most `timeout` seconds from now.
    func waitForClose(timeout: TimeInterval) throws -> Date {
        let deadline = Date().addingTimeInterval(timeout)
        var byte: UInt8 = 0
        while Date() < deadline {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&ready, 1, 10) > 0 {
                let count = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
                if count == 0 || (count < 0 && errno == ECONNRESET) { return Date() }
            }
        }
        throw HTTPClient.Failure(description: "the connection was still open after \(timeout) s")
    }
}
