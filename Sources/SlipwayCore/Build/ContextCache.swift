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
    /// What each image's digest read, to tell after its build whether anything changed
    /// meanwhile: the snapshot's key, the context and rules, and the stamps of the ignore
    /// files that were candidates (taken before they were read).
    private var sources: [String: Source] = [:]
    /// Contexts that must be walked, not taken from the warm snapshot (their image is built,
    /// and the build is checked against the walk's entries).
    private var cold: Set<String> = []
    /// Snapshot keys whose digest came from the warm snapshot.
    private var warmKeys: Set<String> = []

    struct Source {
        var key: String
        var context: String
        var matcher: IgnoreMatcher
        var stamps: [(path: String, stamp: FileStamp?)]
    }

    /// Why there is no warm snapshot (said of each context walked).
    private let warmReason: String?
    /// How each context's digest was had, in order (for `--debug`): `warm`, or `walked: REASON`.
    private(set) var origins: [(context: String, origin: String)] = []

    /// The snapshot was answered by the agent for this build (not read from a job's file).
    private let warmIsFresh: Bool

    init(configDirectory: String, warm: WarmSnapshot? = nil, warmReason: String? = nil, warmIsFresh: Bool = false) {
        self.configDirectory = configDirectory
        self.warm = warm
        self.warmReason = warmReason
        self.warmIsFresh = warmIsFresh
    }

    var indexDirectory: String { configDirectory + "/.devspace/slipway" }

    func indexPath(for context: String) -> String {
        let id = sha256Hex(
            context.hasPrefix(configDirectory) ? String(context.dropFirst(configDirectory.count)) : context
        )
        return "\(indexDirectory)/stat-\(id.prefix(16)).idx"
    }

    /// The digest of a plan's context, with DevSpace's `.dockerignore` lookup.
    mutating func digest(plan: ImagePlan, displayPath: String) throws(BuildRunError) -> String {
        // The ignore files that could apply, stamped before one of them is read.
        var candidates = ["devspace.dockerignore", ".dockerignore"]
        if let d = plan.dockerfileInContext { candidates.append(d + ".dockerignore") }
        let stamps = candidates.map { name in
            let path = plan.contextPath + "/" + name
            return (path: path, stamp: FileStamp.of(path))
        }
        let matcher: IgnoreMatcher
        do {
            (matcher, _) = try IgnoreMatcher.forContext(
                contextDir: plan.contextPath,
                dockerfileRelativeToContext: plan.dockerfileInContext
            )
        } catch {
            throw BuildRunError("\(displayPath): images.\(plan.key).context: \(error)")
        }
        if access(plan.contextPath + "/.git", F_OK) == 0, !matcher.isExcluded(".git", isDirectory: true),
            !gitInContext.contains(plan.key)
        {
            gitInContext.append(plan.key)
        }
        sources[plan.key] = Source(
            key: Self.key(plan.contextPath, matcher),
            context: plan.contextPath,
            matcher: matcher,
            stamps: stamps
        )
        return try snapshot(
            plan.contextPath,
            matcher: matcher,
            what: "images.\(plan.key).context",
            displayPath: displayPath
        )
        .digest
    }

    /// Whether a walk that hashed `hashedFiles` files (`hashedBytes` bytes) makes saving the
    /// stat index worth it. Saving writes the whole index (~95 bytes a file: 19 MB, ~40 ms, at
    /// 200,000 files) where hashing a few changed files again on the next run costs well under
    /// a millisecond; so a walk that hashed fewer than 256 files, under 4 MB and under 1% of the
    /// indexed files leaves the index as it is (those files are hashed again next time, until
    /// enough changed to save). A new index, or one whose file count changed, is always saved;
    /// so is one whose hashed files all changed before the walk's racy window
    /// (`ContextSnapshot.hashedFilesSettled`): once recorded, they are not hashed again, and a
    /// run that hashes nothing takes the context digest from the index (at 20,000 files a
    /// no-op then skips 1.6 ms of digest plus the reads, for one save of ~2 ms). A walk whose
    /// hashed files all changed within its racy window hands back the index it was given
    /// (`ContextSnapshot.hashedFilesRecorded` is false: their records would never be trusted),
    /// and nothing is saved for them.
    static func worthSaving(hashedFiles: Int, hashedBytes: Int64, indexed: Int) -> Bool {
        indexed == 0 || hashedFiles >= 256 || hashedBytes >= 4 << 20 || hashedFiles * 100 >= indexed
    }

    static func key(_ context: String, _ matcher: IgnoreMatcher) -> String {
        context + "\u{0}" + matcher.patterns.joined(separator: "\u{0}")
    }

    /// Whether `image`'s context digest came from the warm snapshot (no walk, no entries).
    func isWarm(_ image: String) -> Bool {
        sources[image].map { warmKeys.contains($0.key) } ?? false
    }

    /// Makes the next digest of `image`'s context walk it (its build is checked against the
    /// walk's entries afterwards).
    mutating func walkAgain(_ image: String) {
        guard let source = sources[image] else { return }
        cold.insert(source.context)
        snapshots[source.key] = nil
        warmKeys.remove(source.key)
    }

    /// The paths of `image`'s context (and its ignore files) that are not what its digest
    /// read: added, removed, written, replaced. Walks the context again (stat only). Empty
    /// when nothing changed or the image had no walked context.
    func changedSinceDigest(_ image: String) -> [String] {
        guard let source = sources[image], let before = snapshots[source.key], !warmKeys.contains(source.key) else {
            return []
        }
        var changed = source.stamps.filter { FileStamp.of($0.path) != $0.stamp }.map(\.path)
        do {
            let after = try ContextWalker.walk(contextDir: source.context, matcher: source.matcher)
            changed += ContextChanges.between(before.entries, after).map { source.context + "/" + $0 }
        } catch {
            changed.append(source.context)
        }
        return changed
    }

    /// Advice found while digesting, for the caller to show.
    var notes: [String] = []
    /// Images whose context holds a `.git` its ignore file does not exclude (one note for all).
    var gitInContext: [String] = []

    /// The digest of the files a custom build's `onChange` globs match (relative to the config).
    mutating func onChangeDigest(_ globs: [String], image: String) throws(BuildRunError) -> String {
        let matcher: IgnoreMatcher
        do {
            // Exclude everything, then re-include what the globs name (Docker's `!` rules).
            matcher = try IgnoreMatcher(patterns: ["**", ".devspace"] + globs.map { "!" + $0 })
        } catch {
            throw BuildRunError("custom.onChange: \(error)")
        }
        sources[image] = Source(
            key: Self.key(configDirectory, matcher),
            context: configDirectory,
            matcher: matcher,
            stamps: []
        )
        return try snapshot(configDirectory, matcher: matcher, what: "custom.onChange", displayPath: "").digest
    }

    mutating func snapshot(
        _ context: String,
        matcher: IgnoreMatcher,
        what: String,
        displayPath: String
    )
        throws(BuildRunError) -> ContextSnapshot
    {
        let key = Self.key(context, matcher)
        if let s = snapshots[key] { return s }
        let path = indexPath(for: context)
        let why: String
        if cold.contains(context) {
            why = "its image is built, and the build is checked against what the walk read"
        } else if let warm {
            switch warm.lookup(
                configDirectory: configDirectory,
                context: context,
                patterns: matcher.patterns,
                indexPath: path,
                requireIndex: !warmIsFresh
            ) {
            case .success(let entry):
                // The agent digested this context with these rules and nothing changed since.
                let s = ContextSnapshot(
                    digest: entry.digest,
                    fileCount: entry.fileCount,
                    totalBytes: entry.totalBytes,
                    hashedFiles: 0,
                    entries: []
                )
                warmHits += 1
                warmKeys.insert(key)
                snapshots[key] = s
                origins.append((context, "warm (the agent's digest)"))
                return s
            case .failure(let reason):
                why = reason.text
            }
        } else {
            why = warmReason ?? "no warm digests were asked for"
        }
        origins.append((context, "walked: " + why))
        var state =
            indexes[path]
            ?? {
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
        if result.snapshot.hashedFiles > 0 && result.snapshot.hashedFilesRecorded
            && (result.snapshot.hashedFilesSettled
                || Self.worthSaving(
                    hashedFiles: result.snapshot.hashedFiles,
                    hashedBytes: result.snapshot.hashedBytes,
                    indexed: state.loadedCount
                ))
        {
            state.dirty = true
        }
        // Directories read this time whose listings the next walk can keep (once each: a kept
        // listing is not read again until its directory changes).
        if result.snapshot.directoryListingsChanged { state.dirty = true }
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
        if !gitInContext.isEmpty {
            let which =
                gitInContext.count == 1
                ? "images.\(gitInContext[0]): the context holds"
                : "images \(gitInContext.joined(separator: ", ")): their contexts hold"
            emit(
                .note(
                    "\(which) .git and .dockerignore does not exclude it, so every commit changes the context and rebuilds "
                        + (gitInContext.count == 1 ? "the image" : "them") + "; add .git to .dockerignore"
                )
            )
        }
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
