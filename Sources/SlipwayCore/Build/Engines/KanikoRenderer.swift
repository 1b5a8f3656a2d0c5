/// DevSpace's kaniko build pod (`pkg/devspace/build/builder/kaniko/build_pod.go`), rendered
/// from an image's `kaniko:` section as a Kubernetes manifest.
///
/// The pod has DevSpace's shape and field values: `generateName` (default
/// `devspace-build-kaniko-`), labels `devspace-build`, `devspace-build-id`, `devspace-pid`
/// plus `kaniko.labels`, an init container `context` (`initImage`, default `alpine`) that waits
/// for `/tmp/done` with the context on an emptyDir at `/context`, the `kaniko` container
/// (`image`, default `gcr.io/kaniko-project/executor:v1.20.1`) with the executor arguments
/// (``executorArguments(for:options:)``), the pull secret mounted at `/kaniko/.docker` unless
/// `skipPullSecretMount`, `additionalMounts`, `resources` on both containers, `nodeSelector`,
/// `tolerations`, `serviceAccount`, `annotations`, `env`/`envFrom` and `initEnv`.
///
/// Where DevSpace iterates Go maps (labels, env, build args) the order is random there; here
/// maps are emitted with sorted keys, as Kubernetes serialises them, and build args in config
/// order. Keys appear in Kubernetes' own field order. `apiVersion`/`kind` are added so the
/// output is a complete manifest. Quantities in `resources` are kept as written. The
/// quota-derived default resources of DevSpace Cloud (a `devspace-quota` ResourceQuota) are
/// not rendered.
public enum KanikoRenderer {
    public static let defaultImage = "gcr.io/kaniko-project/executor:v1.20.1"
    public static let defaultInitImage = "alpine"
    public static let defaultGenerateName = "devspace-build-kaniko-"
    public static let defaultPullSecret = "devspace-pull-secrets"
    static let contextPath = "/context"

    /// The build pod for `request` with the image's `kaniko` section `options`.
    ///
    /// - Parameters:
    ///   - buildID: the `devspace-build-id` label (DevSpace: 12 random lowercase letters).
    ///   - runID: the `devspace-pid` label (the id of this run).
    ///   - namespace: the current namespace, used when `kaniko.namespace` is not set; nil omits
    ///     `metadata.namespace`.
    public static func pod(
        for request: BuildRequest,
        options: Node?,
        buildID: String,
        runID: String,
        namespace: String? = nil
    ) -> Node {
        let kaniko = options ?? Node.mapping([])
        let pullSecret = nonEmpty(kaniko["pullSecret"]?.text) ?? defaultPullSecret

        var volumes: [Node] = [.mapping([("name", .string("context")), ("emptyDir", .mapping([]))])]
        var mounts: [Node] = [.mapping([("name", .string("context")), ("mountPath", .string(contextPath))])]
        if kaniko["skipPullSecretMount"]?.bool != true {
            volumes.append(
                .mapping([
                    ("name", .string(pullSecret)),
                    (
                        "secret",
                        .mapping([
                            ("secretName", .string(pullSecret)),
                            (
                                "items",
                                .sequence([
                                    .mapping([("key", .string(".dockerconfigjson")), ("path", .string("config.json"))])
                                ])
                            ),
                        ])
                    ),
                ])
            )
            mounts.append(.mapping([("name", .string(pullSecret)), ("mountPath", .string("/kaniko/.docker"))]))
        }
        for (i, mount) in (kaniko["additionalMounts"]?.items ?? []).enumerated() {
            let name = "additional-volume-\(i)"
            let source: (String, Node)
            if let secret = mount["secret"], secret.isMapping {
                source = ("secret", volumeSource(secret, nameKey: "secretName"))
            } else if let configMap = mount["configMap"], configMap.isMapping {
                source = ("configMap", volumeSource(configMap, nameKey: "name"))
            } else {
                continue  // DevSpace skips a mount with neither.
            }
            volumes.append(.mapping([("name", .string(name)), source]))
            var fields: [(String, Node)] = [("name", .string(name))]
            if mount["readOnly"]?.bool == true { fields.append(("readOnly", plain("true"))) }
            fields.append(("mountPath", .string(mount["mountPath"]?.text ?? "")))
            if let subPath = nonEmpty(mount["subPath"]?.text) { fields.append(("subPath", .string(subPath))) }
            mounts.append(.mapping(fields))
        }

        let resources = resourcesNode(kaniko["resources"])

        var initContainer: [(String, Node)] = [
            ("name", .string("context")),
            ("image", .string(nonEmpty(kaniko["initImage"]?.text) ?? defaultInitImage)),
            ("command", .sequence([.string("sh")])),
            ("args", .sequence([.string("-c"), .string("while [ ! -f /tmp/done ]; do sleep 2; done")])),
        ]
        let initEnv = sortedPairs(kaniko["initEnv"]).map { envVar($0.0, value: .string($0.1)) }
        if !initEnv.isEmpty { initContainer.append(("env", .sequence(initEnv))) }
        if let resources { initContainer.append(("resources", resources)) }
        initContainer.append(
            (
                "volumeMounts",
                .sequence([.mapping([("name", .string("context")), ("mountPath", .string(contextPath))])])
            )
        )
        initContainer.append(("imagePullPolicy", .string("IfNotPresent")))

        var container: [(String, Node)] = [
            ("name", .string("kaniko")),
            ("image", .string(nonEmpty(kaniko["image"]?.text) ?? defaultImage)),
        ]
        if let command = kaniko["command"]?.strings, !command.isEmpty {
            container.append(("command", .sequence(command.map { .string($0) })))
        }
        container.append(("args", .sequence(executorArguments(for: request, options: options).map { .string($0) })))
        var env = sortedPairs(kaniko["env"]).map { envVar($0.0, value: .string($0.1)) }
        for pair in (kaniko["envFrom"]?.pairs ?? []).sorted(by: { ($0.key.scalar ?? "") < ($1.key.scalar ?? "") }) {
            env.append(.mapping([("name", .string(pair.key.scalar ?? "")), ("valueFrom", pair.value)]))
        }
        if !env.isEmpty { container.append(("env", .sequence(env))) }
        if let resources { container.append(("resources", resources)) }
        container.append(("volumeMounts", .sequence(mounts)))
        container.append(("imagePullPolicy", .string("IfNotPresent")))

        var spec: [(String, Node)] = [
            ("volumes", .sequence(volumes)),
            ("initContainers", .sequence([.mapping(initContainer)])),
            ("containers", .sequence([.mapping(container)])),
            ("restartPolicy", .string("Never")),
        ]
        let nodeSelector = sortedPairs(kaniko["nodeSelector"])
        if !nodeSelector.isEmpty { spec.append(("nodeSelector", stringMap(nodeSelector))) }
        if let account = nonEmpty(kaniko["serviceAccount"]?.text) {
            spec.append(("serviceAccountName", .string(account)))
        }
        if let tolerations = kaniko["tolerations"]?.items, !tolerations.isEmpty {
            spec.append(("tolerations", .sequence(tolerations)))
        }

        var labels = ["devspace-build": "true", "devspace-build-id": buildID, "devspace-pid": runID]
        for (key, value) in sortedPairs(kaniko["labels"]) { labels[key] = value }
        var metadata: [(String, Node)] = [
            ("generateName", .string(nonEmpty(kaniko["generateName"]?.text) ?? defaultGenerateName))
        ]
        if let namespace = nonEmpty(kaniko["namespace"]?.text) ?? namespace {
            metadata.append(("namespace", .string(namespace)))
        }
        metadata.append(("labels", stringMap(labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })))
        let annotations = sortedPairs(kaniko["annotations"])
        if !annotations.isEmpty { metadata.append(("annotations", stringMap(annotations))) }

        return .mapping([
            ("apiVersion", .string("v1")),
            ("kind", .string("Pod")),
            ("metadata", .mapping(metadata)),
            ("spec", .mapping(spec)),
        ])
    }

    /// The kaniko executor's arguments, in DevSpace's order:
    ///
    ///     --dockerfile=/context/<basename> --context=dir:///context --destination=IMAGE:TAG…
    ///     [--target=X] --snapshotMode=<time> [--insecure --skip-tls-verify] --build-arg K=V…
    ///     [--cache=true --cache-repo=<normalised repository>] <kaniko.args…>
    ///
    /// A rewritten Dockerfile is uploaded as `Dockerfile` (DevSpace writes it to a temporary
    /// `Dockerfile`).
    public static func executorArguments(for request: BuildRequest, options: Node?) -> [String] {
        let kaniko = options ?? Node.mapping([])
        let basename =
            request.dockerfileContents != nil
            ? "Dockerfile" : String(request.dockerfilePath.split(separator: "/").last ?? "Dockerfile")
        var args = ["--dockerfile=\(contextPath)/\(basename)", "--context=dir://\(contextPath)"]
        for reference in request.references { args.append("--destination=\(reference)") }
        if let target = request.target, !target.isEmpty { args.append("--target=\(target)") }
        args.append("--snapshotMode=\(nonEmpty(kaniko["snapshotMode"]?.text) ?? "time")")
        if kaniko["insecure"]?.bool == true { args += ["--insecure", "--skip-tls-verify"] }
        for (key, value) in request.buildArgs { args += ["--build-arg", "\(key)=\(value)"] }
        if kaniko["cache"]?.bool == true {
            args += ["--cache=true", "--cache-repo=\(normalizedRepository(request.imageName))"]
        }
        args += kaniko["args"]?.strings ?? []
        return args
    }

    /// The repository as docker's `reference.ParseNormalizedNamed(…).Name()` gives it:
    /// `app` → `docker.io/library/app`, `org/app` → `docker.io/org/app`, a first component
    /// with `.` or `:` (or `localhost`) is a registry and stays.
    public static func normalizedRepository(_ image: String) -> String {
        var name = image
        if let at = name.firstIndex(of: "@") { name = String(name[..<at]) }
        let slash = name.lastIndex(of: "/") ?? name.startIndex
        if let colon = name[slash...].lastIndex(of: ":") { name = String(name[..<colon]) }
        let parts = name.split(separator: "/", maxSplits: 1).map(String.init)
        var domain = "docker.io"
        var remainder = name
        if parts.count == 2, parts[0].contains(".") || parts[0].contains(":") || parts[0] == "localhost" {
            domain = parts[0] == "index.docker.io" ? "docker.io" : parts[0]
            remainder = parts[1]
        }
        if domain == "docker.io" && !remainder.contains("/") { remainder = "library/" + remainder }
        return domain + "/" + remainder
    }

    /// The engine for images with a `kaniko` section: it renders, but cannot run here.
    public static func engine(options: Node?) -> KanikoEngine { KanikoEngine(options: options) }

    // MARK: Helpers

    static func nonEmpty(_ text: String?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        return text
    }

    /// A plain scalar (an integer or boolean Kubernetes expects unquoted).
    static func plain(_ text: String) -> Node {
        Node(.scalar(text, .plain))
    }

    static func sortedPairs(_ node: Node?) -> [(String, String)] {
        (node?.pairs ?? []).compactMap { pair in
            pair.key.scalar.map { ($0, pair.value.text ?? "") }
        }.sorted { $0.0 < $1.0 }
    }

    static func stringMap(_ pairs: [(String, String)]) -> Node {
        .mapping(pairs.map { ($0.0, .string($0.1)) })
    }

    static func envVar(_ name: String, value: Node) -> Node {
        .mapping([("name", .string(name)), ("value", value)])
    }

    /// A secret or configMap volume source in Kubernetes' field order.
    static func volumeSource(_ node: Node, nameKey: String) -> Node {
        var fields: [(String, Node)] = [(nameKey, .string(node["name"]?.text ?? ""))]
        let items: [Node] = (node["items"]?.items ?? []).map { item in
            var entry: [(String, Node)] = [
                ("key", .string(item["key"]?.text ?? "")), ("path", .string(item["path"]?.text ?? "")),
            ]
            if let mode = item["mode"]?.scalar, !(item["mode"]?.isNull ?? true) { entry.append(("mode", plain(mode))) }
            return .mapping(entry)
        }
        if !items.isEmpty { fields.append(("items", .sequence(items))) }
        if let mode = node["defaultMode"], !mode.isNull, let text = mode.scalar {
            fields.append(("defaultMode", plain(text)))
        }
        return .mapping(fields)
    }

    /// `resources: {limits, requests}` with quantities as strings, or nil when not set.
    static func resourcesNode(_ node: Node?) -> Node? {
        guard let node, node.isMapping else { return nil }
        var fields: [(String, Node)] = []
        for key in ["limits", "requests"] {
            let pairs = sortedPairs(node[key])
            if !pairs.isEmpty { fields.append((key, stringMap(pairs))) }
        }
        return .mapping(fields)
    }
}

/// The engine for images with a `kaniko` section. Kaniko builds in a pod of a Kubernetes
/// cluster and pushes to a registry; slipway does not run it yet, so ``build(_:log:)`` throws
/// ``EngineError/inClusterBuild(engine:image:)`` and the pod is available through
/// ``KanikoRenderer/pod(for:options:buildID:runID:namespace:)``.
public struct KanikoEngine: BuildEngine {
    public var name: String { "kaniko" }
    public let options: Node?

    public init(options: Node?) {
        self.options = options
    }

    public func isAvailable() async -> Bool { false }

    /// Always nil: kaniko's images live in a registry, not in a local store.
    public func imageID(_ reference: String) async throws -> String? { nil }

    public func build(_ request: BuildRequest, log: @Sendable (String) -> Void) async throws -> BuiltImage {
        throw EngineError.inClusterBuild(engine: name, image: request.imageKey)
    }

    public func tag(existing: String, as references: [String]) async throws {
        throw EngineError.unsupported(
            engine: name,
            operation: "re-tag \(existing)",
            reason: "kaniko pushes to a registry from inside a cluster"
        )
    }
}
