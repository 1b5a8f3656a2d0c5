/// The typed view of a loaded, adjusted and variable-resolved `devspace.yaml` (v2beta1).
///
/// Sections slipway acts on are typed; the rest stay as validated ``Node`` trees.
public struct DevSpaceConfig: Sendable, Equatable {
    public var version: String
    public var name: String
    public var images: [ImageConfig]
    public var deployments: [DeploymentConfig]
    public var pipelines: [PipelineConfig]
    public var pullSecrets: [PullSecretConfig]
    public var localRegistry: Node?
    public var dev: Node?
    /// `dev`, typed where slipway acts on it: each entry's selector and `sync[]` paths.
    public var devPods: [DevPodConfig]
    /// Top-level keys present in the file that slipway parses but does not act on yet.
    public var notYetSupported: [String]

    public func image(_ key: String) -> ImageConfig? { images.first { $0.key == key } }
    public func pipeline(_ name: String) -> PipelineConfig? { pipelines.first { $0.name == name } }
    public func devPod(_ name: String) -> DevPodConfig? { devPods.first { $0.name == name } }

    /// Sections slipway loads and type-checks but does not run; using them says so.
    public static let notYetSupportedKeys = ["dependencies", "hooks", "commands", "functions", "require"]
}

/// One entry of `images`, after DevSpace's adjustments (tag moved from `image` into `tags`,
/// `./Dockerfile` and `./` defaults).
public struct ImageConfig: Sendable, Equatable {
    public enum RebuildStrategy: String, Sendable, Equatable, CaseIterable {
        case `default`, always, ignoreContextChanges
    }

    public struct BuildArg: Sendable, Equatable {
        public var name: String
        /// nil for `KEY: null`, which DevSpace skips.
        public var value: String?
    }

    public struct Docker: Sendable, Equatable {
        public var preferMinikube: Bool?
        public var disableFallback: Bool?
        public var useCli: Bool
        public var useBuildKit: Bool
        public var args: [String]
    }

    public struct Custom: Sendable, Equatable {
        public var command: String
        public var args: [String]
        public var appendArgs: [String]
        public var imageFlag: String?
        public var imageTagOnly: Bool
        public var skipImageArg: Bool?
        public var onChange: [String]
    }

    public var key: String
    public var image: String
    public var tags: [String]
    public var dockerfile: String
    public var context: String
    public var buildArgs: [BuildArg]
    public var target: String?
    public var network: String?
    public var entrypoint: [String]?
    public var cmd: [String]?
    public var appendDockerfileInstructions: [String]
    public var rebuildStrategy: RebuildStrategy
    public var skipPush: Bool
    public var createPullSecret: Bool?
    public var docker: Docker?
    public var buildKit: Node?
    public var kaniko: Node?
    public var custom: Custom?
    public var mark: Mark
}

/// One entry of `deployments`.
public struct DeploymentConfig: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case helm, kubectl, docker
    }

    public var name: String
    public var kind: Kind
    public var namespace: String?
    public var updateImageTags: Bool
    /// The kind's own section (`helm:`, `kubectl:` or `docker:`), validated by the schema.
    public var spec: Node
    public var mark: Mark
}

/// One entry of `pipelines`: a script, or `{run, flags, continueOnError}`.
public struct PipelineConfig: Sendable, Equatable {
    public struct Flag: Sendable, Equatable {
        public var name: String
        public var short: String?
        public var type: String
        public var defaultValue: Node?
        public var description: String?
    }

    public var name: String
    public var run: String
    public var flags: [Flag]
    public var continueOnError: Bool
    public var mark: Mark
}

/// One entry of the top-level `pullSecrets`.
public struct PullSecretConfig: Sendable, Equatable {
    public var name: String
    public var registry: String
    public var username: String?
    public var password: String?
    public var email: String
    public var secret: String
    public var serviceAccounts: [String]
    public var mark: Mark
}

extension DevSpaceConfig {
    /// Decodes the typed view from a tree that passed schema and rule validation.
    init(decoding root: Node) {
        version = root["version"]?.scalar ?? ""
        name = root["name"]?.scalar ?? ""
        images = (root["images"]?.pairs ?? []).compactMap { p in
            p.key.scalar.map { ImageConfig(key: $0, node: p.value) }
        }
        deployments = (root["deployments"]?.pairs ?? []).compactMap { p in
            guard let name = p.key.scalar else { return nil }
            return DeploymentConfig(name: name, node: p.value)
        }
        pipelines = (root["pipelines"]?.pairs ?? []).compactMap { p in
            p.key.scalar.map { PipelineConfig(name: $0, node: p.value) }
        }
        pullSecrets = (root["pullSecrets"]?.pairs ?? []).compactMap { p in
            p.key.scalar.map { PullSecretConfig(name: $0, node: p.value) }
        }
        localRegistry = root["localRegistry"]
        dev = root["dev"]
        devPods = (root["dev"]?.pairs ?? []).compactMap { p in
            guard let name = p.key.scalar, p.value.isMapping else { return nil }
            return DevPodConfig(name: name, node: p.value)
        }
        notYetSupported = Self.notYetSupportedKeys.filter { k in
            guard let n = root[k] else { return false }
            return !n.isNull && !(n.pairs?.isEmpty ?? false) && !(n.items?.isEmpty ?? false)
        }
    }
}

extension Node {
    /// A sequence's items as strings (null as "").
    public var strings: [String]? { items?.map { $0.isNull ? "" : ($0.scalar ?? "") } }
    /// A boolean as go-yaml v3 decodes one into a bool field: true/false, and YAML 1.1's
    /// yes/no/on/off/y/n when written plain (the schema accepts those too).
    var bool: Bool? {
        guard let s = scalar else { return nil }
        if resolved == .bool { return s.lowercased() == "true" }
        guard case .scalar(_, .plain) = kind, tag == nil else { return nil }
        switch s.lowercased() {
        case "yes", "on", "y": return true
        case "no", "off", "n": return false
        default: return nil
        }
    }
    /// A scalar's text; nil for null and for collections.
    public var text: String? { isNull ? nil : scalar }
}

extension ImageConfig {
    init(key: String, node: Node) {
        self.key = key
        image = node["image"]?.text ?? ""
        tags = node["tags"]?.strings ?? []
        dockerfile = node["dockerfile"]?.text ?? "./Dockerfile"
        context = node["context"]?.text ?? "./"
        buildArgs = (node["buildArgs"]?.pairs ?? []).map { BuildArg(name: $0.key.scalar ?? "", value: $0.value.text) }
        target = node["target"]?.text.flatMap { $0.isEmpty ? nil : $0 }
        network = node["network"]?.text.flatMap { $0.isEmpty ? nil : $0 }
        entrypoint = node["entrypoint"].flatMap { $0.isNull ? nil : $0.strings }
        cmd = node["cmd"].flatMap { $0.isNull ? nil : $0.strings }
        appendDockerfileInstructions = node["appendDockerfileInstructions"]?.strings ?? []
        rebuildStrategy = node["rebuildStrategy"]?.text.flatMap(RebuildStrategy.init(rawValue:)) ?? .default
        skipPush = node["skipPush"]?.bool ?? false
        createPullSecret = node["createPullSecret"]?.bool
        if let d = node["docker"], d.isMapping {
            docker = Docker(
                preferMinikube: d["preferMinikube"]?.bool,
                disableFallback: d["disableFallback"]?.bool,
                useCli: d["useCli"]?.bool ?? false,
                useBuildKit: d["useBuildKit"]?.bool ?? false,
                args: d["args"]?.strings ?? []
            )
        }
        buildKit = node["buildKit"].flatMap { $0.isNull ? nil : $0 }
        kaniko = node["kaniko"].flatMap { $0.isNull ? nil : $0 }
        if let c = node["custom"], c.isMapping {
            custom = Custom(
                command: c["command"]?.text ?? c["commands"]?.items?.first?["command"]?.text ?? "",
                args: c["args"]?.strings ?? [],
                appendArgs: c["appendArgs"]?.strings ?? [],
                imageFlag: c["imageFlag"]?.text,
                imageTagOnly: c["imageTagOnly"]?.bool ?? false,
                skipImageArg: c["skipImageArg"]?.bool,
                onChange: c["onChange"]?.strings ?? []
            )
        }
        mark = node.mark
    }
}

extension DeploymentConfig {
    init(name: String, node: Node) {
        self.name = name
        if let s = node["docker"], !s.isNull {
            kind = .docker
            spec = s
        } else if let s = node["kubectl"], !s.isNull {
            kind = .kubectl
            spec = s
        } else {
            kind = .helm
            spec = node["helm"] ?? Node(.mapping([]))
        }
        namespace = node["namespace"]?.text
        updateImageTags = node["updateImageTags"]?.bool ?? true
        mark = node.mark
    }
}

extension PipelineConfig {
    init(name: String, node: Node) {
        self.name = name
        mark = node.mark
        if let s = node.scalar {
            run = node.isNull ? "" : s
            flags = []
            continueOnError = false
            return
        }
        run = node["run"]?.text ?? ""
        continueOnError = node["continueOnError"]?.bool ?? false
        flags = (node["flags"]?.items ?? []).map { f in
            Flag(
                name: f["name"]?.text ?? "",
                short: f["short"]?.text,
                type: f["type"]?.text ?? "bool",
                defaultValue: f["default"],
                description: f["description"]?.text
            )
        }
    }
}

extension PullSecretConfig {
    init(name: String, node: Node) {
        self.name = name
        registry = node["registry"]?.text ?? ""
        username = node["username"]?.text.flatMap { $0.isEmpty ? nil : $0 }
        password = node["password"]?.text.flatMap { $0.isEmpty ? nil : $0 }
        email = node["email"]?.text ?? "noreply@devspace.sh"
        secret = node["secret"]?.text ?? "devspace-pull-secrets"
        serviceAccounts = node["serviceAccounts"]?.strings ?? ["default"]
        mark = node.mark
    }
}
