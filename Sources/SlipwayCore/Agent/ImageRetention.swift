internal import Foundation

/// Keeps the newest N commit-tagged images per image: the agent records every image a commit
/// job tagged with the commit's description (`images.json` in the state directory), and
/// removes the tags beyond N that no container uses (`DELETE /images/{name}` without force,
/// as `docker image rm` does: a tag is removed, and the image with it only when no other tag
/// names it).
///
/// The engine is asked over its API (``DockerAPI``, `DOCKER_HOST` `unix://` or the default
/// socket): one list of all containers, one inspect and one removal per tag. With `DOCKER_HOST`
/// `tcp://` or `ssh://` the docker CLI is asked instead, as ``DockerEngine`` does.
///
/// N: `SLIPWAY_KEEP_IMAGES`, else `git config slipway.keepImages`, else 10.
public struct ImageRetention: Sendable {
    public static let defaultKeep = 10
    public let paths: AgentPaths
    public let environment: [String: String]

    public init(paths: AgentPaths, environment: [String: String]) {
        self.paths = paths
        self.environment = environment
    }

    public struct Entry: Codable, Sendable, Equatable {
        public var tag: String
        public var id: String?
        public var commit: String
        public var at: Double
    }

    /// image name → entries, oldest first.
    public struct Ledger: Codable, Sendable, Equatable {
        public var images: [String: [Entry]] = [:]
    }

    public func configuredKeep() -> Int {
        if let value = environment["SLIPWAY_KEEP_IMAGES"], let n = Int(value), n >= 0 { return n }
        if let git = findExecutable("git", path: environment["PATH"]),
            let answer = try? ChildProcess.run(
                git,
                ["--git-dir=\(paths.commonDir)", "config", "--get", "slipway.keepImages"],
                environment: environment,
                timeout: 10
            ),
            answer.status == 0, let n = Int(answer.output.trimmingCharacters(in: .whitespacesAndNewlines)), n >= 0
        {
            return n
        }
        return Self.defaultKeep
    }

    public func read() -> Ledger {
        guard let data = FileManager.default.contents(atPath: paths.images),
            let ledger = try? JSONDecoder().decode(Ledger.self, from: data)
        else { return Ledger() }
        return ledger
    }

    private func withLedger<T>(_ body: (inout Ledger) throws(AgentError) -> T) throws(AgentError) -> T {
        let lockPath = paths.images + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw AgentError.stateFile(path: lockPath, action: "open", reason: "\(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        flock(fd, LOCK_EX)
        var ledger = read()
        let before = ledger
        let value = try body(&ledger)
        if ledger != before {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            guard let data = try? encoder.encode(ledger) else {
                throw AgentError.stateFile(path: paths.images, action: "encode", reason: nil)
            }
            if case .failure(let failure) = AtomicFile.write(Array(data), to: paths.images, mode: 0o600) {
                throw AgentError.stateFile(path: paths.images, action: "write", reason: "\(failure.message)")
            }
        }
        return value
    }

    /// Records `references` (`name:tag`) as tagged for `commit`.
    public func record(_ references: [String], commit: String, at time: Double) throws(AgentError) {
        var ids: [String: String] = [:]
        if let engine = RetentionEngine(environment: environment) {
            for reference in references {
                if let id = try? engine.imageID(reference) { ids[reference] = id }
            }
        }
        try withLedger { (ledger: inout Ledger) throws(AgentError) in
            for reference in references {
                let (name, tag) = ImageReference.split(reference)
                var entries = ledger.images[name] ?? []
                entries.removeAll { $0.tag == tag ?? "latest" }
                entries.append(Entry(tag: tag ?? "latest", id: ids[reference], commit: commit, at: time))
                ledger.images[name] = entries
            }
        }
    }

    /// Removes, per image, the recorded tags beyond the newest `keep` that no container
    /// (running or stopped) uses; with `dryRun`, only says what it would remove. Returns one
    /// line per tag removed or kept back.
    public func prune(keep: Int, dryRun: Bool = false) throws(AgentError) -> [String] {
        guard let engine = RetentionEngine(environment: environment) else {
            throw AgentError.tool("docker is not on PATH, so no image was removed")
        }
        // The images containers use, running or not.
        let used = try engine.imagesInUse()
        return try withLedger { (ledger: inout Ledger) throws(AgentError) -> [String] in
            var lines: [String] = []
            for name in ledger.images.keys.sorted() {
                let entries = (ledger.images[name] ?? []).sorted { $0.at < $1.at }
                guard entries.count > keep else { continue }
                var remaining = Array(entries.suffix(keep))
                for entry in entries.dropLast(keep) {
                    let reference = "\(name):\(entry.tag)"
                    let found: String?
                    do throws(AgentError) {
                        found = try engine.imageID(reference)
                    } catch {
                        lines.append("\(reference): kept (\(error.message))")
                        remaining.insert(entry, at: 0)
                        continue
                    }
                    guard let id = found else { continue }  // already gone: forget it
                    if let recorded = entry.id, recorded != id {
                        lines.append("\(reference): kept (it names another image than slipway built; forgotten)")
                        continue
                    }
                    if used.contains(id) {
                        lines.append("\(reference): kept (a container uses it)")
                        remaining.insert(entry, at: 0)
                        continue
                    }
                    if dryRun {
                        lines.append("\(reference): would be removed")
                        remaining.insert(entry, at: 0)
                        continue
                    }
                    if let refusal = engine.removeImage(reference) {
                        lines.append("\(reference): kept (\(refusal))")
                        remaining.insert(entry, at: 0)
                    } else {
                        lines.append("\(reference): removed (commit \(entry.commit.prefix(7)))")
                    }
                }
                ledger.images[name] = remaining.isEmpty ? nil : remaining.sorted { $0.at < $1.at }
            }
            return lines
        }
    }

    /// `docker ARGS` to the end (a process that cannot start is an ``AgentError``).
    static func docker(
        _ docker: String,
        _ arguments: [String],
        environment: [String: String],
        timeout: Double
    ) throws(AgentError) -> (status: Int32, output: String) {
        do {
            return try ChildProcess.run(docker, arguments, environment: environment, timeout: timeout)
        } catch {
            throw AgentError.tool(error.description)
        }
    }
}

/// The engine as retention asks it: over the API on a unix socket, or through the docker CLI
/// for `tcp://` and `ssh://` hosts (TLS and SSH are the CLI's business).
enum RetentionEngine {
    case api(DockerAPI)
    case cli(docker: String, environment: [String: String])

    /// nil when the engine can only be reached through a docker CLI that is not on PATH.
    init?(environment: [String: String]) {
        do {
            // Removing an image deletes its layers: give it longer than a lookup.
            self = .api(try DockerAPI.fromEnvironment(environment, timeout: .seconds(60)))
        } catch {
            guard let docker = findExecutable("docker", path: environment["PATH"]) else { return nil }
            self = .cli(docker: docker, environment: environment)
        }
    }

    /// The image ID `reference` names; nil when there is no such image.
    func imageID(_ reference: String) throws(AgentError) -> String? {
        switch self {
        case .api(let api):
            do {
                return try api.imageExists(reference)
            } catch {
                throw AgentError.tool("cannot look up \(reference): \(error)")
            }
        case .cli(let docker, let environment):
            let inspect = try ImageRetention.docker(
                docker,
                ["image", "inspect", "--format", "{{.Id}}", reference],
                environment: environment,
                timeout: 30
            )
            guard inspect.status == 0 else { return nil }
            return inspect.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// The IDs of the images that containers (running or stopped) were created from.
    func imagesInUse() throws(AgentError) -> Set<String> {
        switch self {
        case .api(let api):
            do {
                return Set(try api.containers(all: true).map(\.imageID))
            } catch {
                throw AgentError.tool("cannot list the containers: \(error); no image was removed")
            }
        case .cli(let docker, let environment):
            let containers = try ImageRetention.docker(
                docker,
                ["ps", "--all", "--quiet", "--no-trunc"],
                environment: environment,
                timeout: 30
            )
            guard containers.status == 0 else {
                throw AgentError.tool(
                    "docker ps failed: \(containers.output.split(separator: "\n").last ?? ""); no image was removed"
                )
            }
            let ids = containers.output.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            guard !ids.isEmpty else { return [] }
            let inspected = try ImageRetention.docker(
                docker,
                ["inspect", "--format", "{{.Image}}"] + ids,
                environment: environment,
                timeout: 30
            )
            return Set(inspected.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        }
    }

    /// Removes the tag `reference` (the image too when no other tag names it; never by force).
    /// nil when it is gone; otherwise why the engine kept it.
    func removeImage(_ reference: String) -> String? {
        switch self {
        case .api(let api):
            do {
                try api.remove(image: reference)
                return nil
            } catch .status(_, _, let message) {
                return "the Docker engine refused to remove it: \(message)"
            } catch {
                return "\(error)"
            }
        case .cli(let docker, let environment):
            guard
                let removed = try? ChildProcess.run(
                    docker,
                    ["image", "rm", reference],
                    environment: environment,
                    timeout: 60
                )
            else { return "docker image rm could not run" }
            guard removed.status != 0 else { return nil }
            return "docker image rm: \(removed.output.split(separator: "\n").last ?? "")"
        }
    }
}
