/// Picks the engine for each image, as DevSpace's `create_builder.go` does: `custom`, then
/// `buildKit`, then `kaniko` (only when `docker` is not configured), then the local engine.
///
/// A `buildKit` section without `inCluster` builds on the local Docker engine, through
/// `docker buildx` when it is installed (else the classic builder, with a note).
/// The local engine is the Docker engine; `--engine buildah` (or `SLIPWAY_ENGINE=buildah`)
/// selects buildah, and when no Docker engine answers slipway falls back to buildah (with a
/// note) unless the image sets `docker.disableFallback: true`. DevSpace falls back to its
/// in-cluster registry builder there; slipway has no cluster, so the daemonless engine is the
/// local equivalent.
///
/// On a minikube kube context, images built by the Docker engine whose `docker.preferMinikube`
/// is not false build in minikube's own daemon (`minikube docker-env --shell none --profile
/// CONTEXT`), so the cluster runs them without a push, as in DevSpace.
struct EngineSelector: Sendable {
    let docker: DockerEngine?
    let dockerProblem: String?
    let buildah: BuildahEngine?
    let explicit: String?
    /// minikube's daemon, when the kube context is minikube's and it answers.
    let minikube: DockerEngine?

    init(
        options: BuildOptions,
        minikubeProfile: String? = nil,
        plans: [ImagePlan] = [],
        emit: @Sendable (BuildEvent) -> Void
    ) async throws(BuildRunError) {
        explicit = options.engine ?? options.environment["SLIPWAY_ENGINE"].flatMap { $0.isEmpty ? nil : $0 }
        if let explicit, explicit != "docker" && explicit != "buildah" {
            throw BuildRunError("--engine \(explicit): slipway builds with docker or buildah")
        }
        var docker: DockerEngine?
        var problem: String?
        if explicit != "buildah" {
            do {
                let engine = try DockerEngine.fromEnvironment(options.environment)
                if await engine.isAvailable() {
                    docker = engine
                } else {
                    problem = "no Docker engine answers at \(engine.location)"
                }
            } catch {
                problem = error.description
            }
        }
        self.docker = docker
        dockerProblem = problem
        if explicit == "buildah" || docker == nil {
            let b = BuildahEngine()
            buildah = await b.isAvailable() ? b : nil
        } else {
            buildah = nil
        }
        if explicit == nil, docker == nil, buildah != nil {
            emit(.note("no Docker engine answers (\(problem ?? "unknown")); building with buildah instead"))
        }
        let wantsMinikube = plans.contains {
            $0.config.custom == nil && $0.config.kaniko == nil && $0.config.buildKit?["inCluster"] == nil
                && $0.config.docker?.preferMinikube != false
        }
        if let profile = minikubeProfile, explicit != "buildah", wantsMinikube {
            minikube = await Self.minikubeEngine(profile: profile, environment: options.environment, emit: emit)
        } else {
            minikube = nil
        }
    }

    /// The engine of `minikube docker-env --shell none --profile PROFILE`, or nil (with a note)
    /// when minikube is not installed, fails, or its daemon does not answer.
    static func minikubeEngine(
        profile: String,
        environment: [String: String],
        emit: @Sendable (BuildEvent) -> Void
    ) async -> DockerEngine? {
        let fallback =
            "building with this machine's engine; the images then reach the cluster only through `minikube image load`"
        guard let minikube = findExecutable("minikube", path: environment["PATH"]) else {
            emit(.note("the kube context \(profile) is minikube's, but `minikube` is not on PATH; \(fallback)"))
            return nil
        }
        let output: ProcessOutput
        do {
            output = try await ProcessRunner.run(
                minikube,
                ["docker-env", "--shell", "none", "--profile", profile],
                environment: environment
            )
        } catch {
            emit(.note("`minikube docker-env --profile \(profile)` could not run (\(error)); \(fallback)"))
            return nil
        }
        guard output.status == 0 else {
            let last =
                output.standardError.split(separator: "\n").last.map(String.init) ?? "exit status \(output.status)"
            emit(.note("`minikube docker-env --profile \(profile)` failed (\(last)); \(fallback)"))
            return nil
        }
        var variables: [String: String] = [:]
        for line in output.standardOutput.split(separator: "\n") {
            let text = line.hasPrefix("export ") ? line.dropFirst("export ".count) : line
            guard let equals = text.firstIndex(of: "=") else { continue }
            var value = String(text[text.index(after: equals)...])
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            variables[String(text[..<equals])] = value
        }
        guard let host = variables["DOCKER_HOST"], !host.isEmpty else {
            emit(.note("`minikube docker-env --profile \(profile)` named no DOCKER_HOST; \(fallback)"))
            return nil
        }
        let engine: DockerEngine
        if host.hasPrefix("unix://") {
            engine = DockerEngine(api: DockerAPI(socketPath: String(host.dropFirst("unix://".count))))
        } else {
            engine = DockerEngine(cliEnvironment: variables)
        }
        guard await engine.isAvailable() else {
            emit(.note("minikube's Docker engine (\(host)) does not answer; \(fallback)"))
            return nil
        }
        emit(
            .note(
                "the kube context \(profile) is minikube's: building in its Docker engine (\(host)), nothing is pushed"
            )
        )
        return engine
    }

    func engine(for plan: ImagePlan, loaded: LoadedConfig) throws(BuildRunError) -> any BuildEngine {
        let image = plan.config
        if let custom = image.custom {
            var env: [String: String] = [:]
            for (name, value) in loaded.variables where VariableResolver.isEnvName(name) {
                env[name] = VariableResolver.text(of: value)
            }
            return CustomEngine(custom: custom, configDirectory: loaded.directory, environment: env)
        }
        if let buildKit = image.buildKit, let inCluster = buildKit["inCluster"], !inCluster.isNull {
            // Builds in a cluster pod; BuildKitEngine renders the command and says a cluster is needed.
            return BuildKitEngine(options: buildKit, skipPush: image.skipPush)
        }
        if image.buildKit == nil, image.docker == nil, let kaniko = image.kaniko {
            return KanikoEngine(options: kaniko)
        }
        if explicit == "buildah" {
            guard let buildah else {
                throw BuildRunError(
                    "images.\(plan.key): --engine buildah, but buildah is not installed (apt-get install buildah)"
                )
            }
            return buildah
        }
        if let minikube, image.docker?.preferMinikube != false { return minikube }
        if let docker { return docker }
        let hint = "start one with `sudo ./install.sh --deps-only` (or `sudo dockerd --bridge=none --iptables=false &`)"
        if explicit == "docker" || image.docker?.disableFallback == true {
            throw BuildRunError(
                "images.\(plan.key): cannot reach the Docker engine (\(dockerProblem ?? "no answer")); \(hint)"
            )
        }
        guard let buildah else {
            throw BuildRunError(
                "images.\(plan.key): no Docker engine answers (\(dockerProblem ?? "no answer")) and buildah is not installed; \(hint)"
            )
        }
        return buildah
    }
}
