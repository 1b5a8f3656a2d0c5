internal import Foundation

/// Builds with buildah, daemonless, into buildah's own image store (containers/storage,
/// `/var/lib/containers/storage` for root), which is not the Docker engine's.
///
/// `buildah build --layers [--isolation I] --build-arg k=v… --network N --tag T… --file F
/// --target X <extraArgs…> <context>`: the same flags as docker; buildah takes several
/// `--tag`s in one build. Unqualified names are stored under `localhost/` (`app:1` becomes
/// `localhost/app:1`) and found again by the same short name.
///
/// Found on this project's machines (buildah 1.28, running as root in a container): the
/// default isolation (`oci`, runc) runs `RUN` steps, and so does `--isolation chroot`, which is
/// the one to pick where runc cannot create namespaces (rootless, nested containers). A
/// `FROM` image must be in buildah's store: buildah does not read the Docker engine's, so
/// `buildah pull docker-daemon:NAME:TAG` copies one over.
public struct BuildahEngine: BuildEngine {
    public var name: String { "buildah" }
    /// The buildah executable, a name on PATH or a path.
    public let buildah: String
    /// `--isolation` (`oci`, `chroot`, `rootless`); nil leaves buildah's default
    /// (`BUILDAH_ISOLATION`, else `oci`).
    public let isolation: String?

    public init(buildah: String = "buildah", isolation: String? = nil) {
        self.buildah = buildah
        self.isolation = isolation
    }

    public func isAvailable() async -> Bool {
        guard let output = try? await EngineProcess.capture(engine: name, buildah, ["version"]) else { return false }
        return output.status == 0
    }

    /// The image's ID in buildah's store (`sha256:…`, the form the Docker API gives), or nil.
    public func imageID(_ reference: String) async throws -> String? {
        let output = try await EngineProcess.capture(
            engine: name,
            buildah,
            ["inspect", "--type", "image", "--format", "{{.FromImageID}}", reference]
        )
        if output.status == 0 {
            let id = output.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            return id.isEmpty ? nil : (id.hasPrefix("sha256:") ? id : "sha256:" + id)
        }
        if Self.isNotFound(output.standardError) { return nil }
        throw EngineError.operationFailed(
            engine: name,
            operation: "looking up \(reference)",
            detail: Self.lastLines(output.standardError)
        )
    }

    public func tag(existing: String, as references: [String]) async throws {
        guard !references.isEmpty else { return }
        let output = try await EngineProcess.capture(engine: name, buildah, ["tag", existing] + references)
        guard output.status == 0 else {
            throw EngineError.operationFailed(
                engine: name,
                operation: "tagging \(existing) as \(references.joined(separator: ", "))",
                detail: Self.lastLines(output.standardError)
            )
        }
    }

    public func build(_ request: BuildRequest, log: @Sendable (String) -> Void) async throws -> BuiltImage {
        try await withDockerfile(request) { dockerfile, iidfile in
            let outcome = try await EngineProcess.stream(
                engine: name,
                buildah,
                Self.arguments(for: request, dockerfile: dockerfile, isolation: isolation, iidfile: iidfile),
                log: log
            )
            guard outcome.status == 0 else {
                throw EngineError.buildFailed(
                    engine: name,
                    image: request.imageKey,
                    status: outcome.status,
                    lastLines: outcome.lastLines
                )
            }
            let written = builtImageID(iidfile)
            let found: String?
            if let written { found = written } else { found = try await imageID(request.references[0]) }
            guard let id = found else {
                throw EngineError.operationFailed(
                    engine: name,
                    operation: "building \(request.imageKey)",
                    detail: "the build succeeded but buildah's store has no image \(request.references[0])"
                )
            }
            return BuiltImage(references: request.references, id: id)
        }
    }

    public var pushesAfterBuild: Bool { true }

    /// `buildah push [--tls-verify=false] [--authfile F] --digestfile D REF docker://REF`.
    ///
    /// The credential goes into an auth file (mode 0600, in a private temporary directory,
    /// removed afterwards), never onto the command line. Registries on the loopback interface
    /// are spoken to over plain HTTP, as the Docker engine does by default for 127.0.0.0/8.
    /// The push is stopped when buildah prints nothing for `stallTimeout`.
    public func push(
        _ reference: String,
        credential: RegistryCredential?,
        stallTimeout: Duration,
        log: @escaping @Sendable (String) -> Void
    ) async throws -> String? {
        let files = FileManager.default
        // Named for this process, so that the agent's sweep removes it (and the credential in
        // it) should this process be killed before it does.
        let directory: String
        switch TempFiles.makeDirectory(kind: "push") {
        case .success(let made): directory = made
        case .failure(let error):
            throw EngineError.operationFailed(engine: name, operation: "pushing \(reference)", detail: error.message)
        }
        defer { try? files.removeItem(atPath: directory) }
        let registry = RegistryName.registry(ofImage: reference)
        var args = ["push"]
        if Self.isLoopback(registry) { args.append("--tls-verify=false") }
        if let credential {
            let authfile = directory + "/auth.json"
            var entry: [String: String] = [:]
            if credential.isIdentityToken {
                entry["identitytoken"] = credential.secret
            } else {
                entry["auth"] = Data("\(credential.username):\(credential.secret)".utf8).base64EncodedString()
            }
            let host = RegistryName.isDockerHub(registry) ? "docker.io" : RegistryName.hostname(registry)
            let json = (try? JSONSerialization.data(withJSONObject: ["auths": [host: entry]])) ?? Data()
            guard case .success = AtomicFile.write(Array(json), to: authfile, mode: 0o600) else {
                throw EngineError.operationFailed(
                    engine: name,
                    operation: "pushing \(reference)",
                    detail: "cannot write a temporary auth file"
                )
            }
            args += ["--authfile", authfile]
        }
        let digestFile = directory + "/digest"
        args += ["--digestfile", digestFile, reference, "docker://" + reference]
        let outcome = try await EngineProcess.streamWithStallLimit(
            engine: name,
            buildah,
            args,
            stallTimeout: stallTimeout,
            log: log
        )
        guard outcome.status == 0 else {
            let text = outcome.lastLines.suffix(5).joined(separator: "\n")
            let failure = PushFailure.classify(text)
            if case .authentication = failure { throw failure }
            if Self.isNotFound(text) { throw PushFailure.permanent(text) }
            throw PushFailure.transient(text)
        }
        let digest = (try? String(contentsOfFile: digestFile, encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return digest?.isEmpty == false ? digest : nil
    }

    /// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
    static func isLoopback(_ registry: String) -> Bool {
        var host = RegistryName.hostname(registry)
        if host.hasPrefix("[") {
            host = String(host.dropFirst().prefix { $0 != "]" })
        } else if let colon = host.lastIndex(of: ":") {
            host = String(host[..<colon])
        }
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The arguments after `buildah`:
    ///
    ///     build --layers [--isolation I] --build-arg K=V… --network N --tag IMAGE:TAG… --file F
    ///         --target X <extraArgs…> <context>
    ///
    /// `--layers` keeps intermediate layers as the Docker engine does, so an unchanged step is
    /// a cache hit on the next build.
    public static func arguments(
        for request: BuildRequest,
        dockerfile: String,
        isolation: String? = nil,
        iidfile: String? = nil
    ) -> [String] {
        var args = ["build", "--layers"]
        if let isolation { args += ["--isolation", isolation] }
        for (key, value) in request.buildArgs { args += ["--build-arg", "\(key)=\(value)"] }
        if let network = request.network, !network.isEmpty { args += ["--network", network] }
        for reference in request.references { args += ["--tag", reference] }
        args += ["--file", dockerfile]
        if let target = request.target, !target.isEmpty { args += ["--target", target] }
        if let iidfile { args += ["--iidfile", iidfile] }
        args += request.extraArgs
        args.append(request.contextDirectory)
        return args
    }

    static func isNotFound(_ standardError: String) -> Bool {
        let text = standardError.lowercased()
        return text.contains("image not known") || text.contains("no such image")
            || text.contains("not found")
    }

    static func lastLines(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: true).suffix(EngineProcess.keptLines)
            .joined(separator: "\n")
    }
}
