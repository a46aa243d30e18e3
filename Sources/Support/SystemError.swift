import Glibc

/// A system call that failed: what the worker was doing, and the `errno` it set.
package struct SystemError: Error, CustomStringConvertible {
    package let action: String
    package let code: Int32

    /// Takes `errno` as it is now: make it before anything else can change it.
    package init(_ action: String, code: Int32 = errno) {
        self.action = action
        self.code = code
    }

    /// `strerror`'s text for `code`.
    package static func reason(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    package var description: String { "\(action): \(Self.reason(code))" }

    /// Whether the call would have blocked (a non-blocking descriptor with nothing to do).
    package var wouldBlock: Bool { code == EAGAIN || code == EWOULDBLOCK }
}

/// The one way the worker makes a system call: `call` again while it fails with `EINTR`, its
/// result when it succeeds, and a `SystemError` naming `action` (with the call's `errno`) when
/// it fails otherwise. A call fails when it returns -1 (file descriptors, byte counts, most
/// calls) or, with `failure: .nonZero`, anything but 0 (`nanosleep`).
@discardableResult
package func systemCall<Result: FixedWidthInteger & SignedInteger>(
    _ action: @autoclosure () -> String, failure: SystemCallFailure = .minusOne, _ call: () -> Result
) throws(SystemError) -> Result {
    while true {
        let result = call()
        let failed = failure == .minusOne ? result == -1 : result != 0
        guard failed else { return result }
        if errno == EINTR { continue }
        throw SystemError(action())
    }
}

/// How a system call says it failed.
package enum SystemCallFailure {
    case minusOne
    case nonZero
}

/// A configuration error, reported before the worker starts.
package struct ConfigError: Error, CustomStringConvertible, Equatable {
    package let description: String
    package init(_ description: String) { self.description = description }

    /// A configuration that names a file or address the system refused.
    package init(_ error: SystemError) { self.init(error.description) }
}
