internal import Foundation

/// The built-in functions of a running pipeline (`build_images`, `create_deployments`,
/// `get_image`, …), which the bash prelude calls as `slipway __pipeline-function NAME ARGS…`.
/// Each call loads the config as the pipeline loaded it (same variables), takes the command
/// line's defaults from the run's state, and reports through a ``PipelineOutput``.
public struct PipelineFunctions: Sendable {
    public let state: PipelineState
    /// The run's state directory (`SLIPWAY_PIPELINE_STATE`).
    public let directory: String
    public let environment: [String: String]
    /// The slipway binary, for nested pipelines' functions.
    public let executable: String
    public let output: any PipelineOutput
    /// Asks the repository's agent for warm context digests right before `build_images` builds
    /// (the caller's: the pipeline layer never talks to the agent).
    public let warm: WarmLookup?

    public init(
        state: PipelineState,
        directory: String,
        environment: [String: String],
        executable: String,
        output: any PipelineOutput,
        warm: WarmLookup? = nil
    ) {
        self.state = state
        self.directory = directory
        self.environment = environment
        self.executable = executable
        self.output = output
        self.warm = warm
    }

    /// Reads the run's state from `directory` and makes the functions of that run.
    public static func inRun(
        directory: String,
        environment: [String: String],
        executable: String,
        output: any PipelineOutput
    ) throws(PipelineError) -> PipelineFunctions {
        PipelineFunctions(
            state: try PipelineState.read(from: directory),
            directory: directory,
            environment: environment,
            executable: executable,
            output: output
        )
    }

    public func load() async throws(PipelineError) -> LoadedConfig {
        let options = LoadOptions(
            configPath: state.configPath,
            workingDirectory: state.workingDirectory,
            environment: environment,
            vars: state.vars.compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil },
            profiles: state.profiles,
            disableProfileActivation: state.disableProfileActivation,
            namespace: state.namespace,
            kubeContext: state.kubeContext,
            overrideName: state.overrideName
        )
        do {
            return try await ConfigLoader.load(options)
        } catch {
            throw PipelineError.config(error.diagnostics)
        }
    }

    /// Runs function `name` (with or without DevSpace's `__` prefix); returns its exit status.
    /// An agent's job learns why it failed (``JobFailureFile``).
    public func call(_ name: String, _ args: [String]) async throws(PipelineError) -> Int32 {
        do {
            return try await dispatch(name, args)
        } catch {
            JobFailureFile.append(JobFailure(name, error.message), environment: environment)
            throw error
        }
    }

    func dispatch(_ name: String, _ args: [String]) async throws(PipelineError) -> Int32 {
        let function = name.hasPrefix("__") ? String(name.dropFirst(2)) : name
        switch function {
        case "build_images": return try await buildImages(args)
        case "create_deployments": return try await deployments(args, purge: false)
        case "purge_deployments": return try await deployments(args, purge: true)
        case "ensure_pull_secrets": return try await ensurePullSecrets(args)
        case "get_image": return try await getImage(args)
        case "get_flag":
            guard args.count == 1 else { throw PipelineError.usage("usage: get_flag NAME") }
            guard let value = state.flags[args[0]] else {
                throw PipelineError.noFlag(name: args[0], pipeline: state.stack.last ?? "")
            }
            output.line(value)
            return 0
        case "start_dev": return try await dev(args, stop: false)
        case "stop_dev": return try await dev(args, stop: true)
        case "run_dependencies", "run_dependency_pipelines":
            let a = try FunctionArguments(
                args,
                function: function,
                valued: [
                    "except", "pipeline", "exclude", "only", "set-flag", "set", "set-string", "from", "from-file",
                ],
                bools: ["all", "sequential"]
            )
            let loaded = try await load()
            let declared = (loaded.tree["dependencies"]?.pairs ?? []).compactMap { $0.key.scalar }
            // DevSpace's selection: names or --all, minus --except / --exclude and the command
            // line's --skip-dependency; --only and the command line's --dependency narrow it.
            var selected = a.names.isEmpty ? declared : declared.filter { a.names.contains($0) }
            let excluded = Set(a.values("except") + a.values("exclude") + state.defaults.skipDependencies)
            let only = a.values("only") + state.defaults.dependencies
            selected = selected.filter { !excluded.contains($0) && (only.isEmpty || only.contains($0)) }
            if !selected.isEmpty {
                throw PipelineError.notSupported(
                    "\(loaded.displayPath): dependencies are not supported yet: slipway does not run other projects' pipelines"
                        + " (\(selected.joined(separator: ", ")); --skip-dependency NAME leaves one out)"
                )
            }
            return 0
        case "run_pipelines":
            let a = try FunctionArguments(
                args,
                function: function,
                valued: ["set-flag"],
                bools: ["sequential", "background"]
            )
            guard !a.names.isEmpty else { throw PipelineError.usage("usage: run_pipelines NAME…") }
            let loaded = try await load()
            var state = self.state
            for pair in a.values("set-flag") {
                guard let eq = pair.firstIndex(of: "=") else {
                    throw PipelineError.usage("--set-flag \(pair): expected NAME=VALUE")
                }
                state.flags[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            for pipeline in a.names {
                let status = try await PipelineRunner.run(
                    pipeline,
                    loaded: loaded,
                    state: state,
                    stateDirectory: directory,
                    executable: executable,
                    environment: environment
                )
                if status != 0 { return status }
            }
            return 0
        case "run_default_pipeline":
            guard args.count == 1, PipelineScript.defaults[args[0]] ?? PipelineScript.slipwayDefaults[args[0]] != nil
            else {
                throw PipelineError.usage("usage: run_default_pipeline build|deploy|dev|purge|commit|push|gate")
            }
            let loaded = try await load()
            return try await PipelineRunner.run(
                args[0],
                loaded: loaded,
                state: state,
                stateDirectory: directory,
                executable: executable,
                environment: environment,
                defaultScript: true
            )
        default:
            throw PipelineError.unknownFunction(name)
        }
    }

    func buildImages(_ args: [String]) async throws(PipelineError) -> Int32 {
        let a = try FunctionArguments(
            args,
            function: "build_images",
            valued: ["except", "tag", "max-concurrent"],
            bools: [
                "all", "skip", "skip-push", "skip-push-on-local-kubernetes", "force-rebuild", "sequential",
                "skip-dev-replaced",
            ],
            short: ["t": "tag"]
        )
        let loaded = try await load()
        var keys = try a.select(from: loaded.config.images.map(\.key), kind: "image", function: "build_images")
        if a.bool("skip-dev-replaced", default: false) {
            let skipped = await devReplacedAndPresent(
                loaded,
                among: keys.filter { !state.defaults.devRebuild.contains($0) }
            )
            for (key, reference, dev) in skipped {
                output.note(
                    "build:\(key) not built: the devImage of dev.\(dev) stands in for it and \(reference) is present (slipway dev builds it when its files change)"
                )
            }
            keys.removeAll { key in skipped.contains { $0.key == key } }
        }
        let d = state.defaults
        if a.bool("skip", default: d.skipBuild) { return 0 }
        var options = BuildOptions()
        options.images = keys
        let tags = CommandFlags.tags(a.values("tag"))
        for tag in tags {
            if let problem = CommandFlags.tagProblem(tag, flag: "build_images -t") {
                throw PipelineError.usage(problem)
            }
        }
        options.tags = tags.isEmpty ? d.tags : tags
        options.forceRebuild = a.bool("force-rebuild", default: d.forceRebuild)
        options.sequential = a.bool("sequential", default: d.sequential)
        options.maxConcurrent = Int(a.value("max-concurrent") ?? "") ?? d.maxConcurrent
        options.skipPush = a.bool("skip-push", default: d.skipPush)
        options.skipPushOnLocalCluster = a.bool("skip-push-on-local-kubernetes", default: d.skipPushLocalKube)
        options.kubeContext = state.kubeContext
        options.pushPolicy = PushPolicy(stallTimeout: .milliseconds(Int64(d.pushTimeout * 1000)))
        options.environment = environment
        guard !keys.isEmpty else { return 0 }
        if let warm { options.warm = await warm(loaded.directory) }
        let output = self.output
        let report: BuildReport
        do {
            report = try await BuildRunner(loaded: loaded, options: options, emit: { output.build($0) }).run()
        } catch {
            throw PipelineError.build(error.lines)
        }
        output.buildReport(report)
        for r in report.results {
            if r.outcome == .failed {
                JobFailureFile.append(
                    JobFailure("build:\(r.key) failed", r.error ?? "unknown error"),
                    environment: environment
                )
            }
            if let error = r.pushError {
                JobFailureFile.append(JobFailure("push:\(r.key) failed", error), environment: environment)
            }
        }
        var built: [String: RuntimeImage] = [:]
        for r in report.results where r.outcome != .failed {
            built[r.key] = RuntimeImage(image: r.imageName, tag: r.tags.first ?? "latest")
        }
        try PipelineState.record(images: built, in: directory)
        // An agent's job: the references this run built or found.
        let references = report.results.filter { $0.outcome != .failed }.flatMap { r in
            r.tags.map { "\(r.imageName):\($0)" }
        }
        JobResultFile.append(references, environment: environment)
        return report.failed ? 1 : 0
    }

    func getImage(_ args: [String]) async throws(PipelineError) -> Int32 {
        let a = try FunctionArguments(args, function: "get_image", valued: ["only", "dependency"], bools: [])
        guard a.names.count == 1 else { throw PipelineError.usage("usage: get_image [--only=image|tag] NAME") }
        if a.has("dependency") { throw PipelineError.notSupported("dependencies are not supported yet") }
        let only = a.value("only")
        if let only, only != "image", only != "tag" { throw PipelineError.usage("--only must be image or tag") }
        let loaded = try await load()
        guard let found = RuntimeImages.resolve(a.names[0], run: PipelineState.images(in: directory), loaded: loaded)
        else {
            throw PipelineError.noSuchItem(kind: "image", name: a.names[0], known: loaded.config.images.map(\.key))
        }
        output.line(only == "image" ? found.image : only == "tag" ? found.tagOrLatest : found.reference)
        return 0
    }

    func ensurePullSecrets(_ args: [String]) async throws(PipelineError) -> Int32 {
        let a = try FunctionArguments(args, function: "ensure_pull_secrets", valued: ["except"], bools: ["all"])
        let loaded = try await load()
        let keys = try a.select(
            from: loaded.config.pullSecrets.map(\.name),
            kind: "pull secret",
            function: "ensure_pull_secrets"
        )
        let selected = loaded.config.pullSecrets.filter { keys.contains($0.name) }
        guard !selected.isEmpty else { return 0 }
        let environment = self.environment
        do {
            guard
                let target = try KubeTarget.resolve(
                    context: state.kubeContext,
                    namespace: state.namespace,
                    environment: environment
                )
            else {
                throw PipelineError.pullSecrets(
                    "there is no cluster to apply pull secrets to (no kubeconfig or current context); `slipway pull-secrets --render` prints them"
                )
            }
            let docker = try DockerConfigFile.load(environment: environment)
            let rendered = try await PullSecretRenderer(namespace: target.namespace, showSecrets: true).render(selected)
            {
                (registry: String) throws(RegistryError) -> RegistryCredential? in
                try await docker.credential(for: registry, environment: environment)
            }
            for warning in rendered.warnings { output.note("warning: \(warning)") }
            let lines = try await PullSecretApplier(
                context: target.context,
                namespace: target.namespace,
                environment: environment
            )
            .apply(rendered)
            // With render, standard output is for manifests only.
            for line in lines { state.defaults.render ? output.note(line) : output.line(line) }
            return 0
        } catch let error as PipelineError {
            throw error
        } catch {
            throw PipelineError.pullSecrets("\(error)")
        }
    }

    func deployments(_ args: [String], purge: Bool) async throws(PipelineError) -> Int32 {
        let function = purge ? "purge_deployments" : "create_deployments"
        let a = try FunctionArguments(
            args,
            function: function,
            valued: ["except"],
            bools: [
                "all", "skip-deploy", "force-redeploy", "sequential", "render", "force-purge", "branch-env", "local",
            ]
        )
        let loaded = try await load()
        let keys = try a.select(from: loaded.config.deployments.map(\.name), kind: "deployment", function: function)
        let d = state.defaults
        if !purge && a.bool("skip-deploy", default: d.skipDeploy) { return 0 }
        var request = DeploymentRequest(
            purge: purge,
            render: !purge && a.bool("render", default: d.render),
            force: a.bool("force-redeploy", default: d.forceRedeploy),
            local: a.bool("local", default: d.local)
        )
        do {
            if a.bool("branch-env", default: d.branchEnv) {
                request.branch = try DeploymentRunner.branchEnvironment(
                    directory: loaded.directory,
                    environment: environment
                )
            }
            var runner = DeploymentRunner(
                loaded: loaded,
                environment: environment,
                runImages: PipelineState.images(in: directory),
                kubeContext: state.kubeContext,
                namespace: state.namespace,
                scratchDirectory: directory
            )
            let environment = self.environment
            runner.pauseProgram = PauseImage.program(besides: executable, environment: environment)
            let output = self.output
            let failed = try await runner.run(
                keys,
                request,
                line: { output.line($0) },
                note: { output.note($0) },
                failure: { prefix, error in
                    output.note("\(prefix) failed: \(error)")
                    JobFailureFile.append(JobFailure("\(prefix) failed", "\(error)"), environment: environment)
                }
            )
            return failed ? 1 : 0
        } catch {
            throw PipelineError.deploy(error)
        }
    }
}

/// The agent's job contract: a job's pipeline appends the references it built or found
/// (`name:tag`, one per line) to the file `SLIPWAY_JOB_RESULT` names.
public enum JobResultFile {
    public static let environmentKey = "SLIPWAY_JOB_RESULT"

    static func append(_ references: [String], environment: [String: String]) {
        guard let path = environment[environmentKey], !path.isEmpty, !references.isEmpty else { return }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array(references.map { $0 + "\n" }.joined().utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// The references a job's pipeline wrote.
    public static func read(_ path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

/// The agent's job contract for dev jobs: `start_dev` appends the containers it prepared
/// (``PipelineState/DevStarted``, one JSON line each) to the file `SLIPWAY_JOB_DEV` names, so
/// that the agent's dev session knows them after a job that ran the dev pipeline.
public enum JobDevFile {
    public static let environmentKey = "SLIPWAY_JOB_DEV"

    static func append(_ started: [PipelineState.DevStarted], environment: [String: String]) {
        guard let path = environment[environmentKey], !path.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        var bytes: [UInt8] = []
        for entry in started {
            guard let data = try? encoder.encode(entry) else { continue }
            bytes += Array(data) + [UInt8(ascii: "\n")]
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// What the job's `start_dev` calls prepared, a later entry for the same container
    /// replacing an earlier one.
    public static func read(_ path: String) -> [PipelineState.DevStarted] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        var all: [PipelineState.DevStarted] = []
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let entry = try? JSONDecoder().decode(PipelineState.DevStarted.self, from: Data(line)) else {
                continue
            }
            all.removeAll { $0.dev == entry.dev && $0.name == entry.name }
            all.append(entry)
        }
        return all
    }
}

/// Why a pipeline function failed, for an agent's job report: the error's first line and the
/// tool's last lines (an engine's build output, a tool's standard error) that followed it.
public struct JobFailure: Codable, Sendable, Equatable {
    public var message: String
    public var lines: [String]

    public init(message: String, lines: [String]) {
        self.message = message
        self.lines = lines
    }

    /// `prefix: ` and `text`'s first line (without a closing `:`) as the message, its other
    /// lines (the last 10 that are not blank, each at most 300 characters) as the lines.
    public init(_ prefix: String, _ text: String) {
        let all = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var first = all.first ?? ""
        if first.hasSuffix(":") { first.removeLast() }
        message = prefix + ": " + first
        lines = all.dropFirst().filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.suffix(10).map {
            $0.count > 300 ? String($0.prefix(300)) + "…" : $0
        }
    }
}

/// The agent's job contract for failures: each failing pipeline function appends a
/// ``JobFailure`` (one JSON line) to the file `SLIPWAY_JOB_FAILURE` names; the first one is the
/// cause the agent reports.
public enum JobFailureFile {
    public static let environmentKey = "SLIPWAY_JOB_FAILURE"

    static func append(_ failure: JobFailure, environment: [String: String]) {
        guard let path = environment[environmentKey], !path.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        guard let data = try? encoder.encode(failure) else { return }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array(data) + [UInt8(ascii: "\n")]
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// The failures a job's pipeline recorded, in order.
    public static func read(_ path: String) -> [JobFailure] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap {
            try? JSONDecoder().decode(JobFailure.self, from: Data($0))
        }
    }
}

// MARK: - start_dev / stop_dev

extension PipelineFunctions {
    /// The images among `keys` that only dev containers with a `devImage` would run (every dev
    /// entry selecting the image gives one) and whose last build is on the engine: what the
    /// default dev pipeline's `build_images --skip-dev-replaced` leaves out.
    func devReplacedAndPresent(
        _ loaded: LoadedConfig,
        among keys: [String]
    ) async -> [(
        key: String, reference: String, dev: String
    )] {
        let injector = TagInjector(loaded: loaded, run: PipelineState.images(in: directory))
        var out: [(key: String, reference: String, dev: String)] = []
        for image in loaded.config.images where keys.contains(image.key) {
            var replacedBy: String?
            var runsIt = false
            for pod in loaded.config.devPods {
                guard let selector = pod.imageSelector else { continue }
                let named = selector.contains("${runtime.images.\(image.key)")
                let resolved = injector.inject(selector)
                guard
                    named || ContainerSelector.imageMatches(selector: resolved, image: image.image)
                        || TagInjector.stripTag(resolved) == image.image
                else { continue }
                for container in pod.containers {
                    if container.devImage != nil { replacedBy = replacedBy ?? pod.name } else { runsIt = true }
                }
            }
            guard let dev = replacedBy, !runsIt,
                let last = RuntimeImages.resolve(image.key, run: [:], loaded: loaded), !last.tag.isEmpty
            else { continue }
            let reference = last.reference
            let environment = self.environment
            let present = await onOwnThread { () -> Bool in
                guard let api = try? DockerAPI.fromEnvironment(environment) else { return false }
                return ((try? api.imageExists(reference)) ?? nil) != nil
            }
            if present { out.append((image.key, reference, dev)) }
        }
        return out
    }

    /// `start_dev NAME…|--all`: a dev container in place of each container a selected dev entry
    /// selects (when the entry asks for one), recorded for `slipway dev`'s sessions.
    /// `stop_dev NAME…|--all`: the originals back. Both on the local engine, in the branch
    /// environment with `--branch-env`.
    func dev(_ args: [String], stop: Bool) async throws(PipelineError) -> Int32 {
        let function = stop ? "stop_dev" : "start_dev"
        let a = try FunctionArguments(
            args,
            function: function,
            valued: ["except"],
            bools: [
                "all", "disable-sync", "disable-port-forwarding", "disable-pod-replace", "disable-open",
                "continue-on-terminal-exit", "branch-env",
            ]
        )
        let loaded = try await load()
        let pods = loaded.config.devPods
        // DevSpace's default purge pipeline starts with `stop_dev --all`: nothing to do without
        // a dev section, and no engine needed.
        if pods.isEmpty && (stop || a.names.isEmpty) { return 0 }
        let names = try a.select(from: pods.map(\.name), kind: "dev configuration", function: function)
        let selected = pods.filter { names.contains($0.name) }
        guard !selected.isEmpty else { return 0 }
        var branch: String?
        if a.bool("branch-env", default: state.defaults.branchEnv) {
            do {
                branch = try DeploymentRunner.branchEnvironment(directory: loaded.directory, environment: environment)
            } catch {
                throw PipelineError.deploy(error)
            }
        }
        let api: DockerAPI
        do {
            api = try DockerAPI.fromEnvironment(environment, timeout: .seconds(30))
        } catch {
            throw PipelineError.dev("\(function): dev mode works with a local Docker engine on a unix socket: \(error)")
        }
        let containers = DevContainers(
            api: api,
            helperProgram: SyncHelperProgram.program(besides: executable, environment: environment)
        )
        let injector = TagInjector(loaded: loaded, run: PipelineState.images(in: directory))
        let replace = !a.bool("disable-pod-replace", default: false)
        var started: [PipelineState.DevStarted] = []
        for pod in selected {
            for container in pod.containers {
                var selector = SyncPlanner.merged(
                    ContainerSelector(branch: branch, configPath: loaded.absolutePath),
                    pod: pod,
                    container: container
                )
                selector.image = selector.imageAsWritten.map { injector.inject($0) }
                let devImage = container.devImage.map { injector.inject($0) }
                var config = container
                if !replace {
                    config.devImage = nil
                    config.command = nil
                    config.args = nil
                    config.workingDir = nil
                    config.env = []
                    config.restartHelperInject = false
                    config.terminal?.disableReplace = true
                    config.attach?.disableReplace = true
                }
                let place = "\(loaded.displayPath):\(container.mark): \(container.path)"
                let (chosen, devConfig) = (selector, config)
                let result = await onOwnThread {
                    Result { () throws(DevError) -> [DevSwapResult] in
                        if stop {
                            return try containers.stop(selector: chosen).map {
                                DevSwapResult(dev: pod.name, name: $0, outcome: .kept, containerID: "")
                            }
                        }
                        return try containers.start(
                            dev: pod.name,
                            config: devConfig,
                            selector: chosen,
                            devImage: replace ? devImage : nil
                        )
                    }
                }
                let results: [DevSwapResult]
                do {
                    results = try result.get()
                } catch {
                    throw PipelineError.dev("\(place): \(error)")
                }
                if stop {
                    for r in results { output.note("dev \(pod.name): \(r.name) restored") }
                    continue
                }
                if results.isEmpty {
                    throw PipelineError.dev(
                        noContainer(pod: pod, container: container, place: place, loaded: loaded, selector: selector)
                    )
                }
                for r in results {
                    let what: String
                    switch r.outcome {
                    case .replaced:
                        what =
                            "dev container \(r.name) replaces the deployed one (stopped, kept as \(DevSwap.swappedName(r.name)))"
                    case .recreated: what = "dev container \(r.name) made again (its deployment or dev entry changed)"
                    case .unchanged: what = "dev container \(r.name) already in place"
                    case .kept:
                        what = "\(r.name) is used as deployed (nothing in \(container.path) asks for a dev container)"
                    }
                    output.note("dev \(pod.name): \(what)")
                    started.append(
                        PipelineState.DevStarted(
                            dev: pod.name,
                            name: r.name,
                            containerID: r.containerID,
                            branch: branch
                        )
                    )
                }
            }
        }
        if !stop {
            try PipelineState.record(devStarted: started, in: directory)
            JobDevFile.append(started, environment: environment)
        }
        return 0
    }

    /// Why a dev entry found no container: Kubernetes deployments are not run locally; else
    /// what the selector looked for.
    func noContainer(
        pod: DevPodConfig,
        container: DevContainerConfig,
        place: String,
        loaded: LoadedConfig,
        selector: ContainerSelector
    ) -> String {
        let cluster = loaded.config.deployments.filter { $0.kind != .docker }.map(\.name)
        if !cluster.isEmpty && !state.defaults.local {
            return
                "\(place): no container on the local Docker engine matches \(selector.description); dev mode on Kubernetes clusters is not supported yet (the deployments \(cluster.joined(separator: ", ")) go to a cluster), and nothing was changed. Run the component chart deployments on the local engine with --local, or use docker deployments"
        }
        return
            "\(place): no running container matches \(selector.description) in \(selector.scopeDescription); deploy first (create_deployments before start_dev in the pipeline, or slipway deploy)"
    }
}
