internal import Foundation
internal import Synchronization

/// Runs a blocking call on a thread of its own, so that it never holds one of the few threads
/// of Swift's cooperative pool for the seconds it can take (a push, a container's stop).
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// A blocking call started on a thread of its own, so that it overlaps another one on the
/// calling thread (a container's kill while its successor is created); ``wait()`` blocks until
/// it ended and gives its result.
final class ThreadCall<T: Sendable>: Sendable {
    private let result = Mutex<T?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> T) {
        let thread = Thread { [self] in
            let value = body()
            result.withLock { $0 = value }
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// The call's result, once it ended (at once after the first time).
    func wait() -> T {
        while true {
            if let value = result.withLock({ $0 }) { return value }
            done.wait()
            done.signal()
        }
    }
}
