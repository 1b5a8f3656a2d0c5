internal import Foundation

/// Runs a blocking call on a thread of its own, so that it never holds one of the few threads
/// of Swift's cooperative pool for the seconds it can take (a push, a container's stop).
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.stackSize = 1 << 20
        thread.start()
    }
}
