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
        (listener, port) = try TestEnvironment.loopbackListener()
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
