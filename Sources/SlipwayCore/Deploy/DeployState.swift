internal import Foundation

/// What slipway last deployed, beside the build cache: `<config dir>/.devspace/slipway-deployments.json`
/// (`slipway-deployments-<config file>.json` for other config names). Per environment (the
/// plain one is "", a branch environment its branch tag) and deployment: the kind, a digest of
/// everything that was applied, and what it created. A kubectl or helm deployment whose digest
/// is unchanged is not applied again (unless forced); the docker kind also checks its
/// containers' labels. Updated under a lock, replaced atomically.
public struct DeployState: Sendable {
    public let path: String

    public struct Entry: Codable, Sendable, Equatable {
        public var kind: String
        public var digest: String
        /// Containers (docker), or the kube context and namespace (kubectl, helm).
        public var objects: [String]
        /// The component chart's objects on the cluster (`Kind/name`), to delete those a later
        /// deploy no longer makes.
        public var resources: [String]?
        public var deployedAt: String

        public init(kind: String, digest: String, objects: [String]) {
            self.kind = kind
            self.digest = digest
            self.objects = objects
            self.deployedAt = ISO8601DateFormatter().string(from: Date())
        }
    }

    public init(configPath: String) {
        let dir = (configPath as NSString).deletingLastPathComponent
        let name = (configPath as NSString).lastPathComponent
        path =
            dir + "/.devspace/"
            + (name == "devspace.yaml" ? "slipway-deployments.json" : "slipway-deployments-\(name).json")
    }

    /// environment → deployment → entry. A missing or damaged file reads as empty (then every
    /// deployment is applied again, which is safe).
    public func read() -> [String: [String: Entry]] {
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        return (try? JSONDecoder().decode([String: [String: Entry]].self, from: data)) ?? [:]
    }

    public func entry(_ deployment: String, environment: String) -> Entry? {
        read()[environment]?[deployment]
    }

    /// Sets (or, with nil, removes) one entry.
    public func update(_ deployment: String, environment: String, to entry: Entry?) throws(DeployError) {
        let dir = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let lock = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else {
            throw DeployError.stateFile(
                path: path,
                detail: "cannot open its lock file: \(String(cString: strerror(errno)))"
            )
        }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 && errno == EINTR {}
        defer { flock(lock, LOCK_UN) }
        var all = read()
        all[environment, default: [:]][deployment] = entry
        if all[environment]?.isEmpty == true { all[environment] = nil }
        let data: Data
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            data = try encoder.encode(all)
        } catch {
            throw DeployError.stateFile(path: path, detail: "cannot encode the deploy state: \(error)")
        }
        if case .failure(let failure) = AtomicFile.write(Array(data), to: path) {
            throw DeployError.stateFile(path: path, detail: failure.message)
        }
    }
}
