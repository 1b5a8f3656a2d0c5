/// Where a project last ran its pipelines with a cluster: DevSpace's `lastContext`
/// (`context`, `namespace`) in `.devspace/cache.yaml`, which DevSpace writes at the start of
/// every pipeline command that finds a cluster and slipway writes as DevSpace does (not for
/// `--render`). A project that moves to another context or namespace is warned about, unless
/// `--no-warn`; `-s/--switch-context` goes back to the recorded one instead.
public struct LastKubeContext: Sendable, Equatable {
    public var context: String
    public var namespace: String

    public init(context: String, namespace: String) {
        self.context = context
        self.namespace = namespace
    }

    /// The recorded one for the config at `configPath`; nil when none is recorded (or the
    /// cache cannot be read: DevSpace too goes on without it).
    public static func read(configPath: String) -> LastKubeContext? {
        guard let root = try? BuildCache(configPath: configPath).readDevSpaceTree(),
            let node = root["lastContext"], node.isMapping
        else { return nil }
        let recorded = LastKubeContext(
            context: node["context"]?.text ?? "",
            namespace: node["namespace"]?.text ?? ""
        )
        return recorded.context.isEmpty && recorded.namespace.isEmpty ? nil : recorded
    }

    /// Records `self` for the config at `configPath`; returns a warning when it cannot (the
    /// run goes on, as DevSpace's does).
    public func record(configPath: String) -> String? {
        let value = self
        do {
            try BuildCache(configPath: configPath).updateDevSpaceTree { root in
                var node = Node(.mapping([]))
                if !value.context.isEmpty { node["context"] = .string(value.context) }
                if !value.namespace.isEmpty { node["namespace"] = .string(value.namespace) }
                root["lastContext"] = node
            }
            return nil
        } catch {
            return "warning: cannot record the kube context in \(error.description)"
        }
    }
}

/// The kube context and namespace a pipeline command uses, after DevSpace's check against
/// the last ones (`kubectl.CheckKubeContext`, without its questions): when the current context
/// differs from the last, `-s` switches to the last context and namespace, else a warning is
/// printed (not with `--no-warn`); when only the namespace differs, the same for the
/// namespace. A context or namespace given on the command line is neither switched nor
/// warned about, and without a cluster nothing is checked.
public struct KubeContextChoice: Sendable, Equatable {
    /// What to use as `--kube-context` and `-n` from now on (the command line's, or the switch's).
    public var context: String?
    public var namespace: String?
    /// Where the command goes: nil when there is no cluster.
    public var target: KubeTarget?
    /// One line for stderr, when the project moved and was not switched back.
    public var warning: String?

    public init(context: String?, namespace: String?, target: KubeTarget?, warning: String? = nil) {
        self.context = context
        self.namespace = namespace
        self.target = target
        self.warning = warning
    }

    public static func choose(
        context: String?,
        namespace: String?,
        last: LastKubeContext?,
        switchContext: Bool,
        noWarn: Bool,
        environment: [String: String]
    ) -> KubeContextChoice {
        let givenContext = context.flatMap { $0.isEmpty ? nil : $0 }
        let givenNamespace = namespace.flatMap { $0.isEmpty ? nil : $0 }
        let current = try? KubeTarget.resolve(
            context: givenContext,
            namespace: givenNamespace,
            environment: environment
        )
        var choice = KubeContextChoice(context: givenContext, namespace: givenNamespace, target: current)
        guard let current, let last else { return choice }
        if !last.context.isEmpty, last.context != current.context, givenContext == nil {
            if switchContext {
                choice.context = last.context
                choice.namespace = givenNamespace ?? (last.namespace.isEmpty ? nil : last.namespace)
            } else if !noWarn {
                choice.warning =
                    "warning: kube context \(current.context) is not the one this project last used (\(last.context)); "
                    + "-s/--switch-context goes back to it, --no-warn silences this"
            }
        } else if !last.namespace.isEmpty, last.namespace != current.namespace, givenNamespace == nil {
            if switchContext {
                choice.namespace = last.namespace
            } else if !noWarn {
                choice.warning =
                    "warning: namespace \(current.namespace) is not the one this project last used (\(last.namespace)); "
                    + "-s/--switch-context goes back to it, --no-warn silences this"
            }
        }
        if choice.context != givenContext || choice.namespace != givenNamespace {
            choice.target = try? KubeTarget.resolve(
                context: choice.context,
                namespace: choice.namespace,
                environment: environment
            )
        }
        return choice
    }
}
