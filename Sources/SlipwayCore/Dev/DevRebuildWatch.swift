internal import Foundation

/// Which images a batch of file changes asks to rebuild, and why: `app: Dockerfile changed`,
/// `app: src/main.go changed (no sync path covers it)`.
public struct DevRebuildRequest: Sendable, Equatable {
    /// The image keys, in the config's order.
    public var images: [String]
    /// One line per image: the first path that asked and why.
    public var reasons: [String]
}

/// The rebuild triggers of a dev session: every image's context (after its `.dockerignore`: an
/// excluded file triggers nothing), its Dockerfile and its ignore files, on the process's one
/// inotify watcher (``FileWatcher/shared``). A change of the Dockerfile or an ignore file always
/// asks for the image's rebuild decision, even inside a sync path; another context file does
/// only when no sync path of the session covers it (a synced file is only synced); under
/// `rebuildStrategy: ignoreContextChanges` only the Dockerfile does. Each decision that is not
/// "synced" is reported with its path and reason; the rebuild itself is the caller's (the build
/// decision then says whether the image really changed).
final class DevRebuildWatch: @unchecked Sendable {
    enum RootKind {
        case context
        case dockerfile
        case ignoreFile
        /// git's directory, for its `index.lock`.
        case git
    }

    struct Root {
        var image: String
        var kind: RootKind
        var path: String
        var ignoresContext: Bool
    }

    let roots: [Root]
    let subscription: WatchSubscription
    /// Absolute local roots of the session's syncs.
    let syncRoots: [String]
    /// git's `index.lock` of the config's repository: while it exists (a checkout, a rebase)
    /// requests are held and merged, so that a branch switch asks for each image once.
    let gitLock: String?

    /// Subscribes to the contexts of `loaded`'s images (custom builds aside: their `onChange`
    /// decides).
    init(loaded: LoadedConfig, syncRoots: [String], notes: @escaping @Sendable (String) -> Void) throws {
        let plans = try BuildPlanner.plan(loaded, options: BuildOptions())
        var roots: [Root] = []
        var watchRoots: [WatchRoot] = []
        for plan in plans where plan.config.custom == nil {
            let ignores = plan.config.rebuildStrategy == .ignoreContextChanges
            let (matcher, _) = try IgnoreMatcher.forContext(
                contextDir: plan.contextPath,
                dockerfileRelativeToContext: plan.dockerfileInContext
            )
            watchRoots.append(.tree(plan.contextPath, filter: matcher))
            roots.append(Root(image: plan.key, kind: .context, path: plan.contextPath, ignoresContext: ignores))
            watchRoots.append(.file(plan.dockerfilePath))
            roots.append(Root(image: plan.key, kind: .dockerfile, path: plan.dockerfilePath, ignoresContext: ignores))
            var ignoreFiles = [
                joinPath(plan.contextPath, ".dockerignore"), joinPath(plan.contextPath, "devspace.dockerignore"),
            ]
            if let inContext = plan.dockerfileInContext {
                ignoreFiles.append(joinPath(plan.contextPath, inContext + ".dockerignore"))
            }
            for file in ignoreFiles {
                watchRoots.append(.file(file))
                roots.append(Root(image: plan.key, kind: .ignoreFile, path: file, ignoresContext: ignores))
            }
        }
        let gitDirectory = LocalPump.gitDirectory(of: loaded.directory)
        if let gitDirectory {
            watchRoots.append(.directory(gitDirectory, filter: IndexLockFilter()))
            roots.append(Root(image: "", kind: .git, path: gitDirectory, ignoresContext: true))
        }
        gitLock = gitDirectory.map { $0 + "/index.lock" }
        self.roots = roots
        self.syncRoots = syncRoots
        subscription = try FileWatcher.shared.subscribe(
            watchRoots,
            skipping: [loaded.directory + "/.devspace"],
            batching: WatchBatching(quiet: .milliseconds(5), maximumDelay: .seconds(2)),
            notes: notes
        )
    }

    func cancel() { subscription.cancel() }

    /// The next batch's request (nil: nothing to rebuild in it), or nil for good when cancelled
    /// (`finished` is set).
    func next(decisions: (String) -> Void) -> (request: DevRebuildRequest?, finished: Bool) {
        guard case .batch(let batch) = subscription.next() else { return (nil, true) }
        var request = decide(batch, decisions: decisions)
        guard let gitLock, access(gitLock, F_OK) == 0 || Self.touchesLock(batch, roots) else {
            return (request, false)
        }
        // git is at work: everything until it lets go of its lock (then 300 ms of quiet, so
        // that a rebase's next step joins) is one request. A lock held for over 30 s is stale.
        decisions("git holds \(gitLock): rebuild decisions wait until it is done")
        let start = ContinuousClock.now
        var quietSince: ContinuousClock.Instant?
        while true {
            switch subscription.next(until: .now + .milliseconds(100)) {
            case .cancelled:
                return (nil, true)
            case .batch(let more):
                request = Self.merged(request, decide(more, decisions: decisions))
                quietSince = nil
            case .timedOut:
                break
            }
            if access(gitLock, F_OK) == 0 && ContinuousClock.now - start < .seconds(30) {
                quietSince = nil
                continue
            }
            let now = ContinuousClock.now
            guard let since = quietSince else {
                quietSince = now
                continue
            }
            if now - since >= .milliseconds(300) { break }
        }
        return (request, false)
    }

    static func touchesLock(_ batch: WatchBatch, _ roots: [Root]) -> Bool {
        batch.changes.contains { roots.indices.contains($0.root) && roots[$0.root].kind == .git }
    }

    static func merged(_ a: DevRebuildRequest?, _ b: DevRebuildRequest?) -> DevRebuildRequest? {
        guard var out = a else { return b }
        guard let b else { return out }
        for (image, reason) in zip(b.images, b.reasons) where !out.images.contains(image) {
            out.images.append(image)
            out.reasons.append(reason)
        }
        return out
    }

    func decide(_ batch: WatchBatch, decisions: (String) -> Void) -> DevRebuildRequest? {
        var reasons: [String: String] = [:]
        var order: [String] = []
        func ask(_ image: String, _ reason: String) {
            decisions("rebuild \(image)? \(reason): the build decision runs")
            if reasons[image] == nil {
                reasons[image] = reason
                order.append(image)
            }
        }
        for (index, reason) in batch.rescan.sorted(by: { $0.key < $1.key }) where roots.indices.contains(index) {
            let root = roots[index]
            if root.kind == .git || (root.kind == .context && root.ignoresContext) { continue }
            ask(root.image, "\(root.path) must be scanned again (\(reason))")
        }
        for change in batch.changes where roots.indices.contains(change.root) {
            let root = roots[change.root]
            switch root.kind {
            case .git:
                continue
            case .dockerfile:
                ask(root.image, "\(Self.display(root.path)) changed")
            case .ignoreFile:
                ask(root.image, "\(Self.display(root.path)) changed")
            case .context:
                guard !change.isDirectory || change.kinds.contains(.deleted) else { continue }
                let absolute = change.path.isEmpty ? root.path : joinPath(root.path, change.path)
                if roots.contains(where: { $0.kind != .context && $0.path == absolute }) { continue }
                if root.ignoresContext {
                    decisions(
                        "ignored \(change.path) for \(root.image): rebuildStrategy ignoreContextChanges (only its Dockerfile rebuilds it)"
                    )
                    continue
                }
                if SyncPath.isCovered(absolute, by: Set(syncRoots), recursive: true) { continue }
                ask(root.image, "\(change.path) changed in its context and no sync path covers it")
            }
        }
        guard !order.isEmpty else { return nil }
        return DevRebuildRequest(images: order, reasons: order.map { "\($0): \(reasons[$0] ?? "")" })
    }

    static func display(_ path: String) -> String {
        (path as NSString).lastPathComponent
    }
}
