#if canImport(Glibc)
internal import Glibc
#endif

/// Starts `body` on a new POSIX thread and returns it (to join), or the errno
/// `pthread_create` gave. For the long-lived loops and workers that must not take one of the
/// few threads of Swift's cooperative pool (the watcher's reader, the warmer, the walk).
func startThread(_ body: @escaping @Sendable () -> Void) -> Result<pthread_t, ThreadStartError> {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    let code = pthread_create(
        &thread,
        nil,
        { raw in
            // `raw` is the retained box passed below (never nil).
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        },
        context
    )
    guard code == 0 else {
        Unmanaged<Box>.fromOpaque(context).release()
        return .failure(ThreadStartError(code: code))
    }
    return .success(thread)
}

/// `pthread_create` refused: its errno.
struct ThreadStartError: Error {
    var code: Int32
    var reason: String { String(cString: strerror(code)) }
}
