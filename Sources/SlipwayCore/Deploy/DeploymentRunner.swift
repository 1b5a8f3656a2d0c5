internal import Foundation

/// What one `create_deployments` / `purge_deployments` call does.
public struct DeploymentRequest: Sendable {
    /// Remove what the deployments created, instead of creating it.
    public var purge = false
    /// Print what would be applied, apply nothing.
    public var render = false
    /// Apply even when the same thing was applied last time.
    public var force = false
    /// The branch environment (`--branch-env`): the branch as a tag, or nil for the plain one.
    public var branch: String?
    /// `--local`: component-chart deployments run as pods on the local Docker engine.
    public var local = false

    public init(
        purge: Bool = false,
        render: Bool = false,
        force: Bool = false,
        branch: String? = nil,
        local: Bool = false
    ) {
        self.purge = purge
        self.render = render
        self.force = force
        self.branch = branch
        self.local = local
    }
}

/// Creates, renders or purges deployments: the `docker` kind on the local engine, `kubectl`
/// and `helm` on the kube target, each recorded in ``DeployState``. A deployment that fails is
/// reported and the others go on; the result says whether any failed.
public struct DeploymentRunner: Sendable {
    public let loaded: LoadedConfig
    public let environment: [String: String]
    /// The images built in this run (else the build record's, else the config's).
    public let runImages: [String: RuntimeImage]
    /// `--kube-context` and `-n` from the command line.
    public let kubeContext: String?
    public let namespace: String?
    /// A private directory for files handed to tools (helm's values file).
    public let scratchDirectory: String
    /// The program of the `--local` pods' infra container (``PauseImage/program(besides:environment:)``).
    public var pauseProgram: String?

    public init(
        loaded: LoadedConfig,
        environment: [String: String],
        runImages: [String: RuntimeImage],
        kubeContext: String?,
        namespace: String?,
        scratchDirectory: String
    ) {
        self.loaded = loaded
        self.environment = environment
        self.runImages = runImages
        self.kubeContext = kubeContext
        self.namespace = namespace
        self.scratchDirectory = scratchDirectory
    }

    /// The branch environment for `--branch-env`: the agent's job names its branch
    /// (`SLIPWAY_JOB_BRANCH`, its checkout may be detached), else the repository's branch.
    public static func branchEnvironment(directory: String, environment: [String: String]) throws(DeployError) -> String
    {
        if let name = environment["SLIPWAY_JOB_BRANCH"], !name.isEmpty { return BranchTag.tag(for: name) }
        guard case .branch(let name, _)? = try? GitRepository.discover(from: directory).head() else {
            throw DeployError.notOnBranch(directory: directory)
        }
        return BranchTag.tag(for: name)
    }

    /// Runs `request` for the deployments named `keys` (config order). `line` gets the lines
    /// for standard output (with `render`, only what would be applied: YAML documents, and
    /// comments), `note` the notes for standard error, `failure` each deployment's failure.
    /// Throws when nothing may be deployed at all (a kubectl or helm deployment without a
    /// cluster).
    public func run(
        _ keys: [String],
        _ request: DeploymentRequest,
        line: @Sendable (String) -> Void,
        note: @Sendable (String) -> Void = { _ in },
        failure: @Sendable (String, DeployError) -> Void
    ) async throws(DeployError) -> Bool {
        let selected = loaded.config.deployments.filter { keys.contains($0.name) }
        let injector = TagInjector(loaded: loaded, run: runImages)
        // A cluster deployment without a cluster fails before anything is deployed; with
        // --local, component-chart deployments need none.
        let needCluster = selected.filter {
            $0.kind != .docker && !(request.local && ClusterRenderer.isComponentChart($0))
        }
        var cluster: KubeTarget?
        if !selected.allSatisfy({ $0.kind == .docker }) {
            cluster = try? KubeTarget.resolve(context: kubeContext, namespace: namespace, environment: environment)
            if cluster == nil && !request.render && !needCluster.isEmpty {
                throw DeployError.noCluster(
                    deployments: needCluster.map {
                        ClusterRenderer.isComponentChart($0)
                            ? "\($0.name) (helm, the component chart: --local runs it on the local Docker engine)"
                            : "\($0.name) (\($0.kind.rawValue))"
                    },
                    purge: request.purge
                )
            }
        }
        let deployer = DockerDeployer(loaded: loaded, environment: environment)
        let renderer = ClusterRenderer(
            loaded: loaded,
            injector: injector,
            namespace: cluster?.namespace ?? namespace,
            environment: environment
        )
        let state = DeployState(configPath: loaded.absolutePath)
        var failed = false
        for deployment in selected {
            let prefix = "deploy:\(deployment.name)"
            do {
                if request.local && ClusterRenderer.isComponentChart(deployment) {
                    try await local(
                        deployment,
                        request,
                        renderer: renderer,
                        state: state,
                        prefix: prefix,
                        line: line,
                        note: note
                    )
                } else if deployment.kind == .docker {
                    try await docker(
                        deployment,
                        request,
                        deployer: deployer,
                        injector: injector,
                        state: state,
                        prefix: prefix,
                        line: line
                    )
                } else {
                    try await ClusterDeployer(
                        deployment: deployment,
                        renderer: renderer,
                        cluster: cluster,
                        request: request,
                        prefix: prefix,
                        state: state,
                        scratchDirectory: scratchDirectory,
                        environment: environment
                    ).run(line: line)
                }
            } catch {
                failure(prefix, error)
                failed = true
            }
        }
        return failed
    }

    func docker(
        _ deployment: DeploymentConfig,
        _ request: DeploymentRequest,
        deployer: DockerDeployer,
        injector: TagInjector,
        state: DeployState,
        prefix: String,
        line: @Sendable (String) -> Void
    ) async throws(DeployError) {
        if request.purge {
            let removed = try await deployer.purge(deployment: deployment.name, branch: request.branch)
            try state.update(deployment.name, environment: request.branch ?? "", to: nil)
            line("\(prefix) purged: " + (removed.isEmpty ? "nothing was running" : removed.joined(separator: ", ")))
            return
        }
        let containers = try deployer.containers(deployment, injector: injector, branch: request.branch)
        if request.render {
            // Comment lines: standard output stays a stream of manifests.
            let commands = DockerDeployer.render(containers).split(separator: "\n").map { "# " + $0 }
            line(
                "---\n# deployments.\(deployment.name) (docker): slipway runs these containers:\n"
                    + commands.joined(separator: "\n")
            )
            return
        }
        let outcomes = try await deployer.deploy(
            deployment,
            containers: containers,
            branch: request.branch,
            force: request.force
        )
        for (name, outcome) in outcomes {
            let image = containers.first { $0.name == name }?.image
            line("\(prefix) \(name): \(outcome.rawValue)" + (image.map { " (\($0))" } ?? ""))
        }
        try state.update(
            deployment.name,
            environment: request.branch ?? "",
            to: .init(
                kind: "docker",
                digest: sha256Hex(containers.map(\.spec).joined(separator: "\n")),
                objects: containers.map(\.name)
            )
        )
    }
}

extension DeploymentRunner {
    /// `--local`: a component-chart deployment's pod on the local engine (``LocalPod``).
    func local(
        _ deployment: DeploymentConfig,
        _ request: DeploymentRequest,
        renderer: ClusterRenderer,
        state: DeployState,
        prefix: String,
        line: @Sendable (String) -> Void,
        note: @Sendable (String) -> Void
    ) async throws(DeployError) {
        let environmentKey = "local:" + (request.branch ?? "")
        if request.purge {
            let deployer = try LocalPodDeployer(loaded: loaded, environment: environment)
            let (removed, kept) = try await deployer.purge(deployment: deployment.name, branch: request.branch)
            try state.update(deployment.name, environment: environmentKey, to: nil)
            line("\(prefix) purged: " + (removed.isEmpty ? "nothing was running" : removed.joined(separator: ", ")))
            for volume in kept {
                note(
                    "note: \(prefix): the persistent volume \(volume) is kept, as Kubernetes keeps a claim; `docker volume rm \(volume)` removes it"
                )
            }
            return
        }
        let suffix = request.branch.map { "-" + $0.lowercased() } ?? ""
        let (manifests, _) = try renderer.componentChart(deployment, releaseSuffix: suffix)
        let pod = try LocalPod.plan(
            manifests: manifests,
            loaded: loaded,
            deployment: deployment.name,
            branch: request.branch
        )
        if request.render {
            let text: String
            do { text = try YAMLEmitter().emit(manifests) } catch { throw DeployError.cannotEmit(error.message) }
            line(
                "---\n# deployments.\(deployment.name) (component-chart \(ComponentChart.version))\n\(pod.described)\n"
                    + text.dropLast()
            )
            return
        }
        for text in pod.notes { note("note: \(prefix) (--local): \(text)") }
        let deployer = try LocalPodDeployer(loaded: loaded, environment: environment)
        let outcomes = try await deployer.deploy(pod, pauseProgram: pauseProgram, force: request.force)
        for (name, outcome) in outcomes {
            let image = pod.members.first { $0.name == name && $0.role != .infra }?.image
            line("\(prefix) \(name): \(outcome.rawValue)" + (image.map { " (\($0))" } ?? ""))
        }
        try state.update(
            deployment.name,
            environment: environmentKey,
            to: .init(
                kind: "component-chart (local)",
                digest: sha256Hex(pod.members.map { "\($0.name) \($0.image)" }.joined(separator: "\n")),
                objects: pod.members.map(\.name)
            )
        )
    }
}

/// kubectl and helm: rendered with the tags injected; printed with `render`, else applied
/// (`kubectl apply --force -f -`, `helm upgrade --install`) on the kube target, and applied
/// again only when what would be applied, or where, changed since the last time.
struct ClusterDeployer {
    let deployment: DeploymentConfig
    let renderer: ClusterRenderer
    let cluster: KubeTarget?
    let request: DeploymentRequest
    let prefix: String
    let state: DeployState
    let scratchDirectory: String
    let environment: [String: String]

    var environmentKey: String { request.branch ?? "" }

    /// Whether to apply `text` to `place`, and the entry to record when it is applied.
    func changed(_ text: String, _ place: [String]) -> (Bool, DeployState.Entry) {
        let entry = DeployState.Entry(
            kind: deployment.kind.rawValue,
            digest: sha256Hex(text + "\n" + place.joined(separator: " ")),
            objects: place
        )
        let last = state.entry(deployment.name, environment: environmentKey)
        return (request.force || last?.digest != entry.digest, entry)
    }

    func emit(_ nodes: [Node]) throws(DeployError) -> String {
        do { return try YAMLEmitter().emit(nodes) } catch { throw DeployError.cannotEmit(error.message) }
    }

    func tool(
        _ name: String,
        _ args: [String],
        input: String? = nil,
        line: @Sendable (String) -> Void
    ) async throws(DeployError) {
        guard let path = findExecutable(name, path: environment["PATH"]) else {
            throw DeployError.toolMissing(
                tool: name,
                place: "",
                hint: "install it, or use --render to print what would be applied"
            )
        }
        let out: ProcessOutput
        do { out = try await ProcessRunner.run(path, args, environment: environment, input: input) } catch {
            throw DeployError.toolFailed(error, place: "")
        }
        guard out.status == 0 else {
            throw DeployError.toolFailed(
                ToolFailure(tool: name, arguments: args, status: out.status, standardError: out.standardError),
                place: ""
            )
        }
        for output in out.standardOutput.split(separator: "\n") { line("\(prefix) \(output)") }
    }

    /// The component chart on a cluster: its manifests applied with `kubectl apply`, as a
    /// kubectl deployment's are, into the deployment's namespace (a branch environment gets its
    /// own release name, as helm's does); objects an earlier deploy applied that the values no
    /// longer make are deleted, as helm deletes them; purge deletes what was applied.
    func componentChart(suffix: String, line: @Sendable (String) -> Void) async throws(DeployError) {
        let (manifests, release) = try renderer.componentChart(deployment, releaseSuffix: suffix)
        let text = try emit(manifests)
        if request.render {
            line(
                "---\n# deployments.\(deployment.name) (component-chart \(ComponentChart.version), release \(release))\n"
                    + text.dropLast()
            )
            return
        }
        let scope =
            cluster.map { ["--context", $0.context, "--namespace", deployment.namespace ?? $0.namespace] } ?? []
        let objects = manifests.compactMap { doc -> String? in
            guard let kind = doc["kind"]?.text, let name = doc["metadata"]?["name"]?.text else { return nil }
            return "\(kind)/\(name)"
        }
        let last = state.entry(deployment.name, environment: environmentKey)
        let gone = (last?.resources ?? []).filter { !objects.contains($0) }
        if request.purge {
            try await tool("kubectl", scope + ["delete", "--ignore-not-found", "-f", "-"], input: text, line: line)
            if !gone.isEmpty { try await tool("kubectl", scope + ["delete", "--ignore-not-found"] + gone, line: line) }
            try state.update(deployment.name, environment: environmentKey, to: nil)
            return
        }
        var (apply, entry) = changed(text, scope)
        entry.resources = objects
        guard apply || !gone.isEmpty else {
            line("\(prefix) unchanged (the same manifests were applied to \(scope.joined(separator: " ")))")
            return
        }
        try await tool("kubectl", scope + ["apply", "--force", "-f", "-"], input: text, line: line)
        if !gone.isEmpty { try await tool("kubectl", scope + ["delete", "--ignore-not-found"] + gone, line: line) }
        try state.update(deployment.name, environment: environmentKey, to: entry)
    }

    func run(line: @Sendable (String) -> Void) async throws(DeployError) {
        // A branch environment gets its own namespace (kubectl) or release (helm).
        let suffix = request.branch.map { "-" + $0.lowercased() } ?? ""
        switch deployment.kind {
        case .kubectl:
            let namespace = cluster.map { (deployment.namespace ?? $0.namespace) + suffix }
            let scope = cluster.map { ["--context", $0.context, "--namespace", namespace ?? $0.namespace] } ?? []
            let text = try emit(try await renderer.kubectlManifests(deployment))
            if request.render {
                line("---\n# deployments.\(deployment.name) (kubectl)\n" + text.dropLast())
                return
            }
            if request.purge {
                try await tool("kubectl", scope + ["delete", "--ignore-not-found", "-f", "-"], input: text, line: line)
                try state.update(deployment.name, environment: environmentKey, to: nil)
                return
            }
            let (apply, entry) = changed(text, scope)
            guard apply else {
                line("\(prefix) unchanged (the same manifests were applied to \(scope.joined(separator: " ")))")
                return
            }
            try await tool(
                "kubectl",
                scope + ["apply", "--force", "-f", "-"] + (deployment.spec["applyArgs"]?.strings ?? []),
                input: text,
                line: line
            )
            try state.update(deployment.name, environment: environmentKey, to: entry)
        case .helm where ClusterRenderer.isComponentChart(deployment):
            try await componentChart(suffix: suffix, line: line)
        case .helm:
            let helmScope = cluster.map {
                ["--kube-context", $0.context, "--namespace", deployment.namespace ?? $0.namespace]
            }
            let (values, release, command) = try renderer.helm(
                deployment,
                releaseSuffix: suffix,
                scope: request.render ? nil : helmScope
            )
            let valuesText = try emit([values])
            if request.render {
                // slipway does not render other charts: their command line and values, as
                // comments, so standard output stays a stream of manifests.
                let commented = valuesText.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
                    .map { "#   " + $0 }
                line(
                    "---\n# deployments.\(deployment.name) (helm): "
                        + command.map { $0 == "VALUES_FILE" ? "values.yaml" : $0 }.joined(separator: " ")
                        + "\n# values.yaml:\n" + commented.joined(separator: "\n")
                )
                return
            }
            if request.purge {
                try await tool("helm", ["uninstall", release] + (helmScope ?? []), line: line)
                try state.update(deployment.name, environment: environmentKey, to: nil)
                return
            }
            let args = Array(command.dropFirst())
            let (apply, entry) = changed(valuesText + args.joined(separator: " "), helmScope ?? [])
            guard apply else {
                line("\(prefix) unchanged (release \(release): same chart, values and arguments)")
                return
            }
            let file = scratchDirectory + "/values-\(deployment.name).yaml"
            if case .failure(let e) = AtomicFile.write(Array(valuesText.utf8), to: file, mode: 0o600) {
                throw DeployError.stateFile(path: file, detail: e.message)
            }
            try await tool("helm", args.map { $0 == "VALUES_FILE" ? file : $0 }, line: line)
            try state.update(deployment.name, environment: environmentKey, to: entry)
        case .docker:
            return
        }
    }
}
