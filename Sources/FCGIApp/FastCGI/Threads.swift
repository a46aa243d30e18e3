import Glibc

/// A POSIX thread running a closure; `join()` waits for it to return.
struct PosixThread: Sendable {
    private let thread: pthread_t

    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    /// Starts a thread running `body`. The C function is `pthread_create`.
    init(_ body: @escaping @Sendable () -> Void) throws(ConfigError) {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw ConfigError("cannot start a thread: \(String(cString: strerror(status)))")
        }
        self.thread = thread
    }

    /// Waits for the thread to finish. The C function is `pthread_join`.
    func join() {
        pthread_join(thread, nil)
    }
}
