internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// A task executor with one thread of its own: a sync's loop runs there, so that its file
/// system work (walks, hashes, thousands of renames in a checkout's batch) never holds one of
/// the few threads of Swift's cooperative pool that the agent's other work needs.
///
/// `@unchecked Sendable`: the queue and the stop flag are guarded by `condition`.
final class SyncExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [UnownedJob] = []
    private var head = 0
    private var stopping = false
    private var exited = false
    private var thread: pthread_t?

    /// Starts the thread; nil when none could be started (the caller runs on the pool then).
    static func start() -> SyncExecutor? {
        let executor = SyncExecutor()
        guard case .success(let thread) = startThread({ executor.loop() }) else { return nil }
        executor.condition.lock()
        executor.thread = thread
        executor.condition.unlock()
        return executor
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        if exited {
            // A task that outlived the sync (one a remote started): the pool runs it.
            condition.unlock()
            globalConcurrentExecutor.enqueue(job)
            return
        }
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while head == queue.count && !stopping { condition.wait() }
            if head == queue.count {
                exited = true
                condition.unlock()
                return
            }
            let job = queue[head]
            head += 1
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }

    /// Ends the thread once the jobs queued so far have run (call after the work is done).
    func shutdown() {
        condition.lock()
        stopping = true
        let thread = self.thread
        self.thread = nil
        condition.broadcast()
        condition.unlock()
        if let thread { pthread_detach(thread) }
    }
}
