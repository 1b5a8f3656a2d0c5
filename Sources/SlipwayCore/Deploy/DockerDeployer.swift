internal import Crypto
internal import Foundation

/// slipway's own `docker` deployment kind: each container runs on the local Docker engine.
///
/// Every container is named `PROJECT-DEPLOYMENT-CONTAINER` (with `-BRANCHTAG` in a branch
/// environment) and labelled with the config file, project, deployment, container, branch and
/// a digest of everything it was started with (the image's ID included), so slipway knows what
/// it owns and whether it changed. A changed container is replaced (the old one removed, the
/// new one started: host ports cannot be held twice); an unchanged one is left running.
/// Purging removes exactly the containers carrying this config's labels.
///
/// Listing, inspecting and removing go over the engine's API (``DockerAPI``) when `DOCKER_HOST`
/// is unset or a `unix://` socket; containers are started with `docker run` (the command line
/// ``render(_:)`` prints), and with `DOCKER_HOST` `tcp://` or `ssh://` every call is a docker
/// CLI call.
public struct DockerDeployer: Sendable {
    public let loaded: LoadedConfig
    public let docker: String
    public let environment: [String: String]
    /// The engine's API; nil when it is reached through the CLI only.
    let api: DockerAPI?

    public init(loaded: LoadedConfig, docker: String = "docker", environment: [String: String]) {
        self.loaded = loaded
        self.docker = docker
        self.environment = environment
        // A forced remove kills first and waits for the process: more than a lookup's time.
        self.api = try? DockerAPI.fromEnvironment(environment, timeout: .seconds(30))
    }

    public static let label = "dev.slipway"

    /// One container as `docker run` will start it.
    public struct Container: Sendable, Equatable {
        public var name: String
        public var image: String
        /// After `docker run`.
        public var arguments: [String]
        /// What the spec digest covers (with the image's ID): the whole command line.
        public var spec: String { arguments.joined(separator: "\u{1F}") }
    }

    public enum Outcome: String, Sendable, Equatable {
        case created, replaced, unchanged, removed
        /// A dev container stands in for it: the new original was created (not started) in
        /// the old one's place, and the dev container is to be made again from it.
        case replacedInDev = "replaced (in dev mode)"
    }

    /// The containers of deployment `deployment` (with `injector`'s tags), or an error naming
    /// the field.
    public func containers(
        _ deployment: DeploymentConfig,
        injector: TagInjector,
        branch: String?
    ) throws(DeployError) -> [Container] {
        let spec = deployment.spec
        let place = "\(loaded.displayPath):\(deployment.mark): deployments.\(deployment.name).docker"
        let items = spec["containers"]?.items ?? []
        guard !items.isEmpty else {
            throw DeployError.invalid(
                place: "\(place).containers",
                message: "a docker deployment needs at least one container"
            )
        }
        var out: [Container] = []
        for (i, item) in items.enumerated() {
            guard let rawImage = item["image"]?.text, !rawImage.isEmpty else {
                throw DeployError.invalid(place: "\(place).containers[\(i)].image", message: "missing")
            }
            let containerName = item["name"]?.text ?? (items.count == 1 ? "main" : "c\(i)")
            var name = Self.sanitize("\(loaded.config.name)-\(deployment.name)-\(containerName)")
            if let branch { name += "-" + Self.sanitize(branch) }
            let image = injector.inject(rawImage)
            var args = ["--detach", "--name", name]
            var labels = [
                ("config", loaded.absolutePath), ("project", loaded.config.name), ("deployment", deployment.name),
                ("container", containerName), ("branch", branch ?? ""),
            ]
            for (key, value) in (item["labels"]?.pairs ?? []).compactMap({ p in
                p.key.scalar.map { ($0, p.value.text ?? "") }
            }) {
                labels.append(("user." + key, value))
            }
            if let network = item["network"]?.text ?? spec["network"]?.text, !network.isEmpty {
                args += ["--network", network]
            }
            if let restart = item["restart"]?.text, !restart.isEmpty { args += ["--restart", restart] }
            if let dir = item["workingDir"]?.text, !dir.isEmpty { args += ["--workdir", dir] }
            if let env = item["env"] {
                if let pairs = env.pairs {
                    for p in pairs { if let k = p.key.scalar { args += ["--env", "\(k)=\(p.value.text ?? "")"] } }
                } else {
                    for e in env.items ?? [] {
                        if let k = e["name"]?.text { args += ["--env", "\(k)=\(e["value"]?.text ?? "")"] }
                    }
                }
            }
            for port in item["ports"]?.strings ?? [] { args += ["--publish", port] }
            for volume in item["volumes"]?.strings ?? [] {
                // A relative host path is relative to the config's directory.
                if volume.hasPrefix("./") || volume.hasPrefix("../") {
                    args += ["--volume", ConfigLoader.absolute(volume, in: loaded.directory)]
                } else {
                    args += ["--volume", volume]
                }
            }
            let command = item["command"]?.strings ?? []
            if let first = command.first { args += ["--entrypoint", first] }
            var trailing = Array(command.dropFirst())
            trailing += item["args"]?.strings ?? []
            for (key, value) in labels { args += ["--label", "\(Self.label).\(key)=\(value)"] }
            args += [image] + trailing
            out.append(Container(name: name, image: image, arguments: args))
        }
        return out
    }

    /// Starts (or keeps) the containers; removes containers of this deployment that the config
    /// no longer has. Returns what happened to each.
    public func deploy(
        _ deployment: DeploymentConfig,
        containers: [Container],
        branch: String?,
        force: Bool
    ) async throws(DeployError) -> [(String, Outcome)] {
        var outcomes: [(String, Outcome)] = []
        let existing = try await owned(deployment: deployment.name, branch: branch)
        for container in containers {
            let imageID = try await imageID(container.image)
            guard let imageID else {
                throw DeployError.imageMissing(deployment: deployment.name, image: container.image)
            }
            let digest = sha256Hex(container.spec + "\u{1F}" + imageID)
            let current = existing.first { $0.name == container.name }
            if let current, current.spec == digest, current.running || current.swapped, !force {
                outcomes.append((container.name, .unchanged))
                continue
            }
            if let current, current.swapped {
                // A dev container stands in for it: the new original takes the old one's place,
                // created and stopped; `start_dev` makes the dev container again from it. The old
                // original is renamed out of the way and removed while the new one is created.
                let oldOriginal = try await retire(DevSwap.swappedName(container.name))
                var args = container.arguments
                args.removeAll { $0 == "--detach" }
                if let at = args.firstIndex(of: "--name"), at + 1 < args.count {
                    args[at + 1] = DevSwap.swappedName(container.name)
                }
                args.insert(contentsOf: ["--label", "\(Self.label).spec=\(digest)"], at: 0)
                // Through the API when the command line's body can be built here: the CLI's
                // start-up was most of this step, on the way from a rebuild to the new dev
                // container.
                async let removal: DeployError? = {
                    guard let oldOriginal else { return nil }
                    do throws(DeployError) {
                        try await remove([oldOriginal])
                        return nil
                    } catch {
                        return error
                    }
                }()
                if let api, let spec = Self.createSpec(args) {
                    let name = DevSwap.swappedName(container.name)
                    let created = await onOwnThread {
                        Result { () throws(DockerAPIError) in try api.createContainer(name: name, spec: spec) }
                    }
                    if case .failure(let error) = created {
                        _ = await removal
                        throw DeployError.engine("cannot create \(name): \(error)")
                    }
                } else {
                    try await docker(["create"] + args)
                }
                if let error = await removal { throw error }
                outcomes.append((container.name, .replacedInDev))
                continue
            }
            // A container of that name that slipway does not own is in the way: replaced too,
            // as `docker run --name` would fail on it.
            let inTheWay = current == nil ? try await containerID(container.name) : nil
            if current != nil || inTheWay != nil {
                try await remove([container.name])
            }
            var args = container.arguments
            args.insert(contentsOf: ["--label", "\(Self.label).spec=\(digest)"], at: 0)
            try await docker(["run"] + args)
            outcomes.append((container.name, current == nil ? .created : .replaced))
        }
        for old in existing where !old.retired && !containers.contains(where: { $0.name == old.name }) {
            // A dev container standing in for it goes with it.
            try await remove(old.swapped ? [old.name, DevSwap.swappedName(old.name)] : [old.name])
            outcomes.append((old.name, .removed))
        }
        return outcomes
    }

    /// Removes every container of `deployment` (all deployments when nil) in `branch`'s
    /// environment (the plain one when nil; every one with `allBranches`).
    public func purge(
        deployment: String?,
        branch: String?,
        allBranches: Bool = false
    ) async throws(DeployError) -> [String] {
        var labels = ["\(Self.label).config=\(loaded.absolutePath)"]
        if let deployment { labels.append("\(Self.label).deployment=\(deployment)") }
        if !allBranches { labels.append("\(Self.label).branch=\(branch ?? "")") }
        let owned = try await list(labels)
        let names = owned.filter { !$0.retired }.map(\.name)
        // A swapped-out original goes with the dev container standing in for it.
        let all = owned.flatMap { $0.swapped ? [$0.name, DevSwap.swappedName($0.name)] : [$0.name] }
        if !all.isEmpty { try await remove(all) }
        return names
    }

    /// The command lines `deploy` would run, for `--render`.
    public static func render(_ containers: [Container]) -> String {
        containers.map { c in (["docker", "run"] + c.arguments).map(shellQuoted).joined(separator: " ") }
            .joined(separator: "\n") + "\n"
    }

    // MARK: Engine calls

    struct Owned {
        /// The deployed name (a swapped-out original's without its suffix).
        var name: String
        var spec: String
        var running: Bool
        /// A dev container stands in for it (``DevSwap``).
        var swapped = false
        /// A container an interruption left while replacing it (a dev container, or a swapped-out
        /// original: ``DevSwap/retiredName(_:id:)``): not a deployed one; `purge` removes it.
        var retired = false
    }

    func owned(deployment: String, branch: String?) async throws(DeployError) -> [Owned] {
        try await list([
            "\(Self.label).config=\(loaded.absolutePath)", "\(Self.label).deployment=\(deployment)",
            "\(Self.label).branch=\(branch ?? "")",
        ])
    }

    /// The containers (running or not) carrying every label of `labels` (`key=value`).
    func list(_ labels: [String]) async throws(DeployError) -> [Owned] {
        if let api {
            let found = await onOwnThread { Result { () throws(DockerAPIError) in try api.containers(labels: labels) } }
            switch found {
            case .success(let containers):
                return Self.owned(
                    containers.map {
                        (
                            $0.name, $0.labels["\(Self.label).spec"] ?? "", $0.state == "running",
                            $0.labels[DevSwap.devLabel] != nil
                        )
                    }
                )
            case .failure(let error):
                throw DeployError.engine("cannot list the containers of this config: \(error)")
            }
        }
        let text = try await run(
            [
                "ps", "--all", "--format",
                "{{.Names}}\t{{.Label \"\(Self.label).spec\"}}\t{{.State}}\t{{.Label \"\(DevSwap.devLabel)\"}}",
            ]
                + labels.flatMap { ["--filter", "label=\($0)"] }
        )
        return Self.owned(
            text.split(separator: "\n").compactMap { line in
                let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                guard f.count == 4 else { return nil }
                return (f[0], f[1], f[2] == "running", !f[3].isEmpty)
            }
        )
    }

    /// The deployed containers among `listed` (name, spec, running, is a dev container): a dev
    /// container is not one of them; a retired container (``DevSwap/retiredName(_:id:)``) is
    /// listed as such, for `purge`; a swapped-out original stands under its deployed name.
    static func owned(_ listed: [(String, String, Bool, Bool)]) -> [Owned] {
        listed.compactMap { name, spec, running, isDev in
            if DevSwap.isRetired(name) { return Owned(name: name, spec: spec, running: running, retired: true) }
            if isDev { return nil }
            if let deployed = DevSwap.deployedName(name) {
                return Owned(name: deployed, spec: spec, running: false, swapped: true)
            }
            return Owned(name: name, spec: spec, running: running)
        }
    }

    /// The ID of the image `reference` names; nil when the engine has none.
    func imageID(_ reference: String) async throws(DeployError) -> String? {
        guard let api else { return try await inspect(["image", "inspect", "--format", "{{.Id}}", reference]) }
        let found = await onOwnThread { Result { () throws(DockerAPIError) in try api.imageExists(reference) } }
        do {
            return try found.get()
        } catch {
            throw DeployError.engine("cannot look up the image \(reference): \(error)")
        }
    }

    /// The ID of the container named `name`; nil when there is none.
    func containerID(_ name: String) async throws(DeployError) -> String? {
        guard let api else { return try await inspect(["container", "inspect", "--format", "{{.Id}}", name]) }
        let found = await onOwnThread { Result { () throws(DockerAPIError) in try api.inspectContainer(name)?.id } }
        do {
            return try found.get()
        } catch {
            throw DeployError.engine("cannot look up the container \(name): \(error)")
        }
    }

    /// Renames the container `name` out of the way (``DevSwap/retiredName(_:id:)``) for a
    /// removal that overlaps the creation of its successor; returns its ID, nil when there is
    /// none. Through the CLI alone it is removed at once (nil).
    func retire(_ name: String) async throws(DeployError) -> String? {
        guard let api else {
            try await remove([name])
            return nil
        }
        let renamed = await onOwnThread {
            Result { () throws(DockerAPIError) -> String? in
                guard let id = try api.inspectContainer(name)?.id else { return nil }
                try api.renameContainer(id, to: DevSwap.retiredName(name, id: id))
                return id
            }
        }
        do {
            return try renamed.get()
        } catch {
            throw DeployError.engine("cannot rename \(name) out of the way: \(error)")
        }
    }

    /// Removes the containers `names`, running or not (`docker rm --force`); one already gone
    /// is no failure.
    func remove(_ names: [String]) async throws(DeployError) {
        guard let api else {
            try await docker(["rm", "--force"] + names)
            return
        }
        for name in names {
            let removed = await onOwnThread {
                Result { () throws(DockerAPIError) in try api.removeContainer(name, force: true) }
            }
            if case .failure(let error) = removed {
                throw DeployError.engine("cannot remove the container \(name): \(error)")
            }
        }
    }

    func inspect(_ args: [String]) async throws(DeployError) -> String? {
        let out = try await call(args)
        guard out.status == 0 else { return nil }
        let text = out.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    func run(_ args: [String]) async throws(DeployError) -> String {
        let out = try await call(args)
        guard out.status == 0 else { throw failure(args, out) }
        return out.standardOutput
    }

    func docker(_ args: [String]) async throws(DeployError) {
        _ = try await run(args)
    }

    func call(_ args: [String]) async throws(DeployError) -> ProcessOutput {
        guard let executable = findExecutable(docker, path: environment["PATH"]) else {
            throw DeployError.toolMissing(tool: "docker", place: "", hint: "./install.sh installs it")
        }
        do {
            return try await ProcessRunner.run(executable, args, environment: environment)
        } catch {
            throw DeployError.toolFailed(error, place: "")
        }
    }

    func failure(_ args: [String], _ out: ProcessOutput) -> DeployError {
        .toolFailed(
            ToolFailure(tool: "docker", arguments: args, status: out.status, standardError: out.standardError),
            place: ""
        )
    }

    /// A Docker container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
    static func sanitize(_ text: String) -> String {
        var out = String(
            text.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-") ? $0 : "-" }
        )
        while let first = out.first, !(first.isLetter || first.isNumber) { out.removeFirst() }
        return out.isEmpty ? "x" : out
    }
}

/// `text` as one POSIX shell word (for printing command lines, never for running them).
func shellQuoted(_ text: String) -> String {
    let safe = text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_./:=@,+".contains($0)) }
    if safe && !text.isEmpty { return text }
    return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
