internal import Foundation

/// What the `kubectl` and `helm` deployers would send to a cluster, with the built tags
/// injected as DevSpace injects them:
/// - kubectl: the manifests (files, directories, `*` globs; `kubectl kustomize` with
///   `kustomize: true`) and `inlineManifest` (whose `${runtime.…}` resolve); then **only fields
///   named `image`** are rewritten.
/// - helm: the local chart's `values.yaml`, then each `valuesFiles` entry, then the inline
///   `values`, merged in that order; every string value is rewritten, except one whose mapping
///   also has a `tag` key (DevSpace turned `repository: app` + `tag: x` into `app:tag:tag`).
/// - the component chart (helm without a chart): the same values, injected the same way, then
///   rendered to manifests by ``ComponentChart``.
/// `updateImageTags: false` leaves values and manifests as written.
public struct ClusterRenderer: Sendable {
    public let loaded: LoadedConfig
    public let injector: TagInjector
    public let namespace: String?
    public let environment: [String: String]

    public init(loaded: LoadedConfig, injector: TagInjector, namespace: String?, environment: [String: String]) {
        self.loaded = loaded
        self.injector = injector
        self.namespace = namespace
        self.environment = environment
    }

    // MARK: kubectl

    /// The manifests of a kubectl deployment, tags injected.
    public func kubectlManifests(_ deployment: DeploymentConfig) async throws(DeployError) -> [Node] {
        let spec = deployment.spec
        let place = "\(loaded.displayPath): deployments.\(deployment.name).kubectl"
        var documents: [Node] = []
        for entry in spec["manifests"]?.strings ?? [] {
            if spec["kustomize"]?.bool == true {
                let directory = ConfigLoader.absolute(entry, in: loaded.directory)
                documents += try await kustomize(directory, args: spec["kustomizeArgs"]?.strings ?? [], place: place)
                continue
            }
            let files = try Self.expand(entry, in: loaded.directory, place: place)
            for file in files { documents += try parse(file: file, place: place) }
        }
        if let inline = spec["inlineManifest"]?.text {
            let text = injector.inject(inline)
            documents += try parse(text: text, source: "\(place).inlineManifest")
        }
        if deployment.updateImageTags {
            documents = documents.map { rewrite($0, onlyKey: "image", siblingsOK: true) }
        }
        documents = try patched(documents.filter { !$0.isNull }, spec["patches"]?.items ?? [], place: place)
        return documents
    }

    /// `kubectl.patches` (after injection, as in DevSpace): each patch (`op`, `path`, `value`,
    /// with profiles' path syntax) applies to every manifest its `target` (apiVersion, kind,
    /// name) matches; a patch that matches nothing is an error, so a typo does not pass
    /// silently.
    func patched(_ documents: [Node], _ patches: [Node], place: String) throws(DeployError) -> [Node] {
        var documents = documents
        for (i, patch) in patches.enumerated() {
            let target = patch["target"]
            func matches(_ doc: Node) -> Bool {
                for key in ["apiVersion", "kind"] {
                    if let want = target?[key]?.text, doc[key]?.text != want { return false }
                }
                if let want = target?["name"]?.text, doc["metadata"]?["name"]?.text != want { return false }
                return true
            }
            var pairs = (patch.pairs ?? []).filter { $0.key.scalar != "target" }
            pairs = pairs.map { Node.Pair(key: $0.key, value: $0.value) }
            let profile = Node.mapping([
                ("name", .string("kubectl.patches[\(i)]")),
                ("patches", .sequence([Node(.mapping(pairs), mark: patch.mark)])),
            ])
            var hit = false
            for (j, doc) in documents.enumerated() where matches(doc) {
                hit = true
                do {
                    documents[j] = try ProfileApplier.apply(profile, to: doc)
                } catch {
                    throw DeployError.invalid(
                        place: "\(place).patches[\(i)]",
                        message: "(\(loaded.displayPath):\(error.mark)) \(error.message)"
                    )
                }
            }
            if !hit {
                let what = ["apiVersion", "kind", "name"].compactMap { k in target?[k]?.text.map { "\(k)=\($0)" } }
                throw DeployError.invalid(
                    place: "\(place).patches[\(i)]",
                    message: "its target (\(what.joined(separator: ", "))) matches none of the manifests"
                )
            }
        }
        return documents
    }

    /// `path`, a directory's `*.yaml`/`*.yml`/`*.json`, or a `*` glob in the last component.
    static func expand(_ entry: String, in directory: String, place: String) throws(DeployError) -> [String] {
        let path = ConfigLoader.absolute(entry, in: directory)
        let files = FileManager.default
        var isDir: ObjCBool = false
        if !path.contains("*") {
            guard files.fileExists(atPath: path, isDirectory: &isDir) else {
                throw DeployError.missingFile(place: "\(place).manifests", file: entry, detail: "does not exist")
            }
            if !isDir.boolValue { return [path] }
            let names = (try? files.contentsOfDirectory(atPath: path)) ?? []
            return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.sorted()
                .map { path + "/" + $0 }
        }
        let parent = (path as NSString).deletingLastPathComponent
        let pattern = (path as NSString).lastPathComponent
        let names = (try? files.contentsOfDirectory(atPath: parent)) ?? []
        let matched = names.filter { fnmatch(pattern, $0, 0) == 0 }.sorted().map { parent + "/" + $0 }
        guard !matched.isEmpty else {
            throw DeployError.missingFile(place: "\(place).manifests", file: entry, detail: "matches no file")
        }
        return matched
    }

    func parse(file: String, place: String) throws(DeployError) -> [Node] {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw DeployError.missingFile(place: "\(place).manifests", file: file, detail: "cannot be read")
        }
        return try parse(text: String(decoding: data, as: UTF8.self), source: file)
    }

    func parse(text: String, source: String) throws(DeployError) -> [Node] {
        do {
            return try YAMLParser().parseAll(Array(text.utf8))
        } catch {
            throw DeployError.badYAML(source: source, mark: error.mark, message: error.message)
        }
    }

    func kustomize(_ directory: String, args: [String], place: String) async throws(DeployError) -> [Node] {
        guard let kubectl = findExecutable("kubectl", path: environment["PATH"]) else {
            throw DeployError.toolMissing(
                tool: "kubectl",
                place: place,
                hint: "kustomize: true needs it (kubectl kustomize)"
            )
        }
        let output: ProcessOutput
        do {
            output = try await ProcessRunner.run(kubectl, ["kustomize", directory] + args, environment: environment)
        } catch {
            throw DeployError.toolFailed(error, place: place)
        }
        guard output.status == 0 else {
            throw DeployError.toolFailed(
                ToolFailure(
                    tool: "kubectl",
                    arguments: ["kustomize", directory] + args,
                    status: output.status,
                    standardError: output.standardError
                ),
                place: place
            )
        }
        return try parse(text: output.standardOutput, source: "kubectl kustomize \(directory)")
    }

    // MARK: helm

    /// Whether `deployment` is DevSpace's component chart: a helm deployment without a chart,
    /// or with `component-chart` from charts.devspace.sh named explicitly. slipway renders it
    /// itself (``ComponentChart``).
    public static func isComponentChart(_ deployment: DeploymentConfig) -> Bool {
        guard deployment.kind == .helm else { return false }
        let chart = deployment.spec["chart"]
        if chart?["path"]?.text?.isEmpty == false { return false }
        guard let name = chart?["name"]?.text, !name.isEmpty else { return true }
        let repo = chart?["repo"]?.text ?? ""
        let trimmed = repo.hasSuffix("/") ? String(repo.dropLast()) : repo
        return name == ComponentChart.name && trimmed == ComponentChart.repository
    }

    /// A helm deployment's values: the local chart's `values.yaml` (`chartPath`), then each
    /// `valuesFiles` entry, then the inline `values`, merged as helm merges them, tags
    /// injected; and which file each layer came from.
    func helmValues(_ deployment: DeploymentConfig, chartPath: String?) throws(DeployError) -> (Node, ValueOrigin) {
        let spec = deployment.spec
        let place = "\(loaded.displayPath): deployments.\(deployment.name).helm"
        var layers: [(file: String, node: Node)] = []
        if let chartPath, let data = FileManager.default.contents(atPath: chartPath + "/values.yaml") {
            if let node = try parse(text: String(decoding: data, as: UTF8.self), source: chartPath + "/values.yaml")
                .first
            {
                layers.append((chartPath + "/values.yaml", node))
            }
        }
        for file in spec["valuesFiles"]?.strings ?? [] {
            let path = ConfigLoader.absolute(file, in: loaded.directory)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw DeployError.missingFile(
                    place: "\(place).valuesFiles",
                    file: file,
                    detail: "does not exist or cannot be read"
                )
            }
            if let node = try parse(text: String(decoding: data, as: UTF8.self), source: path).first {
                layers.append((file, node))
            }
        }
        if let inline = spec["values"] { layers.append((loaded.displayPath, inline)) }
        var values = Node.mapping([])
        for layer in layers where layer.node.isMapping { values = Self.merge(values, layer.node) }
        if deployment.updateImageTags { values = rewrite(values, onlyKey: nil, siblingsOK: false) }
        return (values, ValueOrigin(layers: layers))
    }

    /// The release of a helm deployment: `releaseName`, else the deployment's name, plus
    /// `releaseSuffix` (a branch environment's).
    func release(_ deployment: DeploymentConfig, releaseSuffix: String) -> String {
        (deployment.spec["releaseName"]?.text ?? deployment.name) + releaseSuffix
    }

    /// The manifests of a component-chart deployment (``isComponentChart(_:)``), tags
    /// injected, and its release.
    public func componentChart(
        _ deployment: DeploymentConfig,
        releaseSuffix: String = ""
    ) throws(DeployError) -> (manifests: [Node], release: String) {
        let (values, origin) = try helmValues(deployment, chartPath: nil)
        let release = release(deployment, releaseSuffix: releaseSuffix)
        do {
            let manifests = try ComponentChart.render(
                values: values,
                release: release,
                deployment: deployment.name,
                origin: origin
            )
            return (manifests, release)
        } catch {
            throw DeployError.componentChart(error)
        }
    }

    /// The merged, injected values of a helm deployment with a chart of its own, its release
    /// (`releaseName`, else the deployment's name, plus `releaseSuffix`) and the command line
    /// that installs it (`VALUES_FILE` stands for the file the values are written to). `scope`
    /// is where it goes (`--kube-context C --namespace N`); nil: the deployment's namespace,
    /// else the renderer's. A component-chart deployment is rendered by ``componentChart(_:releaseSuffix:)``.
    public func helm(
        _ deployment: DeploymentConfig,
        releaseSuffix: String = "",
        scope: [String]? = nil
    ) throws(DeployError) -> (values: Node, release: String, command: [String]) {
        let spec = deployment.spec
        let place = "\(loaded.displayPath): deployments.\(deployment.name).helm"
        let chart = spec["chart"]
        let chartName = chart?["name"]?.text ?? chart?["path"]?.text
        guard let chartName, !chartName.isEmpty, !Self.isComponentChart(deployment) else {
            throw DeployError.invalid(
                place: "\(place).chart",
                message: "this is DevSpace's component chart, which slipway renders to manifests itself"
            )
        }
        let isLocal =
            chart?["path"] != nil || chartName.hasPrefix("./") || chartName.hasPrefix("../") || chartName.hasPrefix("/")
        let chartPath = ConfigLoader.absolute(chartName, in: loaded.directory)
        let (values, _) = try helmValues(deployment, chartPath: isLocal ? chartPath : nil)
        let release = release(deployment, releaseSuffix: releaseSuffix)
        var command = ["helm", "upgrade", release, isLocal ? chartPath : chartName, "--install"]
        if let scope {
            command += scope
        } else if let ns = deployment.namespace ?? namespace {
            command += ["--namespace", ns]
        }
        command += ["--values", "VALUES_FILE"]
        if let version = chart?["version"]?.text { command += ["--version", version] }
        if let repo = chart?["repo"]?.text { command += ["--repo", repo] }
        command += spec["upgradeArgs"]?.strings ?? []
        return (values, release, command)
    }

    /// Helm's merge: maps merge key by key, anything else is replaced.
    static func merge(_ base: Node, _ over: Node) -> Node {
        guard var pairs = base.pairs, let overPairs = over.pairs else { return over }
        for pair in overPairs {
            if let i = pairs.firstIndex(where: { $0.key.scalar == pair.key.scalar }) {
                pairs[i].value = merge(pairs[i].value, pair.value)
            } else {
                pairs.append(pair)
            }
        }
        return Node(.mapping(pairs), tag: base.tag, mark: base.mark)
    }

    // MARK: Injection

    /// Rewrites string scalars: all of them (`onlyKey` nil), or only values of keys named
    /// `onlyKey`. Without `siblingsOK`, a value whose mapping has a `tag` key stays.
    func rewrite(_ node: Node, onlyKey: String?, siblingsOK: Bool) -> Node {
        switch node.kind {
        case .scalar:
            guard onlyKey == nil, let text = node.scalar, node.resolved == .string else { return node }
            return replaced(node, text)
        case .sequence(let items):
            return Node(
                .sequence(items.map { rewrite($0, onlyKey: onlyKey, siblingsOK: siblingsOK) }),
                tag: node.tag,
                mark: node.mark
            )
        case .mapping(let pairs):
            let hasTag = pairs.contains { $0.key.scalar == "tag" }
            return Node(
                .mapping(
                    pairs.map { pair in
                        var pair = pair
                        let key = pair.key.scalar
                        if case .scalar = pair.value.kind, let text = pair.value.scalar, pair.value.resolved == .string
                        {
                            let eligible = (onlyKey == nil || key == onlyKey) && (siblingsOK || !hasTag || key == "tag")
                            if eligible { pair.value = replaced(pair.value, text) }
                        } else {
                            pair.value = rewrite(pair.value, onlyKey: onlyKey, siblingsOK: siblingsOK)
                        }
                        return pair
                    }
                ),
                tag: node.tag,
                mark: node.mark
            )
        }
    }

    private func replaced(_ node: Node, _ text: String) -> Node {
        let value = injector.inject(text)
        guard value != text else { return node }
        return Node.string(value, mark: node.mark)
    }
}
