import Foundation
import Synchronization

/// A TCP server on 127.0.0.1 that takes one connection, answers it with what `greet` sends,
/// then only reads (what it read is in `received`) until `close()`.
final class OneConnectionServer: Sendable {
    let port: Int
    private let listener: Int32
    private let connection = Mutex<Int32?>(nil)
    private let bytes = Mutex<[UInt8]>([])

    init(greet: @escaping @Sendable (Int32) -> Void) throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listener = listener
        port = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address -> Int in
                guard bind(listener, address, length) == 0, listen(listener, 8) == 0, getsockname(listener, address, &length) == 0 else { return 0 }
                return Int(UInt16(bigEndian: pointer.pointee.sin_port))
            }
        }
        guard port != 0 else {
            Glibc.close(listener)
            throw HTTPClient.Failure(description: "listen on 127.0.0.1: errno \(errno)")
        }
        Thread.detachNewThread { [self] in
            let accepted = accept(listener, nil, nil)
            guard accepted >= 0 else { return }
            connection.withLock { $0 = accepted }
            greet(accepted)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let got = recv(accepted, &buffer, buffer.count, 0)
                guard got > 0 else { return }
                bytes.withLock { $0 += buffer[..<got] }
            }
        }
    }

    /// What the client sent after the greeting, as text.
    var received: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }

    /// Closes the connection (the client reads its end) and the listening socket.
    func close() {
        connection.withLock { if let fd = $0 { shutdown(fd, Int32(SHUT_RDWR)) } }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    deinit {
        close()
        connection.withLock { if let fd = $0 { Glibc.close(fd) } }
        Glibc.close(listener)
    }
}
