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
/// directory (no path resolution per file, no Foundation), directories entered with `openat`.
public enum ContextWalker {
    /// The entries of `contextDir` that `matcher` does not exclude, sorted by path in byte
    /// order. Symbolic links are entries of their own and never followed. An excluded directory
    /// is not entered unless a `!` pattern could re-include something below it; the directory
    /// itself is then still left out, only what is re-included below it is listed.
    public static func walk(contextDir: String, matcher: IgnoreMatcher? = nil) throws(ContextError) -> [ContextEntry] {
        let root = try openContext(contextDir)
        defer { close(root) }
        return try walk(rootFD: root, contextDir: contextDir, matcher: matcher)
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

    /// Walks the directory open as `rootFD` (which stays open: the caller owns it).
    static func walk(
        rootFD: Int32, contextDir: String, matcher: IgnoreMatcher?
    ) throws(ContextError) -> [ContextEntry] {
        let fd = dup(rootFD)
        guard fd >= 0 else { throw .unreadable(path: contextDir, reason: ContextError.errnoText(errno)) }
        var walk = Walk(contextDir: contextDir, matcher: matcher?.rules.isEmpty == false ? matcher : nil)
        try walk.directory(fd: fd, depth: 0, state: nil)
        return walk.entries
    }
}

/// The state of one walk. Entries are appended in path byte order.
private struct Walk {
    let contextDir: String
    let matcher: IgnoreMatcher?
    var entries: [ContextEntry] = []
    /// The relative path being looked at; a directory's listing appends each child's name to
    /// the directory's own prefix here, so no path is built per entry.
    var path: [UInt8] = []
    var linkBuffer = [CChar](repeating: 0, count: 4096)

    init(contextDir: String, matcher: IgnoreMatcher?) {
        self.contextDir = contextDir
        self.matcher = matcher
        path.reserveCapacity(1024)
    }

    /// A child of the directory being listed; its name (NUL-terminated) is in the listing's pool.
    private struct Child {
        var start: Int32
        var length: Int32
        /// Whether the child itself is listed (false for an excluded directory entered only
        /// because something below it may be re-included).
        var listed: Bool
        /// Whether the walk enters it.
        var enter: Bool
    }

    /// One position in the listing's output: a child's own entry, or what lies below it.
    private struct Key {
        var child: Int32
        var below: Bool
    }

    private static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name) ?? 0
    private static let typeDirectory: UInt8 = 4  // DT_DIR
    private static let typeUnknown: UInt8 = 0  // DT_UNKNOWN

    private func fail(_ path: ArraySlice<UInt8>, _ code: Int32) -> ContextError {
        var relative = String(decoding: path, as: UTF8.self)
        if relative.hasSuffix("/") { relative.removeLast() }
        return .unreadable(
            path: relative.isEmpty ? contextDir : joinPath(contextDir, relative), reason: ContextError.errnoText(code))
    }

    /// Lists the directory open as `fd` (taken over and closed here). `path` holds its prefix
    /// (empty, or ending in `/`); its children's paths contain `depth` slashes.
    mutating func directory(fd: Int32, depth: Int, state: IgnoreMatcher.DirectoryState?) throws(ContextError) {
        let prefixLength = path.count
        guard let dir = fdopendir(fd) else {
            let code = errno
            close(fd)
            throw fail(path[...], code)
        }
        defer { closedir(dir) }
        let dfd = dirfd(dir)

        // 1. Read the names; decide from the ignore patterns and the directory entry's type
        //    (no stat unless the filesystem does not say) what is listed and what is entered.
        var pool: [UInt8] = []
        pool.reserveCapacity(2048)
        var children: [Child] = []
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
                excluded = path.withUnsafeBufferPointer { matcher.isExcluded(child: $0, slashes: depth, parent: state) }
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
                Child(start: Int32(pool.count), length: Int32(length), listed: !excluded, enter: isDirectory))
            pool.append(contentsOf: nameBytes)
            pool.append(0)
        }

        // 2. Order by whole paths in byte order: a child's own entry sorts by its name, what
        //    lies below it by its name followed by "/" (so `a`, `a.txt`, `a/b`).
        var keys: [Key] = []
        keys.reserveCapacity(children.count + children.count / 4)
        for (index, child) in children.enumerated() {
            if child.listed { keys.append(Key(child: Int32(index), below: false)) }
            if child.enter { keys.append(Key(child: Int32(index), below: true)) }
        }
        pool.withUnsafeBufferPointer { pool in
            keys.sort { Self.precedes($0, $1, children, pool) }
        }

        // 3. Stat and list, or enter, in that order.
        for key in keys {
            let child = children[Int(key.child)]
            let start = Int(child.start)
            let nameRange = start..<(start + Int(child.length))
            path.removeSubrange(prefixLength...)
            path.append(contentsOf: pool[nameRange])

            if !key.below {
                var info = stat()
                let status = pool.withUnsafeBufferPointer { pool in
                    pool.withMemoryRebound(to: CChar.self) {
                        fstatat(dfd, $0.baseAddress! + start, &info, AT_SYMLINK_NOFOLLOW)
                    }
                }
                if status != 0 {
                    if errno == ENOENT { continue }  // removed since readdir listed it
                    throw fail(path[...], errno)
                }
                let kind = Self.kind(of: info.st_mode)
                var target: [UInt8]?
                if kind == .symlink { target = try readLink(dfd, pool: pool, start: start) }
                entries.append(
                    path.withUnsafeBufferPointer { Self.entry(path: $0, kind: kind, info: info, target: target) })
                continue
            }

            let childFD = pool.withUnsafeBufferPointer { pool in
                pool.withMemoryRebound(to: CChar.self) {
                    openat(dfd, $0.baseAddress! + start, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
            }
            if childFD < 0 {
                let code = errno
                // Gone, or no longer a directory (replaced by a file or a link) since readdir.
                if code == ENOENT || code == ENOTDIR || code == ELOOP { continue }
                throw fail(path[...], code)
            }
            let childState = matcher.map { matcher in
                path.withUnsafeBufferPointer { matcher.state(ofDirectory: $0, slashes: depth, parent: state) }
            }
            path.append(UInt8(ascii: "/"))
            try directory(fd: childFD, depth: depth + 1, state: childState)
        }
        path.removeSubrange(prefixLength...)
    }

    /// Whether `a` sorts before `b`: names compared bytewise, a `below` key as its name
    /// followed by "/". Names are distinct and hold no "/", so the first byte after the common
    /// length decides.
    private static func precedes(_ a: Key, _ b: Key, _ children: [Child], _ pool: UnsafeBufferPointer<UInt8>) -> Bool {
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

    private mutating func readLink(_ dfd: Int32, pool: [UInt8], start: Int) throws(ContextError) -> [UInt8] {
        while true {
            let count = pool.withUnsafeBufferPointer { pool in
                pool.withMemoryRebound(to: CChar.self) { name in
                    linkBuffer.withUnsafeMutableBufferPointer {
                        readlinkat(dfd, name.baseAddress! + start, $0.baseAddress!, $0.count)  // non-empty
                    }
                }
            }
            if count < 0 { throw fail(path[...], errno) }
            if count < linkBuffer.count {
                return linkBuffer.withUnsafeBytes { Array($0[0..<count]) }
            }
            linkBuffer = [CChar](repeating: 0, count: linkBuffer.count * 2)
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

    private static func entry(
        path: UnsafeBufferPointer<UInt8>, kind: ContextEntry.Kind, info: stat, target: [UInt8]?
    ) -> ContextEntry {
        let text = String(validating: path, as: UTF8.self)
        let targetText: String? = target.flatMap { String(validating: $0, as: UTF8.self) }
        #if canImport(Darwin)
        let mtime = Int64(info.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(info.st_mtimespec.tv_nsec)
        let ctime = Int64(info.st_ctimespec.tv_sec) * 1_000_000_000 + Int64(info.st_ctimespec.tv_nsec)
        #else
        let mtime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        let ctime = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
        #endif
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
            rawSymlinkTarget: target != nil && targetText == nil ? target : nil)
    }
}
