internal import Crypto
internal import Foundation

/// An agent failure the user reads: what went wrong and what to do; one case per kind.
public enum AgentError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The directory is not in a git repository.
    case notARepository(path: String, detail: String)
    /// The state directory cannot be made or used (`problem` names it).
    case stateDirectory(String)
    /// A state file (journal, pid, lock, images.json) cannot be opened, written or encoded.
    case stateFile(path: String, action: String, reason: String?)
    /// Another agent holds the repository's lock.
    case alreadyRunning(repository: String, pid: String?)
    /// The agent's socket cannot be made, reached or used.
    case socket(String)
    /// The conversation with a running agent broke off.
    case connection(String)
    /// The agent refused a request (its own words).
    case refused(String)
    /// A submitted job is not one the agent runs.
    case invalidJob(String)
    /// The agent could not be started.
    case start(String)
    /// A tool the agent needs (git, docker) is missing or failed.
    case tool(String)

    public var description: String {
        switch self {
        case .notARepository(let path, let detail):
            // git's own sentence says it already when no repository holds the path.
            if detail.contains("not inside a git repository") { return detail }
            return
                "\(path): cannot open its git repository (\(detail)); run slipway's agent inside the project's repository"
        case .stateFile(let path, let action, let reason):
            return "cannot \(action) \(path)" + (reason.map { ": \($0)" } ?? "")
        case .alreadyRunning(let repository, let pid):
            return "an agent already runs for \(repository)" + (pid.map { " (pid \($0))" } ?? "")
        case .stateDirectory(let message), .socket(let message), .connection(let message), .refused(let message),
            .invalidJob(let message), .start(let message), .tool(let message):
            return message
        }
    }

    /// The description (the name kept from the time this was a message struct).
    public var message: String { description }
}

/// Where one repository's agent keeps its state: `<git common dir>/slipway/` (shared by the
/// linked worktrees), mode 0700.
public struct AgentPaths: Sendable, Equatable {
    /// The state directory.
    public let directory: String
    /// The repository's git common directory.
    public let commonDir: String

    public init(commonDir: String) {
        var dir = commonDir
        while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
        self.commonDir = dir
        self.directory = dir + "/slipway"
    }

    /// The state of the repository that contains `path` (any directory of a worktree).
    public static func forRepository(containing path: String) throws(AgentError) -> AgentPaths {
        do {
            let repository = try GitRepository.discover(from: path)
            return AgentPaths(commonDir: URL(fileURLWithPath: repository.commonDir).standardizedFileURL.path)
        } catch {
            throw AgentError.notARepository(path: path, detail: "\(error)")
        }
    }

    public var lock: String { directory + "/agent.lock" }
    public var pidFile: String { directory + "/agent.pid" }
    public var log: String { directory + "/agent.log" }
    public var journal: String { directory + "/journal.jsonl" }
    /// One file per hook event (see docs/hooks.md).
    public var inbox: String { directory + "/inbox" }
    /// One file per failed job that no hook has reported yet.
    public var failed: String { directory + "/failed" }
    /// Per-job files (the images a job built, the environment it was submitted with).
    public var jobs: String { directory + "/jobs" }
    /// The environment a job was submitted with (``CapturedEnvironment`` as JSON, mode 0600).
    public func jobEnvironment(_ id: Int) -> String { "\(jobs)/\(id).env" }
    /// What a dev job's `start_dev` prepared (``JobDevFile``).
    public func jobDev(_ id: Int) -> String { "\(jobs)/\(id).dev" }
    /// The dev sessions the agent runs (``AgentDevRecord``s as JSON, mode 0600: they hold the
    /// environment of the `slipway dev` that started them), so that an agent started after a
    /// crash resumes them.
    public var devSessions: String { directory + "/dev-sessions.json" }
    /// The environment variables the config's variables read, one name per line, as the
    /// agent's jobs found them: the hooks pass these on with each job (docs/hooks.md).
    public var environmentNames: String { directory + "/environment-names" }
    /// Linked worktrees for jobs whose commit is not checked out anywhere.
    public var checkouts: String { directory + "/checkouts" }
    /// The commit-tagged images the agent built, for retention.
    public var images: String { directory + "/images.json" }

    /// The socket: `agent.sock` in the state directory, or, when that path is too long for a
    /// unix socket address (108 bytes), a name derived from it in a private directory
    /// `/tmp/slipway-<uid>/` — the same for every caller.
    public var socket: String {
        let plain = directory + "/agent.sock"
        if plain.utf8.count < 100 { return plain }
        let digest = SHA256.hash(data: Data(directory.utf8)).map { String(format: "%02x", $0) }.joined()
        return "/tmp/slipway-\(getuid())/\(digest.prefix(24)).sock"
    }

    /// The socket's address; nil when the path does not fit.
    func socketAddress() -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socket.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        return address
    }

    /// Creates the state directories (mode 0700).
    public func prepare() throws(AgentError) {
        for dir in [directory, inbox, failed, jobs, checkouts]
            + (socket.hasPrefix(directory) ? [] : [(socket as NSString).deletingLastPathComponent])
        {
            if mkdir(dir, 0o700) != 0 && errno != EEXIST {
                throw AgentError.stateDirectory("cannot create \(dir): \(String(cString: strerror(errno)))")
            }
        }
        for dir in [directory, (socket as NSString).deletingLastPathComponent] {
            var st = stat()
            guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw AgentError.stateDirectory("\(dir) is not a directory; remove it and start the agent again")
            }
            guard st.st_uid == getuid() else {
                throw AgentError.stateDirectory(
                    "\(dir) belongs to another user (uid \(st.st_uid)); the agent keeps its socket only in a directory of its own user"
                )
            }
            if st.st_mode & 0o077 != 0 { chmod(dir, 0o700) }
        }
    }
}
