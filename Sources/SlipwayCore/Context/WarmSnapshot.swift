internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// The identity of a stat index file (or a config): replaced (slipway writes by rename) or
/// rewritten, its ``FileStamp`` changes.
public typealias IndexIdentity = FileStamp

/// One context's digest, computed while nothing in it changed.
public struct WarmEntry: Codable, Sendable, Equatable {
    /// The context directory, as `BuildPlanner` resolves it.
    public var context: String
    /// The ignore patterns the digest was computed with (``IgnoreMatcher/patterns``).
    public var ignorePatterns: [String]
    /// The context digest, as ``ContextDigester`` computes it.
    public var digest: String
    public var fileCount: Int
    public var totalBytes: Int64
    /// The watcher's generation of the context, read before the walk began.
    public var generation: UInt64
    /// The stat index file after the walk saved it (nil: there is none).
    public var index: IndexIdentity?
}

/// Context digests known to be current, handed from the agent to a build it starts: the file
/// named by `SLIPWAY_WARM_DIGESTS` (JSON, written by rename).
///
/// A build uses an entry instead of walking the context only when the context path, the
/// ignore patterns the build itself reads and the stat index file's identity all match;
/// anything else (no file, a file that does not parse, another config directory) means the
/// build walks, as without an agent.
public struct WarmSnapshot: Codable, Sendable, Equatable {
    /// The environment variable that names the file.
    public static let environmentVariable = "SLIPWAY_WARM_DIGESTS"
    /// Larger files are not snapshots slipway wrote.
    static let maximumFileSize = 64 << 20

    public var version: Int
    /// The directory of the config the digests belong to (`LoadedConfig.directory`).
    public var configDirectory: String
    public var entries: [WarmEntry]
    /// Why the contexts the agent knows but does not list are not current (context → reason):
    /// what `--debug` says of a context that is walked.
    public var stale: [String: String]?

    public init(configDirectory: String, entries: [WarmEntry], stale: [String: String]? = nil) {
        self.version = 1
        self.configDirectory = configDirectory
        self.entries = entries
        self.stale = stale
    }

    /// The snapshot at `path`; nil when there is none or it is not one slipway wrote.
    public static func read(from path: String) -> WarmSnapshot? {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) <= maximumFileSize,
            let data = FileManager.default.contents(atPath: path),
            let snapshot = try? JSONDecoder().decode(WarmSnapshot.self, from: data), snapshot.version == 1
        else { return nil }
        return snapshot
    }

    /// The snapshot named by `SLIPWAY_WARM_DIGESTS` in `environment`, if any.
    public static func fromEnvironment(_ environment: [String: String]) -> WarmSnapshot? {
        guard let path = environment[environmentVariable], !path.isEmpty else { return nil }
        return read(from: path)
    }

    /// What a build does with `context` and `patterns`: the entry to use instead of walking, if
    /// it still stands — same config directory, same context and patterns, and, with
    /// `requireIndex` (a snapshot read from the file an agent's job was handed, which may be
    /// older than the build), the stat index at `indexPath` is the file the entry saw — or why
    /// the context is walked. A snapshot the agent answered just now was checked against its
    /// watcher's generations at the request; a foreground build that saved the index since the
    /// agent's digest does not make it wrong.
    func lookup(
        configDirectory: String,
        context: String,
        patterns: [String],
        indexPath: String,
        requireIndex: Bool = true
    ) -> Result<WarmEntry, WalkReason> {
        guard self.configDirectory == configDirectory else {
            return .failure(WalkReason("the agent's digests are of \(self.configDirectory), not \(configDirectory)"))
        }
        if let reason = stale?[context] { return .failure(WalkReason(reason)) }
        let ofContext = entries.filter { $0.context == context }
        guard !ofContext.isEmpty else { return .failure(WalkReason("the agent keeps no digest of it")) }
        guard let entry = ofContext.first(where: { $0.ignorePatterns == patterns }) else {
            return .failure(WalkReason("its ignore rules are not the ones the agent digested with"))
        }
        if requireIndex && entry.index != IndexIdentity.of(indexPath) {
            return .failure(WalkReason("its stat index changed since the agent's digest (another build saved it)"))
        }
        return .success(entry)
    }

    /// Why a context is walked rather than taken from a snapshot.
    struct WalkReason: Error, Equatable {
        var text: String
        init(_ text: String) { self.text = text }
    }
}

/// What the caller of a build learned from the repository's agent before the build: its
/// snapshot, or why there is none (no agent runs, it keeps another worktree warm…). The
/// caller — the CLI, or a pipeline's `build_images` through a ``WarmLookup`` — asks right
/// before the build; the build reads only this value.
public struct WarmAnswer: Sendable, Equatable {
    public var snapshot: WarmSnapshot?
    /// Why there is no snapshot (every context is walked).
    public var reason: String?

    public init(snapshot: WarmSnapshot?, reason: String? = nil) {
        self.snapshot = snapshot
        self.reason = reason
    }
}

/// Asks for a ``WarmAnswer`` for the config in a directory, right when a build needs it.
public typealias WarmLookup = @Sendable (_ configDirectory: String) async -> WarmAnswer
