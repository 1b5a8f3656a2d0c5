internal import Foundation

/// The options of the `slipway dev` that started a dev session: a second `slipway dev` with the
/// same ones attaches to it, one with others is refused (docs/dev.md).
public struct AgentDevOptions: Codable, Sendable, Equatable {
    /// `-p`, in order.
    public var profiles: [String]
    /// `--var KEY=VALUE`, in order.
    public var vars: [String]
    public var disableProfileActivation: Bool
    public var overrideName: String?
    /// Everything `slipway run-pipeline dev` needs after the pipeline's name to run the same
    /// pipeline again (`--config`, `-p`, `--var`, slipway's pipeline flags, the pipeline's own).
    public var arguments: [String]

    public init(
        profiles: [String],
        vars: [String],
        disableProfileActivation: Bool,
        overrideName: String?,
        arguments: [String]
    ) {
        self.profiles = profiles
        self.vars = vars
        self.disableProfileActivation = disableProfileActivation
        self.overrideName = overrideName
        self.arguments = arguments
    }

    /// `-p staging --var A=1`, or `no profile or variable`, for messages. Values of `--var`
    /// are shown: they are the user's own command line.
    public var summary: String {
        let parts = profiles.map { "-p \($0)" } + vars.map { "--var \($0)" }
        return parts.isEmpty ? "no -p or --var" : parts.joined(separator: " ")
    }
}

/// What `slipway dev` hands the agent after its dev pipeline (`devStart`).
public struct AgentDevStart: Codable, Sendable, Equatable {
    /// The config's absolute path: one session per config.
    public var config: String
    /// The directory `slipway dev` worked in (after `--chdir`): the session's jobs run there.
    public var directory: String
    public var options: AgentDevOptions
    /// What the pipeline's `start_dev` prepared.
    public var targets: [DevTarget]
    /// The environment of `slipway dev`: the session and its jobs run with it.
    public var environment: [String: String]
    /// Follow the containers' logs (`--no-logs` turns it off).
    public var logs: Bool

    public init(
        config: String,
        directory: String,
        options: AgentDevOptions,
        targets: [DevTarget],
        environment: [String: String],
        logs: Bool
    ) {
        self.config = config
        self.directory = directory
        self.options = options
        self.targets = targets
        self.environment = environment
        self.logs = logs
    }
}

/// A dev session as `slipway dev status`, `slipway status` and the status line show it.
public struct AgentDevView: Codable, Sendable, Equatable {
    public struct Container: Codable, Sendable, Equatable {
        /// The dev entry.
        public var dev: String
        public var name: String
        /// Files sent or fetched by its syncs since the session started.
        public var filesSynced: Int
        /// The latency of its syncs' last batch, in milliseconds.
        public var lastLatencyMs: Double?
        public var conflicts: Int

        public init(dev: String, name: String, filesSynced: Int, lastLatencyMs: Double?, conflicts: Int) {
            self.dev = dev
            self.name = name
            self.filesSynced = filesSynced
            self.lastLatencyMs = lastLatencyMs
            self.conflicts = conflicts
        }
    }

    public var id: Int
    public var config: String
    public var options: AgentDevOptions
    /// `starting`, `resuming`, `syncing` (initial syncs), `watching`, `rebuilding`,
    /// `restarting` (the config changed), `stopping`, `failed`, `stopped` (recorded; resumes
    /// when the agent starts).
    public var state: String
    /// Why, for `failed` (and the last failure otherwise).
    public var note: String?
    public var containers: [Container]
    /// Open jobs in the agent's queue (the session's rebuilds wait behind commit jobs).
    public var queue: Int
    /// The last rebuild: `ok in 2.1 s` or `failed: …`.
    public var lastRebuild: String?
    public var lastRebuildAt: Double?
    public var startedAt: Double

    public init(
        id: Int,
        config: String,
        options: AgentDevOptions,
        state: String,
        note: String?,
        containers: [Container],
        queue: Int,
        lastRebuild: String?,
        lastRebuildAt: Double?,
        startedAt: Double
    ) {
        self.id = id
        self.config = config
        self.options = options
        self.state = state
        self.note = note
        self.containers = containers
        self.queue = queue
        self.lastRebuild = lastRebuild
        self.lastRebuildAt = lastRebuildAt
        self.startedAt = startedAt
    }
}

/// A dev session the agent runs, as recorded in `dev-sessions.json` (mode 0600).
public struct AgentDevRecord: Codable, Sendable, Equatable {
    public var id: Int
    public var start: AgentDevStart
    public var startedAt: Double

    public init(id: Int, start: AgentDevStart, startedAt: Double) {
        self.id = id
        self.start = start
        self.startedAt = startedAt
    }

    /// The records in `path` (none when it is missing or unreadable).
    public static func read(_ path: String) -> [AgentDevRecord] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return (try? JSONDecoder().decode([AgentDevRecord].self, from: data)) ?? []
    }

    /// Writes `records` to `path` (temp file + rename, mode 0600).
    static func write(_ records: [AgentDevRecord], to path: String) -> Result<Void, AtomicFile.Failure> {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(records) else {
            return .failure(AtomicFile.Failure(message: "cannot encode the dev sessions"))
        }
        return AtomicFile.write(Array(data), to: path, mode: 0o600)
    }
}
