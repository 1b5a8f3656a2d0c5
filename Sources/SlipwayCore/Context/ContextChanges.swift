#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// What a file looked like at one moment: enough to tell that it was written, replaced or
/// removed since (every write moves `ctime`, a replacement changes the inode).
public struct FileStamp: Codable, Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var mtimeNanoseconds: Int64
    public var ctimeNanoseconds: Int64

    /// The stamp of `path` (not following a final symbolic link); nil when it does not exist.
    public static func of(_ path: String) -> FileStamp? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return FileStamp(
            device: UInt64(truncatingIfNeeded: info.st_dev),
            inode: UInt64(info.st_ino),
            size: Int64(info.st_size),
            mtimeNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
            ctimeNanoseconds: Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
        )
    }
}

/// Which entries of a context differ between two walks of it.
public enum ContextChanges {
    /// The paths added, removed or changed between `before` and `after` (both sorted by path
    /// in byte order, as ``ContextWalker`` lists them). A file or link changed when its kind,
    /// mode, size, inode, mtime, ctime or link target did; a directory when its kind, mode or
    /// inode did (its times move whenever anything in it is created, excluded files too; what
    /// it holds is compared entry by entry).
    public static func between(_ before: [ContextEntry], _ after: [ContextEntry]) -> [String] {
        var changed: [String] = []
        var i = 0
        var j = 0
        while i < before.count || j < after.count {
            if j >= after.count {
                changed.append(before[i].path)
                i += 1
            } else if i >= before.count {
                changed.append(after[j].path)
                j += 1
            } else {
                let order = comparePaths(before[i], after[j])
                if order < 0 {
                    changed.append(before[i].path)
                    i += 1
                } else if order > 0 {
                    changed.append(after[j].path)
                    j += 1
                } else {
                    if differs(before[i], after[j]) { changed.append(after[j].path) }
                    i += 1
                    j += 1
                }
            }
        }
        return changed
    }

    static func differs(_ a: ContextEntry, _ b: ContextEntry) -> Bool {
        guard a.kind == b.kind, a.mode == b.mode, a.inode == b.inode, a.device == b.device else { return true }
        switch a.kind {
        case .directory:
            return false
        case .file, .other:
            return a.size != b.size || a.mtimeNanoseconds != b.mtimeNanoseconds
                || a.ctimeNanoseconds != b.ctimeNanoseconds
        case .symlink:
            return a.symlinkTarget != b.symlinkTarget || a.ctimeNanoseconds != b.ctimeNanoseconds
        }
    }

    /// Byte order of the entries' paths (their exact bytes when they are not valid UTF-8).
    static func comparePaths(_ a: ContextEntry, _ b: ContextEntry) -> Int {
        a.withPathBytes { x in
            b.withPathBytes { y in
                let n = min(x.count, y.count)
                for k in 0..<n where x[k] != y[k] { return x[k] < y[k] ? -1 : 1 }
                return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
            }
        }
    }
}
