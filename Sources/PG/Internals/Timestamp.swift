import FoundationEssentials

/// Converts between `Date` and PostgreSQL's ISO text form of `timestamptz`.
///
/// The connection sets `DateStyle` to ISO, so values arrive as
/// `YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM[:SS]]` (optionally followed by ` BC`), or as
/// `infinity` / `-infinity`.
enum Timestamp {
    static func format(_ date: Date) -> String {
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        var totalSeconds = Int64((micros / 1_000_000).rounded(.down))
        let fraction = Int64(micros - Double(totalSeconds) * 1_000_000)
        var days = totalSeconds / 86_400
        totalSeconds -= days * 86_400
        if totalSeconds < 0 { totalSeconds += 86_400; days -= 1 }
        let (year, month, day) = civil(fromDays: days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(totalSeconds / 3600, 2)):"
            + "\(pad(totalSeconds / 60 % 60, 2)):\(pad(totalSeconds % 60, 2)).\(pad(fraction, 6))Z"
    }

    static func parse(_ text: UnsafeBufferPointer<UInt8>) -> Date? {
        var scanner = Scanner(bytes: text)
        if scanner.rest == "infinity" { return .distantFuture }
        if scanner.rest == "-infinity" { return .distantPast }
        guard let year = scanner.number(digits: 4...),
            scanner.skip("-"), let month = scanner.number(digits: 2...2),
            scanner.skip("-"), let day = scanner.number(digits: 2...2),
            scanner.skip(" ") || scanner.skip("T"),
            let hour = scanner.number(digits: 2...2),
            scanner.skip(":"), let minute = scanner.number(digits: 2...2),
            scanner.skip(":"), let second = scanner.number(digits: 2...2),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var micros: Int64 = 0
        if scanner.skip(".") {
            let start = scanner.index
            guard let fraction = scanner.number(digits: 1...6) else { return nil }
            var scale = 6 - (scanner.index - start)
            micros = fraction
            while scale > 0 { micros *= 10; scale -= 1 }
        }
        var offset: Int64 = 0
        if scanner.peek == UInt8(ascii: "+") || scanner.peek == UInt8(ascii: "-") {
            let sign: Int64 = scanner.peek == UInt8(ascii: "-") ? -1 : 1
            scanner.index += 1
            guard let hours = scanner.number(digits: 2...2) else { return nil }
            offset = hours * 3600
            if scanner.skip(":") {
                guard let minutes = scanner.number(digits: 2...2) else { return nil }
                offset += minutes * 60
                if scanner.skip(":") {
                    guard let seconds = scanner.number(digits: 2...2) else { return nil }
                    offset += seconds
                }
            }
            offset *= sign
        } else if scanner.skip("Z") {
            offset = 0
        } else {
            return nil
        }
        let bc = scanner.skip(" BC")
        guard scanner.atEnd else { return nil }
        let civilYear = bc ? 1 - year : year
        let days = Self.days(fromCivil: civilYear, month, day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        var rest: String { String(decoding: bytes[index...], as: UTF8.self) }
        var atEnd: Bool { index == bytes.count }
        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skip(_ literal: StaticString) -> Bool {
            let count = literal.utf8CodeUnitCount
            guard bytes.count - index >= count else { return false }
            for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] {
                return false
            }
            index += count
            return true
        }

        mutating func number(digits: PartialRangeFrom<Int>) -> Int64? {
            number(digits: digits.lowerBound...18)
        }

        mutating func number(digits: ClosedRange<Int>) -> Int64? {
            var value: Int64 = 0
            let start = index
            while index < bytes.count, index - start < digits.upperBound,
                case let digit = bytes[index] &- UInt8(ascii: "0"), digit < 10
            {
                value = value * 10 + Int64(digit)
                index += 1
            }
            return digits.contains(index - start) ? value : nil
        }
    }
}
