import Glibc

/// A system call that failed: what the worker was doing, and the `errno` it set.
struct SystemError: Error, CustomStringConvertible {
    let action: String
    let code: Int32

    /// Takes `errno` as it is now: make it before anything else can change it.
    init(_ action: String, code: Int32 = errno) {
        self.action = action
        self.code = code
    }

    /// `strerror`'s text for `code`.
    static func reason(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    var description: String { "\(action): \(Self.reason(code))" }
}

extension ConfigError {
    /// A configuration that names a file or address the system refused.
    init(_ error: SystemError) { self.init(error.description) }
}
