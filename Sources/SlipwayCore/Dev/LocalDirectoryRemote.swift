internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// A ``SyncRemote`` over a directory of this machine: a bind-mounted volume a container also
/// sees, another checkout, a test's target. It follows the contract as the container helper
/// does: expectations are checked right before each change, files are written to a temporary
/// name in the same directory and renamed, modes and mtimes are set, symlinks are never
/// followed (a path through one is treated as absent), and ``changes()`` comes from the shared
/// ``FileWatcher``.
///
/// `@unchecked Sendable`: the mutable state (closed, the change subscription) is guarded by
/// `lock`; file system calls need no lock.
public final class LocalDirectoryRemote: SyncRemote, @unchecked Sendable {
    /// The directory (its real path).
    public let root: String
    /// How the remote's own change batches are gathered.
    private let batching: WatchBatching
    private let lock = NSLock()
    private var closed = false
    private var subscription: WatchSubscription?

    /// A remote over `root`, which must be a directory. `changeBatching` gathers the
    /// directory's changes for ``changes()`` (5 ms of quiet, 1 s at most, by default).
    public init(
        root: String,
        changeBatching: WatchBatching = WatchBatching(quiet: .milliseconds(5), maximumDelay: .seconds(1))
    ) throws(SyncRemoteError) {
        guard let real = LocalTree.realRoot(root) else {
            throw .unusable("\(root): \(String(cString: strerror(errno)))")
        }
        var info = Glibc.stat()
        guard stat(real, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw .unusable("\(root) is not a directory")
        }
        self.root = real
        self.batching = changeBatching
    }

    private func checkOpen() throws(SyncRemoteError) {
        if lock.withLock({ closed }) { throw .disconnected("\(root): the remote was closed") }
    }

    // MARK: Reading

    public func manifest(hashing paths: Set<String>, hashAll: Bool) async throws(SyncRemoteError) -> [SyncEntry] {
        try checkOpen()
        let root = self.root
        return await onOwnThread {
            var entries: [SyncEntry] = []
            var pending = [""]
            while let relative = pending.popLast() {
                let directory = relative.isEmpty ? root : root + "/" + relative
                guard let dir = opendir(directory) else { continue }
                let fd = dirfd(dir)
                while let item = readdir(dir) {
                    let name = LocalTree.name(of: item)
                    if name == "." || name == ".." { continue }
                    if RemoteWatchFilter.isTemporary(Substring(name)) { continue }
                    let path = relative.isEmpty ? name : relative + "/" + name
                    var info = Glibc.stat()
                    guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0,
                        var entry = Self.entry(path, info, directory: directory, name: name)
                    else { continue }
                    if entry.kind == .file && (hashAll || paths.contains(path)) {
                        entry.sha256 = Self.hash(directory + "/" + name)
                    }
                    entries.append(entry)
                    if entry.kind == .directory { pending.append(path) }
                }
                closedir(dir)
            }
            return entries.sorted { $0.path < $1.path }
        }
    }

    public func entries(
        _ paths: [String],
        recursive: Bool,
        hashing: Set<String>
    ) async throws(SyncRemoteError)
        -> [SyncEntry]
    {
        try checkOpen()
        var result: [SyncEntry] = []
        var below: [String] = []
        for path in paths where SyncPath.isValid(path) {
            guard var entry = entryAt(path) else { continue }
            if entry.kind == .file && hashing.contains(path) { entry.sha256 = Self.hash(absolute(path)) }
            result.append(entry)
            if recursive && entry.kind == .directory { below.append(path) }
        }
        for top in below {
            let all = try await manifestBelow(top, hashing: hashing)
            result += all
        }
        return result
    }

    private func manifestBelow(_ top: String, hashing: Set<String>) async throws(SyncRemoteError) -> [SyncEntry] {
        let root = self.root
        return await onOwnThread {
            var entries: [SyncEntry] = []
            var pending = [top]
            while let relative = pending.popLast() {
                let directory = root + "/" + relative
                guard let dir = opendir(directory) else { continue }
                let fd = dirfd(dir)
                while let item = readdir(dir) {
                    let name = LocalTree.name(of: item)
                    if name == "." || name == ".." { continue }
                    let path = relative + "/" + name
                    var info = Glibc.stat()
                    guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0,
                        var entry = Self.entry(path, info, directory: directory, name: name)
                    else { continue }
                    if entry.kind == .file && hashing.contains(path) {
                        entry.sha256 = Self.hash(directory + "/" + name)
                    }
                    entries.append(entry)
                    if entry.kind == .directory { pending.append(path) }
                }
                closedir(dir)
            }
            return entries
        }
    }

    private func absolute(_ path: String) -> String { root + "/" + path }

    /// Whether every directory above `path` is a real directory at its place.
    private func parentIsInside(_ path: String) -> Bool {
        guard let slash = path.lastIndex(of: "/") else { return true }
        let expected = absolute(String(path[..<slash]))
        guard let resolved = realpath(expected, nil) else { return false }
        defer { free(resolved) }
        return String(cString: resolved) == expected
    }

    /// The entry at `path`, nil when nothing is there or a symlink lies on the way.
    private func entryAt(_ path: String) -> SyncEntry? {
        guard parentIsInside(path) else { return nil }
        var info = Glibc.stat()
        let full = absolute(path)
        guard lstat(full, &info) == 0 else { return nil }
        let directory = (full as NSString).deletingLastPathComponent
        return Self.entry(path, info, directory: directory, name: (full as NSString).lastPathComponent)
    }

    private static func entry(_ path: String, _ info: stat, directory: String, name: String) -> SyncEntry? {
        var target: String?
        if info.st_mode & S_IFMT == S_IFLNK { target = LocalTree.readLink(directory + "/" + name) }
        guard let local = LocalEntry(info, target: target) else { return nil }
        return SyncEntry(
            path: path,
            kind: local.kind,
            size: local.kind == .symlink ? UInt64(target?.utf8.count ?? 0) : local.size,
            mtimeNanoseconds: local.mtime,
            mode: local.mode,
            uid: UInt32(info.st_uid),
            gid: UInt32(info.st_gid),
            linkTarget: target
        )
    }

    private static func hash(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        return LocalTree.hash(fd: fd)
    }

    // MARK: Changing

    public func apply(_ operations: [SyncOperation]) async throws(SyncRemoteError) -> [SyncOutcome] {
        try checkOpen()
        var outcomes: [SyncOutcome] = []
        outcomes.reserveCapacity(operations.count)
        for operation in operations { outcomes.append(apply(operation)) }
        return outcomes
    }

    private func failure(_ code: Int32, _ what: String) -> SyncOutcome {
        .failed(errno: code, message: "\(what): \(String(cString: strerror(code)))")
    }

    /// Whether what is at `path` is what `expect` says.
    private func holds(_ expect: SyncExpectation, _ current: SyncEntry?) -> Bool {
        switch expect {
        case .anything: return true
        case .absent: return current == nil
        case .file(let size, let mtime):
            guard let current else { return false }
            return current.kind == .file && current.size == size && current.mtimeNanoseconds == mtime
        }
    }

    private func apply(_ operation: SyncOperation) -> SyncOutcome {
        switch operation {
        case .write(let path, let source, let mode, let mtime, let expect):
            guard SyncPath.isValid(path), parentIsInside(path) else { return failure(ENOENT, absolute(path)) }
            let full = absolute(path)
            let temporary = TempFiles.temporaryPath(for: full)
            let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard input >= 0 else { return failure(errno, source) }
            defer { Glibc.close(input) }
            let output = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard output >= 0 else { return failure(errno, temporary) }
            var ok = Self.copy(from: input, to: output)
            let code = errno
            if ok {
                var times = [timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2), LocalTree.timeSpec(nanoseconds: mtime)]
                ok = fchmod(output, mode_t(mode & 0o7777)) == 0 && futimens(output, &times) == 0
            }
            Glibc.close(output)
            guard ok else {
                unlink(temporary)
                return failure(code == 0 ? errno : code, full)
            }
            let current = entryAt(path)
            guard holds(expect, current) else {
                unlink(temporary)
                return .conflict(current: current)
            }
            if current?.kind == .directory {
                unlink(temporary)
                return failure(EISDIR, full)
            }
            guard rename(temporary, full) == 0 else {
                let code = errno
                unlink(temporary)
                return failure(code, full)
            }
            return .applied(entryAt(path))
        case .mkdir(let path, let mode):
            guard SyncPath.isValid(path), parentIsInside(path) else { return failure(ENOENT, absolute(path)) }
            if mkdir(absolute(path), mode_t(mode & 0o7777)) != 0 {
                let code = errno
                guard code == EEXIST, entryAt(path)?.kind == .directory else { return failure(code, absolute(path)) }
            }
            return .applied(entryAt(path))
        case .symlink(let path, let target):
            guard SyncPath.isValid(path), parentIsInside(path) else { return failure(ENOENT, absolute(path)) }
            let full = absolute(path)
            if entryAt(path)?.kind == .directory { return failure(EISDIR, full) }
            let temporary = TempFiles.temporaryPath(for: full)
            guard symlink(target, temporary) == 0 else { return failure(errno, full) }
            guard rename(temporary, full) == 0 else {
                let code = errno
                unlink(temporary)
                return failure(code, full)
            }
            return .applied(entryAt(path))
        case .rename(let from, let to):
            guard SyncPath.isValid(from), SyncPath.isValid(to), parentIsInside(from), parentIsInside(to) else {
                return failure(ENOENT, absolute(from))
            }
            guard rename(absolute(from), absolute(to)) == 0 else { return failure(errno, absolute(from)) }
            return .applied(entryAt(to))
        case .remove(let path, let expect):
            guard SyncPath.isValid(path), parentIsInside(path) else { return .applied(nil) }
            let current = entryAt(path)
            guard holds(expect, current) else { return .conflict(current: current) }
            guard let current else { return .applied(nil) }
            let full = absolute(path)
            if current.kind == .directory {
                do {
                    try FileManager.default.removeItem(atPath: full)
                } catch {
                    return .failed(errno: EIO, message: "\(full): \(error.localizedDescription)")
                }
            } else if unlink(full) != 0 && errno != ENOENT {
                return failure(errno, full)
            }
            return .applied(nil)
        case .chmod(let path, let mode):
            guard SyncPath.isValid(path), parentIsInside(path), let current = entryAt(path), current.kind != .symlink
            else {
                return failure(ENOENT, absolute(path))
            }
            guard chmod(absolute(path), mode_t(mode & 0o7777)) == 0 else { return failure(errno, absolute(path)) }
            return .applied(entryAt(path))
        }
    }

    private static func copy(from input: Int32, to output: Int32) -> Bool {
        let size = 256 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(input, buffer.baseAddress, size)
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            if count == 0 { return true }
            var offset = 0
            while offset < count {
                let written = write(output, buffer.baseAddress! + offset, count - offset)  // allocated above
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
        }
    }

    public func download(_ path: String, to destination: String) async throws(SyncRemoteError) -> SyncEntry {
        try checkOpen()
        guard SyncPath.isValid(path), let current = entryAt(path) else {
            throw .unusable("\(absolute(path)): no such file")
        }
        guard current.kind == .file else { return current }
        let input = open(absolute(path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard input >= 0 else { throw .unusable("\(absolute(path)): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(input) }
        var info = Glibc.stat()
        guard fstat(input, &info) == 0, info.st_mode & S_IFMT == S_IFREG,
            let entry = Self.entry(path, info, directory: "", name: "")
        else {
            throw .unusable("\(absolute(path)) is no longer a file")
        }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw .unusable("\(destination): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(output) }
        guard Self.copy(from: input, to: output) else {
            unlink(destination)
            throw .unusable("cannot copy \(absolute(path)) to \(destination): \(String(cString: strerror(errno)))")
        }
        return entry
    }

    public func changes() async throws(SyncRemoteError) -> AsyncThrowingStream<[String], any Error> {
        try checkOpen()
        let subscription: WatchSubscription
        do {
            subscription = try FileWatcher.shared.subscribe(
                [.tree(root, filter: RemoteWatchFilter())],
                batching: batching,
                requireRoots: true
            )
        } catch {
            throw .unusable("cannot watch \(root): \(error)")
        }
        let replaced: WatchSubscription? = lock.withLock {
            let old = self.subscription
            self.subscription = subscription
            return closed ? subscription : old
        }
        replaced?.cancel()
        let root = self.root
        let (stream, continuation) = AsyncThrowingStream<[String], any Error>.makeStream()
        continuation.onTermination = { _ in subscription.cancel() }
        let started = startThread {
            while true {
                switch subscription.next() {
                case .cancelled:
                    continuation.finish(throwing: SyncRemoteError.disconnected("\(root): the remote was closed"))
                    return
                case .timedOut:
                    continue
                case .batch(let batch):
                    if !batch.rescan.isEmpty {
                        continuation.yield([])
                        continue
                    }
                    let paths = batch.changes.compactMap { $0.path.isEmpty ? nil : $0.path }
                    if !paths.isEmpty { continuation.yield(paths) }
                }
            }
        }
        if case .success(let thread) = started {
            pthread_detach(thread)
        } else {
            subscription.cancel()
            throw .unusable("cannot start a thread to watch \(root)")
        }
        return stream
    }

    /// Ends the remote: ``changes()`` finishes with ``SyncRemoteError/disconnected(_:)`` and
    /// every later call throws it (as a container that went away).
    public func close() {
        let subscription = lock.withLock {
            closed = true
            return self.subscription
        }
        subscription?.cancel()
    }
}

/// What the remote directory's watch leaves out: slipway's temporary files (a write in
/// progress) and `.git` (never watched).
struct RemoteWatchFilter: WatchFilter {
    func isExcluded(_ relativePath: String, isDirectory: Bool) -> Bool {
        let name =
            relativePath.utf8.split(separator: UInt8(ascii: "/")).last.map { Substring($0) } ?? Substring(relativePath)
        if isDirectory { return name == ".git" }
        return Self.isTemporary(name)
    }

    func mayIncludeBelow(_ relativePath: String) -> Bool { false }

    /// Whether `name` is one of slipway's temporary names (`NAME.tmp-PID.START-RANDOM`).
    static func isTemporary(_ name: Substring) -> Bool {
        var name = name
        let found = name.withUTF8 { SyncIgnoreRules.contains($0, Array(".tmp-".utf8)) }
        return found && TempFiles.owner(ofFile: String(name)) != nil
    }
}
