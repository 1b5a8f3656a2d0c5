internal import Foundation

/// What slipway needs from the kubeconfig: the current context, its namespace and cluster, and
/// whether it is a local cluster (where images are loaded, not pushed). Read with the project's
/// YAML parser from `KUBECONFIG` (a `:`-separated list, merged as kubectl does: the first file
/// to set a value wins, missing files are skipped) or `~/.kube/config`.
public struct Kubeconfig: Sendable, Equatable {
    public struct Context: Sendable, Equatable {
        public var name: String
        public var cluster: String?
        public var namespace: String?
    }

    /// The files read, in order.
    public var files: [String] = []
    /// `current-context` (nil when no file sets it).
    public var currentContext: String?
    /// Contexts by name, the first definition of each.
    public var contexts: [String: Context] = [:]
    /// Cluster name → the provider its `extensions` name (minikube writes `minikube.sigs.k8s.io`).
    public var clusterProviders: [String: String] = [:]

    public init() {}

    /// Reads the kubeconfig kubectl would read in `environment`; nil when there is none (then
    /// slipway behaves as with no cluster). A file that is not valid YAML, or whose sections
    /// have the wrong shape, is an error naming the file, line and column.
    public static func load(environment: [String: String]) throws(KubeconfigError) -> Kubeconfig? {
        let paths: [String]
        if let list = environment["KUBECONFIG"], !list.isEmpty {
            paths = list.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        } else if let home = environment["HOME"], !home.isEmpty {
            paths = [home + "/.kube/config"]
        } else {
            return nil
        }
        var config = Kubeconfig()
        for path in paths where FileManager.default.fileExists(atPath: path) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubeconfigError(file: path, mark: .start, message: "cannot read it; check its permissions")
            }
            try config.merge(Array(data), file: path)
        }
        return config.files.isEmpty ? nil : config
    }

    /// Adds one file's contexts and clusters (earlier files win, as in kubectl).
    mutating func merge(_ bytes: [UInt8], file: String) throws(KubeconfigError) {
        let root: Node
        do {
            guard let first = try YAMLParser().parseAll(bytes).first else {
                files.append(file)
                return
            }
            root = first
        } catch {
            throw KubeconfigError(file: file, mark: error.mark, message: error.message)
        }
        files.append(file)
        if root.isNull { return }
        guard root.pairs != nil else {
            throw KubeconfigError(
                file: file,
                mark: root.mark,
                message: "expected a mapping (apiVersion, clusters, contexts…)"
            )
        }
        if currentContext == nil, let current = root["current-context"]?.scalar, !current.isEmpty {
            currentContext = current
        }
        for item in try Self.list(root["contexts"], "contexts", file) {
            guard let name = item["name"]?.scalar, !name.isEmpty else {
                throw KubeconfigError(file: file, mark: item.mark, message: "contexts: an entry without a name")
            }
            if contexts[name] != nil { continue }
            let body = item["context"]
            contexts[name] = Context(
                name: name,
                cluster: body?["cluster"]?.scalar,
                namespace: body?["namespace"]?.scalar
            )
        }
        for item in try Self.list(root["clusters"], "clusters", file) {
            guard let name = item["name"]?.scalar, clusterProviders[name] == nil else { continue }
            // minikube: cluster.extensions[].extension.provider
            for extensionItem in item["cluster"]?["extensions"]?.items ?? [] {
                if let provider = extensionItem["extension"]?["provider"]?.scalar {
                    clusterProviders[name] = provider
                    break
                }
            }
        }
    }

    private static func list(_ node: Node?, _ key: String, _ file: String) throws(KubeconfigError) -> [Node] {
        guard let node, !node.isNull else { return [] }
        guard let items = node.items else {
            throw KubeconfigError(file: file, mark: node.mark, message: "\(key): expected a list")
        }
        return items
    }

    /// The context slipway works with: `name` (from `--kube-context`) or the current one.
    public func context(_ name: String? = nil) -> Context? {
        guard let name = name ?? currentContext else { return nil }
        return contexts[name] ?? Context(name: name, cluster: nil, namespace: nil)
    }

    /// Whether `context` is a local cluster, as DevSpace's `IsLocalKubernetes` decides:
    /// `minikube` (or a cluster whose provider is `minikube.sigs.k8s.io`), `kind-*`,
    /// `docker-desktop`, `docker-for-desktop`, `orbstack`, `vcluster-docker_*`, and a vcluster
    /// (`vcluster_NAME_NAMESPACE_PARENT`) whose parent context is one of those.
    public func isLocal(_ context: Context) -> Bool {
        if let cluster = context.cluster, clusterProviders[cluster] == "minikube.sigs.k8s.io" { return true }
        return Self.isLocal(contextName: context.name)
    }

    /// Whether `context` is a minikube cluster (its name, or its cluster's provider): its
    /// images are built in minikube's own Docker engine.
    public func isMinikube(_ context: Context) -> Bool {
        if context.name == "minikube" { return true }
        if let cluster = context.cluster, clusterProviders[cluster] == "minikube.sigs.k8s.io" { return true }
        return false
    }

    public static func isLocal(contextName name: String) -> Bool {
        if name == "minikube" || name.hasPrefix("kind-") || name == "docker-desktop" || name == "docker-for-desktop"
            || name == "orbstack" || name.hasPrefix("vcluster-docker_")
        {
            return true
        }
        if name.hasPrefix("vcluster_") {
            // vcluster_<name>_<namespace>_<parent context>: local when the parent is.
            let parts = name.split(separator: "_", maxSplits: 3, omittingEmptySubsequences: false)
            if parts.count == 4 { return isLocal(contextName: String(parts[3])) }
            return name.hasSuffix("minikube")
        }
        return false
    }

    /// The kind cluster of a `kind-NAME` context (what `kind load docker-image --name` takes).
    public static func kindCluster(contextName name: String) -> String? {
        if name.hasPrefix("kind-") { return String(name.dropFirst("kind-".count)) }
        if name.hasPrefix("vcluster_") {
            let parts = name.split(separator: "_", maxSplits: 3, omittingEmptySubsequences: false)
            if parts.count == 4 { return kindCluster(contextName: String(parts[3])) }
        }
        return nil
    }
}

/// A kubeconfig slipway cannot read: `FILE:LINE:COL: message`.
public struct KubeconfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var mark: Mark
    public var message: String

    public var description: String {
        "\(file):\(mark.line):\(mark.column): \(message) (kubeconfig; fix it, or point KUBECONFIG elsewhere)"
    }
}
