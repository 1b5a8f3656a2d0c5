import ArgumentParser
import Foundation
import SlipwayCore

extension SlipwayCommand {
    /// `slipway __pipeline-function NAME ARGS…`: one built-in function of a running pipeline
    /// (the bash functions of the pipeline's prelude call it). Not for direct use.
    struct PipelineFunction: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "__pipeline-function", abstract: "Runs one built-in function of a pipeline.",
            shouldDisplay: false)

        @Argument var name: String
        @Argument(parsing: .allUnrecognized) var arguments: [String] = []

        func run() async throws {
            guard let directory = ProcessInfo.processInfo.environment[PipelineState.environmentKey] else {
                Terminal.error("\(name): built-in functions run only inside a pipeline (`slipway run-pipeline`)")
                throw ExitCode.failure
            }
            do {
                let state = try PipelineState.read(from: directory)
                let status = try await PipelineFunctions(state: state, directory: directory).call(name, arguments)
                if status != 0 { throw ExitCode(status) }
            } catch let error as PipelineError {
                Terminal.error("\(name): \(error.message)")
                throw ExitCode.failure
            }
        }
    }
}

/// The built-in functions: the config loaded as the pipeline loaded it, the command line's
/// defaults, and the function's own flags.
struct PipelineFunctions {
    let state: PipelineState
    let directory: String

    /// A function's arguments: flags (`--x`, `--x=v`, `--x v` for valued ones, `-t v`), and names.
    struct Arguments {
        var flags: [String: [String]] = [:]
        var names: [String] = []

        func has(_ flag: String) -> Bool { flags[flag] != nil }
        func value(_ flag: String) -> String? { flags[flag]?.last }
        func values(_ flag: String) -> [String] { flags[flag] ?? [] }

        /// `valued`: flags that take a value; `bools`: the others. Short forms map to long ones.
        init(_ args: [String], function: String, valued: Set<String>, bools: Set<String>, short: [String: String] = [:])
            throws(PipelineError)
        {
            var i = 0
            while i < args.count {
                let arg = args[i]
                var flag: String
                if arg.hasPrefix("--") {
                    flag = String(arg.dropFirst(2))
                } else if arg.hasPrefix("-") && arg.count >= 2 {
                    let s = String(arg.dropFirst().prefix(1))
                    guard let long = short[s] else { throw PipelineError("unknown flag \(arg)") }
                    flag = long + (arg.count > 2 ? "=" + arg.dropFirst(2) : "")
                } else {
                    names.append(arg)
                    i += 1
                    continue
                }
                var inline: String?
                if let eq = flag.firstIndex(of: "=") {
                    inline = String(flag[flag.index(after: eq)...])
                    flag = String(flag[..<eq])
                }
                if valued.contains(flag) {
                    guard let value = inline ?? (i + 1 < args.count ? args[i + 1] : nil) else {
                        throw PipelineError("--\(flag) needs a value")
                    }
                    if inline == nil { i += 1 }
                    flags[flag, default: []].append(value)
                } else if bools.contains(flag) {
                    flags[flag, default: []].append(inline ?? "true")
                } else {
                    let known = (valued.union(bools)).sorted().map { "--\($0)" }.joined(separator: ", ")
                    throw PipelineError("unknown flag --\(flag) (\(function) takes \(known))")
                }
                i += 1
            }
        }

        func bool(_ flag: String, default value: Bool) -> Bool {
            guard let v = flags[flag]?.last else { return value }
            return v != "false" && v != "0"
        }
    }

    func load() async throws(PipelineError) -> LoadedConfig {
        let options = LoadOptions(
            configPath: state.configPath, workingDirectory: state.workingDirectory,
            environment: ProcessInfo.processInfo.environment,
            vars: state.vars.compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil }, profiles: state.profiles,
            disableProfileActivation: state.disableProfileActivation, namespace: state.namespace,
            kubeContext: state.kubeContext)
        do {
            return try await ConfigLoader.load(options)
        } catch {
            throw PipelineError(error.diagnostics.map(\.description).joined(separator: "\n"))
        }
    }

    /// `--all`, `--except X…` and names → the selected keys of `all`, in config order.
    static func select(_ a: Arguments, from all: [String], what: String, function: String) throws(PipelineError) -> [String] {
        for name in a.names + a.values("except") where !all.contains(name) {
            throw PipelineError("no \(what) named \"\(name)\" (\(what)s: \(all.isEmpty ? "none" : all.joined(separator: ", ")))")
        }
        if a.has("all") {
            let except = Set(a.values("except"))
            return all.filter { !except.contains($0) }
        }
        guard !a.names.isEmpty else {
            throw PipelineError("name the \(what)s, or pass --all (as in `\(function) --all`)")
        }
        return all.filter { a.names.contains($0) }
    }

    func call(_ name: String, _ args: [String]) async throws(PipelineError) -> Int32 {
        let function = name.hasPrefix("__") ? String(name.dropFirst(2)) : name
        switch function {
        case "build_images": return try await buildImages(args)
        case "create_deployments": return try await deployments(args, purge: false)
        case "purge_deployments": return try await deployments(args, purge: true)
        case "ensure_pull_secrets": return try await ensurePullSecrets(args)
        case "get_image": return try await getImage(args)
        case "get_flag":
            guard args.count == 1 else { throw PipelineError("usage: get_flag NAME") }
            guard let value = state.flags[args[0]] else {
                throw PipelineError("the pipeline has no flag \"\(args[0])\" (declare it under pipelines.\(state.stack.last ?? "").flags)")
            }
            Terminal.out(value + "\n")
            return 0
        case "start_dev":
            throw PipelineError("dev mode is not available yet in slipway; remove start_dev from the pipeline, or use `slipway deploy`")
        case "stop_dev":
            // No dev session can be running yet, so there is nothing to stop; DevSpace's default
            // purge pipeline starts with this call and must still purge.
            Terminal.error("note: stop_dev: dev mode is not available yet in slipway, so no dev session is running; nothing to stop")
            return 0
        case "run_dependencies", "run_dependency_pipelines":
            let loaded = try await load()
            if loaded.tree["dependencies"]?.pairs?.isEmpty == false {
                throw PipelineError(
                    "\(loaded.displayPath): dependencies are not supported yet: slipway does not run other projects' pipelines")
            }
            return 0
        case "run_pipelines":
            let a = try Arguments(args, function: function, valued: ["set-flag"], bools: ["sequential", "background"])
            guard !a.names.isEmpty else { throw PipelineError("usage: run_pipelines NAME…") }
            let loaded = try await load()
            var state = self.state
            for pair in a.values("set-flag") {
                guard let eq = pair.firstIndex(of: "=") else { throw PipelineError("--set-flag \(pair): expected NAME=VALUE") }
                state.flags[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            for pipeline in a.names {
                let status = try await PipelineRunner.run(
                    pipeline, loaded: loaded, state: state, stateDirectory: directory,
                    executable: PipelineCommand.selfExecutable(), environment: ProcessInfo.processInfo.environment)
                if status != 0 { return status }
            }
            return 0
        case "run_default_pipeline":
            guard args.count == 1, PipelineScript.defaults[args[0]] ?? PipelineScript.slipwayDefaults[args[0]] != nil else {
                throw PipelineError("usage: run_default_pipeline build|deploy|dev|purge|commit|push|gate")
            }
            let loaded = try await load()
            return try await PipelineRunner.run(
                args[0], loaded: loaded, state: state, stateDirectory: directory,
                executable: PipelineCommand.selfExecutable(), environment: ProcessInfo.processInfo.environment,
                defaultScript: true)
        default:
            throw PipelineError("no built-in function \(name)")
        }
    }

    func buildImages(_ args: [String]) async throws(PipelineError) -> Int32 {
        let a = try Arguments(
            args, function: "build_images", valued: ["except", "tag", "max-concurrent"],
            bools: ["all", "skip", "skip-push", "skip-push-on-local-kubernetes", "force-rebuild", "sequential"],
            short: ["t": "tag"])
        let loaded = try await load()
        let keys = try Self.select(a, from: loaded.config.images.map(\.key), what: "image", function: "build_images")
        let d = state.defaults
        if a.bool("skip", default: d.skipBuild) {
            return 0
        }
        var options = BuildOptions()
        options.images = keys
        let tags = a.values("tag").flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        options.tags = tags.isEmpty ? d.tags : tags
        options.forceRebuild = a.bool("force-rebuild", default: d.forceRebuild)
        options.sequential = a.bool("sequential", default: d.sequential)
        options.maxConcurrent = Int(a.value("max-concurrent") ?? "") ?? d.maxConcurrent
        options.skipPush = a.bool("skip-push", default: d.skipPush)
        options.skipPushOnLocalCluster = a.bool("skip-push-on-local-kubernetes", default: d.skipPushLocalKube)
        options.kubeContext = state.kubeContext
        options.pushPolicy = PushPolicy(stallTimeout: .milliseconds(Int64(d.pushTimeout * 1000)))
        options.environment = ProcessInfo.processInfo.environment
        guard !keys.isEmpty else { return 0 }
        let renderer = BuildRenderer(json: false, silent: false, colors: true)
        let report: BuildReport
        do {
            report = try await BuildRunner(loaded: loaded, options: options, emit: renderer.render).run()
        } catch {
            throw PipelineError(error.lines.joined(separator: "\n"))
        }
        renderer.summary(report)
        var built: [String: PipelineState.RuntimeImage] = [:]
        for r in report.results where r.outcome != .failed {
            built[r.key] = PipelineState.RuntimeImage(image: r.imageName, tag: r.tags.first ?? "latest")
        }
        try PipelineState.record(images: built, in: directory)
        // An agent's job: the references this run built or found (`name:tag` per line).
        if let path = ProcessInfo.processInfo.environment["SLIPWAY_JOB_RESULT"], !path.isEmpty {
            let lines = report.results.filter { $0.outcome != .failed }.flatMap { r in r.tags.map { "\(r.imageName):\($0)\n" } }
            if let handle = FileHandle(forWritingAtPath: path) ?? {
                _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
                return FileHandle(forWritingAtPath: path)
            }() {
                handle.seekToEndOfFile()
                handle.write(Data(lines.joined().utf8))
                try? handle.close()
            }
        }
        return report.failed ? 1 : 0
    }

    func getImage(_ args: [String]) async throws(PipelineError) -> Int32 {
        let a = try Arguments(args, function: "get_image", valued: ["only", "dependency"], bools: [])
        guard a.names.count == 1 else { throw PipelineError("usage: get_image [--only=image|tag] NAME") }
        if a.has("dependency") { throw PipelineError("dependencies are not supported yet") }
        let only = a.value("only")
        if let only, only != "image", only != "tag" { throw PipelineError("--only must be image or tag") }
        let loaded = try await load()
        guard let found = RuntimeImages.resolve(a.names[0], run: PipelineState.images(in: directory), loaded: loaded) else {
            throw PipelineError("no image named \"\(a.names[0])\" (images: \(loaded.config.images.map(\.key).joined(separator: ", ")))")
        }
        Terminal.out((only == "image" ? found.image : only == "tag" ? found.tag : "\(found.image):\(found.tag)") + "\n")
        return 0
    }

    func ensurePullSecrets(_ args: [String]) async throws(PipelineError) -> Int32 {
        let a = try Arguments(args, function: "ensure_pull_secrets", valued: ["except"], bools: ["all"])
        let loaded = try await load()
        let keys = try Self.select(a, from: loaded.config.pullSecrets.map(\.name), what: "pull secret", function: "ensure_pull_secrets")
        let selected = loaded.config.pullSecrets.filter { keys.contains($0.name) }
        guard !selected.isEmpty else { return 0 }
        let environment = ProcessInfo.processInfo.environment
        do {
            let kube = try Kubeconfig.load(environment: environment)
            let context = state.kubeContext ?? kube?.currentContext
            guard let kube, let context else {
                throw PipelineError(
                    "there is no cluster to apply pull secrets to (no kubeconfig or current context); `slipway pull-secrets --render` prints them")
            }
            let namespace = state.namespace ?? kube.context(context)?.namespace ?? "default"
            let docker = try DockerConfigFile.load(environment: environment)
            let rendered = try await PullSecretRenderer(namespace: namespace, showSecrets: true).render(selected) {
                (registry: String) throws(RegistryError) -> RegistryCredential? in
                try await docker.credential(for: registry, environment: environment)
            }
            for warning in rendered.warnings { Terminal.error("warning: \(warning)") }
            let lines = try await PullSecretApplier(context: context, namespace: namespace, environment: environment)
                .apply(rendered)
            for line in lines { Terminal.out(line + "\n") }
            return 0
        } catch let error as PipelineError {
            throw error
        } catch {
            throw PipelineError("\(error)")
        }
    }

    func deployments(_ args: [String], purge: Bool) async throws(PipelineError) -> Int32 {
        let function = purge ? "purge_deployments" : "create_deployments"
        let a = try Arguments(
            args, function: function, valued: ["except"],
            bools: ["all", "skip-deploy", "force-redeploy", "sequential", "render", "force-purge", "branch-env"])
        let loaded = try await load()
        let keys = try Self.select(a, from: loaded.config.deployments.map(\.name), what: "deployment", function: function)
        let d = state.defaults
        if !purge && a.bool("skip-deploy", default: d.skipDeploy) { return 0 }
        let render = !purge && a.bool("render", default: d.render)
        let environment = ProcessInfo.processInfo.environment
        var branch: String?
        if a.bool("branch-env", default: d.branchEnv), let name = environment["SLIPWAY_JOB_BRANCH"], !name.isEmpty {
            // The agent's job names its branch (its checkout may be detached).
            branch = BranchTag.tag(for: name)
        } else if a.bool("branch-env", default: d.branchEnv) {
            let head = try? GitRepository.discover(from: loaded.directory).head()
            guard case .branch(let name, _)? = head else {
                throw PipelineError("--branch-env: \(loaded.directory) is not on a git branch (detached HEAD, or not a repository)")
            }
            branch = BranchTag.tag(for: name)
        }
        let deployer = DockerDeployer(loaded: loaded, environment: environment)
        let injector = TagInjector(loaded: loaded, run: PipelineState.images(in: directory))
        let selected = loaded.config.deployments.filter { keys.contains($0.name) }
        // A cluster deployment without a cluster fails before anything is deployed.
        var cluster: (context: String, namespace: String)?
        if selected.contains(where: { $0.kind != .docker }) {
            let kube = try? Kubeconfig.load(environment: environment)
            if let kube, let context = state.kubeContext ?? kube.currentContext {
                cluster = (context, state.namespace ?? kube.context(context)?.namespace ?? "default")
            } else if !render {
                let names = selected.filter { $0.kind != .docker }.map { "\($0.name) (\($0.kind.rawValue))" }
                throw PipelineError(
                    "there is no cluster to deploy \(names.joined(separator: ", ")) to: no kubeconfig (KUBECONFIG, ~/.kube/config) or no current context; nothing was deployed. `slipway render` (or --render) prints what would be applied")
            }
        }
        let renderer = ClusterRenderer(
            loaded: loaded, injector: injector, namespace: cluster?.namespace ?? state.namespace, environment: environment)
        let deployState = DeployState(configPath: loaded.absolutePath)
        var failed = false
        for deployment in selected {
            let prefix = "deploy:\(deployment.name)"
            guard deployment.kind == .docker else {
                do {
                    try await clusterDeployment(
                        deployment, renderer: renderer, cluster: cluster, render: render, purge: purge, prefix: prefix,
                        branch: branch, force: a.bool("force-redeploy", default: d.forceRedeploy), state: deployState)
                } catch {
                    Terminal.error("\(prefix) failed: \(error.message)")
                    failed = true
                }
                continue
            }
            do {
                if purge {
                    let removed = try await deployer.purge(deployment: deployment.name, branch: branch)
                    try deployState.update(deployment.name, environment: branch ?? "", to: nil)
                    Terminal.out("\(prefix) purged: " + (removed.isEmpty ? "nothing was running" : removed.joined(separator: ", ")) + "\n")
                    continue
                }
                let containers = try deployer.containers(deployment, injector: injector, branch: branch)
                if render {
                    Terminal.out("# deployments.\(deployment.name) (docker)\n" + DockerDeployer.render(containers))
                    continue
                }
                let outcomes = try await deployer.deploy(
                    deployment, containers: containers, branch: branch, force: a.bool("force-redeploy", default: d.forceRedeploy))
                for (name, outcome) in outcomes {
                    let image = containers.first { $0.name == name }?.image
                    Terminal.out("\(prefix) \(name): \(outcome.rawValue)" + (image.map { " (\($0))" } ?? "") + "\n")
                }
                try deployState.update(
                    deployment.name, environment: branch ?? "",
                    to: .init(
                        kind: "docker", digest: sha256Hex(containers.map(\.spec).joined(separator: "\n")),
                        objects: containers.map(\.name)))
            } catch {
                Terminal.error("\(prefix) failed: \(error.message)")
                failed = true
            }
        }
        return failed ? 1 : 0
    }

    /// kubectl and helm: rendered with the tags injected; printed with --render, else applied
    /// (`kubectl apply --force -f -`, `helm upgrade --install`) on the kube context.
    func clusterDeployment(
        _ deployment: DeploymentConfig, renderer: ClusterRenderer, cluster: (context: String, namespace: String)?,
        render: Bool, purge: Bool, prefix: String, branch: String?, force: Bool, state deployState: DeployState
    ) async throws(PipelineError) {
        let environmentKey = branch ?? ""
        /// Applies unless the same text was applied to the same place last time.
        func changed(_ text: String, _ place: [String]) -> (Bool, DeployState.Entry) {
            let entry = DeployState.Entry(
                kind: deployment.kind.rawValue, digest: sha256Hex(text + "\n" + place.joined(separator: " ")), objects: place)
            let last = deployState.entry(deployment.name, environment: environmentKey)
            return (force || last?.digest != entry.digest, entry)
        }
        let environment = renderer.environment
        func emit(_ nodes: [Node]) throws(PipelineError) -> String {
            do { return try YAMLEmitter().emit(nodes) } catch { throw PipelineError("cannot write YAML: \(error.message)") }
        }
        func tool(_ name: String, _ args: [String], input: String? = nil) async throws(PipelineError) {
            guard let path = findExecutable(name, path: environment["PATH"]) else {
                throw PipelineError("\(name) is not on PATH; install it, or use --render to print what would be applied")
            }
            let out: ProcessOutput
            do { out = try await ProcessRunner.run(path, args, environment: environment, input: input) } catch {
                throw PipelineError("\(name) could not run: \(error)")
            }
            guard out.status == 0 else {
                throw PipelineError(
                    "\(([name] + args.prefix(4)).joined(separator: " ")) failed (exit status \(out.status)): \(out.standardError.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            for line in out.standardOutput.split(separator: "\n") { Terminal.out("\(prefix) \(line)\n") }
        }
        // A branch environment gets its own namespace (kubectl) or release (helm).
        let suffix = branch.map { "-" + $0.lowercased() } ?? ""
        let namespace = cluster.map { (deployment.namespace ?? $0.namespace) + suffix }
        let scope = cluster.map { ["--context", $0.context, "--namespace", namespace ?? $0.namespace] } ?? []
        switch deployment.kind {
        case .kubectl:
            let manifests = try await renderer.kubectlManifests(deployment)
            let text = try emit(manifests)
            if render {
                Terminal.out("# deployments.\(deployment.name) (kubectl)\n" + text)
                return
            }
            if purge {
                try await tool("kubectl", scope + ["delete", "--ignore-not-found", "-f", "-"], input: text)
                try deployState.update(deployment.name, environment: environmentKey, to: nil)
                return
            }
            let (apply, entry) = changed(text, scope)
            guard apply else {
                Terminal.out("\(prefix) unchanged (the same manifests were applied to \(scope.joined(separator: " ")))\n")
                return
            }
            try await tool(
                "kubectl", scope + ["apply", "--force", "-f", "-"] + (deployment.spec["applyArgs"]?.strings ?? []), input: text)
            try deployState.update(deployment.name, environment: environmentKey, to: entry)
        case .helm:
            let helmScope = cluster.map { ["--kube-context", $0.context, "--namespace", deployment.namespace ?? $0.namespace] }
            let (values, release, command) = try renderer.helm(deployment, releaseSuffix: suffix, scope: render ? nil : helmScope)
            if render {
                Terminal.out(
                    "# deployments.\(deployment.name) (helm): " + command.map { $0 == "VALUES_FILE" ? "values.yaml" : $0 }.joined(separator: " ")
                        + "\n" + (try emit([values])))
                return
            }
            if purge {
                try await tool("helm", ["uninstall", release] + (helmScope ?? []))
                try deployState.update(deployment.name, environment: environmentKey, to: nil)
                return
            }
            let valuesText = try emit([values])
            let args = Array(command.dropFirst())
            let (apply, entry) = changed(valuesText + args.joined(separator: " "), helmScope ?? [])
            guard apply else {
                Terminal.out("\(prefix) unchanged (release \(release): same chart, values and arguments)\n")
                return
            }
            let file = directory + "/values-\(deployment.name).yaml"
            if case .failure(let e) = AtomicFile.write(Array(valuesText.utf8), to: file, mode: 0o600) {
                throw PipelineError(e.message)
            }
            try await tool("helm", args.map { $0 == "VALUES_FILE" ? file : $0 })
            try deployState.update(deployment.name, environment: environmentKey, to: entry)
        case .docker:
            return
        }
    }
}

