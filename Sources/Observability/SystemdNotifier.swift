import Glibc
import Support

/// systemd's service notifications (`sd_notify(3)`): `READY=1`, `STOPPING=1`, `WATCHDOG=1`,
/// `STATUS=…`, each a datagram to the unix socket `NOTIFY_SOCKET` names (a path, or an abstract
/// name after `@`). The protocol is that simple and stable by design; systemd documents it for
/// reimplementation, so it is written here rather than linking libsystemd for one call.
package struct SystemdNotifier: Sendable {
    private let socketPath: String
    /// How often systemd expects `WATCHDOG=1` (`WatchdogSec=`), when it does.
    package let watchdogInterval: Duration?

    /// The notifier systemd asked for through the environment, or nil when not run by systemd
    /// with `Type=notify` (or `systemd-socket-activate` with `NOTIFY_SOCKET` passed).
    package init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        socketPath = path
        if let text = environment["WATCHDOG_USEC"], let micros = Int64(text), micros > 0,
            environment["WATCHDOG_PID"].map({ $0 == String(getpid()) }) ?? true
        {
            watchdogInterval = .microseconds(micros)
        } else {
            watchdogInterval = nil
        }
    }

    /// Sends `state` (lines of `NAME=value`); false when it could not be sent.
    @discardableResult
    package func send(_ state: String) -> Bool {
        guard let fd = try? systemCall("socket", { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        else { return false }
        defer { close(fd) }
        // Nil for a path too long for an address, or a failed send.
        let sent = state.utf8CString.withUnsafeBufferPointer { text in
            withUnixAddress(socketPath) { address, length in
                try? systemCall("sendto") { sendto(fd, text.baseAddress, text.count - 1, Int32(MSG_NOSIGNAL), address, length) }
            }
        }
        return (sent ?? nil) == state.utf8.count
    }
}
