internal import Crypto
internal import Foundation

/// Context digests for one build run: each context is walked once however many images share
/// it, and its stat index (`.devspace/slipway/stat-<id>.idx`) is loaded once and saved once,
/// only when something was hashed.
///
/// With a ``WarmSnapshot`` (the agent's `SLIPWAY_WARM_DIGESTS`), a context whose entry matches
/// exactly — same context, same ignore patterns, stat index file unchanged — is not walked.
struct ContextCache {
    let configDirectory: String
    let digester = ContextDigester()
    private var indexes: [String: (index: StatIndex, dirty: Bool, loadedCount: Int, walked: Bool)] = [:]
    private var snapshots: [String: ContextSnapshot] = [:]
    private let warm: WarmSnapshot?
    /// How many contexts were taken from the warm snapshot instead of walked.
    private(set) var warmHits = 0

    init(configDirectory: String, warm: WarmSnapshot? = nil) {
        self.configDirectory = configDirectory
        self.warm = warm?.configDirectory == configDirectory ? warm : nil
    }

    var indexDirectory: String { configDirectory + "/.devspace/slipway" }

    func indexPath(for context: String) -> String {
        let id = sha256Hex(context.hasPrefix(configDirectory) ? String(context.dropFirst(configDirectory.count)) : context)
        return "\(indexDirectory)/stat-\(id.prefix(16)).idx"
    }

    /// The digest of a plan's context, with DevSpace's `.dockerignore` lookup.
    mutating func digest(plan: ImagePlan, displayPath: String) throws(BuildRunError) -> String {
        let matcher: IgnoreMatcher
        do {
            (matcher, _) = try IgnoreMatcher.forContext(
                contextDir: plan.contextPath, dockerfileRelativeToContext: plan.dockerfileInContext)
        } catch {
            throw BuildRunError("\(displayPath): images.\(plan.key).context: \(error)")
        }
        if access(plan.contextPath + "/.git", F_OK) == 0, !matcher.isExcluded(".git", isDirectory: true) {
            notes.append(
                "images.\(plan.key): the context holds .git and .dockerignore does not exclude it, so every commit changes the context and rebuilds the image; add .git to .dockerignore"
            )
        }
        return try snapshot(plan.contextPath, matcher: matcher, what: "images.\(plan.key).context", displayPath: displayPath)
            .digest
    }

    /// Advice found while digesting, for the caller to show.
    var notes: [String] = []

    /// The digest of the files a custom build's `onChange` globs match (relative to the config).
    mutating func onChangeDigest(_ globs: [String]) throws(BuildRunError) -> String {
        let matcher: IgnoreMatcher
        do {
            // Exclude everything, then re-include what the globs name (Docker's `!` rules).
            matcher = try IgnoreMatcher(patterns: ["**", ".devspace"] + globs.map { "!" + $0 })
        } catch {
            throw BuildRunError("custom.onChange: \(error)")
        }
        return try snapshot(configDirectory, matcher: matcher, what: "custom.onChange", displayPath: "").digest
    }

    mutating func snapshot(_ context: String, matcher: IgnoreMatcher, what: String, displayPath: String)
        throws(BuildRunError) -> ContextSnapshot
    {
        let key = context + "\u{0}" + matcher.patterns.joined(separator: "\u{0}")
        if let s = snapshots[key] { return s }
        let path = indexPath(for: context)
        if let entry = warm?.digest(
            configDirectory: configDirectory, context: context, patterns: matcher.patterns, indexPath: path)
        {
            // The agent digested this context with these rules and nothing changed since.
            let s = ContextSnapshot(
                digest: entry.digest, fileCount: entry.fileCount, totalBytes: entry.totalBytes, hashedFiles: 0,
                entries: [])
            warmHits += 1
            snapshots[key] = s
            return s
        }
        var state = indexes[path] ?? {
            let loaded = StatIndex.load(from: path)
            return (loaded, false, loaded.count, false)
        }()
        let result: (snapshot: ContextSnapshot, index: StatIndex)
        do {
            result = try digester.snapshot(contextDir: context, matcher: matcher, index: state.index)
        } catch {
            throw BuildRunError((displayPath.isEmpty ? "" : "\(displayPath): ") + "\(what): \(error)")
        }
        // The first walk of a context replaces its records (deleted files drop out); further
        // walks with other ignore sets over the same context merge theirs (keeping the earlier,
        // safer timestamp for the racy rule).
        if state.walked {
            state.index.merge(result.index)
        } else {
            state.index = result.index
            state.walked = true
        }
        if result.snapshot.hashedFiles > 0 { state.dirty = true }
        indexes[path] = state
        snapshots[key] = result.snapshot
        return result.snapshot
    }

    /// Lets go of the walks' entries and indexes on another thread: freeing 20,000 entries
    /// takes a few milliseconds that a build has no reason to wait for.
    mutating func discardInBackground() {
        let held = (snapshots, indexes)
        snapshots = [:]
        indexes = [:]
        Thread.detachNewThread { withExtendedLifetime(held) {} }
    }

    /// Saves the indexes that learnt something; a failure costs only speed next time.
    func saveIndexes(emit: @Sendable (BuildEvent) -> Void) {
        for note in notes { emit(.note(note)) }
        for (path, state) in indexes where state.dirty || state.index.count != state.loadedCount {
            do {
                try FileManager.default.createDirectory(atPath: indexDirectory, withIntermediateDirectories: true)
                try state.index.save(to: path)
            } catch {
                emit(.note("cannot save the stat index \(path): \(error); the next run re-reads the context"))
            }
        }
    }
}
