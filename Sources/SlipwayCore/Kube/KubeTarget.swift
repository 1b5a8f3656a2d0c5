/// Where Kubernetes work goes, resolved once and the same way for every caller (builds'
/// delivery, pull secrets, deployments, the `DEVSPACE_CONTEXT` / `DEVSPACE_NAMESPACE`
/// variables): the context is `--kube-context`, else the kubeconfig's current one; the
/// namespace is `-n`, else that context's namespace, else `default` (as kubectl does).
public struct KubeTarget: Sendable, Equatable {
    public var context: String
    public var namespace: String
    /// Whether the context is a minikube cluster (its images are built in minikube's engine).
    public var minikube: Bool
    /// Whether it is a local cluster (images are loaded there, not pushed).
    public var isLocal: Bool

    public init(context: String, namespace: String, minikube: Bool, isLocal: Bool) {
        self.context = context
        self.namespace = namespace
        self.minikube = minikube
        self.isLocal = isLocal
    }

    /// The target for `context` / `namespace` (the command line's, nil when not given) in
    /// `environment`. Nil when there is no context: no kubeconfig and no `--kube-context`, or
    /// a kubeconfig without a current context. A kubeconfig that cannot be read is an error,
    /// unless a context was named (it then decides alone, as DevSpace's local rules allow).
    public static func resolve(
        context explicit: String?,
        namespace: String?,
        environment: [String: String]
    ) throws(KubeconfigError) -> KubeTarget? {
        let named = explicit.flatMap { $0.isEmpty ? nil : $0 }
        let namespace = namespace.flatMap { $0.isEmpty ? nil : $0 }
        let config: Kubeconfig?
        do {
            config = try Kubeconfig.load(environment: environment)
        } catch {
            guard let named else { throw error }
            return KubeTarget(
                context: named,
                namespace: namespace ?? "default",
                minikube: named == "minikube",
                isLocal: Kubeconfig.isLocal(contextName: named)
            )
        }
        guard let name = named ?? config?.currentContext else { return nil }
        let context = config?.context(name) ?? Kubeconfig.Context(name: name, cluster: nil, namespace: nil)
        return KubeTarget(
            context: name,
            namespace: namespace ?? context.namespace.flatMap { $0.isEmpty ? nil : $0 } ?? "default",
            minikube: config?.isMinikube(context) ?? (name == "minikube"),
            isLocal: config?.isLocal(context) ?? Kubeconfig.isLocal(contextName: name)
        )
    }
}
