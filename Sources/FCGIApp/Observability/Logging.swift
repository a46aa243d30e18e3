import Logging

extension Logger {
    /// Sends every logger's output to standard error (the journal under systemd) at `level`.
    static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
