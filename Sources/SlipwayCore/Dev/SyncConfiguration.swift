// What one sync is asked to do: the local root, the strategy of its initial sync, its
// excludes, its directions and its timing. `dev.*.sync[]` and `slipway sync` both end here.

/// DevSpace's `initialSync`: what the first comparison of the two trees does with the
/// differences it finds.
public enum InitialSyncStrategy: String, Sendable, Equatable, CaseIterable, Codable {
    /// The container becomes a copy of the local tree: local files win, files only the
    /// container has are deleted (those its upload excludes cover are left alone). The default
    /// of `dev.*.sync[]`.
    case mirrorLocal
    /// The local tree becomes a copy of the container's.
    case mirrorRemote
    /// Local files win where both sides differ; files only one side has are copied over. The
    /// default of `slipway sync`, as `devspace sync --download-on-initial-sync` does.
    case preferLocal
    /// The container's files win where both sides differ; files only one side has are copied.
    case preferRemote
    /// The newer modification time wins where both sides differ.
    case preferNewest
    /// Files only one side has are copied; files that differ stay as they are on each side.
    case keepAll
    /// No initial comparison: only changes made from now on are synced.
    case disabled
}

/// DevSpace's `initialSyncCompareBy`: what makes two files of the initial sync equal.
public enum InitialSyncCompareBy: String, Sendable, Equatable, CaseIterable, Codable {
    /// Equal size and modification time; files of equal size whose times differ are compared
    /// by content (SHA-256 of both sides).
    case mtime
    /// Equal size is enough.
    case size
}

/// When changes are sent: the quiet period of a single save, the quiet period of a burst, the
/// longest any change waits, and how git's index lock holds a batch back.
public struct SyncTiming: Sendable, Equatable, Codable {
    /// Quiet after the last event of a single save before it is sent (5 ms).
    public var quietMilliseconds: Int
    /// Quiet that ends a burst (more than ``burstEvents`` events), 150 ms.
    public var burstMilliseconds: Int
    /// No change waits longer than this after its first event (1 s), git's lock aside.
    public var maximumDelayMilliseconds: Int
    /// How many events make a batch a burst (50).
    public var burstEvents: Int
    /// After git releases its index lock, how long the batch may still wait for git to take it
    /// again (a rebase's next step) or for the tree to fall quiet (2 s).
    public var gitReleaseMilliseconds: Int
    /// A lock held longer than this is taken for one a crashed git left behind: the batch is
    /// sent anyway, and the event says so (60 s).
    public var gitLockLimitMilliseconds: Int

    public init(
        quietMilliseconds: Int = 5,
        burstMilliseconds: Int = 150,
        maximumDelayMilliseconds: Int = 1000,
        burstEvents: Int = 50,
        gitReleaseMilliseconds: Int = 2000,
        gitLockLimitMilliseconds: Int = 60_000
    ) {
        self.quietMilliseconds = quietMilliseconds
        self.burstMilliseconds = burstMilliseconds
        self.maximumDelayMilliseconds = maximumDelayMilliseconds
        self.burstEvents = burstEvents
        self.gitReleaseMilliseconds = gitReleaseMilliseconds
        self.gitLockLimitMilliseconds = gitLockLimitMilliseconds
    }

    /// The watcher's batching for these values.
    var batching: WatchBatching {
        WatchBatching(
            quiet: .milliseconds(quietMilliseconds),
            maximumDelay: .milliseconds(maximumDelayMilliseconds),
            burstQuiet: .milliseconds(burstMilliseconds),
            burstEvents: burstEvents
        )
    }
}

/// One sync: a local directory and a remote tree (given to ``SyncEngine`` separately).
public struct SyncConfiguration: Sendable {
    /// The local directory (absolute, without a trailing slash).
    public var localRoot: String
    /// How the sync names itself in events and errors (`app: ./src → /app`).
    public var name: String
    public var initialSync: InitialSyncStrategy
    public var compareBy: InitialSyncCompareBy
    /// The compiled excludes (``SyncFilter/load(_:baseDirectory:)``).
    public var filter: SyncFilter
    /// Local changes are not sent (DevSpace's `disableUpload`).
    public var disableUpload: Bool
    /// Container changes are not fetched, and the remote is not watched (`disableDownload`).
    public var disableDownload: Bool
    /// Stop after the initial sync (`noWatch`, `--no-watch`).
    public var noWatch: Bool
    public var timing: SyncTiming
    /// Where the state of this sync is kept (``SyncState/path(configDirectory:identifier:)``);
    /// nil keeps it in memory only (every start is a first sync).
    public var statePath: String?
    /// Directories the local watch never enters, absolute (the config's `.devspace`).
    public var skipping: [String]
    /// The agent's inbox, when slipway's git hooks are installed (`slipway dev`): after git
    /// lets go of its index lock, a batch also waits for the hooks' `checkout` or `refresh`
    /// event (at most 2 s), so that a branch switch or a rebase is one batch.
    public var hookInbox: String? = nil

    public init(
        localRoot: String,
        name: String? = nil,
        initialSync: InitialSyncStrategy = .mirrorLocal,
        compareBy: InitialSyncCompareBy = .mtime,
        filter: SyncFilter = SyncFilter(),
        disableUpload: Bool = false,
        disableDownload: Bool = false,
        noWatch: Bool = false,
        timing: SyncTiming = SyncTiming(),
        statePath: String? = nil,
        skipping: [String] = []
    ) {
        var root = localRoot
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.localRoot = root
        self.name = name ?? root
        self.initialSync = initialSync
        self.compareBy = compareBy
        self.filter = filter
        self.disableUpload = disableUpload
        self.disableDownload = disableDownload
        self.noWatch = noWatch
        self.timing = timing
        self.statePath = statePath
        self.skipping = skipping
    }
}

extension SyncConfiguration {
    /// Where a sync keeps its state: `<config dir>/.devspace/slipway/sync-<id>.json`, `<id>`
    /// 16 hex digits naming the local root and the remote (`remote`: what identifies the
    /// container side, e.g. its selector and path), so that a restart into the same place finds
    /// what was synced.
    public static func statePath(configDirectory: String, localRoot: String, remote: String) -> String {
        SyncState.path(
            configDirectory: configDirectory,
            identifier: SyncState.identifier(localRoot: localRoot, remote: remote)
        )
    }
}

/// A sync that cannot start as configured; every case says where the value came from.
public enum SyncConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An exclude pattern gitignore's syntax cannot read (`origin`: `excludePaths[2]`,
    /// `FILE:LINE`).
    case badPattern(origin: String, pattern: String, reason: String)
    /// An exclude file that cannot be read.
    case unreadableExcludeFile(field: String, path: String, reason: String)

    public var description: String {
        switch self {
        case .badPattern(let origin, let pattern, let reason): "\(origin): bad exclude pattern '\(pattern)': \(reason)"
        case .unreadableExcludeFile(let field, let path, let reason): "\(field): cannot read \(path): \(reason)"
        }
    }
}
