/// DevSpace's component chart (`component-chart` 0.9.2 from https://charts.devspace.sh, what
/// DevSpace v6 deploys for a helm deployment without `chart:`), rendered by slipway's own code:
/// values in, Kubernetes manifests out, no helm and no download.
///
/// It follows the chart's templates (`deployment.yaml`, `service.yaml`, `ingress.yaml`,
/// `volumes.yaml`, `pod-autoscaling.yaml`) and its values (DevSpace's `ComponentConfig`):
/// - the workload is named after the release, labelled `app.kubernetes.io/name: devspace-app`,
///   `app.kubernetes.io/component: <release>`, `app.kubernetes.io/managed-by: Helm` plus
///   `labels`, annotated `helm.sh/chart: component-chart-0.9.2` plus `annotations`; a
///   `Deployment` (strategy `Recreate`, or `RollingUpdate` with `rollingUpdate.enabled`), or a
///   `StatefulSet` with `volumeClaimTemplates` and a headless Service (`serviceName`, else
///   `<release>-headless`) when a container mounts a persistent volume (one with `size`, not
///   `secret`/`configMap`/`emptyDir`) neither `readOnly` nor `shared`;
/// - containers as `image`, `name` (else `container-N`; `init-container-N` for
///   `initContainers`), `command`, `args`, `env`, `envFrom`, probes, `securityContext`,
///   `lifecycle`, `volumeDevices`, `workingDir`, `imagePullPolicy`…, `volumeMounts` from the
///   chart's `containerPath` + `volume.{name,subPath,readOnly}`, `resources` from
///   `limits`/`requests` `cpu`/`memory`/`ephemeralStorage` (requests of "0" where only limits
///   are given); the pod's fields (`pullSecrets`, `nodeSelector`, `tolerations`,
///   `hostAliases`, `securityContext`, `hostNetwork`, `restartPolicy`…) passed through, and
///   `terminationGracePeriodSeconds` 5 by default;
/// - a Service when `service.ports` has entries (`port-N` names, `targetPort` from
///   `containerPort`, protocol TCP, type ClusterIP by default); an Ingress
///   (`networking.k8s.io/v1`) for `ingress.rules` with the chart's TLS and cert-manager
///   annotations; a PersistentVolumeClaim per persistent volume mounted `readOnly` or
///   `shared`; a HorizontalPodAutoscaler for `autoScaling.horizontal` above `replicas`.
///
/// Where this differs from `helm template`: empty and null fields are left out rather than
/// written as `null`; documents come in helm's install order; the autoscaler is
/// `autoscaling/v2` (the chart's `v2beta1` is gone since Kubernetes 1.25). Values the chart
/// would turn into a broken manifest (a container without an image, a mount of a volume that
/// is not defined, a port that is not a number…) are errors that name the value's place.
public enum ComponentChart {
    public static let name = "component-chart"
    public static let version = "0.9.2"
    public static let repository = "https://charts.devspace.sh"

    /// `helm.sh/chart`'s value.
    static var chartLabel: String { "\(name)-\(version)" }

    /// Renders `values` (the merged helm values, tags injected) for release `release`.
    /// `origin` says which file each value came from, for errors.
    public static func render(
        values: Node,
        release: String,
        deployment: String,
        origin: ValueOrigin
    ) throws(ComponentChartError) -> [Node] {
        try Renderer(release: release, deployment: deployment, origin: origin, root: values).render()
    }
}

/// A bad value of a component-chart deployment: where it is (file, line, column and its path
/// under `values`) and what is wrong.
public struct ComponentChartError: Error, Sendable, Equatable, CustomStringConvertible {
    public var deployment: String
    public var file: String
    public var mark: Mark
    /// The value's path under `values` (`containers[1].image`).
    public var path: String
    public var message: String

    public var description: String {
        "\(file):\(mark): deployments.\(deployment).helm.values\(path.isEmpty ? "" : "." + path): \(message)"
    }
}

/// Which file a merged value came from: the layers in merge order (a chart's values files,
/// then the inline `values`), each with the file it was read from. Helm's merge keeps the
/// node of the layer that won, so a node is found in the last layer holding it at the same
/// path and position.
public struct ValueOrigin: Sendable {
    public var layers: [(file: String, node: Node)]

    public init(layers: [(file: String, node: Node)]) {
        self.layers = layers
    }

    func file(of path: [ValuePath], mark: Mark) -> String {
        for layer in layers.reversed() {
            var node: Node? = layer.node
            for step in path {
                switch step {
                case .key(let key): node = node?[key]
                case .index(let i): node = node?.items.flatMap { i < $0.count ? $0[i] : nil }
                }
            }
            if let node, node.mark == mark { return layer.file }
        }
        return layers.last?.file ?? ""
    }
}

enum ValuePath: Sendable, Equatable {
    case key(String)
    case index(Int)
}

// MARK: - Rendering

private struct Renderer {
    let release: String
    let deployment: String
    let origin: ValueOrigin
    let root: Value

    init(release: String, deployment: String, origin: ValueOrigin, root: Node) {
        self.release = release
        self.deployment = deployment
        self.origin = origin
        self.root = Value(node: root, path: [])
    }

    /// A value of the tree with its path, for errors.
    struct Value {
        var node: Node
        var path: [ValuePath]

        subscript(key: String) -> Value? {
            guard let child = node[key] else { return nil }
            return Value(node: child, path: path + [.key(key)])
        }

        /// Go templates' truth: null, false, 0, "" and empty collections are false.
        var isTruthy: Bool {
            switch node.kind {
            case .sequence(let items): return !items.isEmpty
            case .mapping(let pairs): return !pairs.isEmpty
            case .scalar(let text, _):
                switch node.resolved {
                case .null: return false
                case .bool: return node.bool ?? false
                case .int: return Int(text) != 0
                case .float: return Double(text) != 0
                default: return !text.isEmpty
                }
            }
        }

        var pathText: String {
            var out = ""
            for step in path {
                switch step {
                case .key(let key): out += out.isEmpty ? key : "." + key
                case .index(let i): out += "[\(i)]"
                }
            }
            return out
        }
    }

    func fail(_ value: Value, _ message: String) -> ComponentChartError {
        ComponentChartError(
            deployment: deployment,
            file: origin.file(of: value.path, mark: value.node.mark),
            mark: value.node.mark,
            path: value.pathText,
            message: message
        )
    }

    /// `key`'s value when it is set and true in Go's sense.
    func truthy(_ parent: Value?, _ key: String) -> Value? {
        guard let value = parent?[key], value.isTruthy else { return nil }
        return value
    }

    func list(_ parent: Value?, _ key: String) throws(ComponentChartError) -> [Value] {
        guard let value = parent?[key], !value.node.isNull else { return [] }
        guard let items = value.node.items else {
            throw fail(value, "must be a list, not \(value.node.typeDescription)")
        }
        return items.enumerated().map { Value(node: $1, path: value.path + [.index($0)]) }
    }

    func map(_ parent: Value?, _ key: String) throws(ComponentChartError) -> Value? {
        guard let value = parent?[key], !value.node.isNull else { return nil }
        guard value.node.isMapping else { throw fail(value, "must be a map, not \(value.node.typeDescription)") }
        return value
    }

    /// A scalar as the chart's `| quote` writes it.
    func text(_ value: Value) throws(ComponentChartError) -> String {
        guard let scalar = value.node.scalar, !value.node.isNull else {
            throw fail(value, "must be a string, not \(value.node.typeDescription)")
        }
        return scalar
    }

    func optionalText(_ parent: Value?, _ key: String) throws(ComponentChartError) -> String? {
        guard let value = truthy(parent, key) else { return nil }
        return try text(value)
    }

    /// A whole number (a port, a count), as the chart writes it unquoted.
    func integer(_ value: Value, in range: ClosedRange<Int>) throws(ComponentChartError) -> Int {
        guard let text = value.node.scalar, let n = Int(text), range.contains(n) else {
            throw fail(value, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    /// `labels`/`annotations`-like maps: every value written as a string.
    func stringMap(_ parent: Value?, _ key: String) throws(ComponentChartError) -> [(String, Node)] {
        guard let value = try map(parent, key) else { return [] }
        var out: [(String, Node)] = []
        for pair in value.node.pairs ?? [] {
            let child = Value(node: pair.value, path: value.path + [.key(pair.key.scalar ?? "")])
            guard let name = pair.key.scalar else { throw fail(value, "its keys must be strings") }
            out.append((name, .quoted(pair.value.isNull ? "" : try text(child))))
        }
        return out
    }

    // MARK: Documents

    func render() throws(ComponentChartError) -> [Node] {
        guard root.node.isMapping || root.node.isNull else {
            throw fail(root, "the component chart's values must be a map")
        }
        let containers = try list(root, "containers")
        let initContainers = try list(root, "initContainers")
        let volumes = try self.volumes(containers + initContainers)

        var claims: [Node] = []
        var services: [Node] = []
        var workloads: [Node] = []
        var autoscalers: [Node] = []
        var ingresses: [Node] = []

        for volume in volumes where volume.standaloneClaim {
            claims.append(try claim(volume, template: false))
        }
        var kind = "Deployment"
        if !containers.isEmpty {
            kind = volumes.contains(where: \.claimTemplate) ? "StatefulSet" : "Deployment"
            workloads.append(try workload(kind: kind, containers: containers, initContainers: initContainers, volumes))
            if kind == "StatefulSet" { services.append(try headlessService()) }
        }
        if let service = try self.service() { services.append(service) }
        if let ingress = try self.ingress() { ingresses.append(ingress) }
        if let autoscaler = try self.autoscaler(kind: kind) { autoscalers.append(autoscaler) }
        // Helm's install order: claims, services, deployments, autoscalers, stateful sets, ingresses.
        let deployments = workloads.filter { $0["kind"]?.scalar == "Deployment" }
        let statefulSets = workloads.filter { $0["kind"]?.scalar == "StatefulSet" }
        return claims + services + deployments + autoscalers + statefulSets + ingresses
    }

    var selectorLabels: [(String, Node)] {
        [
            ("app.kubernetes.io/name", .quoted("devspace-app")),
            ("app.kubernetes.io/component", .quoted(release)),
            ("app.kubernetes.io/managed-by", .quoted("Helm")),
        ]
    }

    func metadata(name: String, labels: [(String, Node)], annotations: [(String, Node)]) -> Node {
        .mapping([
            ("name", .quoted(name)),
            ("labels", .mapping(labels)),
            ("annotations", .mapping([("helm.sh/chart", .quoted(ComponentChart.chartLabel))] + annotations)),
        ])
    }

    // MARK: Volumes

    struct Volume {
        var value: Value
        var name: String
        /// Neither `secret`, `configMap` nor `emptyDir`: a claim (StatefulSet template or PVC).
        var persistent: Bool
        /// Mounted by some container: part of the pod.
        var mounted = false
        /// Mounted writable and not `shared`: a claim template of the StatefulSet.
        var claimTemplate = false
        /// Mounted `readOnly` or `shared`: a PersistentVolumeClaim of its own.
        var standaloneClaim = false
        /// In the pod's `volumes` (everything mounted but claim templates).
        var inPod = false
    }

    func volumes(_ containers: [Value]) throws(ComponentChartError) -> [Volume] {
        var volumes: [Volume] = []
        for value in try list(root, "volumes") {
            guard value.node.isMapping else { throw fail(value, "each volume must be a map with a name") }
            guard let nameValue = value["name"], let name = value.node["name"]?.text, !name.isEmpty else {
                throw fail(value, "a volume needs a name")
            }
            if volumes.contains(where: { $0.name == name }) {
                throw fail(nameValue, "there is another volume named \(name)")
            }
            let persistent =
                !["secret", "configMap", "emptyDir"].contains { truthy(value, $0) != nil }
                && value.node["emptyDir"] == nil
            volumes.append(Volume(value: value, name: name, persistent: persistent))
        }
        for container in containers {
            for mount in try list(container, "volumeMounts") {
                guard mount.node.isMapping else { throw fail(mount, "each volume mount must be a map") }
                guard let volume = try map(mount, "volume"), let nameValue = volume["name"],
                    let name = nameValue.node.text, !name.isEmpty
                else {
                    throw fail(mount, "a volume mount needs volume.name (one of the volumes)")
                }
                guard let i = volumes.firstIndex(where: { $0.name == name }) else {
                    let known = volumes.map(\.name).joined(separator: ", ")
                    throw fail(
                        nameValue,
                        "there is no volume named \(name) in volumes (\(known.isEmpty ? "there are none" : known))"
                    )
                }
                let sharedOrReadOnly = truthy(volume, "readOnly") != nil || truthy(volume, "shared") != nil
                volumes[i].mounted = true
                if volumes[i].persistent {
                    if sharedOrReadOnly {
                        volumes[i].standaloneClaim = true
                        volumes[i].inPod = true
                    } else {
                        volumes[i].claimTemplate = true
                    }
                } else {
                    volumes[i].inPod = true
                }
            }
        }
        for volume in volumes where volume.persistent && volume.mounted {
            guard truthy(volume.value, "size") != nil else {
                throw fail(volume.value, "the persistent volume \(volume.name) needs a size (e.g. size: 5Gi)")
            }
        }
        return volumes
    }

    func claim(_ volume: Volume, template: Bool) throws(ComponentChartError) -> Node {
        let v = volume.value
        var spec: [(String, Node)] = []
        for key in ["storageClassName", "volumeMode", "volumeName"] {
            if let value = truthy(v, key) { spec.append((key, .plain(try text(value)))) }
        }
        if let source = truthy(v, "dataSource") { spec.append(("dataSource", source.node)) }
        if let modes = truthy(v, "accessModes") {
            spec.append(("accessModes", modes.node))
        } else {
            spec.append(("accessModes", .sequence([.plain("ReadWriteOnce")])))
        }
        let size = try text(v["size"] ?? v)
        spec.append(("resources", .mapping([("requests", .mapping([("storage", .quoted(size))]))])))
        let meta = metadata(
            name: volume.name,
            labels: selectorLabels + (try stringMap(v, "labels")),
            annotations: try stringMap(v, "annotations")
        )
        if template { return .mapping([("metadata", meta), ("spec", .mapping(spec))]) }
        return .mapping([
            ("apiVersion", .plain("v1")), ("kind", .plain("PersistentVolumeClaim")), ("metadata", meta),
            ("spec", .mapping(spec)),
        ])
    }

    // MARK: Workload

    func workload(
        kind: String,
        containers: [Value],
        initContainers: [Value],
        _ volumes: [Volume]
    ) throws(ComponentChartError) -> Node {
        let labels = selectorLabels + (try stringMap(root, "labels"))
        let annotations = try stringMap(root, "annotations")
        var spec: [(String, Node)] = []
        if let replicas = truthy(root, "replicas") {
            spec.append(("replicas", .int(try integer(replicas, in: 0...1_000_000))))
        } else {
            spec.append(("replicas", .int(1)))
        }
        let rolling = try map(root, "rollingUpdate")
        let rollingEnabled = truthy(rolling, "enabled") != nil
        if kind == "Deployment" {
            if rollingEnabled {
                let surge = try optionalText(rolling, "maxSurge") ?? "25%"
                let unavailable = try optionalText(rolling, "maxUnavailable") ?? "0%"
                spec.append(
                    (
                        "strategy",
                        .mapping([
                            ("type", .plain("RollingUpdate")),
                            (
                                "rollingUpdate",
                                .mapping([("maxSurge", .quoted(surge)), ("maxUnavailable", .quoted(unavailable))])
                            ),
                        ])
                    )
                )
            } else {
                spec.append(("strategy", .mapping([("type", .plain("Recreate"))])))
            }
        } else {
            if rollingEnabled {
                let partition = try truthy(rolling, "partition").map { v throws(ComponentChartError) in
                    try integer(v, in: 0...1_000_000)
                }
                spec.append(
                    (
                        "updateStrategy",
                        .mapping([
                            ("type", .plain("RollingUpdate")),
                            ("rollingUpdate", .mapping([("partition", .int(partition ?? 0))])),
                        ])
                    )
                )
            }
            let policy = try optionalText(root, "podManagementPolicy") ?? "OrderedReady"
            spec.append(("podManagementPolicy", .quoted(policy)))
            spec.append(("serviceName", .quoted(try optionalText(root, "serviceName") ?? "\(release)-headless")))
        }
        spec.append(("selector", .mapping([("matchLabels", .mapping(labels))])))
        let podMeta: Node = .mapping([
            ("labels", .mapping(labels)),
            ("annotations", .mapping([("helm.sh/chart", .quoted(ComponentChart.chartLabel))] + annotations)),
        ])
        let pod = try podSpec(containers: containers, initContainers: initContainers, volumes)
        spec.append(("template", .mapping([("metadata", podMeta), ("spec", pod)])))
        if kind == "StatefulSet" {
            var templates: [Node] = []
            for volume in volumes where volume.claimTemplate {
                templates.append(try claim(volume, template: true))
            }
            spec.append(("volumeClaimTemplates", .sequence(templates)))
        }
        return .mapping([
            ("apiVersion", .plain("apps/v1")), ("kind", .plain(kind)),
            ("metadata", metadata(name: release, labels: labels, annotations: annotations)),
            ("spec", .mapping(spec)),
        ])
    }

    /// Pod fields the chart writes with `toYaml` (maps and lists), in its order.
    static let podStructures = [
        "nodeSelector", "affinity", "tolerations", "dnsConfig", "hostAliases", "overhead", "readinessGates",
        "securityContext", "topologySpreadConstraints",
    ]
    /// Pod fields written as they are when set.
    static let podScalars = [
        "nodeName", "activeDeadlineSeconds", "automountServiceAccountToken", "dnsPolicy", "enableServiceLinks",
        "hostIPC", "hostNetwork", "hostPID", "hostname", "preemptionPolicy", "priority", "priorityClassName",
        "restartPolicy", "runtimeClassName", "schedulerName", "serviceAccount", "serviceAccountName",
        "setHostnameAsFQDN", "shareProcessNamespace", "subdomain",
    ]

    func podSpec(
        containers: [Value],
        initContainers: [Value],
        _ volumes: [Volume]
    ) throws(ComponentChartError)
        -> Node
    {
        var pod: [(String, Node)] = []
        let secrets = try list(root, "pullSecrets")
        if !secrets.isEmpty {
            var names: [Node] = []
            for secret in secrets { names.append(.mapping([("name", .quoted(try text(secret)))])) }
            pod.append(("imagePullSecrets", .sequence(names)))
        }
        for key in Self.podStructures {
            if let value = root[key], value.isTruthy { pod.append((key, value.node)) }
        }
        for key in Self.podScalars {
            if let value = root[key], !value.node.isNull, value.node.scalar != "" { pod.append((key, value.node)) }
        }
        if let grace = truthy(root, "terminationGracePeriodSeconds") {
            pod.append(("terminationGracePeriodSeconds", .int(try integer(grace, in: 0...Int(Int32.max)))))
        } else {
            pod.append(("terminationGracePeriodSeconds", .int(5)))
        }
        if let ephemeral = truthy(root, "ephemeralContainers") { pod.append(("ephemeralContainers", ephemeral.node)) }
        var names: Set<String> = []
        var rendered: [Node] = []
        for (i, value) in containers.enumerated() {
            rendered.append(try container(value, defaultName: "container-\(i)", names: &names))
        }
        pod.append(("containers", .sequence(rendered)))
        if !initContainers.isEmpty {
            var inits: [Node] = []
            for (i, value) in initContainers.enumerated() {
                inits.append(try container(value, defaultName: "init-container-\(i)", names: &names))
            }
            pod.append(("initContainers", .sequence(inits)))
        }
        var podVolumes: [Node] = []
        for volume in volumes where volume.inPod {
            var entry: [(String, Node)] = [("name", .quoted(volume.name))]
            if let secret = truthy(volume.value, "secret") {
                entry.append(("secret", secret.node))
            } else if let configMap = truthy(volume.value, "configMap") {
                entry.append(("configMap", configMap.node))
            } else if let emptyDir = volume.value["emptyDir"] {
                entry.append(("emptyDir", emptyDir.node.isNull ? .mapping([]) : emptyDir.node))
            } else {
                entry.append(("persistentVolumeClaim", .mapping([("claimName", .quoted(volume.name))])))
            }
            podVolumes.append(.mapping(entry))
        }
        if !podVolumes.isEmpty { pod.append(("volumes", .sequence(podVolumes))) }
        return .mapping(pod)
    }

    /// Container fields the chart writes with `toYaml`.
    static let containerStructures = [
        "env", "envFrom", "securityContext", "lifecycle", "livenessProbe", "readinessProbe", "startupProbe",
        "volumeDevices",
    ]

    func container(_ value: Value, defaultName: String, names: inout Set<String>) throws(ComponentChartError) -> Node {
        guard value.node.isMapping else { throw fail(value, "each container must be a map with an image") }
        guard let imageValue = value["image"], !imageValue.node.isNull, imageValue.node.scalar?.isEmpty == false
        else {
            throw fail(value, "a container needs an image")
        }
        var out: [(String, Node)] = [("image", .quoted(try text(imageValue)))]
        let name = try optionalText(value, "name") ?? defaultName
        if let nameValue = value["name"], !Self.isDNSLabel(name) {
            throw fail(
                nameValue,
                "\(name) is not a valid container name (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)"
            )
        }
        guard names.insert(name).inserted else {
            throw fail(value["name"] ?? value, "two containers of this pod are named \(name)")
        }
        out.append(("name", .quoted(name)))
        for key in ["imagePullPolicy", "workingDir", "terminationMessagePath", "terminationMessagePolicy"] {
            if let text = try optionalText(value, key) { out.append((key, .plain(text))) }
        }
        for key in ["stdin", "stdinOnce", "tty"] where truthy(value, key) != nil {
            out.append((key, .plain("true")))
        }
        for key in ["command", "args"] {
            let items = try list(value, key)
            if items.isEmpty { continue }
            var words: [Node] = []
            for item in items { words.append(.quoted(try text(item))) }
            out.append((key, .sequence(words)))
        }
        for key in Self.containerStructures {
            guard let field = value[key], field.isTruthy else { continue }
            if key == "env" || key == "envFrom" || key == "volumeDevices" {
                guard field.node.isSequence else {
                    throw fail(field, "must be a list, not \(field.node.typeDescription)")
                }
            } else {
                guard field.node.isMapping else {
                    throw fail(field, "must be a map, not \(field.node.typeDescription)")
                }
            }
            if key == "env" {
                for (i, entry) in (field.node.items ?? []).enumerated() where entry["name"]?.text == nil {
                    throw fail(
                        Value(node: entry, path: field.path + [.index(i)]),
                        "an environment variable needs a name"
                    )
                }
            }
            out.append((key, field.node))
        }
        let mounts = try list(value, "volumeMounts")
        if !mounts.isEmpty {
            var rendered: [Node] = []
            for mount in mounts {
                guard let path = mount["containerPath"], path.isTruthy else {
                    throw fail(mount, "a volume mount needs a containerPath")
                }
                let volume = try map(mount, "volume")
                var entry: [(String, Node)] = [
                    ("mountPath", .quoted(try text(path))),
                    ("name", .quoted(volume?.node["name"]?.text ?? "")),
                ]
                if let sub = try optionalText(volume, "subPath") {
                    entry.append(("subPath", .quoted(sub.trimmingCharacters(in: ["/"]))))
                }
                entry.append(("readOnly", .plain(truthy(volume, "readOnly") != nil ? "true" : "false")))
                rendered.append(.mapping(entry))
            }
            out.append(("volumeMounts", .sequence(rendered)))
        }
        if let resources = try map(value, "resources"), resources.isTruthy {
            out.append(("resources", try self.resources(resources)))
        }
        return .mapping(out)
    }

    /// `resources`: `limits` and `requests` of `cpu`, `memory`, `ephemeralStorage`; a limit
    /// without its request gets a request of "0".
    func resources(_ value: Value) throws(ComponentChartError) -> Node {
        let fields = [("cpu", "cpu"), ("memory", "memory"), ("ephemeralStorage", "ephemeral-storage")]
        let limits = try map(value, "limits")
        let requests = try map(value, "requests")
        var out: [(String, Node)] = []
        if let limits {
            var entries: [(String, Node)] = []
            for (key, name) in fields {
                if let text = try optionalText(limits, key) { entries.append((name, .quoted(text))) }
            }
            out.append(("limits", .mapping(entries)))
        }
        if requests?.isTruthy == true || limits?.isTruthy == true {
            var entries: [(String, Node)] = []
            for (key, name) in fields {
                if let text = try optionalText(requests, key) {
                    entries.append((name, .quoted(text)))
                } else if truthy(limits, key) != nil {
                    entries.append((name, .quoted("0")))
                }
            }
            out.append(("requests", .mapping(entries)))
        }
        return .mapping(out)
    }

    static func isDNSLabel(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        guard let first = bytes.first, let last = bytes.last, alnum(first), alnum(last) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") }
    }

    // MARK: Services

    func headlessService() throws(ComponentChartError) -> Node {
        let name = try optionalText(root, "serviceName") ?? "\(release)-headless"
        let labels: [(String, Node)] =
            [("app.kubernetes.io/name", .quoted(release)), ("app.kubernetes.io/managed-by", .quoted("Helm"))]
            + (try stringMap(root, "labels"))
        return .mapping([
            ("apiVersion", .plain("v1")), ("kind", .plain("Service")),
            ("metadata", metadata(name: name, labels: labels, annotations: try stringMap(root, "annotations"))),
            (
                "spec",
                .mapping([
                    // At least one port, so that Kubernetes makes the endpoint DNS needs.
                    ("ports", .sequence([.mapping([("port", .int(80)), ("name", .plain("web"))])])),
                    ("clusterIP", .plain("None")),
                    ("selector", .mapping(selectorLabels + (try stringMap(root, "labels")))),
                ])
            ),
        ])
    }

    func service() throws(ComponentChartError) -> Node? {
        let service = try map(root, "service")
        let ports = try list(service, "ports")
        guard !ports.isEmpty else { return nil }
        let name = try optionalText(service, "name") ?? release
        let labels: [(String, Node)] =
            [("app.kubernetes.io/name", .quoted(release)), ("app.kubernetes.io/managed-by", .quoted("Helm"))]
            + (try stringMap(service, "labels"))
        var spec: [(String, Node)] = []
        for key in ["clusterIP"] {
            if let text = try optionalText(service, key) { spec.append((key, .plain(text))) }
        }
        let external = try list(service, "externalIPs")
        if !external.isEmpty {
            var ips: [Node] = []
            for ip in external { ips.append(.plain(try text(ip))) }
            spec.append(("externalIPs", .sequence(ips)))
        }
        for key in [
            "externalName", "externalTrafficPolicy", "healthCheckNodePort", "ipFamily", "loadBalancerIP",
            "loadBalancerSourceRanges", "publishNotReadyAddresses", "sessionAffinity", "sessionAffinityConfig",
            "topologyKeys",
        ] {
            if let value = truthy(service, key) { spec.append((key, value.node)) }
        }
        var rendered: [Node] = []
        for (i, port) in ports.enumerated() {
            guard port.node.isMapping else { throw fail(port, "each service port must be a map with a port") }
            guard let number = port["port"] else { throw fail(port, "a service port needs a port") }
            let portNumber = try integer(number, in: 1...65535)
            var target = portNumber
            if let container = truthy(port, "containerPort") { target = try integer(container, in: 1...65535) }
            rendered.append(
                .mapping([
                    ("name", try optionalText(port, "name").map(Node.plain) ?? .quoted("port-\(i)")),
                    ("port", .int(portNumber)),
                    ("targetPort", .int(target)),
                    ("protocol", .quoted(try optionalText(port, "protocol") ?? "TCP")),
                ])
            )
        }
        spec.append(("ports", .sequence(rendered)))
        spec.append(("selector", .mapping(Array(selectorLabels.prefix(2)))))
        spec.append(("type", .quoted(try optionalText(service, "type") ?? "ClusterIP")))
        return .mapping([
            ("apiVersion", .plain("v1")), ("kind", .plain("Service")),
            ("metadata", metadata(name: name, labels: labels, annotations: try stringMap(service, "annotations"))),
            ("spec", .mapping(spec)),
        ])
    }

    // MARK: Ingress

    func ingress() throws(ComponentChartError) -> Node? {
        let ingress = try map(root, "ingress")
        let rules = try list(ingress, "rules")
        guard !rules.isEmpty, truthy(ingress, "disabled") == nil else { return nil }
        let service = try map(root, "service")
        let serviceName = try optionalText(service, "name")
        let ingressName = try optionalText(ingress, "name")
        // `tls: true` names the secret after the ingress (else the service, else the
        // release); a string is the secret's name; false or nothing: no TLS.
        var secret: String?
        if let tls = truthy(ingress, "tls") {
            if tls.node.bool == true {
                secret = "tls-" + (ingressName ?? serviceName ?? release)
            } else if tls.node.bool == nil {
                secret = try text(tls)
            }
        }
        var named = ingressName
        if named == nil { named = try optionalText(ingress, "serviceName") }
        let name = named ?? serviceName ?? release
        let labels: [(String, Node)] =
            [("app.kubernetes.io/name", .quoted(release)), ("app.kubernetes.io/managed-by", .quoted("Helm"))]
            + (try stringMap(ingress, "labels"))
        var annotations = try stringMap(ingress, "annotations")
        if secret != nil {
            let given = Set(annotations.map(\.0))
            let issuers = [
                "cert-manager.io/cluster-issuer", "certmanager.k8s.io/cluster-issuer", "cert-manager.io/issuer",
                "certmanager.k8s.io/issuer",
            ]
            if given.isDisjoint(with: issuers) {
                let issuer = try optionalText(ingress, "tlsClusterIssuer") ?? "lets-encrypt-http-issuer"
                annotations.append(("cert-manager.io/cluster-issuer", .quoted(issuer)))
                annotations.append(("certmanager.k8s.io/cluster-issuer", .quoted(issuer)))
            }
            let classes = ["acme.cert-manager.io/http01-ingress-class", "certmanager.k8s.io/http01-ingress-class"]
            if given.isDisjoint(with: classes) {
                let ingressClass = try optionalText(ingress, "ingressClass") ?? "nginx"
                annotations.append(("acme.cert-manager.io/http01-ingress-class", .quoted(ingressClass)))
                annotations.append(("certmanager.k8s.io/http01-ingress-class", .quoted(ingressClass)))
            }
        }
        var spec: [(String, Node)] = []
        if let backend = truthy(ingress, "defaultBackend") { spec.append(("defaultBackend", backend.node)) }
        if let className = try optionalText(ingress, "ingressClassName") {
            spec.append(("ingressClassName", .plain(className)))
        }
        var rendered: [Node] = []
        var hosts: [Node] = []
        let servicePorts = try list(service, "ports")
        for rule in rules {
            guard rule.node.isMapping else { throw fail(rule, "each ingress rule must be a map with a host") }
            let port: Int
            if let given = truthy(rule, "servicePort") {
                port = try integer(given, in: 1...65535)
            } else if let first = servicePorts.first, let number = first["port"] {
                port = try integer(number, in: 1...65535)
            } else {
                throw fail(rule, "an ingress rule needs a servicePort when service.ports is empty")
            }
            let backendName = try optionalText(rule, "serviceName") ?? serviceName ?? release
            let host = try optionalText(rule, "host") ?? ""
            hosts.append(.quoted(host))
            let path: Node = .mapping([
                (
                    "backend",
                    .mapping([
                        (
                            "service",
                            .mapping([("name", .quoted(backendName)), ("port", .mapping([("number", .int(port))]))])
                        )
                    ])
                ),
                ("path", .quoted(try optionalText(rule, "path") ?? "/")),
                ("pathType", .quoted(try optionalText(rule, "pathType") ?? "ImplementationSpecific")),
            ])
            var entry: [(String, Node)] = []
            if !host.isEmpty { entry.append(("host", .quoted(host))) }
            entry.append(("http", .mapping([("paths", .sequence([path]))])))
            rendered.append(.mapping(entry))
        }
        spec.append(("rules", .sequence(rendered)))
        if let secret {
            spec.append(
                (
                    "tls", .sequence([.mapping([("hosts", .sequence(hosts)), ("secretName", .quoted(secret))])])
                )
            )
        }
        return .mapping([
            ("apiVersion", .plain("networking.k8s.io/v1")), ("kind", .plain("Ingress")),
            ("metadata", metadata(name: name, labels: labels, annotations: annotations)),
            ("spec", .mapping(spec)),
        ])
    }

    // MARK: Autoscaler

    func autoscaler(kind: String) throws(ComponentChartError) -> Node? {
        guard let horizontal = try map(try map(root, "autoScaling"), "horizontal") else { return nil }
        guard let maxValue = truthy(horizontal, "maxReplicas") else { return nil }
        let maximum = try integer(maxValue, in: 1...1_000_000)
        let replicas =
            try truthy(root, "replicas").map { v throws(ComponentChartError) in
                try integer(v, in: 0...1_000_000)
            } ?? 1
        guard maximum > replicas else { return nil }
        var metrics: [Node] = []
        func metric(_ resource: String, _ target: Node) -> Node {
            .mapping([
                ("type", .plain("Resource")),
                ("resource", .mapping([("name", .plain(resource)), ("target", target)])),
            ])
        }
        for (key, resource) in [("averageCPU", "cpu"), ("averageMemory", "memory")] {
            if let value = try optionalText(horizontal, key) {
                metrics.append(
                    metric(resource, .mapping([("type", .plain("AverageValue")), ("averageValue", .quoted(value))]))
                )
            }
        }
        for (key, resource) in [("averageRelativeCPU", "cpu"), ("averageRelativeMemory", "memory")] {
            if let value = truthy(horizontal, key) {
                let percent = try integer(value, in: 1...100_000)
                metrics.append(
                    metric(
                        resource,
                        .mapping([("type", .plain("Utilization")), ("averageUtilization", .int(percent))])
                    )
                )
            }
        }
        let labels = selectorLabels + (try stringMap(root, "labels"))
        var spec: [(String, Node)] = [
            (
                "scaleTargetRef",
                .mapping([("apiVersion", .plain("apps/v1")), ("kind", .plain(kind)), ("name", .quoted(release))])
            ),
            ("minReplicas", .int(max(replicas, 1))),
            ("maxReplicas", .int(maximum)),
        ]
        if !metrics.isEmpty { spec.append(("metrics", .sequence(metrics))) }
        return .mapping([
            ("apiVersion", .plain("autoscaling/v2")), ("kind", .plain("HorizontalPodAutoscaler")),
            ("metadata", metadata(name: release, labels: labels, annotations: try stringMap(root, "annotations"))),
            ("spec", .mapping(spec)),
        ])
    }
}

extension Node {
    /// A string the emitter writes in double quotes, as the chart's `| quote` does.
    static func quoted(_ text: String) -> Node { Node(.scalar(text, .doubleQuoted)) }
    /// A scalar written as it is (the chart's unquoted `{{ … }}`).
    static func plain(_ text: String) -> Node { Node(.scalar(text, .plain)) }
    static func int(_ value: Int) -> Node { Node(.scalar(String(value), .plain)) }
}
