#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// One file, directory, symbolic link or other node of a build context, as `lstat` saw it.
public struct ContextEntry: Sendable, Hashable {
    /// What the entry is. The raw values are the bytes the context digest records.
    public enum Kind: UInt8, Sendable {
        case file = 0x66  // "f"
        case directory = 0x64  // "d"
        case symlink = 0x6C  // "l"
        /// A FIFO, socket or device node.
        case other = 0x6F  // "o"
    }

    /// The path relative to the context, `/`-separated, without `./`. A name that is not valid
    /// UTF-8 shows U+FFFD here; its exact bytes are still what is opened and hashed.
    public var path: String
    public var kind: Kind
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    public var mode: UInt32
    public var size: Int64
    public var mtimeNanoseconds: Int64
    public var ctimeNanoseconds: Int64
    public var inode: UInt64
    public var device: UInt64
    /// The link's target as stored, not followed (symbolic links only).
    public var symlinkTarget: String?
    /// SHA-256 of the content (regular files in a ``ContextSnapshot`` only; nil from the walker).
    public var contentDigest: ContentDigest?

    /// The exact bytes of `path` / `symlinkTarget` when they are not valid UTF-8.
    var rawPath: [UInt8]?
    var rawSymlinkTarget: [UInt8]?

    /// An entry that owns no memory: what a slot an entry was moved out of is filled with.
    static let placeholder = ContextEntry(
        path: "",
        kind: .other,
        mode: 0,
        size: 0,
        mtimeNanoseconds: 0,
        ctimeNanoseconds: 0,
        inode: 0,
        device: 0,
        symlinkTarget: nil,
        contentDigest: nil,
        rawPath: nil,
        rawSymlinkTarget: nil
    )

    /// Whether anyone may execute the entry (`chmod +x`).
    public var isExecutable: Bool { mode & 0o111 != 0 }

    /// Calls `body` with the exact bytes of the path.
    func withPathBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        if let rawPath { return try rawPath.withUnsafeBufferPointer(body) }
        var path = self.path
        return try path.withUTF8(body)
    }

    /// Calls `body` with the exact bytes of the symbolic link's target (empty for others).
    func withTargetBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        if let rawSymlinkTarget { return try rawSymlinkTarget.withUnsafeBufferPointer(body) }
        var target = symlinkTarget ?? ""
        return try target.withUTF8(body)
    }
}

/// Lists what a build context holds, fast: `readdir` plus `fstatat` relative to the open
/// directory (no path resolution per file, no Foundation), directories spread over a few
/// threads (one `lstat` costs about 2.5 µs of kernel time here, so a 20,000-file context is
/// bound by them; git spreads its `lstat`s the same way).
public enum ContextWalker {
    /// What ``walk(rootFD:contextDir:matcher:threads:visit:)`` does with a regular file.
    enum Visit {
        /// Keep it (its digest came from the stat index).
        case keep
        /// Keep it; its content was read and hashed.
        case hashed
        /// Leave it out: it vanished since the directory was listed.
        case drop
    }

    /// Called on a walker thread for each regular file the walk lists, in path order within a
    /// directory. The `Int` is the visitor's own, kept from one file of a directory to the
    /// next (-1 at each directory's first file): the stat index's cursor.
    typealias Visitor = @Sendable (inout ContextEntry, inout Int) throws(ContextError) -> Visit

    /// Directories with fewer children are stat'ed by the thread that lists them; a larger
    /// one has its stats shared by all the walk's threads.
    static let parallelStatThreshold = 2048

    /// The number of threads a walk uses by default: the processors online, at most 4.
    static let defaultThreads: Int = max(1, min(4, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))

    /// The entries of `contextDir` that `matcher` does not exclude, sorted by path in byte
    /// order. Symbolic links are entries of their own and never followed. An excluded directory
    /// is not entered unless a `!` pattern could re-include something below it; the directory
    /// itself is then still left out, only what is re-included below it is listed.
    public static func walk(contextDir: String, matcher: IgnoreMatcher? = nil) throws(ContextError) -> [ContextEntry] {
        let root = try openContext(contextDir)
        defer { close(root) }
        return try walk(rootFD: root, contextDir: contextDir, matcher: matcher).entries
    }

    /// Opens the context directory, mapping failures to ``ContextError``.
    static func openContext(_ path: String) throws(ContextError) -> Int32 {
        while true {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { return fd }
            switch errno {
            case EINTR: continue
            case ENOENT: throw .contextNotFound(path: path)
            case ENOTDIR: throw .notADirectory(path: path)
            case let code: throw .unreadable(path: path, reason: ContextError.errnoText(code))
            }
        }
    }

    /// What the walk did with one directory, for the next walk's ``DirectoryTable``.
    enum DirectoryOutcome {
        /// Its listing came from record `record` of the table the walk was given.
        case kept(record: Int)
        /// It was read; `stamp` is its stat from before the reading.
        case read(prefix: [UInt8], stamp: DirectoryStamp, listing: DirectoryListing)
    }

    /// Walks the directory open as `rootFD` (which stays open: the caller owns it) with up to
    /// `threads` threads, calling `visit` for every regular file as soon as it is stat'ed (on
    /// the thread that stat'ed it). Returns the entries in path byte order and how many files
    /// the positions (in `entries`) of the files `visit` said it hashed. On failure the error of
    /// the first failing directory is thrown.
    ///
    /// With `listings` (made with the same ignore rules as `matcher`: the caller checks), a
    /// directory whose stat matches its kept listing is not read again (see
    /// ``DirectoryTable``). With `recordListings` (implied by `listings`), `directories` says,
    /// for every directory walked, whether its listing was kept or read, and what was read;
    /// otherwise it is empty.
    static func walk(
        rootFD: Int32,
        contextDir: String,
        matcher: IgnoreMatcher?,
        threads: Int = defaultThreads,
        listings: DirectoryTable? = nil,
        recordListings: Bool = false,
        granularityNanoseconds: Int64 = ContextDigester.defaultTimestampGranularityNanoseconds,
        visit: Visitor? = nil
    ) throws(ContextError) -> (entries: [ContextEntry], hashed: [Int], directories: [DirectoryOutcome]) {
        let shared = SharedWalk(
            rootFD: rootFD,
            contextDir: contextDir,
            matcher: matcher?.rules.isEmpty == false ? matcher : nil,
            visit: visit,
            threads: max(1, threads),
            table: listings,
            recordListings: recordListings || listings != nil,
            granularity: granularityNanoseconds
        )
        var workers: [pthread_t] = []
        for _ in 1..<max(1, threads) {
            guard case .success(let thread) = startThread({ shared.work() }) else {
                break  // fewer threads; the walk still completes
            }
            workers.append(thread)
        }
        shared.work()
        for thread in workers { pthread_join(thread, nil) }
        return try shared.result()
    }
}

/// The state the threads of one walk share. Every directory is a job: a thread lists it,
/// stats its children in path order, and queues its subdirectories as new jobs; at the end the
/// listings are stitched together in path order.
///
/// `@unchecked Sendable`: the mutable state below `mutex` is only touched with it held; the
/// rest is immutable.
private final class SharedWalk: @unchecked Sendable {
    let rootFD: Int32
    let contextDir: String
    let matcher: IgnoreMatcher?
    let visit: ContextWalker.Visitor?
    /// The walk's threads: also how many share the stats of one large directory.
    let threads: Int
    /// Listings kept by an earlier walk, and whether to say what each directory's listing was.
    let table: DirectoryTable?
    let recordListings: Bool
    let granularity: Int64

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    // Guarded by `mutex`:
    private var pending: [Job] = [Job(id: 0, prefix: [], depth: 0, state: nil, stamp: nil)]
    private var busy = 0
    private var listings: [Listing?] = [nil]
    private var failure: (prefix: [UInt8], error: ContextError)?

    /// A directory to list: `prefix` is its path relative to the context followed by `/`
    /// (empty for the context itself); its children's paths contain `depth` slashes.
    struct Job {
        var id: Int
        var prefix: [UInt8]
        var depth: Int
        var state: IgnoreMatcher.DirectoryState?
        /// Its stat as its parent's listing saw it (nil only for the context itself): its
        /// device and inode guard against a swapped path, all of it against a stale kept listing.
        var stamp: DirectoryStamp?
    }

    /// A directory's entries in path byte order, and where its subdirectories' contents go.
    struct Listing {
        var entries: [ContextEntry] = []
        /// For the n-th subdirectory (job id `firstChild + n`): the number of `entries` that
        /// sort before its contents.
        var belowAt: [Int] = []
        var firstChild = 0
        /// Positions in `entries` of the files the visitor hashed.
        var hashed: [Int] = []
        /// Where its own listing came from (when the walk records that).
        var directory: ContextWalker.DirectoryOutcome?
    }

    init(
        rootFD: Int32,
        contextDir: String,
        matcher: IgnoreMatcher?,
        visit: ContextWalker.Visitor?,
        threads: Int,
        table: DirectoryTable?,
        recordListings: Bool,
        granularity: Int64
    ) {
        self.rootFD = rootFD
        self.contextDir = contextDir
        self.matcher = matcher
        self.visit = visit
        self.threads = threads
        self.table = table
        self.recordListings = recordListings
        self.granularity = granularity
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Takes jobs until none are left and no thread is busy (which could queue more), or until
    /// a job failed.
    func work() {
        pthread_mutex_lock(mutex)
        while failure == nil {
            guard let job = pending.popLast() else {
                if busy == 0 {
                    pthread_cond_broadcast(condition)
                    break
                }
                pthread_cond_wait(condition, mutex)
                continue
            }
            busy += 1
            pthread_mutex_unlock(mutex)
            var children: [Job] = []
            var listing = Listing()
            var error: ContextError?
            do {
                try list(job, into: &listing, children: &children)
            } catch let failed {
                error = failed
            }
            pthread_mutex_lock(mutex)
            busy -= 1
            if let error {
                // Of several failures, report the one first in path order, whatever thread saw it.
                if failure == nil || compareLess(job.prefix, failure!.prefix) { failure = (job.prefix, error) }
                pthread_cond_broadcast(condition)
                break
            }
            listing.firstChild = listings.count
            for index in children.indices { children[index].id = listings.count + index }
            listings.append(contentsOf: repeatElement(nil, count: children.count))
            listings[job.id] = listing
            // Reversed: the stack then lists the first subdirectory first, which keeps the
            // number of queued directories small on deep trees.
            pending.append(contentsOf: children.reversed())
            if !children.isEmpty || (pending.isEmpty && busy == 0) { pthread_cond_broadcast(condition) }
        }
        pthread_mutex_unlock(mutex)
    }

    private func compareLess(_ a: [UInt8], _ b: [UInt8]) -> Bool { a.lexicographicallyPrecedes(b) }

    /// The entries in path order, once every thread has stopped.
    /// (Takes the listings apart: call it once.)
    func result() throws(ContextError) -> (
        entries: [ContextEntry], hashed: [Int], directories: [ContextWalker.DirectoryOutcome]
    ) {
        if let failure { throw failure.error }
        var count = 0
        var directories: [ContextWalker.DirectoryOutcome] = []
        if recordListings { directories.reserveCapacity(listings.count) }
        for index in listings.indices {
            count += listings[index]?.entries.count ?? 0
            if let outcome = listings[index]?.directory {
                directories.append(outcome)
                listings[index]?.directory = nil
            }
        }
        var hashed: [Int] = []
        // The entries are moved, not copied (no retain and release of each path), into pages
        // populated in one call.
        let entries = [ContextEntry](unsafeUninitializedCapacity: count) { buffer, initialized in
            prefault(UnsafeMutableRawBufferPointer(buffer))
            var out = 0
            // Depth-first without recursion: (listing, entries moved, subdirectories done,
            // hashed positions done). A listing's entries go out in segments, its
            // subdirectories' between.
            var stack: [(id: Int, copied: Int, below: Int, hashedDone: Int)] = [(0, 0, 0, 0)]
            while let top = stack.popLast() {
                guard var listing = listings[top.id] else { continue }
                listings[top.id] = nil  // `listing` is now the only reference: moved from in place
                let end = top.below < listing.belowAt.count ? listing.belowAt[top.below] : listing.entries.count
                // This segment's entry at `position` lands at `out + position - copied`.
                var hashedDone = top.hashedDone
                while hashedDone < listing.hashed.count && listing.hashed[hashedDone] < end {
                    hashed.append(out + listing.hashed[hashedDone] - top.copied)
                    hashedDone += 1
                }
                let moved = end - top.copied
                if moved > 0, let target = buffer.baseAddress {
                    listing.entries.withUnsafeMutableBufferPointer { source in
                        // `source` is not empty: it holds this segment.
                        (target + out).moveInitialize(from: source.baseAddress! + top.copied, count: moved)
                    }
                    out += moved
                }
                if top.below < listing.belowAt.count {
                    stack.append((top.id, end, top.below + 1, hashedDone))
                    stack.append((listing.firstChild + top.below, 0, 0, 0))
                    listings[top.id] = listing  // its moved-out slots are not read again
                } else {
                    // Every entry moved out: the slots get values with nothing to release, so the
                    // array can be freed.
                    listing.entries.withUnsafeMutableBufferPointer { slots in
                        slots.baseAddress?.initialize(repeating: ContextEntry.placeholder, count: slots.count)
                    }
                }
            }
            initialized = out
        }
        return (entries, hashed, directories)
    }

    private func fail(_ path: ArraySlice<UInt8>, _ code: Int32) -> ContextError {
        var relative = String(decoding: path, as: UTF8.self)
        if relative.hasSuffix("/") { relative.removeLast() }
        return .unreadable(
            path: relative.isEmpty ? contextDir : joinPath(contextDir, relative),
            reason: ContextError.errnoText(code)
        )
    }

    /// Opens a job's directory: the context itself, or a subdirectory relative to it, refusing
    /// a symbolic link and anything that is no longer the directory the parent's listing saw.
    /// Nil when it vanished or was replaced since.
    private func open(_ job: Job) throws(ContextError) -> Int32? {
        var name = job.prefix
        if name.isEmpty {
            // The context itself, opened afresh: a `dup` would share the file offset, and a
            // second walk from the same descriptor would then find the directory empty.
            name = [UInt8(ascii: "."), 0]
        } else {
            name[name.count - 1] = 0  // the trailing "/" becomes the C string's end
        }
        var fd: Int32 = -1
        repeat {
            fd = name.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) {
                    openat(rootFD, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)  // non-empty
                }
            }
        } while fd < 0 && errno == EINTR
        if fd < 0 {
            let code = errno
            // Gone, or no longer a directory (replaced by a file or a link) since it was listed.
            if code == ENOENT || code == ENOTDIR || code == ELOOP { return nil }
            throw fail(job.prefix[...], code)
        }
        if let stamp = job.stamp {
            var info = stat()
            if fstat(fd, &info) != 0 || UInt64(truncatingIfNeeded: info.st_dev) != stamp.device
                || UInt64(info.st_ino) != stamp.inode
            {
                close(fd)  // a path component was swapped since: do not list what it leads to
                return nil
            }
        }
        return fd
    }

    private typealias Child = WalkChild
    private typealias Key = WalkKey

    private static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name) ?? 0
    private static let typeDirectory = UInt8(DT_DIR)
    private static let typeUnknown = UInt8(DT_UNKNOWN)

    /// Lists one directory: its children in path order into `listing`, its subdirectories into
    /// `children` (with ids relative to the listing's first child).
    private func list(
        _ job: Job,
        into listing: inout Listing,
        children jobs: inout [Job]
    ) throws(ContextError) {
        guard let fd = try open(job) else { return }
        // A listing kept by the last walk, when the directory's stat says it still holds.
        var stamp = job.stamp
        if stamp == nil && recordListings {
            var info = stat()  // the context itself: its stat before it is read
            if fstat(fd, &info) == 0 { stamp = Self.stamp(info) }
        }
        var kept: (record: Int, listing: DirectoryListing)?
        if let table, let stamp,
            let record = job.prefix.withUnsafeBufferPointer({ table.record(for: $0) }),
            let listing = table.listing(record, now: stamp, granularityNanoseconds: granularity)
        {
            kept = (record, listing)
        }
        var dir: OpaquePointer?
        if kept == nil {
            dir = fdopendir(fd)
            if dir == nil {
                let code = errno
                close(fd)
                throw fail(job.prefix[...], code)
            }
        }
        defer {
            if let dir { closedir(dir) } else { close(fd) }
        }
        let dfd = fd
        // Once per directory: reading the class's property for every child retained the
        // matcher's arrays each time.
        let matcher = self.matcher
        var path = job.prefix
        let prefixLength = path.count
        path.reserveCapacity(prefixLength + 256)
        let depth = job.depth

        var pool: [UInt8] = []
        var children: [Child] = []
        var keys: [Key] = []
        if let kept {
            pool = kept.listing.pool
            children = kept.listing.children
            keys = kept.listing.keys
            listing.directory = .kept(record: kept.record)
        } else if let dir {
            try readDirectory(dir, job, path: &path, pool: &pool, children: &children, keys: &keys)
            if recordListings, let stamp {
                listing.directory = .read(
                    prefix: job.prefix,
                    stamp: stamp,
                    listing: DirectoryListing(pool: pool, children: children, keys: keys)
                )
            }
        }

        // 3. Stat and list, or queue for listing, in that order. A directory is one job, so a
        //    large one (a flat 20,000-file directory) would be stat'ed by one thread while the
        //    others wait: its stats are taken first, on all the walk's threads.
        let stats = Self.statsInParallel(dfd, keys, children, pool, threads: threads)
        listing.entries.reserveCapacity(keys.count)
        // What each listed directory's own stat saw (its contents come later: `a`, `a.txt`, `a/b`).
        var stamps = [DirectoryStamp?](repeating: nil, count: children.count)
        var cursor = -1
        for (keyIndex, key) in keys.enumerated() {
            let child = children[Int(key.child)]
            let start = Int(child.start)
            let nameRange = start..<(start + Int(child.length))
            path.removeSubrange(prefixLength...)
            path.append(contentsOf: pool[nameRange])

            if !key.below {
                var info = stat()
                let code: Int32
                if let stats {
                    info = stats.info[keyIndex]
                    code = stats.codes[keyIndex]
                } else {
                    code = Self.statChild(dfd, pool, start, &info) == 0 ? 0 : errno
                }
                if code != 0 {
                    if code == ENOENT { continue }  // removed since readdir listed it
                    throw fail(path[...], code)
                }
                let kind = Self.kind(of: info.st_mode)
                var target: [UInt8]?
                if kind == .symlink { target = try readLink(dfd, pool: pool, start: start, path: path) }
                var entry = path.withUnsafeBufferPointer {
                    Self.entry(path: $0, kind: kind, info: info, target: target)
                }
                if kind == .directory { stamps[Int(key.child)] = Self.stamp(info) }
                if kind == .file, let visit {
                    switch try visit(&entry, &cursor) {
                    case .keep: break
                    case .hashed: listing.hashed.append(listing.entries.count)
                    case .drop: continue
                    }
                }
                listing.entries.append(entry)
                continue
            }
            path.append(UInt8(ascii: "/"))
            let state = matcher.map { matcher in
                path.withUnsafeBufferPointer {
                    matcher.state(
                        ofDirectory: UnsafeBufferPointer(rebasing: $0.dropLast()),
                        slashes: depth,
                        parent: job.state
                    )
                }
            }
            var stamp = stamps[Int(key.child)]
            if stamp == nil {
                // An excluded directory entered for what a `!` rule may bring back: not listed,
                // so not stat'ed yet; its stamp guards the walk below it all the same (gone or
                // no longer a directory: not entered).
                var info = stat()
                guard Self.statChild(dfd, pool, start, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
                stamp = Self.stamp(info)
            }
            listing.belowAt.append(listing.entries.count)
            jobs.append(Job(id: 0, prefix: path, depth: depth + 1, state: state, stamp: stamp))
        }
    }

    /// The stamp of a directory whose stat is `info`.
    private static func stamp(_ info: stat) -> DirectoryStamp {
        let (mtime, ctime) = times(info)
        return DirectoryStamp(
            device: UInt64(truncatingIfNeeded: info.st_dev),
            inode: UInt64(info.st_ino),
            mtimeNanoseconds: mtime,
            ctimeNanoseconds: ctime
        )
    }

    /// mtime and ctime in ns since the Unix epoch.
    private static func times(_ info: stat) -> (mtime: Int64, ctime: Int64) {
        #if canImport(Darwin)
        let mtime = Int64(info.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(info.st_mtimespec.tv_nsec)
        let ctime = Int64(info.st_ctimespec.tv_sec) * 1_000_000_000 + Int64(info.st_ctimespec.tv_nsec)
        #else
        let mtime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        let ctime = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
        #endif
        return (mtime, ctime)
    }

    /// Reads a directory (steps 1 and 2 of a listing): its children's names into `pool` and
    /// `children`, and the order to visit them in into `keys`. `path` is the directory's prefix
    /// and is used as scratch space.
    private func readDirectory(
        _ dir: OpaquePointer,
        _ job: Job,
        path: inout [UInt8],
        pool: inout [UInt8],
        children: inout [Child],
        keys: inout [Key]
    ) throws(ContextError) {
        let dfd = dirfd(dir)
        let matcher = self.matcher
        let prefixLength = path.count
        let depth = job.depth

        // 1. Read the names; decide from the ignore patterns and the directory entry's type
        //    (no stat unless the filesystem does not say) what is listed and what is entered.
        pool.reserveCapacity(2048)
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw fail(path[...], errno) }
                break
            }
            let raw = UnsafeRawPointer(entry)
            let name = raw.advanced(by: Self.nameOffset).assumingMemoryBound(to: CChar.self)
            let length = strlen(name)
            if name[0] == 0x2E && (length == 1 || (length == 2 && name[1] == 0x2E)) { continue }  // "." and ".."
            let nameBytes = UnsafeRawBufferPointer(start: name, count: length)

            var excluded = false
            if let matcher {
                path.removeSubrange(prefixLength...)
                path.append(contentsOf: nameBytes)
                excluded = path.withUnsafeBufferPointer {
                    matcher.isExcluded(child: $0, slashes: depth, parent: job.state)
                }
                // Nothing below an excluded entry can come back: skip it without a stat.
                if excluded && !matcher.hasExclusions { continue }
            }

            var isDirectory = entry.pointee.d_type == Self.typeDirectory
            if entry.pointee.d_type == Self.typeUnknown {
                var info = stat()
                if fstatat(dfd, name, &info, AT_SYMLINK_NOFOLLOW) != 0 {
                    if errno == ENOENT { continue }  // removed since readdir listed it
                    throw fail(path[...], errno)
                }
                isDirectory = info.st_mode & S_IFMT == S_IFDIR
            }

            if excluded {
                guard isDirectory, let matcher, path.withUnsafeBufferPointer({ matcher.mayIncludeBelow(directory: $0) })
                else { continue }
            }
            children.append(
                Child(start: Int32(pool.count), length: Int32(length), listed: !excluded, enter: isDirectory)
            )
            pool.append(contentsOf: nameBytes)
            pool.append(0)
        }

        // 2. Order by whole paths in byte order: a child's own entry sorts by its name, what
        //    lies below it by its name followed by "/" (so `a`, `a.txt`, `a/b`).
        keys.reserveCapacity(children.count + children.count / 4)
        for (index, child) in children.enumerated() {
            if child.listed { keys.append(Key(child: Int32(index), below: false)) }
            if child.enter { keys.append(Key(child: Int32(index), below: true)) }
        }
        pool.withUnsafeBufferPointer { pool in
            children.withUnsafeBufferPointer { children in
                keys.sort { Self.precedes($0, $1, children, pool) }
            }
        }
    }

    /// The `fstatat` of every key that is a child's own entry (`below` keys are left alone),
    /// shared by `threads` threads in contiguous runs; nil for a directory below
    /// ``ContextWalker/parallelStatThreshold`` or a walk of one thread. `codes[i]` is 0 or the errno.
    private static func statsInParallel(
        _ dfd: Int32,
        _ keys: [Key],
        _ children: [Child],
        _ pool: [UInt8],
        threads: Int
    ) -> (info: [stat], codes: [Int32])? {
        guard threads > 1, keys.count >= ContextWalker.parallelStatThreshold else { return nil }
        var info: [stat] = Array(repeating: stat(), count: keys.count)
        var codes = [Int32](repeating: 0, count: keys.count)
        let parts = min(threads, keys.count / (ContextWalker.parallelStatThreshold / 2))
        keys.withUnsafeBufferPointer { keys in
            children.withUnsafeBufferPointer { children in
                pool.withUnsafeBufferPointer { pool in
                    info.withUnsafeMutableBufferPointer { info in
                        codes.withUnsafeMutableBufferPointer { codes in
                            let run = StatRun(
                                dfd: dfd,
                                keys: keys,
                                children: children,
                                pool: pool,
                                info: info,
                                codes: codes
                            )
                            let length = (keys.count + parts - 1) / parts
                            var helpers: [pthread_t] = []
                            var next = length
                            while next < keys.count {
                                let range = next..<min(keys.count, next + length)
                                switch startThread({ run.statKeys(range) }) {
                                case .success(let thread): helpers.append(thread)
                                case .failure: run.statKeys(range)  // no thread: this one does it
                                }
                                next += length
                            }
                            run.statKeys(0..<min(keys.count, length))
                            for thread in helpers { pthread_join(thread, nil) }
                        }
                    }
                }
            }
        }
        return (info, codes)
    }

    /// One directory's stats shared by threads: each writes only its own range of `info` and
    /// `codes`, and the buffers outlive the threads (joined before they are released).
    private final class StatRun: @unchecked Sendable {
        let dfd: Int32
        let keys: UnsafeBufferPointer<Key>
        let children: UnsafeBufferPointer<Child>
        let pool: UnsafeBufferPointer<UInt8>
        let info: UnsafeMutableBufferPointer<stat>
        let codes: UnsafeMutableBufferPointer<Int32>

        init(
            dfd: Int32,
            keys: UnsafeBufferPointer<Key>,
            children: UnsafeBufferPointer<Child>,
            pool: UnsafeBufferPointer<UInt8>,
            info: UnsafeMutableBufferPointer<stat>,
            codes: UnsafeMutableBufferPointer<Int32>
        ) {
            self.dfd = dfd
            self.keys = keys
            self.children = children
            self.pool = pool
            self.info = info
            self.codes = codes
        }

        func statKeys(_ range: Range<Int>) {
            guard let names = pool.baseAddress, let out = info.baseAddress else { return }
            names.withMemoryRebound(to: CChar.self, capacity: pool.count) { names in
                for index in range where !keys[index].below {
                    let start = Int(children[Int(keys[index].child)].start)
                    codes[index] = fstatat(dfd, names + start, out + index, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno
                }
            }
        }
    }

    /// `fstatat` without following a link, of the child whose name starts at `start` in `pool`.
    private static func statChild(_ dfd: Int32, _ pool: [UInt8], _ start: Int, _ info: inout stat) -> Int32 {
        pool.withUnsafeBufferPointer { pool in
            pool.withMemoryRebound(to: CChar.self) {
                fstatat(dfd, $0.baseAddress! + start, &info, AT_SYMLINK_NOFOLLOW)  // the pool holds the name
            }
        }
    }

    /// Whether `a` sorts before `b`: names compared bytewise, a `below` key as its name
    /// followed by "/". Names are distinct and hold no "/", so the first byte after the common
    /// length decides.
    private static func precedes(
        _ a: Key,
        _ b: Key,
        _ children: UnsafeBufferPointer<Child>,
        _ pool: UnsafeBufferPointer<UInt8>
    ) -> Bool {
        let childA = children[Int(a.child)]
        let childB = children[Int(b.child)]
        let lengthA = Int(childA.length)
        let lengthB = Int(childB.length)
        let common = min(lengthA, lengthB)
        // The pool is non-empty whenever there are keys.
        let base = pool.baseAddress!
        let order = memcmp(base + Int(childA.start), base + Int(childB.start), common)
        if order != 0 { return order < 0 }
        // -1 stands for the end of the key.
        func next(_ child: Child, _ length: Int, _ below: Bool) -> Int {
            if length > common { return Int(base[Int(child.start) + common]) }
            return below ? Int(UInt8(ascii: "/")) : -1
        }
        return next(childA, lengthA, a.below) < next(childB, lengthB, b.below)
    }

    private func readLink(_ dfd: Int32, pool: [UInt8], start: Int, path: [UInt8]) throws(ContextError) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: 4096)
        while true {
            let count = pool.withUnsafeBufferPointer { pool in
                pool.withMemoryRebound(to: CChar.self) { name in
                    buffer.withUnsafeMutableBufferPointer {
                        readlinkat(dfd, name.baseAddress! + start, $0.baseAddress!, $0.count)  // non-empty
                    }
                }
            }
            if count < 0 { throw fail(path[...], errno) }
            if count < buffer.count {
                return buffer.withUnsafeBytes { Array($0[0..<count]) }
            }
            buffer = [CChar](repeating: 0, count: buffer.count * 2)
        }
    }

    private static func kind(of mode: mode_t) -> ContextEntry.Kind {
        switch mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    /// The bytes as a string when they are valid UTF-8. Paths are nearly always ASCII, which
    /// needs no validation (the generic `String(validating:as:)` looked up type metadata for
    /// every entry of the walk).
    @inline(__always)
    private static func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var ascii = true
        for byte in bytes where byte >= 0x80 {
            ascii = false
            break
        }
        if ascii { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func entry(
        path: UnsafeBufferPointer<UInt8>,
        kind: ContextEntry.Kind,
        info: stat,
        target: [UInt8]?
    ) -> ContextEntry {
        let text = Self.text(path)
        let targetText: String? = target.flatMap { bytes in bytes.withUnsafeBufferPointer { Self.text($0) } }
        let (mtime, ctime) = times(info)
        return ContextEntry(
            path: text ?? String(decoding: path, as: UTF8.self),
            kind: kind,
            mode: UInt32(info.st_mode) & 0o7777,
            size: kind == .file || kind == .symlink ? Int64(info.st_size) : 0,
            mtimeNanoseconds: mtime,
            ctimeNanoseconds: ctime,
            inode: UInt64(info.st_ino),
            device: UInt64(truncatingIfNeeded: info.st_dev),
            symlinkTarget: target.map { targetText ?? String(decoding: $0, as: UTF8.self) },
            contentDigest: nil,
            rawPath: text == nil ? Array(path) : nil,
            rawSymlinkTarget: target != nil && targetText == nil ? target : nil
        )
    }
}
