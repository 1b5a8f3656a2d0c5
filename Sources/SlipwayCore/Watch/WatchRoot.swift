/// Which paths below a root a subscription hears about.
///
/// The watcher asks it twice: whether a change of a path is reported, and whether a directory
/// is entered (watched) at all. A directory that is excluded with nothing re-included below it
/// costs no watch. ``IgnoreMatcher`` (a build context's `.dockerignore` rules) is one.
public protocol WatchFilter: Sendable {
    /// Whether `relativePath` (relative to the root, `/`-separated) is left out.
    func isExcluded(_ relativePath: String, isDirectory: Bool) -> Bool
    /// Whether something below the excluded directory `relativePath` may still be included
    /// (a `!` rule reaching below it): the directory is then watched all the same.
    func mayIncludeBelow(_ relativePath: String) -> Bool
}

extension IgnoreMatcher: WatchFilter {}

/// Something a subscription watches.
public struct WatchRoot: Sendable {
    public enum Kind: Sendable, Equatable {
        /// A directory and every directory below it (new ones are watched as they appear).
        case tree
        /// The entries directly in one directory, not below (an inbox, git's `.git` for its
        /// `index.lock` and `HEAD`).
        case directory
        /// One file: its parent directory is watched and events are filtered by name.
        case file
    }

    /// An absolute path without a trailing `/`.
    public var path: String
    public var kind: Kind
    /// Trees and directories only: which paths are reported (and, in a tree, entered).
    public var filter: (any WatchFilter)?

    /// A directory and everything below it. `.git` directories (and the subscription's
    /// `skipping` paths) are never entered: if `filter` does not exclude them, the root stays
    /// unknown (``WatchState/unknown``), because something a consumer reads is not watched.
    public static func tree(_ path: String, filter: (any WatchFilter)? = nil) -> WatchRoot {
        WatchRoot(path: path, kind: .tree, filter: filter)
    }

    /// The entries of one directory, not recursive.
    public static func directory(_ path: String, filter: (any WatchFilter)? = nil) -> WatchRoot {
        WatchRoot(path: path, kind: .directory, filter: filter)
    }

    public static func file(_ path: String) -> WatchRoot {
        WatchRoot(path: path, kind: .file, filter: nil)
    }

    /// The path without trailing slashes (the watcher compares paths as strings).
    var normalized: WatchRoot {
        var root = self
        while root.path.count > 1 && root.path.hasSuffix("/") { root.path.removeLast() }
        return root
    }
}

/// What the watcher knows about one root of a subscription.
public struct WatchState: Sendable, Equatable {
    /// Bumped on every change reported for the root and whenever it became unknown (never
    /// decreases). Equal generations before and after reading something mean nothing the
    /// watcher could see changed in between.
    public var generation: UInt64
    /// The watcher cannot vouch for the root: the event queue overflowed, a watch could not be
    /// added, the root itself went away, or something the filter includes (`.git`) lies where
    /// the watcher does not look. A consumer must scan.
    public var unknown: Bool
}

/// Why ``FileWatcher/subscribe(_:skipping:batching:requireRoots:notes:)`` failed.
public enum WatchError: Error, Sendable, Equatable, CustomStringConvertible {
    case inotifyUnavailable(reason: String)
    case threadFailed(reason: String)
    /// A root could not be watched and the subscriber asked for every root (`requireRoots`).
    case cannotWatch(path: String, reason: String)

    public var description: String {
        switch self {
        case .inotifyUnavailable(let reason): "cannot start inotify: \(reason)"
        case .threadFailed(let reason): "cannot start the watcher thread: \(reason)"
        case .cannotWatch(let path, let reason): "cannot watch \(path): \(reason)"
        }
    }
}
