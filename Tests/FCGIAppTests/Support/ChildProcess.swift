import Foundation
import Synchronization

/// Children still running. Stacks shared by a suite live in static properties, which are never
/// deinitialized, so whatever is left when the test process exits is stopped then.
private let livingChildren = Mutex<Set<pid_t>>([])
private let stopLivingChildrenAtExit: Void = {
    atexit {
        let pids = livingChildren.withLock { $0 }
        for pid in pids { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        var left = pids
        while !left.isEmpty, Date() < deadline {
            left = left.filter { waitpid($0, nil, WNOHANG) == 0 }
            if !left.isEmpty { usleep(10_000) }
        }
        for pid in left { kill(pid, SIGKILL) }
    }
}()

/// A program the test starts with `posix_spawn`, its output in a file, reaped only by this
/// object (Foundation's `Process` on Linux blocks in `wait4` on one child while another exits,
/// which stalls tests that keep servers running).
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    let logPath: String
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// With `stdin`, the child gets that descriptor as its fd 0 (a listening socket, as
    /// spawn-fcgi passes one); otherwise /dev/null.
    init(
        _ executable: String, _ arguments: [String], environment: [String: String], log logPath: String,
        stdin: Int32? = nil
    ) throws {
        self.logPath = logPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        // The spawning thread may be a dispatch worker with every signal blocked: start the
        // child with none blocked and default dispositions, as a shell would.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw HTTPClient.Failure(description: "cannot start \(executable): \(String(cString: strerror(status)))")
        }
        self.pid = pid
        _ = stopLivingChildrenAtExit
        _ = livingChildren.withLock { $0.insert(pid) }
    }

    var isRunning: Bool { status == nil }
    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The exit status (128 + signal number when killed by a signal), or `nil` while running.
    var status: Int32? {
        lock.withLock {
            if exitStatus == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid {
                    exitStatus = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                    _ = livingChildren.withLock { $0.remove(pid) }
                }
            }
            return exitStatus
        }
    }

    func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits up to `timeout` seconds for the process to exit; its status, or `nil` if it is
    /// still running.
    @discardableResult
    func wait(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return status
    }

    /// The CPU time the process has used so far (user and system), from /proc.
    func cpuSeconds() throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // After the command name in parentheses: state is field 3, utime and stime 14 and 15.
        let fields = stat[stat.range(of: ")", options: .backwards)!.upperBound...].split(separator: " ")
        return Double(Int(fields[11])! + Int(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace` seconds.
    func stop(grace: TimeInterval = 5) {
        guard isRunning else { return }
        signal(SIGTERM)
        if wait(timeout: grace) == nil {
            signal(SIGKILL)
            wait(timeout: 5)
        }
    }

    deinit { stop() }
}

/// Runs a program to completion; its exit status and output (standard output and error).
func run(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: TimeInterval = 300
) throws -> (status: Int32, output: String) {
    let dir = try TestEnvironment.scratchFolder("run")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let child = try ChildProcess(
        executable, arguments, environment: environment ?? ProcessInfo.processInfo.environment, log: "\(dir)/output")
    guard let status = child.wait(timeout: timeout) else {
        child.stop()
        throw HTTPClient.Failure(description: "\(executable) did not finish in \(Int(timeout)) s: \(child.output)")
    }
    return (status, child.output)
}
