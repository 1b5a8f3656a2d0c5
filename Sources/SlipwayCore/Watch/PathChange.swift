/// What happened to a path, as inotify said it (several, after coalescing).
public struct ChangeKinds: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `IN_CREATE`: a new entry (a file, a directory, a link).
    public static let created = ChangeKinds(rawValue: 1 << 0)
    /// `IN_MODIFY`: written to (it may still be open for writing).
    public static let modified = ChangeKinds(rawValue: 1 << 1)
    /// `IN_CLOSE_WRITE`: closed after it was opened for writing (a save is complete).
    public static let closedAfterWrite = ChangeKinds(rawValue: 1 << 2)
    /// `IN_ATTRIB`: mode, owner, timestamps, link count.
    public static let attributes = ChangeKinds(rawValue: 1 << 3)
    /// `IN_DELETE` (for the root itself: `IN_DELETE_SELF`).
    public static let deleted = ChangeKinds(rawValue: 1 << 4)
    /// `IN_MOVED_FROM`: renamed away from this path (for the root itself: `IN_MOVE_SELF`).
    public static let movedFrom = ChangeKinds(rawValue: 1 << 5)
    /// `IN_MOVED_TO`: renamed to this path (``PathChange/renamedFrom`` when the pair was seen).
    public static let movedTo = ChangeKinds(rawValue: 1 << 6)

    public var description: String {
        let names: [(ChangeKinds, String)] = [
            (.created, "created"), (.modified, "modified"), (.closedAfterWrite, "closed"), (.attributes, "attributes"),
            (.deleted, "deleted"), (.movedFrom, "moved-from"), (.movedTo, "moved-to"),
        ]
        return names.filter { contains($0.0) }.map(\.1).joined(separator: ",")
    }
}

/// One path that changed under a root of a subscription.
///
/// Repeated events of one path within a batch are coalesced into one change: `kinds` says
/// everything that happened to it, in no order. It does not say what the path is now (created
/// then deleted has both kinds): a consumer looks at the file.
public struct PathChange: Sendable, Equatable, CustomStringConvertible {
    /// The index of the root in the subscription's roots.
    public var root: Int
    /// Relative to the root, `/`-separated; `""` is the root itself (a file root's file, or a
    /// directory root that was deleted or moved).
    public var path: String
    public var kinds: ChangeKinds
    public var isDirectory: Bool
    /// For a rename inside the same root whose two halves inotify paired (the same cookie):
    /// the path it had before. That old path is reported too, with ``ChangeKinds/movedFrom``.
    public var renamedFrom: String?

    public init(root: Int, path: String, kinds: ChangeKinds, isDirectory: Bool, renamedFrom: String? = nil) {
        self.root = root
        self.path = path
        self.kinds = kinds
        self.isDirectory = isDirectory
        self.renamedFrom = renamedFrom
    }

    public var description: String {
        "\(root):\(path.isEmpty ? "." : path)\(isDirectory ? "/" : "") [\(kinds)]"
            + (renamedFrom.map { " from \($0)" } ?? "")
    }
}

/// Why a subscriber must scan a root instead of trusting the changes it was told.
public enum RescanReason: Sendable, Equatable, CustomStringConvertible {
    /// inotify's queue overflowed (`IN_Q_OVERFLOW`): events of every root were lost.
    case overflow
    /// A directory of the root could not be watched (no watches left, no permission, the
    /// root missing); it is tried again at each ``WatchSubscription/drain()``.
    case watchFailed
    /// The root itself was deleted or moved away.
    case rootRemoved
    /// Something the root's filter includes is never watched (`.git`, a skipped directory).
    case unwatchedDirectory
    /// The batch held more paths than ``WatchBatching/maximumPaths``.
    case tooManyChanges
    /// The root is watched again after one of the above: what happened meanwhile is unknown.
    case watchedAgain

    public var description: String {
        switch self {
        case .overflow: "inotify's event queue overflowed"
        case .watchFailed: "a directory could not be watched"
        case .rootRemoved: "the root was removed"
        case .unwatchedDirectory: "a directory the filter includes is not watched"
        case .tooManyChanges: "too many changes for one batch"
        case .watchedAgain: "watched again"
        }
    }
}

/// What a subscription delivers at once: the changed paths (coalesced) and the roots to scan.
public struct WatchBatch: Sendable {
    /// In the order each path first changed.
    public var changes: [PathChange]
    /// Roots the subscriber must scan whole: changes of them may be missing from `changes`.
    /// Never dropped: a batch with a rescan is delivered like any other.
    public var rescan: [Int: RescanReason]
    /// The subscription's ``WatchSubscription/sequence`` when the batch was taken: everything
    /// added before that is in this batch or an earlier one.
    public var sequence: UInt64
    /// When the reader handled the batch's first and last event.
    public var firstEvent: ContinuousClock.Instant
    public var lastEvent: ContinuousClock.Instant

    public var isEmpty: Bool { changes.isEmpty && rescan.isEmpty }
}

/// How a subscription's changes are gathered into batches.
///
/// With ``burstQuiet`` the quiet period adapts: a batch of a few events (one save, even an
/// editor's temp-file-and-rename save) is due ``quiet`` after its last event, while a batch
/// that already holds more than ``burstEvents`` events (a checkout, a build writing its
/// output) waits for ``burstQuiet`` of silence, so that a burst is one batch rather than many.
/// ``maximumDelay`` caps both.
public struct WatchBatching: Sendable, Equatable {
    /// A batch is delivered once no event came for this long…
    public var quiet: Duration
    /// …but never later than this after its first event (a steady writer cannot postpone it).
    public var maximumDelay: Duration
    /// Distinct paths in one batch; past that the root is reported for a rescan instead.
    public var maximumPaths: Int
    /// The quiet period of a batch that holds more than ``burstEvents`` events (nil: always
    /// ``quiet``).
    public var burstQuiet: Duration?
    /// How many events (counted before coalescing) make a batch a burst.
    public var burstEvents: Int

    public init(
        quiet: Duration = .milliseconds(50),
        maximumDelay: Duration = .seconds(1),
        maximumPaths: Int = 50_000,
        burstQuiet: Duration? = nil,
        burstEvents: Int = 50
    ) {
        self.quiet = quiet
        self.maximumDelay = max(maximumDelay, quiet)
        self.maximumPaths = max(1, maximumPaths)
        self.burstQuiet = burstQuiet
        self.burstEvents = max(1, burstEvents)
    }

    /// The quiet period of a batch that holds `events` events.
    func quiet(afterEvents events: Int) -> Duration {
        guard let burstQuiet, events > burstEvents else { return quiet }
        return burstQuiet
    }
}
