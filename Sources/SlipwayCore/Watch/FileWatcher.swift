internal import CInotifyTools
internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// The process's one inotify owner (libinotifytools keeps its state in globals: one per
/// process). Every part of slipway that watches files subscribes to ``shared``: the digest
/// warmer (build contexts), the agent's inbox, and dev sessions. Each subscription has its own
/// roots, filters and batching (``WatchSubscription``); roots may overlap, and a directory
/// watched for several subscriptions has one inotify watch.
///
/// **Threads.** One reader thread blocks in `inotifytools_next_event(-1)` (no CPU while
/// nothing happens) and handles each event under the watcher's lock: the subscriptions whose
/// roots it touches get the changed path in their batch, and directories that appear are
/// watched before the lock is released. It is the only thread that calls libinotifytools
/// between start and stop (the library buffers events in globals and is not thread-safe).
/// Watches are added with `inotify_add_watch` on the library's descriptor, under the lock:
/// libinotifytools does not export its descriptor, and its path → watch table keeps the record
/// of a deleted directory, so that a directory made again under the same name would be looked
/// up with the dead watch. The watcher starts with its first subscription and stops (thread
/// joined, descriptor closed) when the last one is cancelled.
///
/// **`drain()` without racing the reader.** inotify has one queue per instance, in the order
/// the events happened. A drain creates a uniquely named entry in a private, watched
/// directory and waits until the reader has handled its `IN_CREATE`: every event queued
/// before that call has then been handled too (and its log lines written). Roots that need watching again (after an
/// overflow, a failed watch, new filter rules) are watched again then.
///
/// **Events.** `IN_CREATE`, `IN_MODIFY` and `IN_CLOSE_WRITE` (a file being written has
/// changed before it is closed), `IN_ATTRIB` (modes), `IN_DELETE`, `IN_MOVED_FROM`/`IN_MOVED_TO`
/// (editors save by rename; paired by cookie into ``PathChange/renamedFrom``), and for the
/// watched directories themselves `IN_DELETE_SELF`/`IN_MOVE_SELF`. A directory that appears in
/// a tree is watched first and listed second, and what the listing finds is reported as
/// created: nothing made in it before its watch existed is missed. An `IN_Q_OVERFLOW` reaches
/// every subscription as a rescan of every root.
///
/// **Not seen by inotify** (as for every inotify watcher): writes through `mmap`, writes to a
/// hard link made outside the watched tree, changes made by another machine on a network
/// filesystem, and a root that moves because a directory above it, which nobody watches, was
/// renamed.
///
/// `@unchecked Sendable`: every mutable property is guarded by `condition`, except that
/// `lifecycle` serialises starting and stopping with subscribing and cancelling (and is never
/// taken by the reader).
public final class FileWatcher: @unchecked Sendable {
    /// The one watcher of this process.
    public static let shared = FileWatcher()

    /// The events watched for (the same for every subscription: one watch per directory).
    static let eventMask: UInt32 =
        UInt32(IN_MODIFY) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_ATTRIB) | UInt32(IN_CREATE) | UInt32(IN_DELETE)
        | UInt32(IN_MOVED_FROM) | UInt32(IN_MOVED_TO) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)
        | UInt32(IN_ONLYDIR) | UInt32(IN_DONT_FOLLOW)

    /// How long a drain waits for the reader before it gives up and reports every root
    /// unknown (a reader stuck that long means something is badly wrong; scanning is safe).
    static let drainTimeoutSeconds: TimeInterval = 30

    /// How many unpaired `IN_MOVED_FROM`s are remembered for pairing (the kernel queues the two
    /// halves of a rename next to each other; this only bounds memory).
    static let pendingMoveLimit = 64

    private let lifecycle = NSLock()
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var subscribers: [Int: Subscriber] = [:]
    private var nextID = 1
    private var directories: [Int32: Watched] = [:]
    private var pendingMoves: [(cookie: UInt32, path: String, isDirectory: Bool)] = []
    private var requested: UInt64 = 0
    private var handled: UInt64 = 0
    /// Drain tickets the reader has reached, published to `handled` once the notes of the
    /// events before them were delivered (a drain returns after them).
    private var reached: UInt64 = 0
    private var running = false
    private var stopping = false
    private var readerDied = false
    /// How many times the watcher started (names each start's marker).
    private var starts = 0
    /// The name of this start's marker entry, and whether the reader has seen it yet.
    private var marker = ""
    private var markerSeen = false
    private var sentinelWD: Int32 = -1
    private var inotifyFD: Int32 = -1
    private var sentinelDirectory = ""
    private var thread: pthread_t?
    /// Log lines gathered under the lock, written after it is released.
    private var notes: [(note: @Sendable (String) -> Void, line: String)] = []

    /// A root of a subscription.
    struct RootKey: Hashable {
        var subscriber: Int
        var root: Int
    }

    /// A watched directory: the tree and directory roots it belongs to, the file roots it holds.
    private struct Watched {
        var path: String
        var roots: Set<RootKey> = []
        var files: [String: [RootKey]] = [:]
    }

    /// A subscription's watch state (under `condition`).
    private final class Subscriber {
        let subscription: WatchSubscription
        let roots: [WatchRoot]
        let skipped: Set<String>
        let note: @Sendable (String) -> Void
        var filters: [(any WatchFilter)?]
        var generations: [UInt64]
        var unknown: [Bool]
        var needsRewatch: Set<Int> = []

        init(subscription: WatchSubscription, skipped: Set<String>, note: @escaping @Sendable (String) -> Void) {
            self.subscription = subscription
            self.roots = subscription.roots
            self.skipped = skipped
            self.note = note
            filters = roots.map(\.filter)
            generations = Array(repeating: 0, count: roots.count)
            unknown = Array(repeating: true, count: roots.count)
        }
    }

    init() {}

    // MARK: Subscribing

    /// Watches `roots` for a new subscriber (starting the watcher if it is not running): the
    /// calling thread adds the watches (about 2 µs per directory plus a `readdir` of each).
    /// Changes made before this returns may or may not be reported: a subscriber scans after
    /// subscribing, not before.
    /// A root that cannot be watched is unknown in ``WatchSubscription/states`` and the first
    /// batch asks for its rescan; it is tried again at each drain.
    ///
    /// - Parameters:
    ///   - skipping: absolute paths of directories trees never enter (slipway's own
    ///     `<config dir>/.devspace`); `.git` directories are never entered by trees either.
    ///   - requireRoots: throw ``WatchError/cannotWatch(path:reason:)`` when a root cannot be
    ///     watched (else it stays unknown and is tried again at each drain).
    ///   - notes: log lines (watch failures, overflows), called on the calling thread or the
    ///     watcher's, never with a lock held; they must not cancel a subscription.
    public func subscribe(
        _ roots: [WatchRoot],
        skipping: [String] = [],
        batching: WatchBatching = WatchBatching(),
        requireRoots: Bool = false,
        notes: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(WatchError) -> WatchSubscription {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        try startIfNeeded()
        condition.lock()
        let id = nextID
        nextID += 1
        let subscription = WatchSubscription(id: id, roots: roots.map(\.normalized), batching: batching, watcher: self)
        let subscriber = Subscriber(subscription: subscription, skipped: Set(skipping), note: notes)
        subscribers[id] = subscriber
        var failure: WatchError?
        for root in subscriber.roots.indices {
            let key = RootKey(subscriber: id, root: root)
            guard case .failure(let problem) = watch(key) else { continue }
            if requireRoots, failure == nil {
                failure = .cannotWatch(path: subscriber.roots[root].path, reason: problem.reason)
            }
            // Never only a state: the first batch says it too.
            subscription.addRescan(root, problem.blind ? .unwatchedDirectory : .watchFailed)
        }
        if failure != nil { detachAll(id) }
        let lines = takeNotes()
        condition.unlock()
        for (note, line) in lines { note(line) }
        if let failure {
            subscription.close()
            stopIfUnused()
            throw failure
        }
        return subscription
    }

    /// Removes a subscription's watches (those no other subscription uses); the last one stops
    /// the watcher.
    func remove(_ subscription: WatchSubscription) {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        condition.lock()
        if subscribers[subscription.id] != nil { detachAll(subscription.id) }
        condition.unlock()
        stopIfUnused()
    }

    /// With `lifecycle` held.
    private func detachAll(_ id: Int) {
        for (wd, var directory) in directories
        where directory.roots.contains(where: { $0.subscriber == id })
            || directory.files.values.contains(where: { $0.contains { $0.subscriber == id } })
        {
            directory.roots = directory.roots.filter { $0.subscriber != id }
            directory.files = directory.files.compactMapValues { keys in
                let left = keys.filter { $0.subscriber != id }
                return left.isEmpty ? nil : left
            }
            directories[wd] = directory
            dropIfUnused(wd)
        }
        subscribers[id] = nil
    }

    // MARK: Starting and stopping (with `lifecycle` held)

    private func startIfNeeded() throws(WatchError) {
        condition.lock()
        let alive = running && !readerDied
        let died = readerDied
        condition.unlock()
        if alive { return }
        if died { stop() }

        let before = Self.inotifyDescriptors()
        guard inotifytools_initialize() != 0 else {
            throw .inotifyUnavailable(reason: String(cString: strerror(inotifytools_error())))
        }
        // The one inotify instance that appeared with `inotifytools_initialize` (see above).
        let appeared = Self.inotifyDescriptors().subtracting(before)
        guard appeared.count == 1, let descriptor = appeared.first else {
            inotifytools_cleanup()
            throw .inotifyUnavailable(
                reason: "cannot tell libinotifytools' descriptor from \(appeared.count) new inotify instances"
            )
        }
        // Named for this process (TempFiles): an agent that starts after a crash removes it.
        let sentinel: String
        switch TempFiles.makeDirectory(kind: "watch") {
        case .success(let made): sentinel = made
        case .failure(let failure):
            inotifytools_cleanup()
            throw .inotifyUnavailable(reason: failure.message)
        }

        condition.lock()
        inotifyFD = descriptor
        sentinelDirectory = sentinel
        directories = [:]
        pendingMoves = []
        guard case .success(let wd) = addWatch(sentinel) else {
            condition.unlock()
            rmdir(sentinel)
            inotifytools_cleanup()
            throw .inotifyUnavailable(reason: "cannot watch \(sentinel)")
        }
        sentinelWD = wd
        // libinotifytools keeps events it has read but not returned in static variables of
        // `inotifytools_next_events`, which `inotifytools_cleanup` cannot reset: after a
        // restart it first returns the previous instance's leftovers, whose watch descriptors
        // now name other directories. The reader ignores everything before this start's
        // marker, made before any subscriber's watch exists.
        starts += 1
        marker = "m\(starts)"
        markerSeen = false
        if symlink(".", sentinel + "/" + marker) == 0 {
            unlink(sentinel + "/" + marker)
        } else {
            markerSeen = true  // cannot happen in our own 0700 directory; better stale than deaf
        }
        running = true
        stopping = false
        readerDied = false
        condition.unlock()

        let created: pthread_t
        switch startThread({ [self] in readLoop() }) {
        case .success(let thread): created = thread
        case .failure(let error):
            condition.lock()
            running = false
            condition.unlock()
            inotifytools_cleanup()
            rmdir(sentinel)
            throw .threadFailed(reason: error.reason)
        }
        condition.lock()
        thread = created
        condition.unlock()
    }

    private func stopIfUnused() {
        condition.lock()
        let unused = subscribers.isEmpty && (running || readerDied)
        condition.unlock()
        if unused { stop() }
    }

    /// Stops the reader thread and closes the inotify instance; subscriptions left are closed.
    private func stop() {
        condition.lock()
        guard running || readerDied else {
            condition.unlock()
            return
        }
        stopping = true
        let thread = self.thread
        self.thread = nil
        condition.unlock()
        poke()
        if let thread, pthread_equal(thread, pthread_self()) == 0 { pthread_join(thread, nil) }
        inotifytools_cleanup()
        condition.lock()
        running = false
        readerDied = false
        stopping = false
        directories = [:]
        inotifyFD = -1
        sentinelWD = -1
        let left = subscribers.values.map(\.subscription)
        subscribers = [:]
        let sentinel = sentinelDirectory
        condition.broadcast()
        condition.unlock()
        for subscription in left { subscription.close() }
        rmdir(sentinel)
    }

    /// Wakes the reader with an event in the private directory.
    private func poke() {
        condition.lock()
        let name = sentinelDirectory + "/stop"
        condition.unlock()
        if symlink(".", name) == 0 { unlink(name) }
    }

    // MARK: Draining and state

    func drain(_ subscription: WatchSubscription) -> [WatchState] {
        condition.lock()
        guard running, !stopping, subscribers[subscription.id] != nil else {
            let states = states(subscription.id, count: subscription.roots.count, allUnknown: true)
            condition.unlock()
            return states
        }
        requested += 1
        let ticket = requested
        let name = sentinelDirectory + "/s\(ticket)"
        // A symbolic link: one IN_CREATE, one IN_DELETE, no data written.
        guard symlink(".", name) == 0 else {
            let line =
                "cannot signal the watcher thread (\(String(cString: strerror(errno)))); treating every root as unknown"
            let note = subscribers[subscription.id]?.note
            let states = states(subscription.id, count: subscription.roots.count, allUnknown: true)
            condition.unlock()
            note?(line)
            return states
        }
        unlink(name)
        let deadline = Date(timeIntervalSinceNow: Self.drainTimeoutSeconds)
        while handled < ticket && running && !stopping {
            if !condition.wait(until: deadline) { break }
        }
        let states = states(subscription.id, count: subscription.roots.count, allUnknown: handled < ticket)
        condition.unlock()
        return states
    }

    func states(of subscription: WatchSubscription) -> [WatchState] {
        condition.lock()
        defer { condition.unlock() }
        return states(subscription.id, count: subscription.roots.count, allUnknown: !running || readerDied)
    }

    private func states(_ id: Int, count: Int, allUnknown: Bool) -> [WatchState] {
        guard let subscriber = subscribers[id] else {
            return Array(repeating: WatchState(generation: 0, unknown: true), count: count)
        }
        return subscriber.roots.indices.map {
            WatchState(generation: subscriber.generations[$0], unknown: allUnknown || subscriber.unknown[$0])
        }
    }

    func setFilter(_ filter: (any WatchFilter)?, forRoot root: Int, of subscription: WatchSubscription) {
        condition.lock()
        if let subscriber = subscribers[subscription.id], root < subscriber.filters.count {
            subscriber.filters[root] = filter
            subscriber.needsRewatch.insert(root)
        }
        condition.unlock()
    }

    /// Handles an `IN_Q_OVERFLOW` as if inotify had reported one (for tests: a real overflow
    /// needs more than `max_queued_events` events while the reader is held up).
    func simulateOverflow() {
        condition.lock()
        handleOverflow()
        let lines = takeNotes()
        condition.unlock()
        for (note, line) in lines { note(line) }
        condition.lock()
        publishReached()
        condition.unlock()
    }

    /// Runs `body` while the reader cannot handle events (for tests: a real overflow needs the
    /// reader held up while more than `max_queued_events` events are queued).
    func holdingReader(_ body: () -> Void) {
        condition.lock()
        body()
        condition.unlock()
    }

    /// The number of directories watched, the private one included (for measurements).
    var watchedDirectoryCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return directories.count
    }

    /// Whether the reader thread runs (for tests: it stops with the last subscription).
    var isRunning: Bool {
        condition.lock()
        defer { condition.unlock() }
        return running
    }

    // MARK: The reader thread

    private func readLoop() {
        while true {
            condition.lock()
            let done = stopping
            condition.unlock()
            if done { return }
            guard let event = inotifytools_next_event(-1) else {
                let code = inotifytools_error()
                if code == EINTR || code == 0 { continue }
                condition.lock()
                for subscriber in subscribers.values {
                    for root in subscriber.roots.indices {
                        markUnknown(RootKey(subscriber: subscriber.subscription.id, root: root), .watchFailed)
                    }
                    notes.append(
                        (
                            subscriber.note,
                            "inotify read failed (\(String(cString: strerror(code)))); every root is unknown until the watcher restarts"
                        )
                    )
                }
                readerDied = true
                running = false
                condition.broadcast()
                let lines = takeNotes()
                condition.unlock()
                for (note, line) in lines { note(line) }
                return
            }
            let wd = event.pointee.wd
            let mask = event.pointee.mask
            let cookie = event.pointee.cookie
            var name = ""
            if event.pointee.len > 0 {
                // The name follows the fixed part of the event, NUL-padded.
                let raw = UnsafeRawPointer(event).advanced(by: MemoryLayout<inotify_event>.size)
                name = String(cString: raw.assumingMemoryBound(to: CChar.self))
            }
            condition.lock()
            handle(wd: wd, mask: mask, cookie: cookie, name: name)
            let lines = takeNotes()
            if lines.isEmpty { publishReached() }
            condition.unlock()
            if lines.isEmpty { continue }
            for (note, line) in lines { note(line) }
            condition.lock()
            publishReached()
            condition.unlock()
        }
    }

    /// Releases the drains whose ticket the reader has reached.
    private func publishReached() {
        guard reached > handled else { return }
        handled = reached
        condition.broadcast()
    }

    private func takeNotes() -> [(note: @Sendable (String) -> Void, line: String)] {
        defer { notes = [] }
        return notes
    }

    /// Hands one event to the subscriptions it concerns.
    private func handle(wd: Int32, mask: UInt32, cookie: UInt32, name: String) {
        if !markerSeen {
            // Left over from the previous inotify instance (see `startIfNeeded`).
            if wd == sentinelWD && mask & UInt32(IN_CREATE) != 0 && name == marker { markerSeen = true }
            return
        }
        if mask & UInt32(IN_Q_OVERFLOW) != 0 { return handleOverflow() }
        if wd == sentinelWD {
            if mask & UInt32(IN_CREATE) != 0, name.hasPrefix("s"), let ticket = UInt64(name.dropFirst()) {
                rewatchPending()
                reached = max(reached, ticket)
            }
            return
        }
        guard let directory = directories[wd] else { return }  // a watch already removed
        if mask & UInt32(IN_IGNORED) != 0 {
            // The kernel dropped the watch (its directory is gone, or unmounted).
            directories[wd] = nil
            for key in directory.roots where rootPath(key) == directory.path { markUnknown(key, .rootRemoved) }
            for keys in directory.files.values { for key in keys { markUnknown(key, .rootRemoved) } }
            return
        }
        if mask & (UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_UNMOUNT)) != 0 {
            // The directory itself went away. Roots it was the top of (and file roots in it)
            // are reported gone and watched again at the next drain; for directories below a
            // root, the parent's event says it.
            let kinds: ChangeKinds = mask & UInt32(IN_MOVE_SELF) != 0 ? .movedFrom : .deleted
            var gone: [RootKey] = []
            for key in directory.roots where rootPath(key) == directory.path {
                report(key, PathChange(root: key.root, path: "", kinds: kinds, isDirectory: true))
                gone.append(key)
            }
            for keys in directory.files.values {
                for key in keys {
                    report(key, PathChange(root: key.root, path: "", kinds: .deleted, isDirectory: false))
                    gone.append(key)
                }
            }
            for key in gone {
                markUnknown(key, .rootRemoved)
                detach(key)
            }
            return
        }
        guard !name.isEmpty else { return }
        let isDirectory = mask & UInt32(IN_ISDIR) != 0
        let kinds = Self.kinds(mask)
        let child = directory.path == "/" ? "/" + name : directory.path + "/" + name
        let from = mask & UInt32(IN_MOVED_TO) != 0 && cookie != 0 ? takeMove(cookie) : nil

        if let keys = directory.files[name] {
            for key in keys {
                report(key, PathChange(root: key.root, path: "", kinds: kinds, isDirectory: isDirectory))
            }
        }
        for key in directory.roots {
            guard let subscriber = subscribers[key.subscriber] else { continue }
            let spec = subscriber.roots[key.root]
            if spec.kind == .directory && spec.path != directory.path { continue }
            let relative = relativePath(of: child, in: spec.path)
            if spec.kind == .tree && isDirectory && (name == ".git" || subscriber.skipped.contains(child)) {
                // Never entered: fine if the filter leaves it out, else the root is unknown.
                if !prunes(subscriber, key.root, relative) { markUnknown(key, .unwatchedDirectory) }
                continue
            }
            if excludes(subscriber, key.root, relative, isDirectory: isDirectory) { continue }
            var change = PathChange(root: key.root, path: relative, kinds: kinds, isDirectory: isDirectory)
            if let from, from.isDirectory == isDirectory,
                let old = relativeInside(from.path, key: key, subscriber: subscriber, isDirectory: isDirectory)
            {
                change.renamedFrom = old
            }
            report(key, change)
            if spec.kind == .tree && isDirectory && mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0 {
                // Watched first, listed second; what the listing finds is reported as created.
                let (complete, blind, _) = watchTree(key, top: child, relative: relative, reporting: true)
                if !complete { markUnknown(key, .watchFailed) } else if blind { markUnknown(key, .unwatchedDirectory) }
            }
        }
        if mask & UInt32(IN_MOVED_FROM) != 0 {
            if cookie != 0 {
                pendingMoves.append((cookie, child, isDirectory))
                if pendingMoves.count > Self.pendingMoveLimit { pendingMoves.removeFirst() }
            }
            if isDirectory { unwatchTree(child) }
        }
    }

    private static func kinds(_ mask: UInt32) -> ChangeKinds {
        var kinds: ChangeKinds = []
        if mask & UInt32(IN_CREATE) != 0 { kinds.insert(.created) }
        if mask & UInt32(IN_MODIFY) != 0 { kinds.insert(.modified) }
        if mask & UInt32(IN_CLOSE_WRITE) != 0 { kinds.insert(.closedAfterWrite) }
        if mask & UInt32(IN_ATTRIB) != 0 { kinds.insert(.attributes) }
        if mask & UInt32(IN_DELETE) != 0 { kinds.insert(.deleted) }
        if mask & UInt32(IN_MOVED_FROM) != 0 { kinds.insert(.movedFrom) }
        if mask & UInt32(IN_MOVED_TO) != 0 { kinds.insert(.movedTo) }
        return kinds
    }

    private func takeMove(_ cookie: UInt32) -> (cookie: UInt32, path: String, isDirectory: Bool)? {
        guard let index = pendingMoves.lastIndex(where: { $0.cookie == cookie }) else { return nil }
        return pendingMoves.remove(at: index)
    }

    /// `path` relative to `key`'s root when the root covers it and its filter reports it.
    private func relativeInside(_ path: String, key: RootKey, subscriber: Subscriber, isDirectory: Bool) -> String? {
        let spec = subscriber.roots[key.root]
        let parent = (path as NSString).deletingLastPathComponent
        switch spec.kind {
        case .file: return nil
        case .directory: guard parent == spec.path else { return nil }
        case .tree: guard spec.path == "/" || path.hasPrefix(spec.path + "/") else { return nil }
        }
        let relative = relativePath(of: path, in: spec.path)
        return excludes(subscriber, key.root, relative, isDirectory: isDirectory) ? nil : relative
    }

    private func handleOverflow() {
        for subscriber in subscribers.values {
            notes.append((subscriber.note, "inotify's event queue overflowed; every watched root is scanned again"))
            for root in subscriber.roots.indices {
                markUnknown(RootKey(subscriber: subscriber.subscription.id, root: root), .overflow)
            }
        }
        pendingMoves = []
        reached = max(reached, requested)  // a drain's own event may have been dropped
    }

    private func report(_ key: RootKey, _ change: PathChange) {
        guard let subscriber = subscribers[key.subscriber] else { return }
        subscriber.generations[key.root] &+= 1
        subscriber.subscription.add(change)
    }

    private func markUnknown(_ key: RootKey, _ reason: RescanReason) {
        guard let subscriber = subscribers[key.subscriber] else { return }
        subscriber.unknown[key.root] = true
        subscriber.needsRewatch.insert(key.root)
        subscriber.generations[key.root] &+= 1
        subscriber.subscription.addRescan(key.root, reason)
    }

    /// Watches again the roots that need it; those known again are reported for a rescan.
    private func rewatchPending() {
        for subscriber in subscribers.values where !subscriber.needsRewatch.isEmpty {
            let pending = subscriber.needsRewatch.sorted()
            subscriber.needsRewatch = []
            for root in pending {
                let key = RootKey(subscriber: subscriber.subscription.id, root: root)
                if case .success = watch(key) { subscriber.subscription.addRescan(root, .watchedAgain) }
            }
        }
    }

    // MARK: Watching

    private func rootPath(_ key: RootKey) -> String? {
        subscribers[key.subscriber].map { $0.roots[key.root].path }
    }

    private func relativePath(of path: String, in top: String) -> String {
        if path == top { return "" }
        return String(path.dropFirst(top == "/" ? 1 : top.count + 1))
    }

    /// Whether the root's filter leaves `relative` out.
    private func excludes(_ subscriber: Subscriber, _ root: Int, _ relative: String, isDirectory: Bool) -> Bool {
        guard !relative.isEmpty, let filter = subscriber.filters[root] else { return false }
        return filter.isExcluded(relative, isDirectory: isDirectory)
            && (!isDirectory || !filter.mayIncludeBelow(relative))
    }

    /// Whether directory `relative` is left out with nothing included below it.
    private func prunes(_ subscriber: Subscriber, _ root: Int, _ relative: String) -> Bool {
        excludes(subscriber, root, relative, isDirectory: true)
    }

    /// (Re)watches a root. Success: it is known. Failure (the reason): it stays unknown and is
    /// tried again at each drain, unless it is only blind (`.git` included by the filter),
    /// which waits for a new filter.
    private func watch(_ key: RootKey) -> Result<Void, WatchFailure> {
        guard let subscriber = subscribers[key.subscriber] else {
            return .failure(WatchFailure("no such subscription"))
        }
        let spec = subscriber.roots[key.root]
        var result: Result<Void, WatchFailure> = .success(())
        switch spec.kind {
        case .tree:
            let (complete, blind, visited) = watchTree(key, top: spec.path, relative: "", reporting: false)
            if !complete {
                subscriber.needsRewatch.insert(key.root)
                result = .failure(
                    WatchFailure(
                        access(spec.path, F_OK) == 0 ? "a directory could not be watched" : "it does not exist"
                    )
                )
            } else if blind {
                result = .failure(WatchFailure("a .git directory the filter includes is not watched", blind: true))
            }
            // Directories the root no longer covers (new filter rules, moved) stop counting for it.
            for (wd, var directory) in directories where directory.roots.contains(key) && !visited.contains(wd) {
                directory.roots.remove(key)
                directories[wd] = directory
                dropIfUnused(wd)
            }
        case .directory:
            detach(key)
            switch addWatch(spec.path) {
            case .success(let wd): directories[wd]?.roots.insert(key)
            case .failure(let error):
                subscriber.needsRewatch.insert(key.root)
                result = .failure(WatchFailure(String(cString: strerror(error.code))))
                if error.code != ENOENT {
                    notes.append(
                        (subscriber.note, "cannot watch \(spec.path): \(String(cString: strerror(error.code)))")
                    )
                }
            }
        case .file:
            detach(key)
            let parent = (spec.path as NSString).deletingLastPathComponent
            let name = (spec.path as NSString).lastPathComponent
            switch addWatch(parent.isEmpty ? "/" : parent) {
            case .success(let wd):
                var files = directories[wd]?.files[name] ?? []
                if !files.contains(key) { files.append(key) }
                directories[wd]?.files[name] = files
            case .failure(let error):
                subscriber.needsRewatch.insert(key.root)
                result = .failure(WatchFailure(String(cString: strerror(error.code))))
                if error.code != ENOENT {
                    notes.append((subscriber.note, "cannot watch \(parent): \(String(cString: strerror(error.code)))"))
                }
            }
        }
        switch result {
        case .success: subscriber.unknown[key.root] = false
        case .failure:
            subscriber.unknown[key.root] = true
            subscriber.generations[key.root] &+= 1
        }
        return result
    }

    /// Watches `top` and every directory below it that the tree root covers. `complete` is
    /// false if one could not be watched, `blind` true if something unwatched (`.git`, a
    /// skipped directory) is included by the filter; `visited` holds the watches of the
    /// directories covered. `reporting`: every entry found is reported as created (a
    /// directory that just appeared).
    private func watchTree(
        _ key: RootKey,
        top: String,
        relative: String,
        reporting: Bool
    )
        -> (complete: Bool, blind: Bool, visited: Set<Int32>)
    {
        guard let subscriber = subscribers[key.subscriber] else { return (false, false, []) }
        var all = true
        var blind = false
        var visited = Set<Int32>()
        var pending: [(path: String, relative: String)] = [(top, relative)]
        while let (path, relative) = pending.popLast() {
            // The watch first, then the listing: what appears in between is an event.
            let wd: Int32
            switch addWatch(path) {
            case .success(let added): wd = added
            case .failure(let error):
                let code = error.code
                if code == ENOENT || code == ENOTDIR {
                    // The root itself missing cannot be watched; anything else is gone since it
                    // was listed (or since its IN_CREATE), and its parent's event covers it.
                    if path == top && !reporting { all = false }
                    continue
                }
                notes.append(
                    (
                        subscriber.note,
                        "cannot watch \(path): \(String(cString: strerror(code)))\(code == ENOSPC ? " (fs.inotify.max_user_watches is too low)" : "")"
                    )
                )
                all = false
                continue
            }
            directories[wd]?.roots.insert(key)
            visited.insert(wd)
            guard let dir = opendir(path) else {
                // Gone since its watch was added: its parent's event says so. Anything else
                // (no descriptors left) leaves its subdirectories unwatched: say so.
                let code = errno
                if code != ENOENT && code != ENOTDIR {
                    notes.append((subscriber.note, "cannot list \(path): \(String(cString: strerror(code)))"))
                    all = false
                }
                continue
            }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                // Unless reporting, files are skipped before their names become strings.
                let type = entry.pointee.d_type
                guard reporting || type == 4 || type == 0 else { continue }  // DT_DIR, DT_UNKNOWN
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)  // d_name is NUL-terminated
                }
                if name == "." || name == ".." { continue }
                var isDirectory = type == 4
                let child = path == "/" ? "/" + name : path + "/" + name
                if type == 0 {  // DT_UNKNOWN: the filesystem does not say
                    var info = stat()
                    isDirectory = lstat(child, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
                }
                let childRelative = relative.isEmpty ? name : relative + "/" + name
                if isDirectory && (name == ".git" || subscriber.skipped.contains(child)) {
                    if !prunes(subscriber, key.root, childRelative) {
                        notes.append(
                            (
                                subscriber.note,
                                "\(child) is included but not watched; that root is always scanned (exclude it, e.g. in .dockerignore)"
                            )
                        )
                        blind = true
                    }
                    continue
                }
                if reporting && !excludes(subscriber, key.root, childRelative, isDirectory: isDirectory) {
                    report(
                        key,
                        PathChange(root: key.root, path: childRelative, kinds: .created, isDirectory: isDirectory)
                    )
                }
                guard isDirectory, !prunes(subscriber, key.root, childRelative) else { continue }
                pending.append((child, childRelative))
            }
        }
        return (all, blind, visited)
    }

    /// Adds (or finds) the watch of a directory.
    private func addWatch(_ path: String) -> Result<Int32, WatchErrno> {
        let wd = inotify_add_watch(inotifyFD, path, Self.eventMask)
        guard wd >= 0 else { return .failure(WatchErrno(code: errno)) }
        if directories[wd] == nil {
            directories[wd] = Watched(path: path)
        } else if directories[wd]?.path != path {
            directories[wd]?.path = path  // the same directory under a new name (moved)
        }
        return .success(wd)
    }

    /// Takes a root out of every directory (it is watched again from scratch).
    private func detach(_ key: RootKey) {
        for (wd, var directory) in directories
        where directory.roots.contains(key)
            || directory.files.values.contains(where: { $0.contains(key) })
        {
            directory.roots.remove(key)
            directory.files = directory.files.compactMapValues { keys in
                let left = keys.filter { $0 != key }
                return left.isEmpty ? nil : left
            }
            directories[wd] = directory
            dropIfUnused(wd)
        }
    }

    /// Stops watching `path` and everything below it (it moved away; if it moved to a place
    /// a root covers, the `IN_MOVED_TO` watches it again under its new name). Roots that were
    /// in it are gone from where they were.
    private func unwatchTree(_ path: String) {
        let prefix = path + "/"
        for (wd, directory) in directories where directory.path == path || directory.path.hasPrefix(prefix) {
            for key in directory.roots where rootPath(key) == directory.path {
                report(key, PathChange(root: key.root, path: "", kinds: .movedFrom, isDirectory: true))
                markUnknown(key, .rootRemoved)
            }
            for keys in directory.files.values { for key in keys { markUnknown(key, .rootRemoved) } }
            inotify_rm_watch(inotifyFD, wd)
            directories[wd] = nil
        }
    }

    private func dropIfUnused(_ wd: Int32) {
        guard wd != sentinelWD, let directory = directories[wd], directory.roots.isEmpty, directory.files.isEmpty
        else { return }
        inotify_rm_watch(inotifyFD, wd)
        directories[wd] = nil
    }

    /// The inotify instances open in this process (`/proc/self/fd`).
    static func inotifyDescriptors() -> Set<Int32> {
        var found = Set<Int32>()
        guard let dir = opendir("/proc/self/fd") else { return found }
        defer { closedir(dir) }
        var target = [CChar](repeating: 0, count: 64)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)  // NUL-terminated
            }
            guard let fd = Int32(name) else { continue }
            let count = readlink("/proc/self/fd/" + name, &target, target.count - 1)
            guard count > 0 else { continue }
            target[count] = 0
            if String(cString: target) == "anon_inode:inotify" { found.insert(fd) }
        }
        return found
    }
}

/// Why a root could not be watched (a sentence).
struct WatchFailure: Error {
    var reason: String
    /// Only blind: everything was watched, but the filter includes an unwatched `.git`.
    var blind = false
    init(_ reason: String, blind: Bool = false) {
        self.reason = reason
        self.blind = blind
    }
}

/// An errno value as a `Result` failure.
struct WatchErrno: Error, Equatable {
    var code: Int32
}
