internal import Foundation

/// A job the agent runs: a pipeline at a commit, for a branch of a worktree.
public struct AgentJob: Codable, Sendable, Equatable {
    public var id: Int
    /// `commit`, `push` or `gate`.
    public var pipeline: String
    /// `refs/heads/<branch>`, or `HEAD` for a detached HEAD.
    public var ref: String
    /// The full commit id.
    public var commit: String
    /// The worktree the hook ran in.
    public var worktree: String
    public var acceptedAt: Double
    /// Where the job came from: an inbox file's name, or `socket`.
    public var source: String
    /// For push jobs: where the push went (the job waits for the push to be confirmed).
    public var push: PushTarget?
    /// The names of the environment variables the submitting hook or command passed on
    /// (``CapturedEnvironment``; values only in `jobs/<id>.env`, mode 0600); nil: none were
    /// passed, the job gets the agent's environment.
    public var environment: [String]?
    /// For `dev` jobs (a dev session's rebuild, restart or resume): the options of the
    /// `slipway dev` that started the session, given to `slipway run-pipeline` after the
    /// pipeline's name (`--config`, `-p`, `--var`, the pipeline's flags).
    public var arguments: [String]?

    public struct PushTarget: Codable, Sendable, Equatable {
        /// The remote's name, or its URL when the push named a URL.
        public var remote: String
        public var url: String
        /// The ref the push updates on the remote (`refs/heads/<branch>`).
        public var remoteRef: String
        /// The `git push` process that ran the pre-push hook, and its start time (from
        /// `/proc/PID/stat`), to tell when the push is over.
        public var gitPID: Int32
        public var gitStart: UInt64?

        public init(remote: String, url: String, remoteRef: String, gitPID: Int32, gitStart: UInt64?) {
            self.remote = remote
            self.url = url
            self.remoteRef = remoteRef
            self.gitPID = gitPID
            self.gitStart = gitStart
        }
    }

    public init(
        id: Int = 0,
        pipeline: String,
        ref: String,
        commit: String,
        worktree: String,
        acceptedAt: Double,
        source: String,
        push: PushTarget? = nil,
        environment: [String]? = nil,
        arguments: [String]? = nil
    ) {
        self.arguments = arguments
        self.id = id
        self.pipeline = pipeline
        self.ref = ref
        self.commit = commit
        self.worktree = worktree
        self.acceptedAt = acceptedAt
        self.source = source
        self.push = push
        self.environment = environment
    }

    /// The branch name, or nil for a detached HEAD.
    public var branch: String? { ref.hasPrefix("refs/heads/") ? String(ref.dropFirst(11)) : nil }

    /// Jobs with the same key coalesce: the newer replaces a queued older one. Gate jobs
    /// never do (a `git push` waits for each).
    public var coalescingKey: String {
        if pipeline == "gate" { return "gate\u{0}\(id)" }
        // A dev session's jobs run in its worktree, whatever its branch.
        if pipeline == "dev" { return "dev\u{0}" + worktree }
        return pipeline + "\u{0}" + (branch.map { "refs/heads/" + $0 } ?? "HEAD\u{0}" + worktree)
    }

    /// `commit pipeline at 1a2b3c4 on main` — for messages.
    public var summary: String {
        "\(pipeline) pipeline at \(commit.prefix(7)) " + (branch.map { "on \($0)" } ?? "(detached HEAD)")
    }
}

/// How a job ended.
public struct JobResult: Codable, Sendable, Equatable {
    public var ok: Bool
    /// The pipeline's exit status (-1 when it could not start).
    public var status: Int32
    /// One line: what happened (for a failure, the pipeline's last error line).
    public var message: String
    /// The references built or re-tagged (`name:tag`).
    public var tags: [String]
    public var startedAt: Double
    public var finishedAt: Double
    /// The commit's description the job tagged with (`git describe --always`, made a valid tag).
    public var describe: String?
    /// For a failure: the last lines of the failing tool's output (a build's log), when known.
    public var lastLines: [String]?

    public init(
        ok: Bool,
        status: Int32,
        message: String,
        tags: [String],
        startedAt: Double,
        finishedAt: Double,
        describe: String? = nil,
        lastLines: [String]? = nil
    ) {
        self.describe = describe
        self.lastLines = lastLines
        self.ok = ok
        self.status = status
        self.message = message
        self.tags = tags
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// Where a job stands.
public enum JobState: Codable, Sendable, Equatable {
    /// A push job waiting to learn whether the push succeeded.
    case awaitingPush
    case queued
    /// Running in process `pid` (its own process group), which started at `start` (clock ticks
    /// since boot, `/proc/PID/stat` field 22).
    case running(pid: Int32, start: UInt64?, since: Double)
    case finished(JobResult)
    /// Replaced by a newer job with the same key before it ran.
    case superseded(by: Int)
    /// Not run, and never will be: why (a push that failed, a job for a deleted worktree).
    case dropped(reason: String)

    public var isOpen: Bool {
        switch self {
        case .awaitingPush, .queued, .running: true
        case .finished, .superseded, .dropped: false
        }
    }
}

/// One line of the journal (`journal.jsonl`).
public struct JournalRecord: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// A job was accepted (with `job`); push jobs start awaiting confirmation.
        case accepted
        /// A push job's push was confirmed: it is queued now.
        case confirmed
        case started
        /// A job that was running when the agent stopped is queued again (resumed).
        case requeued
        case finished
        case superseded
        case dropped
        /// The agent started; `note` says which pid.
        case agentStarted
    }
    public var kind: Kind
    public var at: Double
    public var id: Int?
    public var job: AgentJob?
    public var by: Int?
    public var pid: Int32?
    public var start: UInt64?
    public var result: JobResult?
    public var reason: String?
    /// Set on `accepted` for a job that resumes an interrupted one (never coalesced).
    public var resumed: Bool?

    public init(
        _ kind: Kind,
        at: Double? = nil,
        id: Int? = nil,
        job: AgentJob? = nil,
        by: Int? = nil,
        pid: Int32? = nil,
        start: UInt64? = nil,
        result: JobResult? = nil,
        reason: String? = nil
    ) {
        self.kind = kind
        self.at = at ?? Date().timeIntervalSince1970
        self.id = id
        self.job = job
        self.by = by
        self.pid = pid
        self.start = start
        self.result = result
        self.reason = reason
    }
}
