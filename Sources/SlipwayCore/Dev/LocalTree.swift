internal import Crypto
internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// One entry of the local tree, as `lstat` saw it.
struct LocalEntry: Sendable, Equatable {
    var kind: SyncEntry.Kind
    var size: UInt64
    var mtime: Int64
    var ctime: Int64
    var inode: UInt64
    /// Permission bits (`st_mode & 0o7777`).
    var mode: UInt32
    /// A symlink's target as stored.
    var target: String?

    /// The entry from a `stat` result, nil for what a sync does not carry (FIFOs, sockets,
    /// devices).
    init?(_ info: stat, target: String?) {
        switch info.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: return nil
        }
        size = kind == .directory ? 0 : UInt64(max(0, info.st_size))
        mtime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        ctime = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
        inode = UInt64(info.st_ino)
        mode = UInt32(info.st_mode) & 0o7777
        self.target = target
    }

    init(kind: SyncEntry.Kind, size: UInt64, mtime: Int64, ctime: Int64, inode: UInt64, mode: UInt32, target: String?) {
        self.kind = kind
        self.size = size
        self.mtime = mtime
        self.ctime = ctime
        self.inode = inode
        self.mode = mode
        self.target = target
    }
}

/// What the local side of a sync needs from the file system: stats, a walk that never enters
/// excluded directories, hashes, and writes that stay inside the root.
///
/// **Staying inside.** Every path a remote names is checked (``SyncPath/isValid(_:)``) and
/// written only through a parent directory whose real path (symbolic links resolved) is its
/// lexical path under the root: a symbolic link in the local tree — in-tree or not — is never
/// written through. Files are written to a temporary name in the same directory and renamed.
final class LocalTree {
    /// The root's real path (symbolic links resolved), without a trailing slash.
    let root: String
    /// Parent directories checked in this batch: relative path → real path is lexical.
    private var checkedParents: [String: Bool] = [:]

    init(root: String) {
        self.root = root
    }

    /// `root` resolved (the sync's root may be reached through a symbolic link).
    static func realRoot(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    func absolute(_ path: String) -> String { path.isEmpty ? root : root + "/" + path }

    /// Forgets the parent checks of the last batch (directories may have changed since).
    func beginBatch() { checkedParents = [:] }

    // MARK: Reading

    /// The entry at `path` (relative), not following a final symlink; nil when nothing (or
    /// something a sync does not carry) is there.
    func entry(_ path: String) -> LocalEntry? {
        var info = stat()
        let full = absolute(path)
        guard lstat(full, &info) == 0 else { return nil }
        var target: String?
        if info.st_mode & S_IFMT == S_IFLNK { target = Self.readLink(full) }
        return LocalEntry(info, target: target)
    }

    /// Whether the root exists as a directory, and whether anything the filter leaves in is
    /// directly in it.
    func rootState(filter: SyncFilter) -> (exists: Bool, empty: Bool) {
        guard let dir = opendir(root) else { return (false, true) }
        defer { closedir(dir) }
        while let item = readdir(dir) {
            let name = Self.name(of: item)
            if name == "." || name == ".." { continue }
            let isDirectory = item.pointee.d_type == 4
            if filter.bothExclusion(name, isDirectory: isDirectory) != nil { continue }
            return (true, false)
        }
        return (true, true)
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func name(of item: UnsafeMutablePointer<dirent>) -> String {
        withUnsafeBytes(of: item.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)  // d_name is NUL-terminated
        }
    }

    /// The result of a walk: the entries the filter leaves in (both directions' rules only:
    /// the planner applies each direction's own), and how many directories a watch of the
    /// upload side needs.
    struct Scan {
        var entries: [String: LocalEntry] = [:]
        var watchedDirectories = 1
        /// Directories that could not be listed (path: reason).
        var unreadable: [String: String] = [:]
    }

    /// Walks the tree below `top` (relative; "" for the root), never entering directories the
    /// filter excludes both ways, and removes slipway's temporary files of dead processes on
    /// the way (a killed sync's half-written downloads).
    func scan(filter: SyncFilter, below top: String = "") -> Scan {
        var scan = Scan()
        var pending = [top]
        while let relative = pending.popLast() {
            let directory = absolute(relative)
            guard let dir = opendir(directory) else {
                let code = errno
                if code != ENOENT && code != ENOTDIR { scan.unreadable[relative] = String(cString: strerror(code)) }
                continue
            }
            let fd = dirfd(dir)
            while let item = readdir(dir) {
                let name = Self.name(of: item)
                if name == "." || name == ".." { continue }
                let path = relative.isEmpty ? name : relative + "/" + name
                var info = stat()
                guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                let isDirectory = info.st_mode & S_IFMT == S_IFDIR
                if filter.bothOwnExclusion(path, isDirectory: isDirectory) != nil {
                    if !isDirectory, info.st_mode & S_IFMT == S_IFREG, let owner = TempFiles.owner(ofFile: name),
                        info.st_uid == getuid(), TempFiles.isGone(owner)
                    {
                        unlinkat(fd, name, 0)
                    }
                    continue
                }
                var target: String?
                if info.st_mode & S_IFMT == S_IFLNK { target = Self.readLink(directory + "/" + name) }
                guard let entry = LocalEntry(info, target: target) else { continue }
                scan.entries[path] = entry
                if isDirectory {
                    pending.append(path)
                    if filter.uploadOwnExclusion(path, isDirectory: true) == nil { scan.watchedDirectories += 1 }
                }
            }
            closedir(dir)
        }
        return scan
    }

    /// SHA-256 (hex) of the file at `path`, read without following a symlink; nil when it is
    /// not a readable regular file.
    func hash(_ path: String) -> String? {
        let fd = open(absolute(path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return Self.hash(fd: fd)
    }

    static func hash(fd: Int32) -> String? {
        var hasher = SHA256()
        let size = 256 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(fd, buffer.baseAddress, size)
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        return hasher.finalize().withUnsafeBytes { hexString($0) }
    }

    // MARK: Staying inside the root

    /// Whether every directory above `path` is a real directory at its lexical place (no
    /// symbolic link on the way): what is read or written there is inside the root.
    func parentIsInside(_ path: String) -> Bool {
        guard let slash = path.lastIndex(of: "/") else { return true }
        let parent = String(path[..<slash])
        if let known = checkedParents[parent] { return known }
        let expected = absolute(parent)
        var inside = false
        if let resolved = realpath(expected, nil) {
            inside = String(cString: resolved) == expected
            free(resolved)
        }
        checkedParents[parent] = inside
        return inside
    }

    /// The first directory above `path` that exists but is not a real directory (a symlink,
    /// a file), relative; nil when every existing one is a directory.
    func blockedAbove(_ path: String) -> String? {
        var current = ""
        for component in path.split(separator: "/").dropLast() {
            current = current.isEmpty ? String(component) : current + "/" + component
            var info = stat()
            guard lstat(absolute(current), &info) == 0 else { return nil }
            if info.st_mode & S_IFMT != S_IFDIR { return current }
        }
        return nil
    }

    /// Whether a symlink at `path` with `target` points inside the root (lexically: an
    /// absolute target, or one that climbs above the root, does not).
    static func symlinkStaysInside(path: String, target: String) -> Bool {
        guard !target.isEmpty, !target.hasPrefix("/") else { return false }
        var depth = path.split(separator: "/").count - 1
        for component in target.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." {
                depth -= 1
                if depth < 0 { return false }
            } else {
                depth += 1
            }
        }
        return true
    }

    // MARK: Writing

    /// Why a local write failed (a sentence naming the path).
    struct WriteFailure: Error {
        var message: String
    }

    /// Makes the directories above `path` that are missing (mode 0755 unless `modes` names
    /// one), never through a symlink.
    func makeParents(of path: String, modes: [String: UInt32] = [:]) throws(WriteFailure) {
        let components = path.split(separator: "/").dropLast()
        var current = ""
        for component in components {
            current = current.isEmpty ? String(component) : current + "/" + component
            let full = absolute(current)
            var info = stat()
            if lstat(full, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFDIR else {
                    throw WriteFailure(message: "\(full) is not a directory")
                }
                continue
            }
            if mkdir(full, mode_t(modes[current] ?? 0o755)) != 0 && errno != EEXIST {
                throw WriteFailure(message: "cannot create \(full): \(String(cString: strerror(errno)))")
            }
            checkedParents[current] = nil
        }
    }

    /// A temporary name beside `path` (slipway's convention: swept when its process is gone).
    func temporaryPath(for path: String) -> String {
        TempFiles.temporaryPath(for: absolute(path))
    }

    /// Puts the finished temporary file `temporary` at `path` with `mode` and `mtime`, if the
    /// local entry there is still `expected` (nil: nothing may be there). Returns the entry
    /// now there, or nil when the local side changed meanwhile (the temporary file is then
    /// left for the caller).
    func install(
        _ temporary: String,
        at path: String,
        mode: UInt32,
        mtime: Int64,
        expected: LocalEntry?
    ) throws(WriteFailure) -> LocalEntry? {
        let full = absolute(path)
        if chmod(temporary, mode_t(mode & 0o7777)) != 0 {
            throw WriteFailure(message: "cannot set the mode of \(temporary): \(String(cString: strerror(errno)))")
        }
        // The access time is left as it is (UTIME_OMIT, a macro Swift does not import).
        var times = [timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2), Self.timeSpec(nanoseconds: mtime)]
        if utimensat(AT_FDCWD, temporary, &times, AT_SYMLINK_NOFOLLOW) != 0 {
            throw WriteFailure(message: "cannot set the time of \(temporary): \(String(cString: strerror(errno)))")
        }
        if let expected {
            guard let now = entry(path), expected.kind == .file ? now == expected : now.kind == expected.kind else {
                return nil
            }
            if now.kind == .directory {
                throw WriteFailure(message: "\(full) is a directory")
            }
            guard rename(temporary, full) == 0 else {
                throw WriteFailure(
                    message: "cannot rename \(temporary) to \(full): \(String(cString: strerror(errno)))"
                )
            }
        } else {
            // Nothing may be there: a hard link fails if something appeared meanwhile.
            if link(temporary, full) != 0 {
                let code = errno
                if code == EEXIST { return nil }
                throw WriteFailure(message: "cannot create \(full): \(String(cString: strerror(code)))")
            }
            unlink(temporary)
        }
        return entry(path)
    }

    /// Makes the directory `path` (its parents must exist).
    func makeDirectory(_ path: String, mode: UInt32) throws(WriteFailure) -> LocalEntry? {
        let full = absolute(path)
        if mkdir(full, mode_t(mode & 0o7777)) != 0 {
            let code = errno
            guard code == EEXIST, entry(path)?.kind == .directory else {
                throw WriteFailure(message: "cannot create \(full): \(String(cString: strerror(code)))")
            }
        }
        checkedParents[path] = nil
        return entry(path)
    }

    /// Makes (or replaces, when `expected` is still there) the symlink `path` → `target`.
    func makeSymlink(_ path: String, target: String, expected: LocalEntry?) throws(WriteFailure) -> LocalEntry? {
        let full = absolute(path)
        let temporary = temporaryPath(for: path)
        guard symlink(target, temporary) == 0 else {
            throw WriteFailure(message: "cannot create \(full): \(String(cString: strerror(errno)))")
        }
        let now = entry(path)
        if let expected {
            guard let now, now.kind != .directory, now.kind == expected.kind,
                now.kind == .symlink ? now.target == expected.target : now == expected
            else {
                unlink(temporary)
                return nil
            }
        } else if now != nil {
            unlink(temporary)
            return nil
        }
        guard rename(temporary, full) == 0 else {
            let code = errno
            unlink(temporary)
            throw WriteFailure(message: "cannot create \(full): \(String(cString: strerror(code)))")
        }
        return entry(path)
    }

    /// Removes the file or symlink `path` if it is still `expected`; false when it changed.
    func remove(_ path: String, expected: LocalEntry) throws(WriteFailure) -> Bool {
        guard let now = entry(path) else { return true }
        let same = now.kind == .symlink ? now.kind == expected.kind && now.target == expected.target : now == expected
        guard same, now.kind != .directory else { return false }
        if unlink(absolute(path)) != 0 && errno != ENOENT {
            throw WriteFailure(message: "cannot remove \(absolute(path)): \(String(cString: strerror(errno)))")
        }
        return true
    }

    /// Removes the directory `path` if it is empty; false when something is still in it.
    func removeDirectory(_ path: String) -> Bool {
        rmdir(absolute(path)) == 0 || errno == ENOENT
    }

    /// Sets the permission bits of `path`.
    func changeMode(_ path: String, mode: UInt32) throws(WriteFailure) -> LocalEntry? {
        if chmod(absolute(path), mode_t(mode & 0o7777)) != 0 {
            throw WriteFailure(
                message: "cannot change the mode of \(absolute(path)): \(String(cString: strerror(errno)))"
            )
        }
        return entry(path)
    }

    /// A free name for a conflict copy of `path`: `NAME.slipway-conflict-20250131T120000Z`
    /// (then `-2`, `-3`… if taken).
    func conflictCopyName(for path: String, at date: Date) -> String {
        let stamp = Self.conflictStamp(date)
        let base = path + SyncFilter.conflictMarker + stamp
        var candidate = base
        var number = 2
        while entry(candidate) != nil {
            candidate = base + "-\(number)"
            number += 1
        }
        return candidate
    }

    /// `nanoseconds` since the epoch as a `timespec` (nanoseconds in 0..<1e9, also before 1970).
    static func timeSpec(nanoseconds: Int64) -> timespec {
        var seconds = nanoseconds / 1_000_000_000
        var rest = nanoseconds % 1_000_000_000
        if rest < 0 {
            seconds -= 1
            rest += 1_000_000_000
        }
        return Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int(rest))
    }

    static func conflictStamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: date)
    }

    static func isoStamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss'Z'"
        return formatter.string(from: date)
    }
}
