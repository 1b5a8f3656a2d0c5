internal import SystemPackage

/// Everything an engine needs to build one image, with paths resolved and values final.
public struct BuildRequest: Sendable {
    /// The key under `images:` (`app`), for messages and logs.
    public var imageKey: String
    /// The repository without a tag, e.g. `ghcr.io/acme/app`.
    public var imageName: String
    /// Every tag to give the image; `tags[0]` is the main one. Empty means `latest`.
    public var tags: [String]
    /// The build context, absolute.
    public var contextDirectory: String
    /// The Dockerfile, absolute; it may lie outside the context.
    public var dockerfilePath: String
    /// The rewritten Dockerfile when `entrypoint`, `cmd` or `appendDockerfileInstructions` are
    /// set. Engines build from it instead of ``dockerfilePath``: they write it to a temporary
    /// file outside the context and pass that with `--file`, which docker and buildah allow.
    public var dockerfileContents: String?
    /// `--build-arg` pairs in config order; `KEY: null` entries are already dropped.
    public var buildArgs: [(String, String)]
    /// The multi-stage target (`--target`).
    public var target: String?
    /// The build network mode (`--network`).
    public var network: String?
    /// Extra engine arguments (`docker.args`, `buildKit.args`), placed before the context.
    public var extraArgs: [String]

    public init(
        imageKey: String,
        imageName: String,
        tags: [String],
        contextDirectory: String,
        dockerfilePath: String,
        dockerfileContents: String? = nil,
        buildArgs: [(String, String)] = [],
        target: String? = nil,
        network: String? = nil,
        extraArgs: [String] = []
    ) {
        self.imageKey = imageKey
        self.imageName = imageName
        self.tags = tags
        self.contextDirectory = contextDirectory
        self.dockerfilePath = dockerfilePath
        self.dockerfileContents = dockerfileContents
        self.buildArgs = buildArgs
        self.target = target
        self.network = network
        self.extraArgs = extraArgs
    }

    /// The request for `image` built with `tags`, with its paths resolved against the
    /// directory of the config file, as DevSpace resolves them.
    ///
    /// `dockerfileContents` is the rewritten Dockerfile, when the image needs one
    /// (``DockerfileRewriter``); `extraArgs` come from `docker.args`, or from `buildKit.args`
    /// for a BuildKit image.
    public init(image: ImageConfig, tags: [String], configDirectory: String, dockerfileContents: String? = nil) {
        let base = FilePath(configDirectory)
        func resolve(_ path: String) -> String {
            base.pushing(FilePath(path)).lexicallyNormalized().string
        }
        var extra = image.docker?.args ?? []
        if let buildKit = image.buildKit { extra = buildKit["args"]?.strings ?? [] }
        self.init(
            imageKey: image.key,
            imageName: image.image,
            tags: tags,
            contextDirectory: resolve(image.context),
            dockerfilePath: resolve(image.dockerfile),
            dockerfileContents: dockerfileContents,
            buildArgs: image.buildArgs.compactMap { arg in arg.value.map { (arg.name, $0) } },
            target: image.target,
            network: image.network,
            extraArgs: extra
        )
    }

    /// `imageName:tag` for every tag (just `imageName`, meaning `latest`, when there are none).
    public var references: [String] {
        tags.isEmpty ? [imageName] : tags.map { "\(imageName):\($0)" }
    }
}

extension BuildRequest: Equatable {
    public static func == (lhs: BuildRequest, rhs: BuildRequest) -> Bool {
        lhs.imageKey == rhs.imageKey && lhs.imageName == rhs.imageName && lhs.tags == rhs.tags
            && lhs.contextDirectory == rhs.contextDirectory && lhs.dockerfilePath == rhs.dockerfilePath
            && lhs.dockerfileContents == rhs.dockerfileContents
            && lhs.buildArgs.map(\.0) == rhs.buildArgs.map(\.0) && lhs.buildArgs.map(\.1) == rhs.buildArgs.map(\.1)
            && lhs.target == rhs.target && lhs.network == rhs.network && lhs.extraArgs == rhs.extraArgs
    }
}

/// What a successful build produced.
public struct BuiltImage: Sendable, Equatable {
    /// Every name the image now has (`imageName:tag`, in tag order).
    public var references: [String]
    /// The image ID in the engine's store (`sha256:…`), or nil for engines that build
    /// somewhere slipway cannot look (a custom command, a cluster).
    public var id: String?

    public init(references: [String], id: String?) {
        self.references = references
        self.id = id
    }
}

/// An engine that builds images: the Docker engine, buildah, a custom command, or (rendered
/// only, here) kaniko and in-cluster BuildKit.
public protocol BuildEngine: ImagePushing {
    /// The engine's name in messages and logs (`docker`, `buildah`, `custom`, `kaniko`, `buildkit`).
    var name: String { get }

    /// Whether the engine can build on this machine right now (daemon answers, tool installed).
    func isAvailable() async -> Bool

    /// The ID of the image `reference` names in **this engine's** store, or nil when it has no
    /// such image (or the engine has no store slipway can look into).
    func imageID(_ reference: String) async throws -> String?

    /// The image `reference` names in this engine's store: its ID and, when the engine says so
    /// in the same answer, every name it has (`repository:tag`). Nil when there is none.
    func storedImage(_ reference: String) async throws -> StoredImage?

    /// Builds `request`, passing each line of the build's output to `log` as it arrives.
    func build(_ request: BuildRequest, log: @Sendable (String) -> Void) async throws -> BuiltImage

    /// Gives the existing image `existing` (a reference or an ID) each name in `references`
    /// (`name:tag`): a new tag for unchanged content is a re-tag, not a build.
    func tag(existing: String, as references: [String]) async throws

    /// Whether slipway pushes this engine's images after a build. False for engines that push
    /// by themselves (kaniko, in-cluster BuildKit) or that slipway cannot look into (custom).
    var pushesAfterBuild: Bool { get }

    /// Pushes `reference` (`name:tag`) from this engine's store to its registry with
    /// `credential` (nil: anonymously), passing progress lines to `log`; returns the manifest
    /// digest when the engine reports it. Throws ``PushFailure`` for what the registry or the
    /// transfer said (one attempt; ``ImagePusher`` retries), ``EngineError`` for the engine.
    func push(
        _ reference: String,
        credential: RegistryCredential?,
        stallTimeout: Duration,
        log: @escaping @Sendable (String) -> Void
    ) async throws -> String?
}

/// An image in an engine's store.
public struct StoredImage: Sendable, Equatable {
    public var id: String
    /// The image's names as the engine spells them; empty when the engine did not say.
    public var names: [String]

    public init(id: String, names: [String]) {
        self.id = id
        self.names = names
    }
}

extension BuildEngine {
    public var pushesAfterBuild: Bool { false }

    public func push(
        _ reference: String,
        credential: RegistryCredential?,
        stallTimeout: Duration,
        log: @escaping @Sendable (String) -> Void
    ) async throws -> String? {
        throw EngineError.unsupported(
            engine: name,
            operation: "push \(reference)",
            reason: "this engine pushes by itself or not at all"
        )
    }

    public func storedImage(_ reference: String) async throws -> StoredImage? {
        try await imageID(reference).map { StoredImage(id: $0, names: []) }
    }
}

/// Retrying a push cannot fix the engine's own trouble.
extension EngineError: PermanentPushError {}

/// A failure of a build engine.
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The engine's daemon does not answer; `detail` says where slipway looked and why it failed.
    case unreachable(engine: String, detail: String)
    /// The build ran and failed; `lastLines` are the last (up to 20) lines it printed.
    case buildFailed(engine: String, image: String, status: Int32, lastLines: [String])
    /// The engine builds inside a Kubernetes cluster (kaniko, in-cluster BuildKit), which
    /// slipway does not do yet, whether or not a cluster is configured.
    case inClusterBuild(engine: String, image: String)
    /// A program the engine needs is not installed (not on PATH).
    case toolMissing(engine: String, tool: String)
    /// An engine operation other than the build (inspect, tag) failed.
    case operationFailed(engine: String, operation: String, detail: String)
    /// The engine cannot do this at all (re-tagging a custom build, say).
    case unsupported(engine: String, operation: String, reason: String)
    /// The request cannot be carried out as given (a reference with characters no registry
    /// allows, an unknown `${runtime.…}` variable).
    case invalidRequest(engine: String, image: String, message: String)

    /// How to get a Docker engine on this machine.
    public static let startDockerHint =
        "start one with `./install.sh --deps-only` or `sudo dockerd --bridge=none --iptables=false`"

    public var description: String {
        switch self {
        case .unreachable(let engine, let detail):
            return "\(engine): the engine does not answer: \(detail)"
        case .buildFailed(let engine, let image, let status, let lastLines):
            let tail = lastLines.isEmpty ? "" : ":\n" + lastLines.joined(separator: "\n")
            return "\(engine): building \(image) failed (exit status \(status))\(tail)"
        case .inClusterBuild(let engine, let image):
            let section = engine == "kaniko" ? "kaniko" : "buildKit.inCluster"
            return
                "\(engine): images.\(image).\(section) builds inside a Kubernetes cluster, which slipway does not do yet "
                + "(with a cluster or without: it renders the \(engine == "kaniko" ? "build pod" : "buildx commands") DevSpace "
                + "would run, but does not start \(engine == "kaniko" ? "it" : "them")); remove the image's \(section) section "
                + "to build it with the local docker or buildah engine, or build it with `devspace build`"
        case .toolMissing(let engine, let tool):
            let hint =
                ["docker", "buildah", "buildkit"].contains(engine) ? "; ./install.sh installs slipway's tools" : ""
            return "\(engine): `\(tool)` is not installed (not found on PATH)\(hint)"
        case .operationFailed(let engine, let operation, let detail):
            return "\(engine): \(operation) failed: \(detail)"
        case .unsupported(let engine, let operation, let reason):
            return "\(engine): cannot \(operation): \(reason)"
        case .invalidRequest(let engine, let image, let message):
            return "\(engine): \(image): \(message)"
        }
    }
}
