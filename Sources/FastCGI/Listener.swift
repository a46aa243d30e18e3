import CFastCGI
import FoundationEssentials
import Glibc
import Support

/// The socket the worker accepts FastCGI connections on.
package struct Listener: Sendable {
    package let fd: Int32
    /// The unix socket file the worker created, removed when it stops. An inherited socket
    /// belongs to whoever passed it and is never unlinked or shut down.
    package let createdPath: String?
    package let description: String

    /// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
    package static let systemdFirstFD: Int32 = 3

    /// Opens the socket `address` names, or takes the inherited one when it is `nil`: through
    /// `LISTEN_FDS`/`LISTEN_PID` (systemd, `systemd-socket-activate`) or on fd 0 (spawn-fcgi,
    /// `StandardInput=socket`). libfcgi must be initialised (`FCGX_Init`) first.
    package static func open(_ address: ListenAddress?, backlog: Int32 = 1024) throws(ConfigError) -> Listener {
        guard let address else { return try inherited() }
        if case .unix(let path) = address { try removeStaleSocket(path) }
        let fd = FCGX_OpenSocket(address.fcgiPath, backlog)
        guard fd >= 0 else {
            throw ConfigError(SystemError("cannot listen on \(address)"))
        }
        guard case .unix(let path) = address else {
            return Listener(fd: fd, createdPath: nil, description: address.description)
        }
        // Owner and group may connect: run nginx as the same user, or in the socket's group.
        do {
            try systemCall("cannot set the mode of \(path)") { chmod(path, 0o660) }
        } catch {
            close(fd)
            throw ConfigError(error)
        }
        return Listener(fd: fd, createdPath: path, description: address.description)
    }

    private static func inherited() throws(ConfigError) -> Listener {
        let environment = ProcessInfo.processInfo.environment
        if let count = environment["LISTEN_FDS"], let pid = environment["LISTEN_PID"], pid == String(getpid()) {
            // As sd_listen_fds(unset_environment=1): children must not take these for theirs.
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDNAMES")
            guard count == "1" else {
                throw ConfigError("LISTEN_FDS is \(count); the worker serves exactly one socket")
            }
            guard isListeningSocket(systemdFirstFD) else {
                throw ConfigError("LISTEN_FDS is set, but fd 3 is not a listening socket")
            }
            return Listener(fd: systemdFirstFD, createdPath: nil, description: "inherited socket (LISTEN_FDS, fd 3)")
        }
        guard isListeningSocket(CFASTCGI_LISTENSOCK_FILENO) else {
            throw ConfigError(
                "FCGI_LISTEN is not set and no listening socket was inherited (LISTEN_FDS or fd 0); "
                    + "set FCGI_LISTEN=unix:/path/to.sock or HOST:PORT")
        }
        return Listener(fd: CFASTCGI_LISTENSOCK_FILENO, createdPath: nil, description: "inherited socket (fd 0)")
    }

    private static func isListeningSocket(_ fd: Int32) -> Bool {
        var accepting: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0 && accepting == 1
    }

    /// Removes a socket file left by a worker that did not stop cleanly, and refuses to take
    /// over a socket another process still serves.
    private static func removeStaleSocket(_ path: String) throws(ConfigError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ConfigError("cannot listen on unix:\(path): the path exists and is not a socket")
        }
        let probe: Int32
        do {
            probe = try systemCall("cannot probe unix:\(path)") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0) }
        } catch {
            throw ConfigError(error)
        }
        defer { close(probe) }
        if withUnixAddress(path, { connect(probe, $0, $1) }) == 0 {
            throw ConfigError("cannot listen on unix:\(path): another process is accepting connections there")
        }
        do {
            try systemCall("cannot remove the stale socket unix:\(path)") { unlink(path) }
        } catch {
            throw ConfigError(error)
        }
    }
}
