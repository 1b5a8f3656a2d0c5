internal import CInotifyTools
internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// Something ``ContextWatcher`` watches.
public struct WatchRoot: Sendable {
    public enum Kind: Sendable, Equatable {
        /// A directory and every directory below it.
        case directory
        /// One file: its parent directory is watched and events are filtered by name.
        case file
    }

    /// An absolute path without a trailing `/`.
    public var path: String
    public var kind: Kind
    /// Directories only: the build's ignore rules. A directory they exclude with nothing
    /// re-included below it is not watched, and events about excluded names are not changes.
    public var matcher: IgnoreMatcher?

    public static func directory(_ path: String, matcher: IgnoreMatcher? = nil) -> WatchRoot {
        WatchRoot(path: path, kind: .directory, matcher: matcher)
    }

    public static func file(_ path: String) -> WatchRoot {
        WatchRoot(path: path, kind: .file, matcher: nil)
    }
}

/// What the watcher knows about one root.
public struct WatchState: Sendable, Equatable {
    /// Bumped on every event that touches the root (never decreases).
    public var generation: UInt64
    /// The watcher cannot vouch for the root: the event queue overflowed, a watch could not be
    /// added, the root itself went away, or something the build reads (a `.git` the ignore
    /// file does not exclude) lies where the watcher does not look. Consumers must walk.
    public var unknown: Bool
}

/// Why ``ContextWatcher/start()`` failed.
public enum WatchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libinotifytools is process-global: one watcher per process.
    case alreadyWatching
    case inotifyUnavailable(reason: String)
    case threadFailed(reason: String)

    public var description: String {
        switch self {
        case .alreadyWatching: "another context watcher is running in this process (libinotifytools is process-global)"
        case .inotifyUnavailable(let reason): "cannot start inotify: \(reason)"
        case .threadFailed(let reason): "cannot start the watcher thread: \(reason)"
        }
    }
}

/// Watches build contexts with inotify (libinotifytools) and counts, per root, the events
/// that could change what a build reads.
///
/// **Threads.** One reader thread blocks in `inotifytools_next_event(-1)` (no CPU while
/// nothing happens) and handles each event under the watcher's lock: generations are bumped,
/// directories that appear are watched before the lock is released. It is the only thread
/// that calls libinotifytools once ``start()`` returned (the library keeps its event buffer
/// in globals and is not thread-safe); watches are added with `inotify_add_watch` on the
/// library's descriptor, under the lock (see ``start()`` for why). Other threads ask for
/// work (``drain()``, ``setMatcher(_:forRoot:)``) and wait for the reader.
///
/// **`drain()` without racing the reader.** inotify has one queue per instance, in the order
/// the events happened. `drain()` creates a uniquely named entry in a private, watched
/// directory and waits until the reader has handled its `IN_CREATE`: every event queued
/// before that call has then been handled too.
///
/// **Events.** `IN_MODIFY` as well as `IN_CLOSE_WRITE` (a file being written has changed
/// before it is closed, and a build reading it then sees the new bytes), `IN_ATTRIB` (modes
/// are in the digest), `IN_CREATE`, `IN_DELETE`, `IN_MOVED_FROM`/`IN_MOVED_TO` (editors save
/// by rename), `IN_DELETE_SELF`/`IN_MOVE_SELF`. `.git` directories and the skipped
/// directories (`<config dir>/.devspace`, where slipway writes) are never entered; if the
/// root's ignore rules do not exclude them the root stays ``WatchState/unknown``.
///
/// **Not seen by inotify** (as for every inotify watcher): writes through `mmap`, writes to a
/// hard link made outside the watched tree, changes made by another machine on a network
/// filesystem.
///
/// One instance per process (``WatchError/alreadyWatching`` otherwise).
///
/// `@unchecked Sendable`: every mutable property is guarded by `condition`.
public final class ContextWatcher: @unchecked Sendable {
    /// The events watched for.
    static let eventMask: UInt32 =
        UInt32(IN_MODIFY) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_ATTRIB) | UInt32(IN_CREATE) | UInt32(IN_DELETE)
        | UInt32(IN_MOVED_FROM) | UInt32(IN_MOVED_TO) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)
        | UInt32(IN_ONLYDIR) | UInt32(IN_DONT_FOLLOW)

    /// How long ``drain()`` waits for the reader before it gives up and reports every root
    /// unknown (a reader stuck that long means something is badly wrong; walking is safe).
    static let drainTimeoutSeconds: TimeInterval = 30

    private static let processLock = NSLock()
    // Guarded by `processLock`.
    nonisolated(unsafe) private static var active = false

    /// The roots, in the order given; a root's index is its identity in every API.
    public let roots: [WatchRoot]
    private let skipped: Set<String>
    private let note: @Sendable (String) -> Void
    private let changed: @Sendable ([Int]) -> Void

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var matchers: [IgnoreMatcher?]
    private var generations: [UInt64]
    private var unknown: [Bool]
    private var needsRewatch: Set<Int> = []
    private var directories: [Int32: Watched] = [:]
    private var requested: UInt64 = 0
    private var handled: UInt64 = 0
    private var running = false
    private var stopping = false
    private var sentinelWD: Int32 = -1
    private var inotifyFD: Int32 = -1
    private var sentinelDirectory = ""
    private var thread: pthread_t?

    /// A watched directory: the directory roots it belongs to and the file roots it holds.
    private struct Watched {
        var path: String
        var roots: Set<Int> = []
        var files: [String: [Int]] = [:]
    }

    /// - Parameters:
    ///   - roots: directories (watched recursively) and single files.
    ///   - skipping: absolute paths of directories never entered (slipway's own
    ///     `<config dir>/.devspace`); `.git` directories are never entered either.
    ///   - notes: log lines (watch failures, overflows); called with the watcher's lock held:
    ///     do not call back into the watcher.
    ///   - changed: the roots an event touched, called on the reader thread after each event
    ///     (outside the lock).
    public init(
        roots: [WatchRoot], skipping: [String] = [], notes: @escaping @Sendable (String) -> Void = { _ in },
        changed: @escaping @Sendable ([Int]) -> Void = { _ in }
    ) {
        self.roots = roots.map { root in
            var root = root
            while root.path.count > 1 && root.path.hasSuffix("/") { root.path.removeLast() }
            return root
        }
        self.skipped = Set(skipping)
        self.note = notes
        self.changed = changed
        matchers = roots.map(\.matcher)
        generations = Array(repeating: 0, count: roots.count)
        unknown = Array(repeating: true, count: roots.count)
    }

    deinit { stop() }

    /// Initialises libinotifytools, watches every root (the calling thread does this: it takes
    /// about 2 µs per directory plus a `readdir` of each), then starts the reader thread.
    /// Changes made before this returns may or may not bump a generation: a caller computes
    /// digests only after `start()`.
    public func start() throws(WatchError) {
        Self.processLock.lock()
        if Self.active {
            Self.processLock.unlock()
            throw .alreadyWatching
        }
        Self.active = true
        Self.processLock.unlock()

        let before = Self.inotifyDescriptors()
        guard inotifytools_initialize() != 0 else {
            let reason = String(cString: strerror(inotifytools_error()))
            release()
            throw .inotifyUnavailable(reason: reason)
        }
        // libinotifytools does not export its descriptor, and its path → watch table keeps
        // the record of a deleted directory, so that a directory made again under the same
        // name would be looked up with the dead watch. Watches are therefore added with
        // `inotify_add_watch` on the library's descriptor (the one inotify instance that
        // appeared with `inotifytools_initialize`); the library reads and buffers the events.
        let appeared = Self.inotifyDescriptors().subtracting(before)
        guard appeared.count == 1, let descriptor = appeared.first else {
            inotifytools_cleanup()
            release()
            throw .inotifyUnavailable(reason: "cannot tell libinotifytools' descriptor from \(appeared.count) new inotify instances")
        }
        // Named for this process (TempFiles): an agent that starts after a crash removes it.
        let sentinel: String
        switch TempFiles.makeDirectory(kind: "watch") {
        case .success(let made): sentinel = made
        case .failure(let failure):
            inotifytools_cleanup()
            release()
            throw .inotifyUnavailable(reason: failure.message)
        }

        condition.lock()
        inotifyFD = descriptor
        sentinelDirectory = sentinel
        if case .success(let wd) = addWatch(sentinel) {
            sentinelWD = wd
        } else {
            condition.unlock()
            rmdir(sentinel)
            inotifytools_cleanup()
            release()
            throw .inotifyUnavailable(reason: "cannot watch \(sentinel)")
        }
        for root in roots.indices { watch(root: root) }
        running = true
        condition.unlock()

        var created = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let code = pthread_create(
            &created, nil,
            { raw in
                // `raw` is the retained watcher passed below.
                let watcher = Unmanaged<ContextWatcher>.fromOpaque(raw!).takeRetainedValue()
                watcher.readLoop()
                return nil
            }, context)
        guard code == 0 else {
            Unmanaged<ContextWatcher>.fromOpaque(context).release()
            condition.lock()
            running = false
            condition.unlock()
            inotifytools_cleanup()
            rmdir(sentinel)
            release()
            throw .threadFailed(reason: String(cString: strerror(code)))
        }
        condition.lock()
        thread = created
        condition.unlock()
    }

    /// Stops the reader thread, removes every watch and lets the next watcher start.
    public func stop() {
        condition.lock()
        guard running, !stopping else {
            condition.unlock()
            return
        }
        stopping = true
        let thread = self.thread
        condition.unlock()
        poke()
        if let thread, pthread_equal(thread, pthread_self()) == 0 { pthread_join(thread, nil) }
        inotifytools_cleanup()
        condition.lock()
        running = false
        directories = [:]
        for root in roots.indices { unknown[root] = true }
        let sentinel = sentinelDirectory
        condition.broadcast()
        condition.unlock()
        rmdir(sentinel)
        release()
    }

    private func release() {
        Self.processLock.lock()
        Self.active = false
        Self.processLock.unlock()
    }

    /// Handles every event queued before this call (and any pending re-watch), then returns
    /// each root's state. After ``stop()``, or if the reader does not answer, every root is
    /// unknown.
    @discardableResult
    public func drain() -> [WatchState] {
        condition.lock()
        defer { condition.unlock() }
        guard running, !stopping else { return states(allUnknown: true) }
        requested += 1
        let ticket = requested
        let name = sentinelDirectory + "/s\(ticket)"
        // A symbolic link: one IN_CREATE, one IN_DELETE, no data written.
        guard symlink(".", name) == 0 else {
            note("cannot signal the watcher thread (\(String(cString: strerror(errno)))); treating every context as unknown")
            return states(allUnknown: true)
        }
        unlink(name)
        let deadline = Date(timeIntervalSinceNow: Self.drainTimeoutSeconds)
        while handled < ticket && running && !stopping {
            if !condition.wait(until: deadline) { break }
        }
        return states(allUnknown: handled < ticket)
    }

    /// Each root's state as last handled (without draining).
    public var states: [WatchState] {
        condition.lock()
        defer { condition.unlock() }
        return states(allUnknown: !running)
    }

    private func states(allUnknown: Bool) -> [WatchState] {
        roots.indices.map { WatchState(generation: generations[$0], unknown: allUnknown || unknown[$0]) }
    }

    /// Replaces a directory root's ignore rules (its `.dockerignore` changed). The directories
    /// it watches are brought in line by the next ``drain()``.
    public func setMatcher(_ matcher: IgnoreMatcher?, forRoot root: Int) {
        condition.lock()
        matchers[root] = matcher
        needsRewatch.insert(root)
        condition.unlock()
    }

    /// Handles an `IN_Q_OVERFLOW` as if inotify had reported one (for tests: a real overflow
    /// needs more than `max_queued_events` events while the reader is held up).
    func simulateOverflow() {
        condition.lock()
        let touched = handleOverflow()
        condition.unlock()
        changed(touched)
    }

    /// Runs `body` while the reader cannot handle events (for tests: a real overflow needs the
    /// reader held up while more than `max_queued_events` events are queued).
    func holdingReader(_ body: () -> Void) {
        condition.lock()
        body()
        condition.unlock()
    }

    /// Wakes the reader with an event in the private directory.
    private func poke() {
        condition.lock()
        let name = sentinelDirectory + "/stop"
        condition.unlock()
        if symlink(".", name) == 0 { unlink(name) }
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
                note("inotify read failed (\(String(cString: strerror(code)))); every context is unknown until the watcher restarts")
                for root in roots.indices { unknown[root] = true }
                running = false
                condition.broadcast()
                condition.unlock()
                return
            }
            let wd = event.pointee.wd
            let mask = event.pointee.mask
            var name = ""
            if event.pointee.len > 0 {
                // The name follows the fixed part of the event, NUL-padded.
                let raw = UnsafeRawPointer(event).advanced(by: MemoryLayout<inotify_event>.size)
                name = String(cString: raw.assumingMemoryBound(to: CChar.self))
            }
            condition.lock()
            let touched = handle(wd: wd, mask: mask, name: name)
            condition.unlock()
            if !touched.isEmpty { changed(touched) }
        }
    }

    /// Updates the state for one event; returns the roots whose generation was bumped.
    private func handle(wd: Int32, mask: UInt32, name: String) -> [Int] {
        if mask & UInt32(IN_Q_OVERFLOW) != 0 { return handleOverflow() }
        if wd == sentinelWD {
            if mask & UInt32(IN_CREATE) != 0, name.hasPrefix("s"), let ticket = UInt64(name.dropFirst()) {
                // Roots that could not be watched stay pending (retried at each drain); roots
                // known again are reported as changed, so that their digests are made again.
                let pending = needsRewatch.sorted()
                needsRewatch = []
                let recovered = pending.filter { watch(root: $0) }
                handled = max(handled, ticket)
                condition.broadcast()
                return recovered
            }
            return []
        }
        guard let directory = directories[wd] else { return [] }  // a watch already removed
        if mask & UInt32(IN_IGNORED) != 0 {
            directories[wd] = nil
            return []
        }
        var touched = Set<Int>()
        if !name.isEmpty, let files = directory.files[name] { touched.formUnion(files) }
        let isDirectory = mask & UInt32(IN_ISDIR) != 0
        if mask & (UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_UNMOUNT)) != 0 {
            // The directory itself went away: its roots changed; a root whose top (or a file
            // root whose parent) it was cannot be watched until it is set up again.
            touched.formUnion(directory.roots)
            for root in directory.roots where roots[root].path == directory.path { markUnknown(root) }
            for (_, files) in directory.files {
                touched.formUnion(files)
                for root in files { markUnknown(root) }
            }
        }
        if !name.isEmpty {
            let child = directory.path == "/" ? "/" + name : directory.path + "/" + name
            for root in directory.roots {
                let relative = relativePath(of: child, in: root)
                if isDirectory && (name == ".git" || skipped.contains(child)) {
                    // Never entered: fine if the build ignores it, else the root is unknown.
                    if !prunes(root, relative) {
                        markUnknown(root)
                        touched.insert(root)
                    }
                    continue
                }
                if let matcher = matchers[root], matcher.isExcluded(relative, isDirectory: isDirectory),
                    !isDirectory || !matcher.mayIncludeBelow(relative)
                {
                    continue  // the build never reads it
                }
                touched.insert(root)
                if isDirectory && mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0 {
                    // Files created in it before its watch exists are covered: the root is dirty.
                    let (complete, blind, _) = watchTree(root: root, top: child, relative: relative)
                    if !complete || blind { markUnknown(root) }
                }
            }
            if isDirectory && mask & UInt32(IN_MOVED_FROM) != 0 { unwatchTree(child) }
        }
        for root in touched { generations[root] &+= 1 }
        return touched.sorted()
    }

    private func handleOverflow() -> [Int] {
        note("inotify's event queue overflowed; every context is unknown until it is digested again")
        for root in roots.indices { markUnknown(root) }
        handled = max(handled, requested)  // a drain's own event may have been dropped
        condition.broadcast()
        return Array(roots.indices)
    }

    private func markUnknown(_ root: Int) {
        unknown[root] = true
        needsRewatch.insert(root)
        generations[root] &+= 1
    }

    // MARK: Watching

    private func relativePath(of path: String, in root: Int) -> String {
        let top = roots[root].path
        if path == top { return "" }
        return String(path.dropFirst(top == "/" ? 1 : top.count + 1))
    }

    /// Whether `relative` (a directory of `root`) is left out by the root's ignore rules with
    /// nothing re-included below it.
    private func prunes(_ root: Int, _ relative: String) -> Bool {
        guard let matcher = matchers[root] else { return false }
        return matcher.isExcluded(relative, isDirectory: true) && !matcher.mayIncludeBelow(relative)
    }

    /// (Re)watches a root; it is known again (true) if every directory could be watched and
    /// nothing the build reads is left unwatched.
    @discardableResult
    private func watch(root: Int) -> Bool {
        let spec = roots[root]
        var ok = true
        switch spec.kind {
        case .directory:
            let (complete, blind, visited) = watchTree(root: root, top: spec.path, relative: "")
            ok = complete && !blind
            // A failed watch (the root missing, no watches left) is tried again at each drain; a
            // blind spot (.git read by the build) waits for new ignore rules.
            if !complete { needsRewatch.insert(root) }
            // Directories the root no longer covers (new ignore rules) stop counting for it.
            for (wd, var directory) in directories where directory.roots.contains(root) && !visited.contains(wd) {
                directory.roots.remove(root)
                directories[wd] = directory
                dropIfUnused(wd)
            }
        case .file:
            let parent = (spec.path as NSString).deletingLastPathComponent
            let name = (spec.path as NSString).lastPathComponent
            switch addWatch(parent.isEmpty ? "/" : parent) {
            case .success(let wd):
                var files = directories[wd]?.files[name] ?? []
                if !files.contains(root) { files.append(root) }
                directories[wd]?.files[name] = files
            case .failure(let error):
                ok = false
                needsRewatch.insert(root)
                if error.code != ENOENT {
                    note("cannot watch \(parent): \(String(cString: strerror(error.code)))")
                }
            }
        }
        if ok {
            unknown[root] = false
        } else {
            unknown[root] = true
            generations[root] &+= 1
        }
        return ok
    }

    /// Watches `top` and every directory below it that the root covers. `complete` is false if
    /// one could not be watched, `blind` true if something unwatched (`.git`, a skipped
    /// directory) would be read by the build; `visited` holds the watches of the directories
    /// covered.
    @discardableResult
    private func watchTree(root: Int, top: String, relative: String)
        -> (complete: Bool, blind: Bool, visited: Set<Int32>)
    {
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
                    if path == top && relative.isEmpty { all = false }
                    continue
                }
                note("cannot watch \(path): \(String(cString: strerror(code)))\(code == ENOSPC ? " (fs.inotify.max_user_watches is too low)" : "")")
                all = false
                continue
            }
            directories[wd]?.roots.insert(root)
            visited.insert(wd)
            guard let dir = opendir(path) else { continue }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                // Files are skipped before their names become strings: only directories matter.
                let type = entry.pointee.d_type
                guard type == 4 || type == 0 else { continue }  // DT_DIR, DT_UNKNOWN
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))  // d_name is NUL-terminated
                }
                if name == "." || name == ".." { continue }
                var isDirectory = type == 4
                let child = path == "/" ? "/" + name : path + "/" + name
                if type == 0 {  // DT_UNKNOWN: the filesystem does not say
                    var info = stat()
                    isDirectory = lstat(child, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
                }
                guard isDirectory else { continue }
                let childRelative = relative.isEmpty ? name : relative + "/" + name
                if name == ".git" || skipped.contains(child) {
                    if !prunes(root, childRelative) {
                        note("\(child) is read by the build but not watched; that context is always walked (add it to .dockerignore)")
                        blind = true
                    }
                    continue
                }
                if prunes(root, childRelative) { continue }
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

    /// Stops watching `path` and everything below it (it moved away; if it moved to a place
    /// a root covers, the `IN_MOVED_TO` watches it again under its new name).
    private func unwatchTree(_ path: String) {
        let prefix = path + "/"
        for (wd, directory) in directories where directory.path == path || directory.path.hasPrefix(prefix) {
            // A file root whose directory moved is no longer where it was.
            for (_, files) in directory.files { for root in files { markUnknown(root) } }
            inotify_rm_watch(inotifyFD, wd)
            directories[wd] = nil
        }
    }

    private func dropIfUnused(_ wd: Int32) {
        guard let directory = directories[wd], directory.roots.isEmpty, directory.files.isEmpty else { return }
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
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))  // NUL-terminated
            }
            guard let fd = Int32(name) else { continue }
            let count = readlink("/proc/self/fd/" + name, &target, target.count - 1)
            guard count > 0 else { continue }
            target[count] = 0
            if String(cString: target) == "anon_inode:inotify" { found.insert(fd) }
        }
        return found
    }

    /// The number of directories watched (for measurements).
    var watchedDirectoryCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return directories.count
    }
}

/// An errno value as a `Result` failure.
struct WatchErrno: Error, Equatable {
    var code: Int32
}
