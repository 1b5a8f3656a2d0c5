internal import Crypto
internal import Foundation

/// A build run that could not start (bad config, no engine, unreadable context or cache).
public struct BuildRunError: Error, Sendable, Equatable, CustomStringConvertible {
    public var lines: [String]

    public init(_ lines: [String]) { self.lines = lines }
    public init(_ line: String) { self.lines = [line] }
    public var description: String { lines.joined(separator: "\n") }
}

/// The summary of a build run.
public struct BuildReport: Sendable, Equatable {
    public var results: [ImageResult]
    public init(results: [ImageResult] = []) { self.results = results }
    public var failed: Bool { results.contains { $0.outcome == .failed || $0.pushError != nil } }
}

/// DevSpace's `build_images`, deciding correctly and fast what to rebuild.
///
/// 1. Plan every selected image (tags, Dockerfile, context; missing files are reported with
///    their place in the config).
/// 2. Digest what changes the image — the Dockerfile's content (after the entrypoint / cmd /
///    appended-instruction rewrite), the context (relative paths, modes, symlink targets and
///    contents, through the persistent stat index, so unchanged files are not read), build
///    args, target, network and engine options. Tags are not part of it.
/// 3. Decide per image, with one line of reason: build when the digest differs from the last
///    successful build, when the image is missing from the engine that built it, with
///    `rebuildStrategy: always` or `--force-build`; re-tag when only the tags are new; skip
///    otherwise.
/// 4. Build (in parallel, bounded) and re-tag, then record the successes in the cache.
public struct BuildRunner: Sendable {
    public let loaded: LoadedConfig
    public let options: BuildOptions
    public let emit: @Sendable (BuildEvent) -> Void

    public init(loaded: LoadedConfig, options: BuildOptions, emit: @escaping @Sendable (BuildEvent) -> Void) {
        self.loaded = loaded
        self.options = options
        self.emit = emit
    }

    /// Everything the decision needs about one image.
    struct Prepared: Sendable {
        var plan: ImagePlan
        var engine: any BuildEngine
        var tags: [String]
        var dockerfileDigest: String
        var contextDigest: String
        var optionsDigest: String
        var buildDigest: String
        var action: BuildAction
        var reason: String
        var existingImage: String?
    }

    public func run() async throws(BuildRunError) -> BuildReport {
        let plans: [ImagePlan]
        do { plans = try BuildPlanner.plan(loaded, options: options) } catch {
            throw BuildRunError(error.diagnostics.map(\.description))
        }
        let cache = BuildCache(configPath: loaded.absolutePath)
        let cached: [String: ImageCacheEntry]
        do { cached = try cache.read() } catch { throw BuildRunError(error.description) }

        // DevSpace's build pipeline also builds dependencies and fires hooks around builds.
        let ignored = loaded.config.notYetSupported.filter { $0 == "dependencies" || $0 == "hooks" }
        if !ignored.isEmpty {
            emit(
                .note(
                    "\(loaded.displayPath) has \(ignored.joined(separator: " and ")), which slipway does not run yet; building this project's images only"
                )
            )
        }
        // The kube context decides where images go (minikube's engine; push or not; kind load).
        let kube = kubeContext()
        var minikubeProfile: String?
        if case .success(let found) = kube, let context = found.context, found.minikube { minikubeProfile = context }
        let engines = try await EngineSelector(
            options: options,
            minikubeProfile: minikubeProfile,
            plans: plans,
            emit: emit
        )
        // The caller's answer from the agent, else the snapshot an agent job was handed.
        var contexts = ContextCache(
            configDirectory: loaded.directory,
            warm: options.warm?.snapshot ?? WarmSnapshot.fromEnvironment(options.environment),
            warmReason: options.warm?.reason,
            warmIsFresh: options.warm?.snapshot != nil
        )
        var prepared: [Prepared] = []
        var diagnostics: [String] = []
        // Ask the engines about the images last built while the contexts are walked: the
        // answers then cost no time of their own on a no-op run.
        var lookups: [String: Task<StoredImage?, any Error>] = [:]
        if !options.forceRebuild {
            for plan in plans where plan.config.custom == nil && plan.config.rebuildStrategy != .always {
                guard let entry = cached[plan.key], entry.imageName == plan.image, !entry.tag.isEmpty,
                    let engine = try? engines.engine(for: plan, loaded: loaded)
                else { continue }
                let reference = entry.imageID ?? "\(plan.image):\(entry.tag)"
                lookups[plan.key] = Task { try await engine.storedImage(reference) }
            }
        }
        for plan in plans {
            do {
                prepared.append(
                    try await prepare(
                        plan,
                        cached: cached[plan.key],
                        engines: engines,
                        contexts: &contexts,
                        lookup: lookups[plan.key]
                    )
                )
            } catch {
                diagnostics.append(error.description)
            }
        }
        if !diagnostics.isEmpty { throw BuildRunError(diagnostics) }
        // An image that is built is checked afterwards against what its digest read, which
        // needs the walk's entries: a digest from the agent's warm snapshot is taken again by
        // walking (through the stat index, so only changed files are read).
        if !options.dryRun {
            for (i, p) in prepared.enumerated() where p.action == .build && contexts.isWarm(p.plan.key) {
                contexts.walkAgain(p.plan.key)
                do {
                    let again = try await prepare(
                        p.plan,
                        cached: cached[p.plan.key],
                        engines: engines,
                        contexts: &contexts
                    )
                    prepared[i] =
                        again.action == .build
                        ? again
                        : Prepared(
                            plan: again.plan,
                            engine: again.engine,
                            tags: again.tags,
                            dockerfileDigest: again.dockerfileDigest,
                            contextDigest: again.contextDigest,
                            optionsDigest: again.optionsDigest,
                            buildDigest: again.buildDigest,
                            action: .build,
                            reason: p.reason,
                            existingImage: nil
                        )
                } catch {
                    throw BuildRunError(error.description)
                }
            }
        }
        for (path, origin) in contexts.origins { emit(.context(path: path, origin: origin)) }
        for p in prepared {
            emit(.decided(image: p.plan.key, action: p.action, reason: p.reason, tags: p.tags))
        }

        if options.dryRun {
            contexts.saveIndexes(emit: emit)
            contexts.discardInBackground()
            return BuildReport(
                results: prepared.map { p in
                    ImageResult(
                        key: p.plan.key,
                        imageName: p.plan.image,
                        tags: p.tags,
                        outcome: p.action == .build ? .built : p.action == .retag ? .retagged : .skipped,
                        reason: p.reason,
                        seconds: 0,
                        imageID: p.existingImage,
                        engine: p.engine.name,
                        error: nil,
                        dryRun: true
                    )
                }
            )
        }
        var results = await execute(prepared)
        // A build that failed while its files changed (the engine listed an editor's temporary
        // file, then could not read it) is decided and run once more on the files as they are.
        for i in results.indices where results[i].outcome == .failed && prepared[i].action == .build {
            let changed = changedDuringBuild(prepared[i], contexts: contexts)
            guard let first = changed.first else { continue }
            let key = prepared[i].plan.key
            emit(
                .note(
                    "images.\(key): the build failed while its files changed (changed during build: \(first)); building it again"
                )
            )
            contexts.walkAgain(key)
            do {
                prepared[i] = try await prepare(
                    prepared[i].plan,
                    cached: cached[key],
                    engines: engines,
                    contexts: &contexts
                )
            } catch {
                continue
            }
            emit(.decided(image: key, action: prepared[i].action, reason: prepared[i].reason, tags: prepared[i].tags))
            results[i] = await perform(prepared[i])
        }

        var updates: [String: ImageCacheEntry] = [:]
        for (i, (p, r)) in zip(prepared, results).enumerated() where r.outcome == .built || r.outcome == .retagged {
            // Deliveries of the same image ID stay valid (a re-tag, an identical rebuild).
            let kept = (cached[p.plan.key]?.pushed ?? [:]).filter { $0.value == r.imageID }
            var entry = ImageCacheEntry(
                imageName: p.plan.image,
                tag: r.tags.first ?? "",
                buildDigest: p.buildDigest,
                dockerfileDigest: p.dockerfileDigest,
                contextDigest: p.contextDigest,
                optionsDigest: p.optionsDigest,
                tags: r.tags,
                imageID: r.imageID,
                engine: p.engine.name,
                pushed: kept
            )
            if r.outcome == .built {
                let changed = changedDuringBuild(p, contexts: contexts)
                if !changed.isEmpty {
                    // The engine read some of these files before the change and some after:
                    // the image is not known to hold what the digest says.
                    for path in changed.prefix(10) { emit(.note("changed during build: \(path)")) }
                    if changed.count > 10 { emit(.note("changed during build: \(changed.count - 10) more paths")) }
                    emit(
                        .note(
                            "images.\(p.plan.key): files changed while it was built, so its image may hold either version; it is recorded as unknown and built again next time"
                        )
                    )
                    entry.buildDigest = nil
                    entry.changedDuringBuild = Array(changed.prefix(10))
                    results[i].changedDuringBuild = changed
                }
            }
            updates[p.plan.key] = entry
        }
        // Skipped as up to date with other tags than the record's (every tag asked for already
        // names the recorded image, so its content is the record's): the tags are recorded, so
        // that a later pipeline without build_images (`get_image`, injection) uses the ones
        // this run used. DevSpace's `tag` then names the same content, as issue 12 requires.
        for (p, r) in zip(prepared, results) where r.outcome == .skipped && p.plan.config.custom == nil {
            guard var entry = cached[p.plan.key], let id = r.imageID, entry.imageID == nil || entry.imageID == id,
                let first = r.tags.first, entry.tag != first || entry.tags != r.tags
            else { continue }
            entry.tag = first
            entry.tags = r.tags
            entry.imageID = id
            updates[p.plan.key] = entry
        }
        // The builds are recorded before anything is pushed: a push that fails (or is
        // interrupted) does not cost a rebuild, and only pushes that happened are recorded.
        // A record is kept only while its first tag still names its image: when a build
        // running at the same time moved the tag since, that build's record is the true one.
        let engineOf = Dictionary(prepared.map { ($0.plan.key, $0.engine) }, uniquingKeysWith: { a, _ in a })
        let emit = self.emit
        let recorded: [String]
        do {
            recorded = try await cache.recordBuilds(updates) { key, entry, _ in
                guard let engine = engineOf[key], entry.engine != "custom", let id = entry.imageID,
                    let current = try? await engine.imageID("\(entry.imageName):\(entry.tag)")
                else { return true }
                if current != id {
                    emit(
                        .note(
                            "images.\(key): \(entry.imageName):\(entry.tag) was moved to another image by a build that ran at the same time; that build's record is kept"
                        )
                    )
                }
                return current == id
            }
        } catch {
            throw BuildRunError(error.description)
        }
        contexts.saveIndexes(emit: emit)
        contexts.discardInBackground()
        let written = updates.filter { recorded.contains($0.key) }
        let (delivered, pushes) = await deliver(
            prepared,
            results,
            entries: cached.merging(written) { $1 },
            kube: kube
        )
        do { try cache.recordDeliveries(pushes) } catch { throw BuildRunError(error.description) }
        return BuildReport(results: delivered)
    }

    /// What changed, since the digest read it, among the files `p`'s build read: its context
    /// (or onChange files) and ignore files, and the Dockerfile.
    func changedDuringBuild(_ p: Prepared, contexts: ContextCache) -> [String] {
        var changed: [String] = []
        if let stamp = p.plan.dockerfileStamp, FileStamp.of(p.plan.dockerfilePath) != stamp {
            changed.append(p.plan.dockerfilePath)
        }
        for path in contexts.changedSinceDigest(p.plan.key) where !changed.contains(path) { changed.append(path) }
        return changed
    }

    // MARK: Decision

    func prepare(
        _ plan: ImagePlan,
        cached: ImageCacheEntry?,
        engines: EngineSelector,
        contexts: inout ContextCache,
        lookup: Task<StoredImage?, any Error>? = nil
    ) async throws(BuildRunError) -> Prepared {
        let image = plan.config
        let engine = try engines.engine(for: plan, loaded: loaded)
        let dockerfileDigest = sha256Hex(plan.rewrittenDockerfile ?? plan.dockerfile)
        let optionsDigest = sha256Hex(Self.optionsText(plan, engine: engine.name))
        var contextDigest = "ignored"
        if let custom = image.custom {
            contextDigest =
                custom.onChange.isEmpty ? "always" : try contexts.onChangeDigest(custom.onChange, image: plan.key)
        } else if image.rebuildStrategy != .ignoreContextChanges {
            contextDigest = try contexts.digest(plan: plan, displayPath: loaded.displayPath)
        }
        let buildDigest = sha256Hex("slipway-build-v1\n\(dockerfileDigest)\n\(contextDigest)\n\(optionsDigest)\n")
        var tags = plan.requestedTags.map(ImagePlan.fillHashes)
        if tags.isEmpty { tags = [String(buildDigest.prefix(12))] }
        for tag in tags where !Self.isValidTag(tag) {
            let hint =
                tag.isEmpty
                ? "; a git variable is empty here (detached HEAD, or not a git repository?)"
                : tag.contains("/") ? "; for a branch name use ${SLIPWAY_BRANCH_TAG}, which makes it a valid tag" : ""
            throw BuildRunError(
                "\(loaded.displayPath):\(image.mark): images.\(plan.key).tags: \"\(tag)\" is not a valid image tag (letters, digits, '_', '.', '-'; at most 128 characters; not starting with '.' or '-')\(hint)"
            )
        }

        func decide(_ action: BuildAction, _ reason: String, existing: String? = nil) -> Prepared {
            Prepared(
                plan: plan,
                engine: engine,
                tags: tags,
                dockerfileDigest: dockerfileDigest,
                contextDigest: contextDigest,
                optionsDigest: optionsDigest,
                buildDigest: buildDigest,
                action: action,
                reason: reason,
                existingImage: existing
            )
        }
        if options.forceRebuild { return decide(.build, "forced (--force-build)") }
        if image.rebuildStrategy == .always { return decide(.build, "rebuildStrategy: always") }
        if let custom = image.custom, custom.onChange.isEmpty {
            return decide(.build, "custom build without onChange is always rebuilt (as DevSpace does)")
        }
        if let cached, !cached.changedDuringBuild.isEmpty {
            return decide(
                .build,
                "files changed while the last build ran (\(cached.changedDuringBuild[0])\(cached.changedDuringBuild.count > 1 ? " and others" : "")), so its image is not known to match"
            )
        }
        guard let cached, let previous = cached.buildDigest, !cached.tag.isEmpty else {
            return decide(.build, "no previous build recorded")
        }
        if cached.imageName != plan.image { return decide(.build, "image name changed (was \(cached.imageName))") }
        if previous != buildDigest {
            var what: [String] = []
            var strategy: String?
            if cached.dockerfileDigest != dockerfileDigest { what.append("Dockerfile") }
            if cached.contextDigest != contextDigest {
                // "ignored" stands for the context under rebuildStrategy: ignoreContextChanges.
                if contextDigest == "ignored" {
                    strategy = "rebuildStrategy is now ignoreContextChanges (the last build was decided on its context)"
                } else if cached.contextDigest == "ignored" {
                    strategy = "rebuildStrategy is no longer ignoreContextChanges (the context counts again)"
                } else {
                    what.append(image.custom == nil ? "context" : "onChange files")
                }
            }
            if cached.optionsDigest != optionsDigest { what.append("build options") }
            let changed = what.isEmpty ? nil : what.joined(separator: ", ") + " changed"
            return decide(
                .build,
                [changed, strategy].compactMap { $0 }.joined(separator: "; ").nonEmpty ?? "build inputs changed"
            )
        }
        if image.custom != nil {
            // Custom builds push or load where they like; there is no store to check.
            return decide(.skip, "up to date (onChange files unchanged)")
        }
        let previousRef = "\(plan.image):\(cached.tag)"
        let stored: StoredImage?
        do {
            let reference = cached.imageID ?? previousRef
            stored = try await (lookup ?? Task { try await engine.storedImage(reference) }).value
        } catch {
            throw BuildRunError("images.\(plan.key): cannot ask \(engine.name) whether \(previousRef) exists: \(error)")
        }
        guard let stored else {
            return decide(.build, "image missing from the \(engine.name) engine")
        }
        let presentID = stored.id
        var missing: [String] = []
        var moved: [String] = []
        for tag in tags {
            let ref = "\(plan.image):\(tag)"
            // The engine's answer usually names every tag already; ask only about the others
            // (also when the engine spells a name differently, `docker.io/library/x` as `x`).
            if stored.names.contains(ref) { continue }
            let id: String?
            do { id = try await engine.imageID(ref) } catch {
                throw BuildRunError("images.\(plan.key): cannot ask \(engine.name) whether \(ref) exists: \(error)")
            }
            if id == nil {
                missing.append(tag)
            } else if id != presentID {
                moved.append(tag)
            }
        }
        if missing.isEmpty && moved.isEmpty { return decide(.skip, "up to date", existing: presentID) }
        var reason: [String] = []
        if !missing.isEmpty { reason.append("new tags: " + missing.joined(separator: ", ")) }
        if !moved.isEmpty { reason.append("tags now on another image: " + moved.joined(separator: ", ")) }
        return decide(.retag, "unchanged content, " + reason.joined(separator: "; "), existing: presentID)
    }

    /// Everything besides the Dockerfile and the context that changes the image. Not the tags.
    static func optionsText(_ plan: ImagePlan, engine: String) -> String {
        let image = plan.config
        var lines = ["engine=\(engine)"]
        for (k, v) in plan.buildArgs.sorted(by: { $0.0 < $1.0 }) { lines.append("arg=\(k)=\(v)") }
        lines.append("target=\(plan.target ?? "")")
        lines.append("network=\(plan.network ?? "")")
        lines.append("dockerfileInContext=\(plan.dockerfileInContext ?? "-")")
        if let e = image.entrypoint { lines.append("entrypoint=\(DockerfileRewriter.jsonArray(e))") }
        if let c = image.cmd { lines.append("cmd=\(DockerfileRewriter.jsonArray(c))") }
        for a in image.appendDockerfileInstructions { lines.append("append=\(a)") }
        if let d = image.docker { lines.append("docker.args=\(DockerfileRewriter.jsonArray(d.args))") }
        if let b = image.buildKit, let text = try? YAMLEmitter().emitFlow(b) { lines.append("buildKit=\(text)") }
        if let k = image.kaniko, let text = try? YAMLEmitter().emitFlow(k) { lines.append("kaniko=\(text)") }
        if let c = image.custom {
            lines.append("custom.command=\(c.command)")
            lines.append("custom.args=\(DockerfileRewriter.jsonArray(c.args))")
            lines.append("custom.appendArgs=\(DockerfileRewriter.jsonArray(c.appendArgs))")
            lines.append("custom.imageFlag=\(c.imageFlag ?? "")")
            lines.append("custom.imageTagOnly=\(c.imageTagOnly)")
            lines.append("custom.skipImageArg=\(c.skipImageArg.map(String.init) ?? "nil")")
        }
        return lines.joined(separator: "\n")
    }

    /// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    public static func isValidTag(_ tag: String) -> Bool { DockerReference.isValidTag(tag) }

    // MARK: Execution

    func execute(_ prepared: [Prepared]) async -> [ImageResult] {
        let limit: Int
        if options.sequential || prepared.count <= 1 {
            limit = 1
        } else {
            limit = options.maxConcurrent > 0 ? options.maxConcurrent : prepared.count
        }
        var results = [ImageResult?](repeating: nil, count: prepared.count)
        await withTaskGroup(of: (Int, ImageResult).self) { group in
            var next = 0
            func startNext() {
                guard next < prepared.count else { return }
                let index = next
                let p = prepared[index]
                next += 1
                group.addTask { (index, await self.perform(p)) }
            }
            for _ in 0..<limit { startNext() }
            while let (index, result) = await group.next() {
                results[index] = result
                startNext()
            }
        }
        return results.enumerated().map { i, r in
            r
                ?? ImageResult(
                    key: prepared[i].plan.key,
                    imageName: prepared[i].plan.image,
                    tags: prepared[i].tags,
                    outcome: .failed,
                    reason: "not run",
                    seconds: 0,
                    imageID: nil,
                    engine: prepared[i].engine.name,
                    error: "not run",
                    dryRun: false
                )
        }
    }

    func perform(_ p: Prepared) async -> ImageResult {
        let started = ContinuousClock.now
        func result(_ outcome: BuildOutcome, id: String?, error: String? = nil) -> ImageResult {
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let r = ImageResult(
                key: p.plan.key,
                imageName: p.plan.image,
                tags: p.tags,
                outcome: outcome,
                reason: error == nil ? p.reason : p.reason + "; failed",
                seconds: seconds,
                imageID: id,
                engine: p.engine.name,
                error: error,
                dryRun: false
            )
            emit(.finished(r))
            return r
        }
        let refs = p.tags.map { "\(p.plan.image):\($0)" }
        switch p.action {
        case .skip:
            return result(.skipped, id: p.existingImage)
        case .retag:
            emit(.started(image: p.plan.key, action: .retag))
            do {
                try await p.engine.tag(existing: p.existingImage ?? refs[0], as: refs)
                return result(.retagged, id: p.existingImage)
            } catch {
                return result(.failed, id: nil, error: "re-tagging failed: \(error)")
            }
        case .build:
            emit(.started(image: p.plan.key, action: .build))
            var request = BuildRequest(
                image: p.plan.config,
                tags: p.tags,
                configDirectory: loaded.directory,
                dockerfileContents: p.plan.rewrittenDockerfile
            )
            request.contextDirectory = p.plan.contextPath
            request.dockerfilePath = p.plan.dockerfilePath
            let key = p.plan.key
            let emit = self.emit
            do {
                let built = try await p.engine.build(request) { line in emit(.log(image: key, line: line)) }
                return result(.built, id: built.id)
            } catch {
                return result(.failed, id: nil, error: "\(error)")
            }
        }
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
