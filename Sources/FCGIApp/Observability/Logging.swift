import Glibc
import Logging

extension Logger {
    /// Sends every logger's output to standard error (the journal under systemd) at `level`,
    /// one logfmt line per event.
    static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in LogfmtHandler(label: label, logLevel: level) }
    }
}

/// Writes each event as one logfmt line on standard error, with one `write`:
/// `time=2026-11-27T12:40:00.123Z level=info msg="signing keys loaded" kids=abc`.
/// Metadata follows in key order; values are quoted when they hold spaces, quotes, `=` or
/// control characters. Cheap enough for a line per request: no locale, no time zone files.
struct LogfmtHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        let line = Self.line(time: Self.now(), level: event.level, message: event.message.description, metadata: all)
        line.withUnsafeBytes { bytes in
            var rest = bytes
            while !rest.isEmpty {
                let written = Glibc.write(2, rest.baseAddress, rest.count)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                rest = UnsafeRawBufferPointer(rebasing: rest[written...])
            }
        }
    }

    static func line(time: String, level: Logger.Level, message: String, metadata: Logger.Metadata) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(256)
        line += "time=".utf8
        line += time.utf8
        line += " level=".utf8
        line += level.rawValue.utf8
        line += " msg=".utf8
        append(message, to: &line)
        for key in metadata.keys.sorted() {
            line.append(UInt8(ascii: " "))
            line += key.utf8
            line.append(UInt8(ascii: "="))
            append(metadata[key]!.description, to: &line)
        }
        line.append(UInt8(ascii: "\n"))
        return line
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

    /// The time now in UTC, RFC 3339 with milliseconds.
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var parts = tm()
        var seconds = spec.tv_sec
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ count: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, count - text.count)) + text
        }
        return "\(digits(parts.tm_year + 1900, 4))-\(digits(parts.tm_mon + 1, 2))-\(digits(parts.tm_mday, 2))T"
            + "\(digits(parts.tm_hour, 2)):\(digits(parts.tm_min, 2)):\(digits(parts.tm_sec, 2)).\(digits(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}
