import Glibc
import Logging
import Support
import Synchronization

extension Logger {
    /// Sends every logger's output to standard error (the journal under systemd) at `level`,
    /// one logfmt line per event.
    package static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in LogfmtHandler(label: label, logLevel: level) }
    }
}

/// Standard error, shared by every log line. Events are written at once, in one `write`
/// each; the request lines (one per request, the bulk of the log) are gathered per serving
/// thread and written together at most half a second later, or once 16 KiB have gathered, so a
/// busy worker makes one `write` (and wakes the journal once) per many requests rather than per
/// request. An event first writes out the request lines gathered before it.
package final class LogSink: Sendable {
    package static let standardError = LogSink(fd: 2)

    /// One serving thread's gathered request lines.
    package final class Gathered: Sendable {
        fileprivate let lines = Mutex<[UInt8]>([])
        fileprivate let sink: LogSink

        fileprivate init(_ sink: LogSink) { self.sink = sink }

        /// Adds a request line, writing the lot once there are 16 KiB.
        package func add(_ line: [UInt8]) {
            let full: [UInt8]? = lines.withLock { lines in
                lines += line
                guard lines.count >= 16 * 1024 else { return nil }
                defer { lines.removeAll(keepingCapacity: true) }
                return lines
            }
            if let full { LogSink.write(sink.fd, full) }
        }

        fileprivate func take() -> [UInt8] {
            lines.withLock { lines in
                defer { lines.removeAll(keepingCapacity: true) }
                return lines
            }
        }
    }

    private let fd: Int32
    private let threads = Mutex<[Gathered]>([])

    package init(fd: Int32) { self.fd = fd }

    /// A place for one thread to gather its request lines.
    package func gathering() -> Gathered {
        let gathered = Gathered(self)
        threads.withLock { $0.append(gathered) }
        return gathered
    }

    /// Writes `line` now, after what was gathered.
    package func write(_ line: [UInt8]) {
        Self.write(fd, taken() + line)
    }

    /// Writes what was gathered.
    package func flush() {
        let out = taken()
        if !out.isEmpty { Self.write(fd, out) }
    }

    /// Flushes every half second from a thread of its own, for as long as the process runs.
    package func flushPeriodically() throws(SystemError) {
        _ = try PosixThread { [self] in
            while true {
                usleep(500_000)
                flush()
            }
        }
    }

    private func taken() -> [UInt8] {
        threads.withLock { $0 }.reduce(into: []) { out, gathered in out += gathered.take() }
    }

    fileprivate static func write(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { bytes in
            var rest = bytes
            while !rest.isEmpty {
                // Standard error gone: nowhere left to say so.
                guard let written = try? systemCall("write", { Glibc.write(fd, rest.baseAddress, rest.count) }) else { return }
                rest = UnsafeRawBufferPointer(rebasing: rest[written...])
            }
        }
    }
}

/// Writes each event as one logfmt line on standard error:
/// `time=2026-11-27T12:40:00.123Z level=info msg="signing keys loaded" kids=abc`.
/// Metadata follows in key order; values are quoted when they hold spaces, quotes, `=` or
/// control characters. No locale, no time zone files.
package struct LogfmtHandler: LogHandler {
    package let label: String
    package var logLevel: Logger.Level
    package var metadata: Logger.Metadata = [:]

    package init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var all = metadata
        if event.level >= .warning {
            guard let held = RepeatFilter.shared.admit(event.message.description) else { return }
            if held > 0 { all["repeated"] = "\(held)" }
        }
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        LogSink.standardError.write(Self.line(level: event.level, message: event.message.description, metadata: all))
    }

    /// A whole line: its start, then `metadata` in key order.
    package static func line(time: String? = nil, level: Logger.Level, message: String, metadata: Logger.Metadata) -> [UInt8] {
        var line = start(time: time, level: level, message: message)
        for key in metadata.keys.sorted() { append(field: key, metadata[key]!.description, to: &line) }
        line.append(UInt8(ascii: "\n"))
        return line
    }

    /// How every line starts, `time=… level=… msg=…`, the time now unless `time` is given; the
    /// fields and the newline follow.
    package static func start(time: String? = nil, level: Logger.Level, message: String) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(256)
        line += "time=".utf8
        if let time { line += time.utf8 } else { appendNow(to: &line) }
        line += " level=".utf8
        line += level.rawValue.utf8
        line += " msg=".utf8
        append(message, to: &line)
        return line
    }

    /// ` key=value`, the value quoted as needed.
    package static func append(field key: String, _ value: String, to line: inout [UInt8]) {
        line.append(UInt8(ascii: " "))
        line += key.utf8
        line.append(UInt8(ascii: "="))
        append(value, to: &line)
    }

    private static func append(_ value: String, to line: inout [UInt8]) {
        let plain = !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "=") && $0 != 0x7F }
        guard !plain else {
            line += value.utf8
            return
        }
        line.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): line += #"\""#.utf8
            case UInt8(ascii: "\\"): line += #"\\"#.utf8
            case UInt8(ascii: "\n"): line += #"\n"#.utf8
            case UInt8(ascii: "\r"): line += #"\r"#.utf8
            case UInt8(ascii: "\t"): line += #"\t"#.utf8
            case 0..<0x20, 0x7F: line += "\\u{\(String(byte, radix: 16))}".utf8
            default: line.append(byte)
            }
        }
        line.append(UInt8(ascii: "\""))
    }

    /// The time now in UTC, RFC 3339 with milliseconds (`2026-11-27T12:40:00.123Z`).
    private static func appendNow(to line: inout [UInt8]) {
        let spec = wallTime()
        var parts = tm()
        var seconds = spec.tv_sec
        gmtime_r(&seconds, &parts)
        appendDigits(Int(parts.tm_year) + 1900, 4, to: &line)
        line.append(UInt8(ascii: "-"))
        appendDigits(Int(parts.tm_mon) + 1, 2, to: &line)
        line.append(UInt8(ascii: "-"))
        appendDigits(Int(parts.tm_mday), 2, to: &line)
        line.append(UInt8(ascii: "T"))
        appendDigits(Int(parts.tm_hour), 2, to: &line)
        line.append(UInt8(ascii: ":"))
        appendDigits(Int(parts.tm_min), 2, to: &line)
        line.append(UInt8(ascii: ":"))
        appendDigits(Int(parts.tm_sec), 2, to: &line)
        line.append(UInt8(ascii: "."))
        appendDigits(spec.tv_nsec / 1_000_000, 3, to: &line)
        line.append(UInt8(ascii: "Z"))
    }

    /// `value` (not negative) in decimal, with leading zeros to `count` digits.
    package static func appendDigits(_ value: Int, _ count: Int, to line: inout [UInt8]) {
        var width = 1
        var probe = value / 10
        while probe > 0 {
            width += 1
            probe /= 10
        }
        width = max(width, count)
        line.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: width))
        var rest = value
        var index = line.count - 1
        while rest > 0 {
            line[index] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            index -= 1
        }
    }
}
