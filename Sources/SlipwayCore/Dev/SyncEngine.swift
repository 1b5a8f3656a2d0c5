internal import CLinux
internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// Keeps a local directory and a remote tree in step: the initial sync, then local changes
/// uploaded as they happen and the container's changes downloaded, until ``stop()``.
///
/// **Upload.** A ``WatchSubscription`` on the local root (excluded directories are not watched)
/// batches events: 5 ms of quiet for a single save, 150 ms once a batch holds more than 50
/// events, never more than 1 s (``SyncTiming``). While git holds its index lock (the
/// repository's git directory is watched non-recursively, so linked worktrees work), the batch
/// waits for the release, and up to 2 s after it for git to take the lock again, so that a
/// checkout, a merge or a rebase is one batch.
///
/// **Download.** The remote's ``SyncRemote/changes()`` name paths; each is looked up, compared
/// with its record and fetched into a temporary file beside the target, then renamed.
///
/// **Reconnect.** When the remote disconnects, `reconnect` is asked for a new one; the initial
/// sync runs again against it (nothing unchanged is sent). When none comes back, ``run()``
/// throws ``SyncError/remoteGone(name:reason:)``.
///
/// Events go to `events` (from the engine's task and, for `waitingForGit`, from the watcher
/// thread); nothing is printed. The engine owns the remotes it is given and closes them.
///
/// `@unchecked Sendable`: the mutable state (status, the input continuation, the stop flag)
/// is guarded by `lock`; everything else lives in the task that runs ``run()``.
public final class SyncEngine: @unchecked Sendable {
    public let configuration: SyncConfiguration
    private let initialRemote: any SyncRemote
    private let reconnect: @Sendable (SyncRemoteError) async -> (any SyncRemote)?
    private let events: @Sendable (SyncEvent) -> Void

    private let lock = NSLock()
    private var statusValue = SyncStatus()
    private var continuation: AsyncStream<Input>.Continuation?
    private var stopped = false
    private var pump: LocalPump?

    /// Where the inotify watch limit is read (tests point it at a file of their own).
    var watchLimitPath = "/proc/sys/fs/inotify/max_user_watches"

    enum Input: Sendable {
        case local(LocalBatch)
        case remote(generation: Int, paths: [String])
        case remoteEnded(generation: Int, reason: String)
        case saveTick
        case stop
    }

    public init(
        configuration: SyncConfiguration,
        remote: any SyncRemote,
        reconnect: @escaping @Sendable (SyncRemoteError) async -> (any SyncRemote)? = { _ in nil },
        events: @escaping @Sendable (SyncEvent) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.initialRemote = remote
        self.reconnect = reconnect
        self.events = events
    }

    /// The sync's state now (phase, open conflicts, the last batch, totals).
    public var status: SyncStatus {
        lock.withLock { statusValue }
    }

    /// Ends ``run()`` after the batch in progress (safe from any thread, at any time).
    public func stop() {
        lock.lock()
        stopped = true
        let continuation = self.continuation
        let pump = self.pump
        lock.unlock()
        continuation?.yield(.stop)
        pump?.cancel()
    }

    private func publish(_ change: @Sendable (inout SyncStatus) -> Void) {
        lock.withLock { change(&statusValue) }
    }

    /// Runs the sync: the initial sync, then (unless `noWatch`) both directions until
    /// ``stop()``. Throws when the remote is gone for good or cannot be used, or when the local
    /// root cannot be read at start. The work runs on a thread of its own (``SyncExecutor``),
    /// not on Swift's cooperative pool.
    public func run() async throws(SyncError) {
        guard let executor = SyncExecutor.start() else { return try await runHere() }
        defer { executor.shutdown() }
        let result: Result<Void, SyncError> = await withTaskExecutorPreference(executor) {
            do throws(SyncError) {
                try await runHere()
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    private func runHere() async throws(SyncError) {
        let name = configuration.name
        guard let root = LocalTree.realRoot(configuration.localRoot) else {
            throw .localRoot(path: configuration.localRoot, reason: String(cString: strerror(errno)))
        }
        var info = stat()
        guard stat(root, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw .localRoot(path: configuration.localRoot, reason: "not a directory")
        }
        var state = SyncState()
        if let path = configuration.statePath {
            let loaded = SyncState.load(from: path)
            state = loaded.state
            if let problem = loaded.problem { events(.note(problem)) }
        }
        let (inputs, continuation) = AsyncStream<Input>.makeStream()
        let alreadyStopped = lock.withLock {
            self.continuation = continuation
            return stopped
        }
        defer {
            continuation.finish()
            publish { $0.phase = .stopped }
        }
        if alreadyStopped { return }

        let events = self.events
        let session = SyncSession(
            configuration: configuration,
            remote: initialRemote,
            root: root,
            state: state,
            emit: events,
            publish: { [weak self] change in self?.publish(change) }
        )
        session.publishConflicts()

        // Watch before the first scan, so that nothing changed during it is missed.
        let watching = !configuration.noWatch
        var localPump: LocalPump?
        if watching && !configuration.disableUpload {
            do {
                localPump = try LocalPump.start(
                    root: root,
                    configuration: configuration,
                    continuation: continuation,
                    events: events
                )
            } catch {
                throw .watchFailed(name: name, reason: error.description)
            }
        }
        lock.withLock { pump = localPump }
        defer {
            localPump?.cancel()
            localPump?.join()
        }

        let result: Result<Void, SyncError> = await withTaskGroup(of: Void.self) { group in
            var generation = 0
            /// Subscribes to the remote's changes before its manifest is read (so nothing made
            /// in between is missed) and forwards them to the loop.
            func follow(_ remote: any SyncRemote) async throws(SyncRemoteError) {
                guard watching && !configuration.disableDownload else { return }
                let stream = try await remote.changes()
                generation += 1
                let current = generation
                group.addTask {
                    do {
                        for try await paths in stream {
                            continuation.yield(.remote(generation: current, paths: paths))
                        }
                        continuation.yield(.remoteEnded(generation: current, reason: "the change stream ended"))
                    } catch {
                        continuation.yield(.remoteEnded(generation: current, reason: "\(error)"))
                    }
                }
            }

            /// Runs one step; a disconnect is answered by a new remote and a new initial sync.
            func perform(_ step: () async throws(SyncRemoteError) -> Void) async -> SyncError? {
                do {
                    try await step()
                    return nil
                } catch .disconnected(let reason) {
                    return await reconnectAfter(reason)
                } catch {
                    return .remoteFailed(name: name, reason: error.description)
                }
            }

            func reconnectAfter(_ first: String) async -> SyncError? {
                var reason = first
                while true {
                    events(.disconnected(reason: reason))
                    publish { $0.phase = .reconnecting }
                    session.remote.close()
                    guard let next = await reconnect(.disconnected(reason)) else {
                        return .remoteGone(name: name, reason: reason)
                    }
                    session.remote = next
                    do {
                        try await follow(next)
                        events(.reconnected)
                        try await session.initialSync()
                        returnFreedMemory()
                        return nil
                    } catch .disconnected(let again) {
                        reason = again
                    } catch {
                        return .remoteFailed(name: name, reason: error.description)
                    }
                }
            }

            let first = await perform { () async throws(SyncRemoteError) in
                try await follow(session.remote)
                try await session.initialSync()
            }
            returnFreedMemory()
            if let failure = first {
                group.cancelAll()
                return .failure(failure)
            }
            if !watching {
                session.saveState(force: true)
                session.remote.close()
                group.cancelAll()
                return .success(())
            }
            let needed = session.watchedDirectories
            if let limit = Self.watchLimit(at: watchLimitPath), needed > limit {
                events(.watchLimitTooLow(needed: needed, limit: limit, command: Self.watchLimitCommand(needed: needed)))
            }
            events(.watching)
            var saveScheduled = false
            var outcome: Result<Void, SyncError> = .success(())
            loop: for await input in inputs {
                var failure: SyncError?
                switch input {
                case .stop:
                    break loop
                case .local(let batch):
                    failure = await perform { () async throws(SyncRemoteError) in
                        try await session.handleLocal(batch)
                    }
                case .remote(let from, let paths):
                    guard from == generation else { continue }
                    failure = await perform { () async throws(SyncRemoteError) in
                        try await session.handleRemote(paths)
                    }
                case .remoteEnded(let from, let reason):
                    guard from == generation, !isStopped else { continue }
                    failure = await reconnectAfter(reason)
                case .saveTick:
                    saveScheduled = false
                }
                if let failure {
                    outcome = .failure(failure)
                    break loop
                }
                if session.saveState(), !saveScheduled {
                    saveScheduled = true
                    group.addTask {
                        try? await Task.sleep(for: .seconds(1))
                        continuation.yield(.saveTick)
                    }
                }
            }
            session.saveState(force: true)
            session.remote.close()
            group.cancelAll()
            return outcome
        }
        try result.get()
    }

    private var isStopped: Bool {
        lock.withLock { stopped }
    }

    /// `fs.inotify.max_user_watches`, read from `path`.
    static func watchLimit(at path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int(trimSpace(text))
    }

    /// The command that raises the limit for `needed` directories (twice that, at least 524288).
    static func watchLimitCommand(needed: Int) -> String {
        "sudo sysctl -w fs.inotify.max_user_watches=\(max(524_288, needed * 2))"
    }
}

/// The local side's watcher thread: takes batches from the subscription, holds them while git
/// holds its index lock, and hands them to the engine.
final class LocalPump: @unchecked Sendable {
    private let subscription: WatchSubscription
    private let root: String
    private let gitLock: String?
    /// Whether the subscription's third root is the hooks' inbox (``SyncConfiguration/hookInbox``).
    private let waitsForHooks: Bool
    private let timing: SyncTiming
    private let continuation: AsyncStream<SyncEngine.Input>.Continuation
    private let events: @Sendable (SyncEvent) -> Void
    private var thread: pthread_t?
    private let lock = NSLock()

    private init(
        subscription: WatchSubscription,
        root: String,
        gitLock: String?,
        waitsForHooks: Bool,
        timing: SyncTiming,
        continuation: AsyncStream<SyncEngine.Input>.Continuation,
        events: @escaping @Sendable (SyncEvent) -> Void
    ) {
        self.subscription = subscription
        self.root = root
        self.gitLock = gitLock
        self.waitsForHooks = waitsForHooks
        self.timing = timing
        self.continuation = continuation
        self.events = events
    }

    /// Subscribes to the local root (and the git directory, for its index lock) and starts the
    /// thread.
    static func start(
        root: String,
        configuration: SyncConfiguration,
        continuation: AsyncStream<SyncEngine.Input>.Continuation,
        events: @escaping @Sendable (SyncEvent) -> Void
    ) throws(WatchError) -> LocalPump {
        var roots: [WatchRoot] = [.tree(root, filter: configuration.filter.uploadWatchFilter)]
        let gitDirectory = Self.gitDirectory(of: root)
        if let gitDirectory { roots.append(.directory(gitDirectory, filter: IndexLockFilter())) }
        // Root 2: the hooks' inbox, for their checkout and refresh events.
        let waitsForHooks = gitDirectory != nil && configuration.hookInbox != nil
        if waitsForHooks, let inbox = configuration.hookInbox {
            roots.append(.directory(inbox, filter: HookEventFilter()))
        }
        let subscription = try FileWatcher.shared.subscribe(
            roots,
            skipping: configuration.skipping,
            batching: configuration.timing.batching,
            requireRoots: true,
            notes: { events(.note($0)) }
        )
        let pump = LocalPump(
            subscription: subscription,
            root: root,
            gitLock: gitDirectory.map { $0 + "/index.lock" },
            waitsForHooks: waitsForHooks,
            timing: configuration.timing,
            continuation: continuation,
            events: events
        )
        switch startThread({ pump.loop() }) {
        case .success(let thread):
            pump.lock.lock()
            pump.thread = thread
            pump.lock.unlock()
        case .failure(let error):
            subscription.cancel()
            throw .threadFailed(reason: error.reason)
        }
        return pump
    }

    /// The git directory of the work tree holding `root` (for a linked worktree,
    /// `.git/worktrees/NAME`): where git puts `index.lock`.
    static func gitDirectory(of root: String) -> String? {
        guard let repository = try? GitRepository.discover(from: root), repository.workdir != nil else { return nil }
        return repository.gitDir
    }

    func cancel() { subscription.cancel() }

    func join() {
        lock.lock()
        let thread = self.thread
        self.thread = nil
        lock.unlock()
        if let thread { pthread_join(thread, nil) }
    }

    private var lockHeld: Bool {
        guard let gitLock else { return false }
        return access(gitLock, F_OK) == 0
    }

    private enum Hold {
        case none
        /// git holds its lock (since when the batch waits).
        case locked(since: ContinuousClock.Instant)
        /// git released it; the batch waits for quiet, or for git to take it again.
        case released(at: ContinuousClock.Instant, lastActivity: ContinuousClock.Instant)
        /// A file was written but not closed yet (a large file being copied): the batch waits
        /// for its close, a burst's quiet, or the maximum delay, so that it is not sent half
        /// written and then again.
        case writing(lastActivity: ContinuousClock.Instant)
    }

    private func loop() {
        var rootGone = false
        var pending = Pending()
        var hold = Hold.none
        var heldSince: ContinuousClock.Instant?
        var staleLock = false
        var drainedAfterGit = false
        // Since git let go of its lock: whether the hooks' event came (or is not waited for).
        var hookEventSeen = !waitsForHooks
        let hookWait = Duration.seconds(2)
        let window = Duration.milliseconds(timing.gitReleaseMilliseconds)
        let limit = Duration.milliseconds(timing.gitLockLimitMilliseconds)
        let quiet = Duration.milliseconds(timing.burstMilliseconds)
        let maximum = Duration.milliseconds(timing.maximumDelayMilliseconds)
        while true {
            let now = ContinuousClock.now
            let deadline: ContinuousClock.Instant?
            switch hold {
            case .locked(let since):
                // The release is an event of the git directory; the poll covers a missed one.
                deadline = min(since + limit, now + .milliseconds(250))
            case .released(let at, let last):
                deadline = hookEventSeen ? min(at + window, last + quiet) : at + hookWait
            case .writing(let last):
                deadline = min(last + quiet, (pending.firstEvent ?? last) + maximum)
            case .none:
                // While the root is gone nothing can be watched: every second the watcher is
                // asked to watch it again (it then reports the root for a rescan).
                deadline = rootGone ? now + .seconds(1) : nil
            }
            var flush = false
            switch subscription.next(until: deadline) {
            case .cancelled:
                return
            case .batch(let batch):
                pending.merge(batch)
                if waitsForHooks && batch.changes.contains(where: { $0.root == 2 }) { hookEventSeen = true }
                rootGone = access(root, F_OK) != 0
                let held = lockHeld
                if !held { staleLock = false }
                if held && !staleLock {
                    if case .locked = hold {
                    } else {
                        hold = .locked(since: .now)
                        if heldSince == nil {
                            heldSince = .now
                            events(.waitingForGit)
                        }
                    }
                    continue
                }
                // After a release the batch waits for a burst's quiet since the last event (the
                // subscription's own quiet counts), so that a rebase's next step joins it.
                switch hold {
                case .locked:
                    hold = .released(at: .now, lastActivity: batch.lastEvent)
                case .released(let at, _) where !hookEventSeen:
                    if ContinuousClock.now >= at + hookWait {
                        flush = true
                    } else {
                        hold = .released(at: at, lastActivity: batch.lastEvent)
                    }
                case .released(let at, _):
                    if ContinuousClock.now >= at + window {
                        flush = true
                    } else {
                        hold = .released(at: at, lastActivity: batch.lastEvent)
                    }
                case .none, .writing:
                    if pending.hasOpenWrite, let first = pending.firstEvent, ContinuousClock.now < first + maximum {
                        // What is complete goes now; files still being written wait.
                        send(pending.takeReady(), waitedForGit: nil)
                        hold = .writing(lastActivity: batch.lastEvent)
                    } else {
                        flush = true
                    }
                }
            case .timedOut:
                switch hold {
                case .locked(let since):
                    if lockHeld {
                        guard ContinuousClock.now >= since + limit else { continue }
                        staleLock = true
                        events(.gitLockStale(path: gitLock ?? "index.lock", heldFor: ContinuousClock.now - since))
                        flush = true
                    } else {
                        hold = .released(at: .now, lastActivity: .now)
                    }
                case .released(let at, _) where !hookEventSeen:
                    if ContinuousClock.now >= at + hookWait { flush = true }
                case .released, .writing:
                    flush = true
                case .none:
                    if rootGone {
                        rootGone = access(root, F_OK) != 0
                        if !rootGone { subscription.drain() }
                    }
                }
            }
            guard flush else { continue }
            if heldSince != nil && !drainedAfterGit {
                // On a busy machine the watcher's reader can be seconds behind the kernel's
                // queue: what git wrote before it let go of its lock may not have been read yet.
                // Everything queued is taken in first, so that a checkout stays one batch.
                drainedAfterGit = true
                subscription.drain()
                if subscription.hasPending {
                    hold = .released(at: .now, lastActivity: .now)
                    continue
                }
            }
            send(pending, waitedForGit: heldSince.map { ContinuousClock.now - $0 })
            pending = Pending()
            hold = .none
            heldSince = nil
            drainedAfterGit = false
            hookEventSeen = !waitsForHooks
        }
    }

    private func send(_ pending: Pending, waitedForGit: Duration?) {
        guard let first = pending.firstEvent, !pending.isEmpty else { return }
        continuation.yield(
            .local(
                LocalBatch(
                    changes: pending.changes,
                    rescan: pending.rescan,
                    firstEvent: first,
                    waitedForGit: waitedForGit
                )
            )
        )
    }

    /// Watcher batches gathered while git works.
    private struct Pending {
        var order: [String] = []
        var byPath: [String: PathChange] = [:]
        var rescan: RescanReason?
        var firstEvent: ContinuousClock.Instant?

        var changes: [PathChange] { order.compactMap { byPath[$0] } }
        var isEmpty: Bool { order.isEmpty && rescan == nil }
        /// Whether a file was written and not closed since.
        var hasOpenWrite: Bool { byPath.values.contains(where: Self.isOpenWrite) }

        static func isOpenWrite(_ change: PathChange) -> Bool {
            !change.isDirectory && change.kinds.contains(.modified) && !change.kinds.contains(.closedAfterWrite)
                && change.kinds.isDisjoint(with: [.deleted, .movedFrom])
        }

        /// Takes out everything but the files still being written (and the rescan), as a batch
        /// of its own; what stays keeps its first event's time.
        mutating func takeReady() -> Pending {
            var ready = Pending()
            ready.firstEvent = firstEvent
            ready.rescan = rescan
            rescan = nil
            var open: [String] = []
            for path in order {
                guard let change = byPath[path] else { continue }
                if Self.isOpenWrite(change) {
                    open.append(path)
                } else {
                    ready.order.append(path)
                    ready.byPath[path] = change
                    byPath[path] = nil
                }
            }
            order = open
            return ready
        }

        mutating func merge(_ batch: WatchBatch) {
            if firstEvent == nil { firstEvent = batch.firstEvent }
            for change in batch.changes {
                if change.root != 0 { continue }  // git's index.lock, the hooks' inbox: only wake-ups
                if var existing = byPath[change.path] {
                    existing.kinds.formUnion(change.kinds)
                    existing.isDirectory = change.isDirectory
                    if change.renamedFrom != nil { existing.renamedFrom = change.renamedFrom }
                    byPath[change.path] = existing
                } else {
                    order.append(change.path)
                    byPath[change.path] = change
                }
            }
            if let reason = batch.rescan[0], rescan == nil || rescan == .watchedAgain { rescan = reason }
        }
    }
}

/// The hooks' inbox filter: only their `checkout.*` and `refresh.*` event files.
struct HookEventFilter: WatchFilter {
    func isExcluded(_ relativePath: String, isDirectory: Bool) -> Bool {
        isDirectory || !(relativePath.hasPrefix("checkout.") || relativePath.hasPrefix("refresh."))
    }
    func mayIncludeBelow(_ relativePath: String) -> Bool { false }
}

/// The git directory's filter: only `index.lock` is reported.
struct IndexLockFilter: WatchFilter {
    func isExcluded(_ relativePath: String, isDirectory: Bool) -> Bool { relativePath != "index.lock" }
    func mayIncludeBelow(_ relativePath: String) -> Bool { false }
}

/// Gives the heap the initial sync freed back to the system. Its comparison holds the local
/// walk, the remote's manifest and the set of every path at once (about 10 MB for 20,000 files)
/// and frees them when it ends, but glibc keeps freed memory in its arenas: without this a sync
/// watching 20,000 files stays at the comparison's peak (52 MB resident instead of 42,
/// bench/sync-scale).
private func returnFreedMemory() {
    _ = malloc_trim(0)
}
