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
            engine: name, buildah, ["inspect", "--type", "image", "--format", "{{.FromImageID}}", reference])
        if output.status == 0 {
            let id = output.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            return id.isEmpty ? nil : (id.hasPrefix("sha256:") ? id : "sha256:" + id)
        }
        if Self.isNotFound(output.standardError) { return nil }
        throw EngineError.operationFailed(
            engine: name, operation: "looking up \(reference)", detail: Self.lastLines(output.standardError))
    }

    public func tag(existing: String, as references: [String]) async throws {
        guard !references.isEmpty else { return }
        let output = try await EngineProcess.capture(engine: name, buildah, ["tag", existing] + references)
        guard output.status == 0 else {
            throw EngineError.operationFailed(
                engine: name, operation: "tagging \(existing) as \(references.joined(separator: ", "))",
                detail: Self.lastLines(output.standardError))
        }
    }

    public func build(_ request: BuildRequest, log: @Sendable (String) -> Void) async throws -> BuiltImage {
        try await withDockerfile(request) { dockerfile in
            let outcome = try await EngineProcess.stream(
                engine: name, buildah, Self.arguments(for: request, dockerfile: dockerfile, isolation: isolation),
                log: log)
            guard outcome.status == 0 else {
                throw EngineError.buildFailed(
                    engine: name, image: request.imageKey, status: outcome.status, lastLines: outcome.lastLines)
            }
            guard let id = try await imageID(request.references[0]) else {
                throw EngineError.operationFailed(
                    engine: name, operation: "building \(request.imageKey)",
                    detail: "the build succeeded but buildah's store has no image \(request.references[0])")
            }
            return BuiltImage(references: request.references, id: id)
        }
    }

    /// The arguments after `buildah`:
    ///
    ///     build --layers [--isolation I] --build-arg K=V… --network N --tag IMAGE:TAG… --file F
    ///         --target X <extraArgs…> <context>
    ///
    /// `--layers` keeps intermediate layers as the Docker engine does, so an unchanged step is
    /// a cache hit on the next build.
    public static func arguments(for request: BuildRequest, dockerfile: String, isolation: String? = nil) -> [String] {
        var args = ["build", "--layers"]
        if let isolation { args += ["--isolation", isolation] }
        for (key, value) in request.buildArgs { args += ["--build-arg", "\(key)=\(value)"] }
        if let network = request.network, !network.isEmpty { args += ["--network", network] }
        for reference in request.references { args += ["--tag", reference] }
        args += ["--file", dockerfile]
        if let target = request.target, !target.isEmpty { args += ["--target", target] }
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
