import Logging
import Testing

@testable import FCGIApp

@Suite struct LoggingTests {
    @Test func linesAreLogfmtWithQuotingWhereNeeded() {
        let line = LogfmtHandler.line(
            time: "2026-11-27T12:40:00.123Z", level: .info, message: "request refused",
            metadata: ["status": "401", "reason": #"bad "kid" = x"#, "path": "/articles/", "empty": "", "multi": "a\nb\u{1}é"])
        #expect(String(decoding: line, as: UTF8.self) == #"time=2026-11-27T12:40:00.123Z level=info msg="request refused" empty="" multi="a\nb\u{1}é" path=/articles/ reason="bad \"kid\" = x" status=401"# + "\n")
    }

    @Test func timesAreUTCWithMilliseconds() {
        #expect(LogfmtHandler.now().wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
    }
}
