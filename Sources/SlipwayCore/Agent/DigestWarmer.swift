internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// Why ``DigestWarmer/start()`` failed.
public enum WarmError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The images could not be planned (the lines are the build's own diagnostics).
    case plan([String])
    case watch(WatchError)

    public var description: String {
        switch self {
        case .plan(let lines): lines.joined(separator: "\n")
        case .watch(let error): error.description
        }
    }
}

/// Keeps the context digests of one worktree's images warm: subscribes to the process's
/// ``FileWatcher`` for the contexts (and the Dockerfiles and ignore files), and after changes
/// settle re-digests the changed contexts in-process with the build's own code
/// (``ContextCache``, the same stat index files), so that ``snapshot()`` can hand a build
/// digests it need not compute.
///
/// It lives in `Agent/`, not `Build/`: it is a subscriber of `Watch/`, which sits above
/// `Build/` (a build never watches).
///
/// **Order of use.** `init` → ``start()`` (watches first, then digests everything on the
/// worker thread) → any number of ``snapshot()`` calls (each one before the agent starts a
/// build: write it with ``WarmSnapshot/write(to:)`` and pass the path in
/// `SLIPWAY_WARM_DIGESTS`) → ``stop()``. A config change (new images, other contexts) needs a
/// new warmer.
///
/// **Threads.** One worker thread waits for the subscription's batches (``WatchSubscription/next(until:)``:
/// no timer while idle; a batch comes after the quiet period, or at the latest after the
/// maximum delay under a steady stream of writes) and digests the contexts whose roots the
/// batch names. A context's entry records the watcher generation read *before* its walk
/// began; an entry is handed out only while that generation is still current, so a change
/// during or after the walk always means "walk".
///
/// `@unchecked Sendable`: every mutable property is guarded by `state`.
public final class DigestWarmer: @unchecked Sendable {
    /// How long events must have stopped before the changed contexts are digested again.
    public let quietPeriod: Double
    public let loaded: LoadedConfig
    private let batching: WatchBatching
    private let notes: @Sendable (String) -> Void

    private struct Context {
        var key: String
        var path: String
        var imageKey: String
        var dockerfileInContext: String?
        var matcher: IgnoreMatcher
        var directoryRoot: Int
        var roots: [Int]
    }

    private let state = NSCondition()
    // Guarded by `state`:
    private var contexts: [Context] = []
    private var contextOfRoot: [Int] = []
    private var subscription: WatchSubscription?
    private var entries: [Int: WarmEntry] = [:]
    /// The first digest of every context is done.
    private var warmedUp = false
    /// The subscription's sequence up to which every change has been digested.
    private var processed: UInt64 = 0
    private var stopping = false
    private var thread: pthread_t?
    /// How many contexts were walked (for tests and measurements).
    private(set) var walks = 0

    /// - Parameters:
    ///   - quietPeriodMilliseconds: how long changes must have stopped before re-digesting.
    ///   - maximumDelayMilliseconds: how long a steady stream of changes may postpone it.
    ///   - notes: log lines (what was re-digested, watch problems); never called with a lock
    ///     of the warmer held, but possibly on its threads or the watcher's.
    public init(
        loaded: LoadedConfig,
        quietPeriodMilliseconds: Int = 200,
        maximumDelayMilliseconds: Int = 2000,
        notes: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.loaded = loaded
        self.quietPeriod = Double(quietPeriodMilliseconds) / 1000
        self.batching = WatchBatching(
            quiet: .milliseconds(quietPeriodMilliseconds),
            maximumDelay: .milliseconds(maximumDelayMilliseconds)
        )
        self.notes = notes
    }

    /// Plans the images, subscribes to their contexts, then starts the worker thread, which
    /// digests every context once.
    public func start() throws(WarmError) {
        let plans: [ImagePlan]
        do { plans = try BuildPlanner.plan(loaded, options: BuildOptions()) } catch {
            throw .plan(error.diagnostics.map(\.description))
        }
        var contexts: [Context] = []
        var roots: [WatchRoot] = []
        var contextOfRoot: [Int] = []
        var byKey: [String: Int] = [:]
        for plan in plans where plan.config.custom == nil && plan.config.rebuildStrategy != .ignoreContextChanges {
            let matcher: IgnoreMatcher
            do {
                (matcher, _) = try IgnoreMatcher.forContext(
                    contextDir: plan.contextPath,
                    dockerfileRelativeToContext: plan.dockerfileInContext
                )
            } catch {
                notes("images.\(plan.key).context: \(error); its context is not kept warm")
                continue
            }
            let key = plan.contextPath + "\u{0}" + matcher.patterns.joined(separator: "\u{0}")
            func add(_ root: WatchRoot, to context: Int) {
                contexts[context].roots.append(roots.count)
                roots.append(root)
                contextOfRoot.append(context)
            }
            let index: Int
            if let known = byKey[key] {
                index = known
            } else {
                index = contexts.count
                byKey[key] = index
                contexts.append(
                    Context(
                        key: key,
                        path: plan.contextPath,
                        imageKey: plan.key,
                        dockerfileInContext: plan.dockerfileInContext,
                        matcher: matcher,
                        directoryRoot: roots.count,
                        roots: []
                    )
                )
                add(.tree(plan.contextPath, filter: matcher), to: index)
                // The ignore files DevSpace's lookup may read: a new one changes the matcher.
                add(.file(joinPath(plan.contextPath, "devspace.dockerignore")), to: index)
                add(.file(joinPath(plan.contextPath, ".dockerignore")), to: index)
            }
            add(.file(plan.dockerfilePath), to: index)
            if let inContext = plan.dockerfileInContext {
                add(.file(joinPath(plan.contextPath, inContext + ".dockerignore")), to: index)
            }
        }
        // Watches first: a change after this is in a batch, a change before it is in the walk.
        let subscription: WatchSubscription
        do {
            subscription = try FileWatcher.shared.subscribe(
                roots,
                skipping: [loaded.directory + "/.devspace"],
                batching: batching,
                notes: notes
            )
        } catch {
            throw .watch(error)
        }
        state.lock()
        self.contexts = contexts
        self.contextOfRoot = contextOfRoot
        self.subscription = subscription
        warmedUp = false
        processed = 0
        stopping = false
        state.unlock()

        let created: pthread_t
        switch startThread({ [self] in workLoop() }) {
        case .success(let thread): created = thread
        case .failure(let error):
            subscription.cancel()
            throw .watch(.threadFailed(reason: error.reason))
        }
        state.lock()
        thread = created
        state.unlock()
    }

    /// Stops the worker and cancels the subscription; ``snapshot()`` is empty afterwards.
    public func stop() {
        state.lock()
        stopping = true
        let thread = self.thread
        self.thread = nil
        let subscription = self.subscription
        state.broadcast()
        state.unlock()
        subscription?.cancel()  // wakes the worker
        if let thread { pthread_join(thread, nil) }
        state.lock()
        entries = [:]
        state.unlock()
    }

    /// The digests that are current now: every event queued so far is handled first, then
    /// each context whose generation has not moved since its digest, and whose roots the
    /// watcher vouches for, is listed.
    public func snapshot() -> WarmSnapshot {
        state.lock()
        let subscription = self.subscription
        state.unlock()
        let states = subscription?.drain() ?? []
        state.lock()
        defer { state.unlock() }
        var current: [WarmEntry] = []
        var stale: [String: String] = [:]
        for (index, context) in contexts.enumerated() where !stopping {
            let roots = context.roots
            guard roots.allSatisfy({ $0 < states.count && !states[$0].unknown }) else {
                stale[context.path] =
                    "the agent's watcher cannot vouch for it (an event queue overflow, or a directory it cannot watch)"
                continue
            }
            guard let entry = entries[index] else {
                stale[context.path] =
                    warmedUp
                    ? "the agent could not digest it (its log says why)" : "the agent is still taking its first digests"
                continue
            }
            guard generation(of: roots, in: states) == entry.generation else {
                stale[context.path] =
                    "changed since the agent's last digest (it digests again after \(Int(quietPeriod * 1000)) ms of quiet)"
                continue
            }
            current.append(entry)
        }
        // Contexts over one directory with other ignore rules: a current entry wins.
        for entry in current { stale[entry.context] = nil }
        return WarmSnapshot(configDirectory: loaded.directory, entries: current, stale: stale.isEmpty ? nil : stale)
    }

    /// Waits until every change seen so far has been digested (or `timeoutSeconds` passed);
    /// true when nothing is left to do. For tests and for an agent that prefers to wait a
    /// moment rather than start a build on a cold digest.
    public func waitUntilSettled(timeoutSeconds: Double) -> Bool {
        state.lock()
        let subscription = self.subscription
        state.unlock()
        guard let subscription else { return false }
        subscription.drain()
        let target = subscription.sequence
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        state.lock()
        defer { state.unlock() }
        while !(warmedUp && processed >= target) && !stopping {
            if !state.wait(until: deadline) { break }
        }
        return warmedUp && processed >= target && !stopping
    }

    /// Feeds an `IN_Q_OVERFLOW` through the watcher's handling (for tests).
    func simulateOverflow() {
        FileWatcher.shared.simulateOverflow()
    }

    private func generation(of roots: [Int], in states: [WatchState]) -> UInt64 {
        roots.reduce(0) { $0 &+ ($1 < states.count ? states[$1].generation : 0) }
    }

    // MARK: The worker thread

    private func workLoop() {
        state.lock()
        let subscription = self.subscription
        let everything = Array(contexts.indices)
        state.unlock()
        guard let subscription else { return }
        digest(everything, subscription: subscription)
        state.lock()
        warmedUp = true
        state.broadcast()
        state.unlock()
        while true {
            guard case .batch(let batch) = subscription.next() else { return }  // cancelled
            state.lock()
            let roots = Set(batch.changes.map(\.root)).union(batch.rescan.keys)
            let dirty = Set(roots.compactMap { $0 < contextOfRoot.count ? contextOfRoot[$0] : nil }).sorted()
            state.unlock()
            if !dirty.isEmpty { digest(dirty, subscription: subscription) }
            state.lock()
            processed = max(processed, batch.sequence)
            state.broadcast()
            state.unlock()
        }
    }

    /// Digests the contexts in `batch` with the build's code and records their entries.
    private func digest(_ batch: [Int], subscription: WatchSubscription) {
        state.lock()
        let contexts = self.contexts
        state.unlock()
        let started = Date()
        // Contexts over the same directory (other ignore files) share its stat index: walk
        // them together, as a build does, so that the saved index serves them all.
        let paths = Set(batch.map { contexts[$0].path })
        let batch = contexts.indices.filter { paths.contains(contexts[$0].path) }
        // Generations first: anything after this read makes the entries stale.
        let before = subscription.drain()
        var work: [(index: Int, generation: UInt64, matcher: IgnoreMatcher)] = []
        for index in batch {
            let context = contexts[index]
            let generation = generation(of: context.roots, in: before)
            let matcher: IgnoreMatcher
            do {
                (matcher, _) = try IgnoreMatcher.forContext(
                    contextDir: context.path,
                    dockerfileRelativeToContext: context.dockerfileInContext
                )
            } catch {
                record(index, nil)
                notes("images.\(context.imageKey).context: \(error); its digest is left to the build")
                continue
            }
            if matcher.patterns != context.matcher.patterns {
                // The ignore rules changed: the watches follow before the walk.
                subscription.setFilter(matcher, forRoot: context.directoryRoot)
                state.lock()
                self.contexts[index].matcher = matcher
                state.unlock()
            }
            work.append((index, generation, matcher))
        }
        // Applies re-watches (new ignore rules, after an overflow) before anything is walked.
        let watched = subscription.drain()

        var cache = ContextCache(configDirectory: loaded.directory)
        // The index files as they were before this digest (see below).
        var indexesBefore: [String: IndexIdentity] = [:]
        for item in work {
            let path = cache.indexPath(for: contexts[item.index].path)
            indexesBefore[path] = IndexIdentity.of(path)
        }
        var done: [(index: Int, entry: WarmEntry)] = []
        for item in work {
            let context = contexts[item.index]
            guard context.roots.allSatisfy({ $0 < watched.count && !watched[$0].unknown }) else {
                record(item.index, nil)  // the watcher cannot vouch for it: builds walk
                continue
            }
            let snapshot: ContextSnapshot
            do {
                snapshot = try cache.snapshot(
                    context.path,
                    matcher: item.matcher,
                    what: "images.\(context.imageKey).context",
                    displayPath: ""
                )
            } catch {
                record(item.index, nil)
                notes("\(error); its digest is left to the build")
                continue
            }
            state.lock()
            walks += 1
            state.unlock()
            done.append(
                (
                    item.index,
                    WarmEntry(
                        context: context.path,
                        ignorePatterns: item.matcher.patterns,
                        digest: snapshot.digest,
                        fileCount: snapshot.fileCount,
                        totalBytes: snapshot.totalBytes,
                        generation: item.generation,
                        index: nil
                    )
                )
            )
        }
        // The index is saved as a build saves it, so that a build that walks anyway only stats.
        cache.saveIndexes { [notes] event in
            if case .note(let text) = event { notes(text) }
        }
        // A snapshot handed to a job before this digest holds only while the index file is the
        // one it saw. A walk that had nothing worth saving (its changed files are within the
        // racy window, or too few) leaves the file as it was: it is touched instead, which
        // moves its ctime, so that such a snapshot no longer applies.
        for (path, before) in indexesBefore where IndexIdentity.of(path) == before {
            _ = utimensat(AT_FDCWD, path, nil, 0)
        }
        for (index, var entry) in done {
            entry.index = IndexIdentity.of(cache.indexPath(for: entry.context))
            record(index, entry)
        }
        // The walk's entries go now (not on a detached thread, as a build lets them go):
        // nothing waits for the warmer, and it is the agent's peak memory.
        cache = ContextCache(configDirectory: loaded.directory)
        if !done.isEmpty {
            let milliseconds = Int(Date().timeIntervalSince(started) * 1000)
            notes("digested \(done.count) context\(done.count == 1 ? "" : "s") in \(milliseconds) ms")
        }
    }

    private func record(_ index: Int, _ entry: WarmEntry?) {
        state.lock()
        entries[index] = entry
        state.unlock()
    }
}

/// Written by the agent only: `AtomicFile` lives in `Build/`, above `Context/`.
extension WarmSnapshot {
    /// Writes the snapshot to `path` atomically (temp file, `fsync`, `rename`).
    public func write(to path: String) throws(AtomicFile.Failure) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do { data = try encoder.encode(self) } catch {
            throw AtomicFile.Failure(message: "cannot encode the warm digests: \(error)")
        }
        if case .failure(let failure) = AtomicFile.write(Array(data), to: path, mode: 0o600) { throw failure }
    }
}
