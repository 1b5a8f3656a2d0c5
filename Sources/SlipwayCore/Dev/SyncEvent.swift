// What a running sync tells its caller. The core never prints: the CLI renders these (one line
// per batch, a status line, `--json`), the agent logs them.

/// Which way a change went.
public enum SyncDirection: String, Sendable, Equatable, Codable {
    /// Local → container.
    case upload
    /// Container → local.
    case download
}

/// The one decision taken for one changed path.
public struct SyncDecision: Sendable, Equatable, CustomStringConvertible {
    public enum Action: Sendable, Equatable {
        /// Sent to the container (a file's content, a new directory, a symlink).
        case uploaded
        /// Only the permission bits were sent.
        case modeChanged
        /// Removed in the container (it was removed locally).
        case deleted
        /// Renamed in the container (it was renamed locally).
        case renamed(from: String)
        /// Fetched from the container.
        case downloaded
        /// Removed locally (it was removed in the container).
        case deletedLocally
        /// Changed on both sides: the local version kept the name on both sides, the
        /// container's version is the local file `copy` (never uploaded). `copy` is nil when
        /// the container's version was not kept (downloads disabled).
        case conflict(copy: String?)
        /// Left out by a rule (`excludePaths: node_modules/`, an editor's temporary file…).
        case ignored(SyncExclusion)
        /// Not synced: a path from the container that would leave the local root (`..`, an
        /// absolute path, a symlink pointing out, a symlink on the way), a local symlink
        /// pointing out of the root, or a file where the other side has a directory.
        case refused(reason: String)
        /// Nothing to do: both sides already hold the same.
        case unchanged
        /// Differs on the two sides and was left so (`keepAll`, a direction disabled).
        case kept(reason: String)
        /// The operation failed (the message names the path and the reason).
        case failed(message: String)
    }

    /// Relative to the sync's root.
    public var path: String
    public var direction: SyncDirection
    public var action: Action

    public init(path: String, direction: SyncDirection, action: Action) {
        self.path = path
        self.direction = direction
        self.action = action
    }

    public var description: String {
        switch action {
        case .uploaded: "uploaded \(path)"
        case .modeChanged: "mode of \(path) sent"
        case .deleted: "deleted \(path) in the container"
        case .renamed(let from): "renamed \(from) to \(path)"
        case .downloaded: "downloaded \(path)"
        case .deletedLocally: "deleted \(path) locally"
        case .conflict(let copy):
            if let copy {
                "conflict: \(path) changed on both sides; the local version kept the name, the container's is \(copy)"
            } else {
                "conflict: \(path) changed on both sides; the local version replaced the container's"
            }
        case .ignored(let rule): "ignored \(path) (\(direction == .upload ? "upload" : "download"): \(rule))"
        case .refused(let reason): "refused \(path): \(reason)"
        case .unchanged: "\(path) unchanged"
        case .kept(let reason): "kept \(path) as it is on each side: \(reason)"
        case .failed(let message): "failed \(path): \(message)"
        }
    }
}

/// What one batch did.
public struct SyncBatchReport: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// The comparison of both trees at start (or after a reconnect, or a resume).
        case initial
        /// Local changes.
        case upload
        /// Container changes.
        case download
        /// A scan of the local tree against the records (after an overflow, a failed watch).
        case rescan
    }

    public var kind: Kind
    /// Files whose content was sent or fetched.
    public var files: Int
    /// Their bytes.
    public var bytes: UInt64
    /// Every decision but ``SyncDecision/Action/unchanged``.
    public var changes: Int
    public var conflicts: Int
    public var failures: Int
    /// From the batch's first event to the end of its application (initial: the whole
    /// comparison).
    public var latency: Duration
    /// From the moment the batch was handed over to the end of its application (the rest of
    /// ``latency`` is the wait for quiet, or for git).
    public var applying: Duration
    /// How long the batch waited for git to release its index lock (a checkout, a merge).
    public var waitedForGit: Duration?
    /// Decisions by action, for the summary line (`uploaded`: 12…).
    public var counts: [String: Int]

    public init(kind: Kind) {
        self.kind = kind
        files = 0
        bytes = 0
        changes = 0
        conflicts = 0
        failures = 0
        latency = .zero
        applying = .zero
        waitedForGit = nil
        counts = [:]
    }
}

/// Why a sync stopped sending changes for now.
public enum SyncPauseReason: Sendable, Equatable, CustomStringConvertible {
    /// The local root is gone (deleted or moved away).
    case rootMissing(String)
    /// The local root is empty while the records say files were synced: sending that would
    /// empty the container.
    case rootEmpty(String, syncedFiles: Int)

    public var description: String {
        switch self {
        case .rootMissing(let path):
            "\(path) is gone; sync paused (nothing is deleted in the container) until it is back"
        case .rootEmpty(let path, let files):
            "\(path) is empty but \(files) synced file\(files == 1 ? "" : "s") were there; sync paused (nothing is deleted in the container) until files are back — to empty the container on purpose, remove the files there"
        }
    }
}

/// Something a running sync reports.
public enum SyncEvent: Sendable, Equatable {
    /// One decision for one path.
    case decision(SyncDecision)
    /// A batch was applied.
    case batch(SyncBatchReport)
    /// The initial sync begins (`strategy`), with how many local and remote entries it compares.
    case initialSyncStarted(strategy: InitialSyncStrategy, local: Int, remote: Int)
    /// Changes are being watched on both sides.
    case watching
    /// git holds its index lock: the batch waits until it is released.
    case waitingForGit
    /// git's index lock was held longer than the limit: the batch is sent anyway.
    case gitLockStale(path: String, heldFor: Duration)
    /// The local tree is scanned against the records: changes may have been missed.
    case rescan(reason: String)
    /// The directories to watch exceed `fs.inotify.max_user_watches`; `command` raises it.
    case watchLimitTooLow(needed: Int, limit: Int, command: String)
    case paused(SyncPauseReason)
    case resumed
    /// The remote went away; the engine asks for a new one.
    case disconnected(reason: String)
    /// A new remote answered; the initial sync runs again.
    case reconnected
    /// A note from the watcher or the state file (a watch that failed, a state that could not
    /// be read).
    case note(String)
}

/// The state of a sync at one moment (``SyncEngine/status``).
public struct SyncStatus: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case starting
        case initialSync
        case watching
        case paused(SyncPauseReason)
        case reconnecting
        case stopped
    }

    public var phase: Phase
    /// Conflicts whose copy still exists (listed until the copy is removed).
    public var conflicts: [SyncConflict]
    public var lastBatch: SyncBatchReport?
    /// Totals since start.
    public var uploadedFiles: Int
    public var downloadedFiles: Int
    public var bytesSent: UInt64
    public var bytesReceived: UInt64

    public init() {
        phase = .starting
        conflicts = []
        lastBatch = nil
        uploadedFiles = 0
        downloadedFiles = 0
        bytesSent = 0
        bytesReceived = 0
    }
}

/// Why a sync stopped for good.
public enum SyncError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The remote disconnected and no new one came back.
    case remoteGone(name: String, reason: String)
    /// The remote cannot be used (``SyncRemoteError/unusable(_:)``,
    /// ``SyncRemoteError/protocolViolation(_:)``).
    case remoteFailed(name: String, reason: String)
    /// The local root cannot be used at start.
    case localRoot(path: String, reason: String)
    /// The local changes cannot be watched.
    case watchFailed(name: String, reason: String)

    public var description: String {
        switch self {
        case .remoteGone(let name, let reason):
            "sync \(name): the container is gone (\(reason)) and no new one answered; stopping"
        case .remoteFailed(let name, let reason): "sync \(name): \(reason)"
        case .localRoot(let path, let reason): "sync: cannot use \(path): \(reason)"
        case .watchFailed(let name, let reason): "sync \(name): cannot watch local changes: \(reason)"
        }
    }
}
