// The contract between the sync engine (`SyncEngine`: what to send, when, and what it means)
// and a remote tree (`SyncRemote`: a container reached through slipway's helper, and later a
// pod). The engine decides; a remote applies operations in order and reports what it holds.

/// One entry of a tree, local or remote, relative to the sync root.
public struct SyncEntry: Sendable, Equatable, Hashable, Codable {
    public enum Kind: UInt8, Sendable, Codable {
        case file = 1
        case directory = 2
        case symlink = 3
    }

    /// Relative to the root, `/`-separated, never empty, never absolute, no `.` or `..`
    /// component (``SyncPath/isValid(_:)``).
    public var path: String
    public var kind: Kind
    /// Bytes of a file (0 for a directory; the target's length for a symlink).
    public var size: UInt64
    /// Modification time in nanoseconds since the epoch.
    public var mtimeNanoseconds: Int64
    /// Permission bits (`0o7777` at most).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// A symlink's target as written.
    public var linkTarget: String?
    /// Lowercase hex SHA-256 of a file's content, when it was asked for.
    public var sha256: String?

    public init(
        path: String,
        kind: Kind,
        size: UInt64 = 0,
        mtimeNanoseconds: Int64 = 0,
        mode: UInt32 = 0o644,
        uid: UInt32 = 0,
        gid: UInt32 = 0,
        linkTarget: String? = nil,
        sha256: String? = nil
    ) {
        self.path = path
        self.kind = kind
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.linkTarget = linkTarget
        self.sha256 = sha256
    }
}

/// What the remote must still hold for an operation to go ahead (Mutagen's "expected file"):
/// when it holds something else, the operation is not applied and reports a conflict.
public enum SyncExpectation: Sendable, Equatable, Hashable {
    /// No check.
    case anything
    /// Nothing may exist at the path.
    case absent
    /// A file of this size and modification time (nanoseconds) — what was last synced.
    case file(size: UInt64, mtimeNanoseconds: Int64)
}

/// One change to apply on the remote. Paths follow ``SyncEntry/path``.
public enum SyncOperation: Sendable, Equatable, Hashable {
    /// Writes `path` with the content of the local file `source` (absolute), as a temp file in
    /// the same directory renamed over `path` (no half-written file is ever visible under its
    /// real name), then sets `mode` and `mtimeNanoseconds`. Parent directories must exist.
    case write(path: String, source: String, mode: UInt32, mtimeNanoseconds: Int64, expect: SyncExpectation)
    /// Makes a directory (no error when a directory is already there).
    case mkdir(path: String, mode: UInt32)
    /// Makes or replaces a symlink.
    case symlink(path: String, target: String)
    /// Renames `from` to `to` (replacing a file at `to`).
    case rename(from: String, to: String)
    /// Removes a file, a symlink, or a directory with everything in it.
    case remove(path: String, expect: SyncExpectation)
    /// Changes the permission bits only.
    case chmod(path: String, mode: UInt32)
}

/// What became of one operation.
public enum SyncOutcome: Sendable, Equatable {
    /// Applied; the entry as the remote now holds it (nil after a remove or for a path gone).
    case applied(SyncEntry?)
    /// Not applied: the remote held something other than the expectation (it holds `current`).
    case conflict(current: SyncEntry?)
    /// Not applied: the remote refused (`errno`, with a message naming the path).
    case failed(errno: Int32, message: String)
}

/// A failure of the remote as a whole (the channel, the container), not of one operation.
public enum SyncRemoteError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The channel closed or broke (the container stopped, restarted or was removed): the
    /// engine reconnects and checks the manifest again.
    case disconnected(String)
    /// The remote cannot be used at all (no such container, a read-only root, an engine that
    /// cannot run the helper), with what to do.
    case unusable(String)
    /// The helper answered something that does not follow the protocol.
    case protocolViolation(String)
    /// One path could not be handled, the remote as a whole still works: a download of a file
    /// removed meanwhile (`ENOENT`), of something that is not a regular file, of a file that
    /// changed while it was read (`EAGAIN`: read it again), a destination that cannot be
    /// written; a watch that cannot start. `message` names the path.
    case failed(path: String, errno: Int32, message: String)
    /// The restart helper (the dev container's PID 1) could not restart or start the command:
    /// not started yet (`EAGAIN`), the command cannot be run (`ENOENT`: not found), the
    /// container is stopping (`ESHUTDOWN`). `message` says which, and names the command.
    case processFailed(errno: Int32, message: String)

    public var description: String {
        switch self {
        case .disconnected(let detail): return "the sync channel closed: \(detail)"
        case .unusable(let detail): return detail
        case .protocolViolation(let detail): return "the sync helper answered out of protocol: \(detail)"
        case .failed(_, _, let message): return message
        case .processFailed(_, let message): return message
        }
    }
}

/// A remote tree under one root.
public protocol SyncRemote: AnyObject, Sendable {
    /// Every entry under the root, recursively (the root itself left out); with content hashes
    /// for the files in `paths`, or for every file when `hashAll`.
    func manifest(hashing paths: Set<String>, hashAll: Bool) async throws(SyncRemoteError) -> [SyncEntry]
    /// Applies `operations` in order, one outcome each.
    func apply(_ operations: [SyncOperation]) async throws(SyncRemoteError) -> [SyncOutcome]
    /// The entries at `paths` that exist (a path with nothing there is left out); with
    /// `recursive`, a directory among them comes with everything below it. Content hashes for
    /// the files in `hashing`. The engine asks this for the paths ``changes()`` names and for
    /// the hashes of the few files the initial sync cannot tell apart by size and mtime.
    ///
    /// A default implementation filters ``manifest(hashing:hashAll:)``; a remote that can
    /// answer for a few paths without listing the whole tree should implement it.
    func entries(_ paths: [String], recursive: Bool, hashing: Set<String>) async throws(SyncRemoteError) -> [SyncEntry]
    /// Copies the remote file `path` into the new local file `destination` (absolute; created,
    /// never replaced — the engine renames it into place) and returns the remote entry it read.
    /// When `path` is no longer a regular file (removed or replaced meanwhile), the remote
    /// creates nothing and either returns the entry it found there (a directory, a symlink)
    /// or throws ``SyncRemoteError/failed(path:errno:message:)`` naming the path: the engine treats both as
    /// "that path changed again" and looks at it once more, it does not stop.
    func download(_ path: String, to destination: String) async throws(SyncRemoteError) -> SyncEntry
    /// Paths (relative) under the root that changed on the remote side since the call,
    /// delivered in batches; an empty batch means "unknown: compare the manifest again"
    /// (the helper's queue overflowed). Ends when the remote disconnects.
    func changes() async throws(SyncRemoteError) -> AsyncThrowingStream<[String], any Error>
    /// Closes the channel; the helper exits.
    func close()
    /// What the remote noticed on the side since the last call (a path from the container
    /// that is not a valid sync path, a directory it cannot list…), oldest first: the engine
    /// reports each as a note after every batch.
    func takeNotes() -> [String]
}

extension SyncRemote {
    public func takeNotes() -> [String] { [] }

    /// The entries at `paths` (and below them, with `recursive`), from the whole manifest.
    public func entries(
        _ paths: [String],
        recursive: Bool,
        hashing: Set<String>
    ) async throws(SyncRemoteError) -> [SyncEntry] {
        let wanted = Set(paths)
        let all = try await manifest(hashing: hashing, hashAll: false)
        return all.filter { SyncPath.isCovered($0.path, by: wanted, recursive: recursive) }
    }
}

/// Rules for paths that cross the channel.
public enum SyncPath {
    /// Whether `path` is one of `paths` or, with `recursive`, below one of them.
    static func isCovered(_ path: String, by paths: Set<String>, recursive: Bool) -> Bool {
        if paths.contains(path) { return true }
        guard recursive else { return false }
        var parent = Substring(path)
        while let slash = parent.lastIndex(of: "/") {
            parent = parent[..<slash]
            if paths.contains(String(parent)) { return true }
        }
        return false
    }

    /// Whether `path` is a valid relative sync path: not empty, not absolute, no empty, `.` or
    /// `..` component, no NUL. Anything else coming from a remote is refused and reported.
    public static func isValid(_ path: String) -> Bool {
        guard !path.isEmpty, !path.hasPrefix("/"), !path.utf8.contains(0) else { return false }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty || component == "." || component == ".." { return false }
        }
        return true
    }
}
