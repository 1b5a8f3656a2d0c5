/// DevSpace's BuildKit builder (`pkg/devspace/build/builder/buildkit/buildkit.go`): the
/// `buildx build` command line for an image with a `buildKit:` section, and the
/// `buildx create --driver kubernetes` line of an in-cluster builder.
public enum BuildKitRenderer {
    /// The image's `buildKit:` section.
    public struct Options: Sendable, Equatable {
        /// `buildKit.inCluster`.
        public struct InCluster: Sendable, Equatable {
            public var name: String?
            public var namespace: String?
            public var rootless: Bool
            public var image: String?
            public var nodeSelector: String?
            public var noCreate: Bool
            public var noRecreate: Bool
            public var noLoad: Bool
            public var createArgs: [String]
        }

        /// The buildx command, default `docker buildx`.
        public var command: [String]
        /// Appended to `buildx build`.
        public var args: [String]
        public var preferMinikube: Bool?
        public var inCluster: InCluster?

        public init(_ node: Node?) {
            let node = node ?? Node.mapping([])
            let command = node["command"]?.strings ?? []
            self.command = command.isEmpty ? ["docker", "buildx"] : command
            args = node["args"]?.strings ?? []
            preferMinikube = node["preferMinikube"]?.bool
            if let cluster = node["inCluster"], cluster.isMapping {
                inCluster = InCluster(
                    name: KanikoRenderer.nonEmpty(cluster["name"]?.text),
                    namespace: KanikoRenderer.nonEmpty(cluster["namespace"]?.text),
                    rootless: cluster["rootless"]?.bool ?? false,
                    image: KanikoRenderer.nonEmpty(cluster["image"]?.text),
                    nodeSelector: KanikoRenderer.nonEmpty(cluster["nodeSelector"]?.text),
                    noCreate: cluster["noCreate"]?.bool ?? false,
                    noRecreate: cluster["noRecreate"]?.bool ?? false,
                    noLoad: cluster["noLoad"]?.bool ?? false,
                    createArgs: cluster["createArgs"]?.strings ?? []
                )
            }
        }
    }

    /// The in-cluster builder's name: `inCluster.name`, else `devspace-<namespace>`; nil for a
    /// local build.
    public static func builderName(_ options: Options, currentNamespace: String) -> String? {
        guard let cluster = options.inCluster else { return nil }
        return cluster.name ?? "devspace-" + (cluster.namespace ?? currentNamespace)
    }

    /// The build command, in DevSpace's order:
    ///
    ///     <command|docker buildx> build --build-arg K=V… --network N --tag IMAGE:TAG… [--push | --load]
    ///         --file F --target X [--builder NAME] <buildKit.args…> <context>
    ///
    /// `--push` when not `skipPush` and there are tags; otherwise `--load` only for an
    /// in-cluster builder without `noLoad` (a local buildx on the docker driver loads anyway).
    /// DevSpace pipes a tar of the context on stdin (`-`, with the Dockerfile's path inside the
    /// tar); slipway passes the context directory and the Dockerfile's path.
    ///
    /// - Parameters:
    ///   - dockerfile: the file to build from; nil means the request's Dockerfile.
    ///   - currentNamespace: the kube context's namespace, for the default builder name.
    public static func buildCommand(
        for request: BuildRequest,
        options: Options,
        skipPush: Bool,
        dockerfile: String? = nil,
        currentNamespace: String = "default"
    ) -> [String] {
        var args = options.command + ["build"]
        for (key, value) in request.buildArgs { args += ["--build-arg", "\(key)=\(value)"] }
        if let network = request.network, !network.isEmpty { args += ["--network", network] }
        for reference in request.references { args += ["--tag", reference] }
        let builder = builderName(options, currentNamespace: currentNamespace)
        if !skipPush {
            if !request.references.isEmpty { args.append("--push") }
        } else if builder != nil, options.inCluster?.noLoad != true {
            args.append("--load")
        }
        args += ["--file", dockerfile ?? request.dockerfilePath]
        if let target = request.target, !target.isEmpty { args += ["--target", target] }
        if let builder { args += ["--builder", builder] }
        args += options.args
        args.append(request.contextDirectory)
        return args
    }

    /// `<command> create --driver kubernetes --driver-opt namespace=NS --name NAME
    /// [--driver-opt rootless=true] [--driver-opt image=…] [--driver-opt nodeselector=…]
    /// <createArgs…>`; nil without `inCluster` or with `noCreate`.
    public static func createBuilderCommand(_ options: Options, currentNamespace: String = "default") -> [String]? {
        guard let cluster = options.inCluster, !cluster.noCreate,
            let name = builderName(options, currentNamespace: currentNamespace)
        else { return nil }
        let namespace = cluster.namespace ?? currentNamespace
        var args =
            options.command + [
                "create", "--driver", "kubernetes", "--driver-opt", "namespace=\(namespace)", "--name", name,
            ]
        if cluster.rootless { args += ["--driver-opt", "rootless=true"] }
        if let image = cluster.image { args += ["--driver-opt", "image=\(image)"] }
        if let selector = cluster.nodeSelector { args += ["--driver-opt", "nodeselector=\(selector)"] }
        args += cluster.createArgs
        return args
    }
}

/// The engine for images with a `buildKit:` section.
///
/// In-cluster (`buildKit.inCluster`) builds run in a Kubernetes cluster, which slipway does not
/// do yet: ``build(_:log:)`` throws ``EngineError/inClusterBuild(engine:image:)``, and
/// ``BuildKitRenderer`` renders the commands. A local build runs the rendered `buildx build`
/// when `docker buildx` works, and otherwise throws ``EngineError/toolMissing(engine:tool:)``.
/// Images built locally land in the Docker engine, so presence and re-tagging go through its
/// API.
public struct BuildKitEngine: BuildEngine {
    public var name: String { "buildkit" }
    public let options: BuildKitRenderer.Options
    /// Push after the build (`--push`), as DevSpace does unless push is skipped.
    public let skipPush: Bool
    public let api: DockerAPI

    public init(options: Node?, skipPush: Bool, api: DockerAPI = DockerAPI()) {
        self.options = BuildKitRenderer.Options(options)
        self.skipPush = skipPush
        self.api = api
    }

    public func isAvailable() async -> Bool {
        guard options.inCluster == nil else { return false }
        return await probe() == .buildx
    }

    public func imageID(_ reference: String) async throws -> String? {
        try await DockerEngine(api: api).imageID(reference)
    }

    public func tag(existing: String, as references: [String]) async throws {
        try await DockerEngine(api: api).tag(existing: existing, as: references)
    }

    public func build(_ request: BuildRequest, log: @Sendable (String) -> Void) async throws -> BuiltImage {
        guard options.inCluster == nil else { throw EngineError.inClusterBuild(engine: name, image: request.imageKey) }
        guard await probe() == .buildx else {
            throw EngineError.toolMissing(engine: name, tool: options.command.joined(separator: " "))
        }
        return try await withDockerfile(request) { dockerfile, _ in
            let argv = BuildKitRenderer.buildCommand(
                for: request,
                options: options,
                skipPush: skipPush,
                dockerfile: dockerfile
            )
            let outcome = try await EngineProcess.stream(
                engine: name,
                argv[0],
                Array(argv.dropFirst()),
                environment: ["DOCKER_HOST": "unix://" + api.socketPath],
                log: log
            )
            guard outcome.status == 0 else {
                throw EngineError.buildFailed(
                    engine: name,
                    image: request.imageKey,
                    status: outcome.status,
                    lastLines: outcome.lastLines
                )
            }
            // A pushed-only image is not in the local store: its ID is unknown here.
            return BuiltImage(references: request.references, id: try? api.imageExists(request.references[0]))
        }
    }

    /// Whether the configured buildx command works (for the default `docker buildx`, the
    /// per-process answer the docker engine also uses).
    private func probe() async -> DockerEngine.Builder {
        if options.command == ["docker", "buildx"] {
            return await BuildxProbe.shared.builder(
                docker: "docker",
                environment: ["DOCKER_HOST": "unix://" + api.socketPath]
            )
        }
        let outcome = try? await EngineProcess.stream(
            engine: name,
            options.command[0],
            Array(options.command.dropFirst()) + ["version"],
            log: { _ in }
        )
        return outcome?.status == 0 ? .buildx : .classic
    }
}
