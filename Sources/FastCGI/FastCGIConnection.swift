import Glibc
import Logging
import Support
import Synchronization

/// One accepted connection from nginx and the requests it carries, one at a time. Its fields
/// are touched only by its loop; `deadline` is also read by the sweep.
package final class FastCGIConnection: @unchecked Sendable {
    package let fd: Int32
    package var input: [UInt8] = []
    package var reader: RecordReader
    /// When the request being received must be complete, in `monotonicNanoseconds()`; 0
    /// while idle between requests and while a whole request is served.
    package let deadline = Atomic<Int64>(0)

    package init(fd: Int32, reader: RecordReader) {
        self.fd = fd
        self.reader = reader
    }

    package var isLate: Bool {
        let deadline = deadline.load(ordering: .relaxed)
        return deadline != 0 && deadline <= monotonicNanoseconds()
    }

    /// Starts the clock of a request: it must be whole within `timeout` nanoseconds.
    package func expect(within timeout: Int64) {
        deadline.store(monotonicNanoseconds() + timeout, ordering: .relaxed)
    }

    /// What serving a connection's requests needs from its loop: the loop's responder and read
    /// buffer.
    package struct Serving: @unchecked Sendable {
        package let responder: any FastCGIResponder
        package let logger: Logger
        /// Where the loop's reads land before they are added to a connection's input.
        package let scratch = ScratchBuffer()
    }

    /// A loop's read buffer: a read copies out of it before anything else runs on the loop.
    package final class ScratchBuffer {
        package var bytes = [UInt8](repeating: 0, count: 64 * 1024)
    }

    /// Reads what the connection sends and serves each request it completes, until the client
    /// closes it, breaks the protocol, or is late; waiting for input or for room to write
    /// parks this task on `loop`, which serves its other connections meanwhile.
    package func serve(in set: ConnectionSet, on loop: EventLoop, _ serving: Serving) async {
        while true {
            var pending = input[...]
            while let event = reader.next(&pending) {
                switch event {
                case .request(let request):
                    input = Array(pending)
                    // Whole: the sweep leaves the connection alone while the request is served
                    // (the database's timeouts bound that) and its answer written (which has a
                    // bound of its own), so a write that committed is always answered.
                    deadline.store(0, ordering: .relaxed)
                    let kept = await serve(request, serving, on: loop, timeout: set.timeout)
                    guard kept, request.keepConnection else { return set.end(self, on: loop) }
                    pending = input[...]
                    if reader.isIdle(pending) {
                        // Between requests: most likely nothing to read yet, so no read is tried
                        // before the socket says there is.
                        _ = await loop.ready(fd)
                    } else {
                        expect(within: set.timeout)
                    }
                case .reply(let records, let thenClose):
                    guard await write(records, on: loop, timeout: set.timeout), !thenClose else { return set.end(self, on: loop) }
                case .violation(let reason):
                    serving.logger.warning("closed a FastCGI connection that broke the protocol", metadata: ["reason": "\(reason)"])
                    return set.end(self, on: loop)
                }
            }
            input = Array(pending)
            if isLate { return set.end(self, on: loop) }
            let count: Int
            do {
                count = try systemCall("recv") {
                    serving.scratch.bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                }
            } catch {
                // Nothing more to read for now; else the connection failed.
                guard error.wouldBlock else { return set.end(self, on: loop) }
                _ = await loop.ready(fd)
                continue
            }
            guard count > 0 else { return set.end(self, on: loop) }  // the client closed the connection
            input += serving.scratch.bytes[0..<count]
            if deadline.load(ordering: .relaxed) == 0 { expect(within: set.timeout) }
        }
    }

    /// Writes `bytes`, waiting for room at most `timeout` nanoseconds; false when the client
    /// went away or would not take them in time.
    private func write(_ bytes: [UInt8], on loop: EventLoop, timeout: Int64) async -> Bool {
        let deadline = monotonicNanoseconds() + timeout
        var offset = 0
        while offset < bytes.count {
            do throws(SystemError) {
                offset += try systemCall("send") {
                    bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                }
                continue
            } catch {
                guard error.wouldBlock else { return false }  // the client went away
            }
            guard await loop.ready(fd, writable: true, until: deadline) else { return false }
        }
        return true
    }

    /// Answers one complete request; false when the response could not be written.
    private func serve(_ request: FastCGIRequest, _ serving: Serving, on loop: EventLoop, timeout: Int64) async -> Bool {
        let payload = await serving.responder.respond(to: request)
        let written = await write(RecordReader.response(id: request.id, payload: payload), on: loop, timeout: timeout)
        if !written { serving.logger.debug("client went away before the response was written") }
        return written
    }
}

/// What a serving loop hands each whole request to: the CGI response to send back (header
/// lines, a blank line, the body). What the bytes mean is the responder's.
package protocol FastCGIResponder {
    func respond(to request: FastCGIRequest) async -> [UInt8]
}
