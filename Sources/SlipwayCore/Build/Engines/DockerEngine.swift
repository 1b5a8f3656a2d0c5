internal import Foundation

/// Builds with the `docker` CLI against the local Docker engine; looks up and re-tags images
/// through the engine's API on its unix socket (``DockerAPI``), which is ~30× cheaper than a
/// CLI call.
///
/// The build command line (``arguments(for:dockerfile:buildx:)``) is DevSpace's CLI mode
/// (`docker build --build-arg k=v… --network N --tag T… --file F --target X <docker.args…>`)
/// with the context directory in place of DevSpace's `-` (a tar on stdin). When
/// `docker buildx version` succeeds (asked once per process) the build runs on BuildKit as
/// `docker buildx build … --load …`; otherwise on the classic builder with `DOCKER_BUILDKIT=0`,
/// and the log gets one line saying so instead of the CLI's deprecation banner.
public struct DockerEngine: BuildEngine {
    /// Which builder a build uses.
    public enum Builder: Sendable, Equatable {
        /// `docker buildx build --load`.
        case buildx
        /// `docker build` with `DOCKER_BUILDKIT=0`.
        case classic
    }

    public var name: String { "docker" }
    public let api: DockerAPI
    /// Set when the engine is reached through the docker CLI alone: `DOCKER_HOST` is `tcp://`
    /// or `ssh://` (TLS and SSH are the CLI's business), or the daemon is minikube's
    /// (`minikube docker-env`). The variables the CLI gets (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`,
    /// `DOCKER_CERT_PATH`…); lookups, re-tags and pushes are then CLI calls too.
    public let cliOnly: [String: String]?
    /// The docker CLI, a name on PATH or a path.
    public let docker: String
    /// Forces a builder; nil asks `docker buildx version` (once per process).
    public let builder: Builder?

    /// The line the log gets when a build falls back to the classic builder.
    public static let classicBuilderNote = "note: docker buildx is not installed; using the classic builder"

    public init(api: DockerAPI = DockerAPI(), docker: String = "docker", builder: Builder? = nil) {
        self.api = api
        self.docker = docker
        self.builder = builder
        self.cliOnly = nil
    }

    /// An engine reached only through the docker CLI, with `environment` (`DOCKER_HOST`…) set
    /// for every call.
    public init(cliEnvironment environment: [String: String], docker: String = "docker", builder: Builder? = nil) {
        self.api = DockerAPI()
        self.docker = docker
        self.builder = builder
        self.cliOnly = environment
    }

    /// Where the engine is, for messages.
    public var location: String {
        if let host = cliOnly?["DOCKER_HOST"] { return host }
        return "unix://" + api.socketPath
    }

    /// The engine at `DOCKER_HOST` (a `unix://` socket) in `environment` (nil: this process's),
    /// or at the default socket.
    public static func fromEnvironment(
        _ environment: [String: String]? = nil
    ) throws(EngineError) -> DockerEngine {
        let environment = environment ?? ProcessInfo.processInfo.environment
        if let host = environment["DOCKER_HOST"], host.hasPrefix("tcp://") || host.hasPrefix("ssh://") {
            var cli = ["DOCKER_HOST": host]
            for key in ["DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS"] { cli[key] = environment[key] }
            return DockerEngine(cliEnvironment: cli)
        }
        do {
            return DockerEngine(api: try DockerAPI.fromEnvironment(environment))
        } catch {
            throw .unreachable(engine: "docker", detail: error.description)
        }
    }

    // MARK: BuildEngine

    public func isAvailable() async -> Bool {
        if cliOnly != nil {
            return (try? await cli(["version", "--format", "{{.Server.Version}}"]).status) == 0
        }
        return (try? api.ping()) != nil
    }

    public func imageID(_ reference: String) async throws -> String? {
        if cliOnly != nil { return try await storedImage(reference)?.id }
        do {
            return try api.imageExists(reference)
        } catch {
            throw mapped(error, operation: "looking up \(reference)")
        }
    }

    public func storedImage(_ reference: String) async throws -> StoredImage? {
        if cliOnly != nil {
            let out = try await cli([
                "image", "inspect", "--format", "{{.Id}}{{range .RepoTags}} {{.}}{{end}}", reference,
            ])
            guard out.status == 0 else {
                let text = out.standardError.lowercased()
                if text.contains("no such image") || text.contains("no such object") { return nil }
                throw EngineError.operationFailed(
                    engine: name,
                    operation: "looking up \(reference)",
                    detail: out.standardError.trimmingCharacters(in: .whitespacesAndNewlines)
                )
            }
            let words = out.standardOutput.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let id = words.first else { return nil }
            return StoredImage(id: id, names: Array(words.dropFirst()))
        }
        do {
            return try api.inspectImage(reference).map { StoredImage(id: $0.id, names: $0.names) }
        } catch {
            throw mapped(error, operation: "looking up \(reference)")
        }
    }

    public func tag(existing: String, as references: [String]) async throws {
        if cliOnly != nil {
            for reference in references {
                let out = try await cli(["tag", existing, reference])
                guard out.status == 0 else {
                    throw EngineError.operationFailed(
                        engine: name,
                        operation: "tagging \(existing) as \(reference)",
                        detail: out.standardError.trimmingCharacters(in: .whitespacesAndNewlines)
                    )
                }
            }
            return
        }
        for reference in references {
            let (repository, tag) = try Self.split(reference, engine: name)
            do {
                try api.tag(source: existing, repository: repository, tag: tag)
            } catch {
                throw mapped(error, operation: "tagging \(existing) as \(reference)")
            }
        }
    }

    public var pushesAfterBuild: Bool { true }

    /// `POST /images/{name}/push` with the credential in `X-Registry-Auth`, on a thread of its
    /// own (the call blocks for as long as the push takes).
    public func push(
        _ reference: String,
        credential: RegistryCredential?,
        stallTimeout: Duration,
        log: @escaping @Sendable (String) -> Void
    ) async throws -> String? {
        let (repository, tag) = try Self.split(reference, engine: name)
        if cliOnly != nil {
            // The CLI logs in with its own config (the same Docker config slipway reads).
            let outcome = try await EngineProcess.streamWithStallLimit(
                engine: name,
                docker,
                ["push", reference],
                environment: cliEnvironment,
                stallTimeout: stallTimeout,
                log: log
            )
            guard outcome.status == 0 else {
                let text = outcome.lastLines.suffix(5).joined(separator: "\n")
                throw PushFailure.classify(text)
            }
            return outcome.lastLines.lazy.compactMap(Self.digest(inPushLine:)).last
        }
        let auth = Self.registryAuthHeader(credential)
        let api = self.api
        let outcome: Result<(digest: String?, error: String?), DockerAPIError> = await onOwnThread {
            var digest: String?
            var failure: String?
            do throws(DockerAPIError) {
                try api.push(repository: repository, tag: tag, auth: auth, stallTimeout: stallTimeout) { message in
                    if let error = message.errorMessage {
                        failure = error
                        return
                    }
                    if let d = message.aux?.digest { digest = d }
                    // Layer-by-layer progress is noise in a log; the repository line and the
                    // final digest line are not.
                    if let status = message.status, message.id == nil { log(status) }
                }
            } catch {
                return .failure(error)
            }
            return .success((digest, failure))
        }
        switch outcome {
        case .success(let result):
            if let error = result.error { throw PushFailure.classify(error) }
            return result.digest
        case .failure(.timedOut(_, let after)):
            throw PushFailure.stalled(after)
        case .failure(let error):
            if case .status(_, let code, let message) = error {
                throw code >= 500 ? PushFailure.transient(message) : PushFailure.classify(message)
            }
            throw mapped(error, operation: "pushing \(reference)")
        }
    }

    /// `TAG: digest: sha256:… size: N` (the CLI's last push line) → the digest.
    static func digest(inPushLine line: String) -> String? {
        guard let range = line.range(of: "digest: ") else { return nil }
        let digest = line[range.upperBound...].prefix { !$0.isWhitespace }
        return digest.hasPrefix("sha256:") ? String(digest) : nil
    }

    /// A short docker CLI call against this engine.
    func cli(_ arguments: [String]) async throws(EngineError) -> ProcessOutput {
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in cliEnvironment {
            if let value { environment[key] = value } else { environment.removeValue(forKey: key) }
        }
        guard let executable = findExecutable(docker, path: environment["PATH"]) else {
            throw .toolMissing(engine: name, tool: docker)
        }
        do {
            return try await ProcessRunner.run(executable, arguments, environment: environment)
        } catch {
            throw .operationFailed(engine: name, operation: "running \(docker)", detail: error.description)
        }
    }

    /// The `X-Registry-Auth` header (``DockerAPI/registryAuth(_:)``).
    static func registryAuthHeader(_ credential: RegistryCredential?) -> String {
        DockerAPI.registryAuth(credential)
    }

    public func build(_ request: BuildRequest, log: @Sendable (String) -> Void) async throws -> BuiltImage {
        // A missing daemon is the common failure: say how to start one before the CLI says
        // "Cannot connect to the Docker daemon".
        if cliOnly == nil {
            do {
                try api.ping()
            } catch {
                throw mapped(error, operation: "ping")
            }
        }
        let chosen: Builder
        if let builder {
            chosen = builder
        } else {
            chosen = await BuildxProbe.shared.builder(docker: docker, environment: cliEnvironment)
        }

        return try await withDockerfile(request) { dockerfile, iidfile in
            var environment = cliEnvironment
            if chosen == .classic {
                environment["DOCKER_BUILDKIT"] = "0"
                log(Self.classicBuilderNote)
            }
            var outcome = try await EngineProcess.stream(
                engine: name,
                docker,
                Self.arguments(for: request, dockerfile: dockerfile, buildx: chosen == .buildx, iidfile: iidfile),
                environment: environment,
                skip: Self.isBannerLine,
                log: log
            )
            // The classic builder's cache is the engine's intermediate images: an image removed
            // while this build reuses it (`docker rmi`, or the agent's retention removing an old
            // image and its unused parents) fails the step with "unable to find image". Nothing
            // was wrong with the build: it runs once more, on what the engine still has.
            if outcome.status != 0, chosen == .classic, Self.lostCachedLayer(outcome.lastLines) {
                log(
                    "note: a cached layer this build was using was removed meanwhile; building \(request.imageKey) again"
                )
                outcome = try await EngineProcess.stream(
                    engine: name,
                    docker,
                    Self.arguments(for: request, dockerfile: dockerfile, buildx: false, iidfile: iidfile),
                    environment: environment,
                    skip: Self.isBannerLine,
                    log: log
                )
            }
            guard outcome.status == 0 else {
                throw EngineError.buildFailed(
                    engine: name,
                    image: request.imageKey,
                    status: outcome.status,
                    lastLines: outcome.lastLines
                )
            }
            // The ID of the image this build made, from the engine itself: looking the tag up
            // afterwards would give another build's image when one moved the tag meanwhile.
            let first = request.references[0]
            let written = builtImageID(iidfile)
            let id: String?
            if let written { id = written } else { id = try await imageID(first) }
            guard let id else {
                throw EngineError.operationFailed(
                    engine: name,
                    operation: "building \(request.imageKey)",
                    detail: "the build succeeded but the engine has no image \(first)"
                )
            }
            return BuiltImage(references: request.references, id: id)
        }
    }

    /// Whether a classic build failed because an image it was reusing as cache disappeared.
    static func lostCachedLayer(_ lastLines: [String]) -> Bool {
        lastLines.suffix(3).contains {
            $0.contains("unable to find image \"sha256:") || $0.contains("No such image: sha256:")
        }
    }

    // MARK: Command line

    /// The arguments after `docker` for `request`, in DevSpace's order:
    ///
    ///     build --build-arg K=V… --network N --tag IMAGE:TAG… --force-rm --file F --target X <extraArgs…> <context>
    ///
    /// With `buildx`, `buildx build` and `--load` after the tags (where DevSpace's BuildKit
    /// builder puts `--push`/`--load`), so that the image lands in the engine's store; with the
    /// classic builder `--force-rm` there, so that a failed build leaves no container behind.
    /// `dockerfile` is the file to build from (the request's, or its rewritten copy).
    public static func arguments(
        for request: BuildRequest,
        dockerfile: String,
        buildx: Bool,
        iidfile: String? = nil
    )
        -> [String]
    {
        var args = buildx ? ["buildx", "build"] : ["build"]
        for (key, value) in request.buildArgs { args += ["--build-arg", "\(key)=\(value)"] }
        if let network = request.network, !network.isEmpty { args += ["--network", network] }
        for reference in request.references { args += ["--tag", reference] }
        // The classic builder keeps a failed step's container unless told otherwise; a failed
        // build should leave nothing behind.
        args.append(buildx ? "--load" : "--force-rm")
        args += ["--file", dockerfile]
        if let target = request.target, !target.isEmpty { args += ["--target", target] }
        if let iidfile { args += ["--iidfile", iidfile] }
        args += request.extraArgs
        args.append(request.contextDirectory)
        return args
    }

    /// The CLI talks to the same daemon as the API.
    var cliEnvironment: [String: String?] {
        if let cliOnly { return cliOnly.mapValues { $0 } }
        return ["DOCKER_HOST": "unix://" + api.socketPath]
    }

    /// The docker CLI (23+) prints a three-line "legacy builder is deprecated" banner for every
    /// classic build, with or without `DOCKER_BUILDKIT=0`; slipway's one note line replaces it.
    static func isBannerLine(_ line: String) -> Bool {
        let text = line.trimmingCharacters(in: .whitespaces)
        return text.hasPrefix("DEPRECATED: The legacy builder is deprecated")
            || text.hasPrefix("BuildKit is currently disabled; enable it by removing the DOCKER_BUILDKIT=0")
            || text == "environment-variable."
            || text.hasPrefix("Install the buildx component to build images with BuildKit:")
            || text == "https://docs.docker.com/go/buildx/"
    }

    /// Splits `name:tag` (the tag after the last `:` that follows the last `/`); no tag means
    /// `latest`. Digests cannot be tag targets.
    static func split(_ reference: String, engine: String) throws(EngineError) -> (String, String) {
        guard !reference.contains("@") else {
            throw .invalidRequest(
                engine: engine,
                image: reference,
                message: "a digest reference cannot be given as a new tag"
            )
        }
        let (name, tag) = ImageReference.split(reference)
        return (name, tag ?? "latest")
    }

    private func mapped(_ error: DockerAPIError, operation: String) -> EngineError {
        switch error {
        case .unreachable, .unsupportedHost:
            return .unreachable(engine: name, detail: error.description)
        default:
            return .operationFailed(engine: name, operation: operation, detail: error.description)
        }
    }
}

/// Runs `body` with the Dockerfile to build from — the request's own, or its rewritten
/// contents written outside the context — and the path where the engine writes the built
/// image's ID (`--iidfile`), in a private temporary directory removed afterwards.
func withDockerfile<T>(
    _ request: BuildRequest,
    _ body: (_ dockerfile: String, _ iidfile: String) async throws -> T
) async throws -> T {
    let files = FileManager.default
    // Named for this process, so that what a killed build leaves is swept.
    let directory: String
    do {
        directory = try TempFiles.makeDirectory(kind: "dockerfile").get()
        if let contents = request.dockerfileContents {
            try Data(contents.utf8).write(to: URL(fileURLWithPath: directory + "/Dockerfile"))
        }
    } catch {
        throw EngineError.operationFailed(
            engine: "build",
            operation: "writing the rewritten Dockerfile of \(request.imageKey)",
            detail: "\(error)"
        )
    }
    defer { try? files.removeItem(atPath: directory) }
    let dockerfile = request.dockerfileContents == nil ? request.dockerfilePath : directory + "/Dockerfile"
    return try await body(dockerfile, directory + "/iid")
}

/// The image ID an engine wrote to `iidfile` (`sha256:…`), nil when it wrote none.
func builtImageID(_ iidfile: String) -> String? {
    guard let data = FileManager.default.contents(atPath: iidfile) else { return nil }
    let id = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard !id.isEmpty else { return nil }
    return id.hasPrefix("sha256:") ? id : "sha256:" + id
}

/// Whether `docker buildx` works, asked once per process and remembered.
actor BuildxProbe {
    static let shared = BuildxProbe()
    private var answer: DockerEngine.Builder?

    func builder(docker: String, environment: [String: String?]) async -> DockerEngine.Builder {
        if let answer { return answer }
        let found: DockerEngine.Builder
        do {
            let outcome = try await EngineProcess.stream(
                engine: "docker",
                docker,
                ["buildx", "version"],
                environment: environment,
                log: { _ in }
            )
            found = outcome.status == 0 ? .buildx : .classic
        } catch {
            found = .classic
        }
        // A concurrent first call may have answered meanwhile; both asked the same CLI.
        answer = found
        return found
    }
}
