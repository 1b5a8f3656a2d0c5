internal import Foundation

/// Where a run's images go after the build: a registry push, a `kind load`, or nowhere.
struct DeliveryPlan: Sendable, Equatable {
    enum Target: Sendable, Equatable {
        /// Push every tag to the image's registry.
        case registry
        /// `kind load docker-image --name CLUSTER` for every tag.
        case kind(cluster: String)
    }

    /// nil: nothing is delivered.
    var target: Target?

    /// The delivery for one image, as DevSpace decides it: nothing with `skipPush`/`--skip-push`
    /// or on a local cluster (with `--skip-push-local-kube`, the default), except that on a kind
    /// cluster the tags are loaded into it instead.
    static func decide(
        image: ImageConfig,
        engine: any BuildEngine,
        options: BuildOptions,
        context: String?,
        minikube: Bool = false
    ) -> DeliveryPlan {
        guard engine.pushesAfterBuild else { return DeliveryPlan(target: nil) }
        let local = minikube || (context.map(Kubeconfig.isLocal(contextName:)) ?? false)
        if let context, local || options.skipPush || image.skipPush,
            let cluster = Kubeconfig.kindCluster(contextName: context), engine.name == "docker"
        {
            return DeliveryPlan(target: .kind(cluster: cluster))
        }
        if options.skipPush || image.skipPush || (local && options.skipPushOnLocalCluster) {
            return DeliveryPlan(target: nil)
        }
        return DeliveryPlan(target: .registry)
    }

    /// The key a delivery of `reference` is recorded under in the build cache.
    func recordKey(_ reference: String) -> String {
        switch target {
        case .kind(let cluster): return "kind:\(cluster) \(reference)"
        default: return reference
        }
    }
}

extension BuildRunner {
    /// The kube context images are delivered for: `--kube-context`, else the kubeconfig's
    /// current one; nil without a kubeconfig ("no cluster": push as configured). `minikube`
    /// says whether it is a minikube cluster. A kubeconfig read costs well under a millisecond.
    func kubeContext() -> Result<(context: String?, minikube: Bool), KubeconfigError> {
        do {
            let target = try KubeTarget.resolve(
                context: options.kubeContext,
                namespace: nil,
                environment: options.environment
            )
            return .success((target?.context, target?.minikube ?? false))
        } catch {
            return .failure(error)
        }
    }

    /// Pushes (or kind-loads) every tag of every image that built, re-tagged or was up to date,
    /// unless the cache records that delivery for the same image ID. Returns the results with
    /// what was delivered, and the cache entries to record.
    func deliver(
        _ prepared: [Prepared],
        _ results: [ImageResult],
        entries: [String: ImageCacheEntry],
        kube: Result<(context: String?, minikube: Bool), KubeconfigError>
    ) async -> ([ImageResult], [String: (imageID: String, keys: [String])]) {
        var results = results
        let candidates = prepared.indices.filter { i in
            results[i].outcome != .failed && prepared[i].engine.pushesAfterBuild && results[i].imageID != nil
        }
        guard !candidates.isEmpty else { return (results, [:]) }

        let context: String?
        let minikube: Bool
        switch kube {
        case .success(let found):
            context = found.context
            minikube = found.minikube
        case .failure(let error):
            // Without knowing the cluster, a push could go where the user did not want it.
            for i in candidates where !(options.skipPush || prepared[i].plan.config.skipPush) {
                results[i].pushError =
                    "cannot tell whether the kube context is a local cluster (where slipway does not push): \(error); fix the kubeconfig, or pass --skip-push or --kube-context"
            }
            return (results, [:])
        }

        let credentials = RegistryCredentials(environment: options.environment)
        var work: [(index: Int, plan: DeliveryPlan, references: [String])] = []
        for i in candidates {
            let p = prepared[i]
            let delivery = DeliveryPlan.decide(
                image: p.plan.config,
                engine: p.engine,
                options: options,
                context: context,
                minikube: minikube
            )
            guard delivery.target != nil, let id = results[i].imageID, let entry = entries[p.plan.key] else { continue }
            let references = results[i].tags.map { "\(p.plan.image):\($0)" }.filter {
                entry.pushed[delivery.recordKey($0)] != id
            }
            if !references.isEmpty { work.append((i, delivery, references)) }
        }
        guard !work.isEmpty else { return (results, [:]) }

        let limit = options.sequential ? 1 : (options.maxConcurrent > 0 ? options.maxConcurrent : work.count)
        let outcomes = await withTaskGroup(of: (Int, [String], [String], String?).self) { group in
            var next = 0
            func startNext() {
                guard next < work.count else { return }
                let item = work[next]
                next += 1
                let p = prepared[item.index]
                group.addTask {
                    let (done, shown, error) = await self.deliver(
                        p,
                        item.references,
                        item.plan,
                        credentials: credentials
                    )
                    return (item.index, done, shown, error)
                }
            }
            for _ in 0..<max(1, limit) { startNext() }
            var out: [(Int, [String], [String], String?)] = []
            while let outcome = await group.next() {
                out.append(outcome)
                startNext()
            }
            return out
        }
        var updates: [String: (imageID: String, keys: [String])] = [:]
        for (index, done, shown, error) in outcomes {
            let p = prepared[index]
            // What reached a kind cluster was loaded, not pushed.
            if case .kind = work.first(where: { $0.index == index })?.plan.target {
                results[index].loaded = shown
            } else {
                results[index].pushed = shown
            }
            results[index].pushError = error
            guard !done.isEmpty, let id = results[index].imageID else { continue }
            updates[p.plan.key] = (id, done)
        }
        return (results, updates)
    }

    /// Delivers `references` of one image in order; stops at the first failure. Returns the
    /// cache keys delivered, what to show, and the error.
    private func deliver(
        _ p: Prepared,
        _ references: [String],
        _ delivery: DeliveryPlan,
        credentials: RegistryCredentials
    ) async -> ([String], [String], String?) {
        let key = p.plan.key
        let emit = self.emit
        var done: [String] = []
        var shown: [String] = []
        for reference in references {
            switch delivery.target {
            case .registry:
                emit(.pushLog(image: key, line: "pushing \(reference)"))
                let result = await ImagePusher.push(
                    reference,
                    engine: p.engine,
                    credentials: credentials,
                    policy: options.pushPolicy,
                    log: { line in emit(.pushLog(image: key, line: line)) }
                )
                switch result {
                case .success(let digest):
                    let registry = ImagePusher.displayName(RegistryName.registry(ofImage: reference))
                    emit(.pushed(image: key, reference: reference, destination: registry, digest: digest))
                    done.append(delivery.recordKey(reference))
                    shown.append(reference)
                case .failure(let error):
                    return (done, shown, error.message)
                }
            case .kind(let cluster):
                do {
                    try await KindLoader.load(reference, cluster: cluster) { line in
                        emit(.pushLog(image: key, line: line))
                    }
                    emit(.loaded(image: key, reference: reference, cluster: cluster))
                    done.append(delivery.recordKey(reference))
                    shown.append("\(reference) (kind cluster \(cluster))")
                } catch {
                    return (done, shown, "\(error)")
                }
            case nil:
                return (done, shown, nil)
            }
        }
        return (done, shown, nil)
    }
}

/// `kind load docker-image --name CLUSTER IMAGE:TAG`: copies an image from the Docker engine
/// into the nodes of a kind cluster, which is how images reach kind without a registry.
enum KindLoader {
    static func load(
        _ reference: String,
        cluster: String,
        log: @escaping @Sendable (String) -> Void
    ) async throws(EngineError) {
        let arguments = ["load", "docker-image", "--name", cluster, reference]
        let outcome: EngineProcess.Outcome
        do {
            outcome = try await EngineProcess.stream(engine: "kind", "kind", arguments, log: log)
        } catch let error as EngineError {
            throw error
        } catch {
            throw .operationFailed(engine: "kind", operation: "loading \(reference)", detail: "\(error)")
        }
        guard outcome.status == 0 else {
            throw .operationFailed(
                engine: "kind",
                operation: "kind load docker-image --name \(cluster) \(reference)",
                detail: "exit status \(outcome.status)"
                    + (outcome.lastLines.isEmpty ? "" : ":\n" + outcome.lastLines.joined(separator: "\n"))
            )
        }
    }
}
