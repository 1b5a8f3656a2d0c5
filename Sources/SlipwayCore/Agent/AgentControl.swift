internal import Foundation

/// A repository's agent as commands use it (`slipway agent start|stop|status|logs|submit|gate`,
/// `slipway status`): started when needed, asked, followed and given jobs over its socket.
public enum AgentControl {
    public enum Outcome: Sendable, Equatable {
        case alreadyRunning(pid: Int32?)
        case started(pid: Int32?)
    }

    /// The agent of `paths`, started (detached, in a session of its own) unless one answers.
    /// `executable` is the slipway binary; the agent gets `environment` without git's
    /// per-repository variables.
    public static func ensureRunning(
        _ paths: AgentPaths,
        executable: String,
        environment: [String: String]
    ) throws(AgentError) -> Outcome {
        if let client = try AgentClient(paths: paths), let status = try? client.call(AgentRequest(op: "status")).status
        {
            return .alreadyRunning(pid: status.pid)
        }
        let pid: Int32
        do {
            pid = try ChildProcess.daemon(
                executable,
                ["agent", "run", "--background", "--chdir", paths.commonDir],
                environment: AgentDaemon.sanitized(environment)
            )
        } catch {
            throw AgentError.start("cannot start the agent: \(error)")
        }
        // Our agent exits at once when another one won the race to start (a hook and `gate`
        // starting together); the winner answers once its socket is bound, so the socket is
        // asked for up to 2 s more before the exit counts as a failure.
        var exitedAt: Int?
        for step in 0..<1000 {
            if let client = try? AgentClient(paths: paths),
                let status = try? client.call(AgentRequest(op: "status")).status
            {
                return exitedAt == nil ? .started(pid: status.pid ?? pid) : .alreadyRunning(pid: status.pid)
            }
            var code: Int32 = 0
            if exitedAt == nil, waitpid(pid, &code, WNOHANG) == pid { exitedAt = step }
            if let exitedAt, step - exitedAt >= 200 {
                let last =
                    (try? String(contentsOfFile: paths.log, encoding: .utf8))?.split(separator: "\n").last.map(
                        String.init
                    ) ?? ""
                throw AgentError.start("the agent exited at once: \(last) (see \(paths.log))")
            }
            usleep(10_000)
        }
        throw AgentError.start("the agent (pid \(pid)) did not answer within 10 s; see \(paths.log)")
    }

    /// Asks the agent of `paths` to stop and waits (up to 15 s) until it has; nil when none
    /// was running, else its pid (when it said).
    public static func stop(_ paths: AgentPaths) throws(AgentError) -> Int32?? {
        guard let client = try AgentClient(paths: paths) else { return nil }
        let pid = (try? client.call(AgentRequest(op: "status")).status?.pid) ?? nil
        _ = try client.call(AgentRequest(op: "stop"))
        for _ in 0..<1500 {
            if let pid, !ChildProcess.isAlive(pid, start: nil) { break }
            if pid == nil, (try? AgentClient(paths: paths)) == nil { break }
            usleep(10_000)
        }
        return .some(pid)
    }

    /// The agent's status, and whether it is running; when it is not, what its journal says
    /// it last knew.
    public static func status(_ paths: AgentPaths) throws(AgentError) -> (status: AgentStatus, running: Bool) {
        guard let client = try AgentClient(paths: paths) else {
            let queue = JobQueue(replaying: Journal(path: paths.journal).read())
            var status = AgentStatus(queue: queue, repository: paths.commonDir, pid: nil, startedAt: nil)
            let recorded = AgentDevControl.recorded(paths)
            if !recorded.isEmpty { status.dev = recorded }
            return (status, false)
        }
        guard let answer = try client.call(AgentRequest(op: "status")).status else {
            throw AgentError.connection("the agent sent no status")
        }
        return (answer, true)
    }

    /// Follows the agent's log: the last `lines` lines, then each new one, to `line`, until the
    /// agent stops. False when no agent runs.
    public static func follow(_ paths: AgentPaths, lines: Int, line: (String) -> Void) throws(AgentError) -> Bool {
        guard let client = try AgentClient(paths: paths) else { return false }
        client.setTimeout(nil)
        try client.send(AgentRequest(op: "follow", lines: lines))
        while let response = try client.receive() {
            if !response.ok { throw AgentError.refused(response.error ?? "the agent stopped sending its log") }
            if let text = response.line { line(text) }
        }
        return true
    }

    /// How a submitted job ended (with `wait`), or that it was accepted.
    public enum SubmitOutcome: Sendable, Equatable {
        case accepted(id: Int)
        case finished(id: Int, result: JobResult?)
        /// Superseded, dropped, or the agent stopped first: `event` and its message.
        case ended(id: Int, event: String, message: String)
        case hungUp(id: Int)
        case refused(String)
    }

    /// Submits `job` to the agent of `paths` (started when needed); with `wait`, waits for it
    /// to end. `accepted` is called with the job's id as soon as the agent took it.
    public static func submit(
        _ job: AgentRequest.SubmittedJob,
        paths: AgentPaths,
        wait: Bool,
        executable: String,
        environment: [String: String],
        accepted: (Int) -> Void
    ) throws(AgentError) -> SubmitOutcome {
        _ = try ensureRunning(paths, executable: executable, environment: environment)
        guard let client = try AgentClient(paths: paths) else {
            throw AgentError.connection("the agent stopped answering; see \(paths.log)")
        }
        let answer = try client.call(AgentRequest(op: "submit", job: job, wait: wait))
        let id = answer.id ?? 0
        accepted(id)
        guard wait else { return .accepted(id: id) }
        client.setTimeout(nil)
        guard let end = try client.receive() else { return .hungUp(id: id) }
        if !end.ok { return .refused(end.error ?? "job \(id) did not finish") }
        if end.event == "finished" { return .finished(id: id, result: end.result) }
        return .ended(id: id, event: end.event ?? "ended", message: end.message ?? "")
    }
}

extension AgentControl {
    /// The inbox slipway's git hooks write to, when they are installed in the repository holding
    /// `directory` (its `post-checkout` is slipway's): what a dev session's syncs wait on after a
    /// checkout (``SyncConfiguration/hookInbox``). Nil without a repository or without the hooks.
    public static func hookInbox(for directory: String) async -> String? {
        guard let status = try? await HookInstaller.status(from: directory),
            status.hooks.contains(where: { hook in
                guard hook.name == "post-checkout", case .slipway = hook.kind else { return false }
                return true
            }),
            let paths = try? AgentPaths.forRepository(containing: directory)
        else { return nil }
        return paths.inbox
    }
}

extension AgentControl {
    /// The repository agent's warm digests for the config in `configDirectory`, asked over its
    /// socket (one request; the agent handles every file event queued before it first), or why
    /// there are none: no repository, no agent running (none is started for this), or the
    /// agent's own reason. Never an error: a build without warm digests walks.
    public static func warmAnswer(for configDirectory: String, timeout: Double = 2) async -> WarmAnswer {
        await onOwnThread { askWarm(configDirectory, timeout: timeout) }
    }

    static func askWarm(_ configDirectory: String, timeout: Double) -> WarmAnswer {
        let paths: AgentPaths
        let notARepository = WarmAnswer(snapshot: nil, reason: "not in a git repository, so no agent keeps digests")
        switch GitRepository.commonDirWithoutLibgit2(from: configDirectory) {
        case .found(let commonDir): paths = AgentPaths(commonDir: commonDir)
        case .none: return notARepository
        case .unsure:
            do {
                paths = try AgentPaths.forRepository(containing: configDirectory)
            } catch {
                return notARepository
            }
        }
        let client: AgentClient?
        do {
            client = try AgentClient(paths: paths, timeout: timeout)
        } catch {
            return WarmAnswer(snapshot: nil, reason: "the agent cannot be reached: \(error.message)")
        }
        guard let client else {
            return WarmAnswer(snapshot: nil, reason: "no agent runs for this repository (slipway agent start)")
        }
        client.busyRetry = 0
        do {
            let answer = try client.call(AgentRequest(op: "warm", config: configDirectory))
            guard answer.ok else {
                return WarmAnswer(snapshot: nil, reason: "the agent refused: \(answer.error ?? "no reason given")")
            }
            return WarmAnswer(
                snapshot: answer.warm,
                reason: answer.warm == nil ? (answer.message ?? "the agent keeps no digests for it") : nil
            )
        } catch {
            return WarmAnswer(snapshot: nil, reason: "the agent did not answer: \(error.message)")
        }
    }
}

extension AgentControl {
    /// `SLIPWAY_WARM=0`: builds do not ask the agent (every context is walked; for measuring
    /// the cold path, and for comparing with it).
    public static let noWarmVariable = "SLIPWAY_WARM"

    /// The ``WarmLookup`` a build's caller passes on: the agent asked right before each build;
    /// nil inside an agent's own job, which was handed its snapshot (`SLIPWAY_WARM_DIGESTS`).
    public static func warmLookup(environment: [String: String]) -> WarmLookup? {
        if environment[WarmSnapshot.environmentVariable] != nil { return nil }
        if environment[noWarmVariable] == "0" {
            return { _ in WarmAnswer(snapshot: nil, reason: "\(noWarmVariable)=0: every context is walked") }
        }
        return { directory in await warmAnswer(for: directory) }
    }
}
