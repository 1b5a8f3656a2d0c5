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
struct EngineSelector: Sendable {
    let docker: DockerEngine?
    let dockerProblem: String?
    let buildah: BuildahEngine?
    let explicit: String?

    init(options: BuildOptions, emit: @Sendable (BuildEvent) -> Void) async throws(BuildRunError) {
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
                    problem = "no Docker engine answers at \(engine.api.socketPath)"
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
                throw BuildRunError("images.\(plan.key): --engine buildah, but buildah is not installed (apt-get install buildah)")
            }
            return buildah
        }
        if let docker { return docker }
        let hint = "start one with `sudo ./install.sh --deps-only` (or `sudo dockerd --bridge=none --iptables=false &`)"
        if explicit == "docker" || image.docker?.disableFallback == true {
            throw BuildRunError(
                "images.\(plan.key): cannot reach the Docker engine (\(dockerProblem ?? "no answer")); \(hint)")
        }
        guard let buildah else {
            throw BuildRunError(
                "images.\(plan.key): no Docker engine answers (\(dockerProblem ?? "no answer")) and buildah is not installed; \(hint)")
        }
        return buildah
    }
}
