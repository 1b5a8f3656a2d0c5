import ArgumentParser
import Foundation
import SlipwayCore

/// `-C` / `--chdir` for the commands that act on a repository (agent, hooks, status, cleanup).
struct RepositoryOption: ParsableArguments {
    @Option(
        name: [.customShort("C"), .customLong("chdir")],
        help: "A directory of the repository (default: the current directory)."
    )
    var chdir: String?

    /// The directory to find the repository from.
    func directory() throws -> String { try SlipwayCLI.directory(afterChdir: chdir) }

    func paths() throws -> AgentPaths {
        let directory = try directory()
        do {
            return try AgentPaths.forRepository(containing: directory)
        } catch {
            Terminal.error("slipway: \(error.message)")
            throw ExitCode.failure
        }
    }
}

struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "The background agent that runs the jobs the git hooks submit (one per repository).",
        discussion: """
            The agent keeps its state in <git common dir>/slipway/: a socket private to your user, \
            agent.pid and agent.lock, agent.log (rotated at 1 MiB) and journal.jsonl, the jobs it \
            accepted. See docs/agent.md.
            """,
        subcommands: [Start.self, Stop.self, Status.self, Run.self, Logs.self, Submit.self, Gate.self]
    )

    /// Starts the agent of `paths` unless one answers; returns its pid.
    @discardableResult
    static func ensureRunning(_ paths: AgentPaths, quiet: Bool) throws -> Int32? {
        do {
            switch try AgentControl.ensureRunning(
                paths,
                executable: selfExecutable(),
                environment: ProcessInfo.processInfo.environment
            )
            {
            case .alreadyRunning(let pid):
                if !quiet { Terminal.out("slipway agent is running (pid \(pid ?? 0)) for \(paths.commonDir)\n") }
                return pid
            case .started(let pid):
                if !quiet { Terminal.out("slipway agent started (pid \(pid ?? 0)) for \(paths.commonDir)\n") }
                return pid
            }
        } catch {
            Terminal.error("slipway: \(error.message)")
            throw ExitCode.failure
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "start",
            abstract: "Start the agent in the background (nothing happens when it runs)."
        )
        @OptionGroup var repository: RepositoryOption
        @Flag(name: .customLong("quiet"), help: "Print nothing on success.")
        var quiet = false

        func run() async throws {
            try Agent.ensureRunning(try repository.paths(), quiet: quiet)
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop",
            abstract: "Stop the agent (a running job is interrupted and runs again when the agent starts)."
        )
        @OptionGroup var repository: RepositoryOption

        func run() async throws {
            let paths = try repository.paths()
            let stopped: Int32??
            do {
                stopped = try AgentControl.stop(paths)
            } catch {
                Terminal.error("slipway: \(error.message)")
                throw ExitCode.failure
            }
            guard let pid = stopped else {
                Terminal.out("slipway agent is not running for \(paths.commonDir)\n")
                return
            }
            Terminal.out("slipway agent stopped" + (pid.map { " (pid \($0))" } ?? "") + "\n")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "The queue, the running job and the last result per pipeline."
        )
        @OptionGroup var repository: RepositoryOption
        @Flag(name: .customLong("json"), help: "Print the status as JSON.")
        var json = false

        func run() async throws {
            try StatusCommand.show(try repository.paths(), json: json)
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Run the agent in the foreground (for service managers); the log is echoed to stderr."
        )
        @OptionGroup var repository: RepositoryOption
        @Flag(name: .customLong("background"), help: .hidden)
        var background = false

        func run() async throws {
            let paths = try repository.paths()
            let daemon = AgentDaemon(
                paths: paths,
                executable: selfExecutable(),
                environment: ProcessInfo.processInfo.environment,
                echo: !background
            )
            do {
                try daemon.run()
            } catch {
                daemon.note("agent: \(error.message)")
                Terminal.error("slipway: agent: \(error.message)")
                throw ExitCode.failure
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "logs",
            abstract: "The agent's log (jobs, their output, decisions); -f follows it."
        )
        @OptionGroup var repository: RepositoryOption
        @Flag(name: [.customShort("f"), .customLong("follow")], help: "Keep printing new lines.")
        var follow = false
        @Option(name: [.customShort("n"), .customLong("lines")], help: "How many of the last lines to print first.")
        var lines = 50

        func run() async throws {
            let paths = try repository.paths()
            if follow {
                let followed: Bool
                do {
                    followed = try AgentControl.follow(paths, lines: lines) { Terminal.out($0 + "\n") }
                } catch {
                    Terminal.error("slipway: \(error.message)")
                    throw ExitCode.failure
                }
                guard followed else {
                    Terminal.error(
                        "slipway: the agent is not running (`slipway agent start`); \(paths.log) has its last log"
                    )
                    throw ExitCode.failure
                }
                return
            }
            var text = ""
            for file in [paths.log + ".1", paths.log] {
                if let part = try? String(contentsOfFile: file, encoding: .utf8) { text += part }
            }
            guard !text.isEmpty else {
                Terminal.error("slipway: \(paths.log) does not exist yet: the agent has not run in this repository")
                throw ExitCode.failure
            }
            let all = text.split(separator: "\n", omittingEmptySubsequences: true)
            for line in all.suffix(max(0, lines)) { Terminal.out(line + "\n") }
        }
    }

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "submit",
            abstract: "Submit a job by hand: a pipeline (commit, push, gate) at HEAD or a given commit.",
            usage: "slipway agent submit [<options>] <pipeline>"
        )
        @OptionGroup var repository: RepositoryOption
        @Argument(help: "commit, push or gate.")
        var pipeline: String
        @Option(name: .customLong("commit"), help: "The commit (default: HEAD).")
        var commit: String?
        @Flag(name: .customLong("wait"), help: "Wait for the job and exit 1 when it fails.")
        var wait = false

        func run() async throws {
            let paths = try repository.paths()
            let directory = try repository.directory()
            let repo: GitRepository
            let head: GitHead
            do {
                repo = try GitRepository.discover(from: directory)
                head = try repo.head()
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }
            guard let target = commit ?? head.commit else {
                Terminal.error("slipway: the repository has no commit yet")
                throw ExitCode.failure
            }
            let ref = head.branchName.map { "refs/heads/" + $0 } ?? "HEAD"
            let job = AgentRequest.SubmittedJob(
                pipeline: pipeline,
                ref: ref,
                commit: target,
                worktree: repo.workdir?.trimmingSlash ?? directory,
                environment: Agent.capturedEnvironment(paths)
            )
            let ok = try Agent.submit(job, paths: paths, wait: wait, label: "")
            if !ok { throw ExitCode.failure }
        }
    }

    /// This command's environment as a job must see it (the names the agent recorded).
    static func capturedEnvironment(_ paths: AgentPaths) -> CapturedEnvironment {
        JobEnvironment.capture(
            from: ProcessInfo.processInfo.environment,
            names: JobEnvironment.readNames(paths.environmentNames)
        )
    }

    /// Submits `job`; with `wait`, prints how it ended and returns whether it succeeded.
    static func submit(_ job: AgentRequest.SubmittedJob, paths: AgentPaths, wait: Bool, label: String) throws -> Bool {
        let outcome: AgentControl.SubmitOutcome
        do {
            outcome = try AgentControl.submit(
                job,
                paths: paths,
                wait: wait,
                executable: selfExecutable(),
                environment: ProcessInfo.processInfo.environment
            ) { id in
                Terminal.error("\(label)job \(id) accepted: \(job.pipeline) pipeline at \(job.commit.prefix(7))")
            }
        } catch {
            Terminal.error("slipway: \(error.message)")
            throw ExitCode.failure
        }
        switch outcome {
        case .accepted:
            return true
        case .finished(let id, let result):
            if result?.ok == true {
                Terminal.error("\(label)job \(id) finished: \(result?.message ?? "ok")")
                return true
            }
            Terminal.error(
                "\(label)job \(id) failed: \(result?.message ?? "unknown error"); `slipway agent logs` has its output"
            )
            for line in result?.lastLines ?? [] { Terminal.error("\(label)  \(line)") }
            return false
        case .ended(let id, let event, let message):
            Terminal.error("\(label)job \(id) \(event): \(message)")
            return false
        case .hungUp(let id):
            Terminal.error("\(label)the agent hung up before job \(id) finished; see \(paths.log)")
            return false
        case .refused(let message):
            Terminal.error("\(label)\(message)")
            return false
        }
    }

    struct Gate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gate",
            abstract: "For the pre-push hook in gate mode: build what is pushed and exit 1 when it fails.",
            discussion: "Reads pre-push's stdin (<local ref> <local oid> <remote ref> <remote oid> per line)."
        )
        @OptionGroup var repository: RepositoryOption
        @Argument(help: "The remote's name (or URL).")
        var remote: String
        @Argument(help: "The remote's URL.")
        var url: String

        func run() async throws {
            let paths = try repository.paths()
            let worktree =
                (try? GitRepository.discover(from: FileManager.default.currentDirectoryPath).workdir)??.trimmingSlash
                ?? FileManager.default.currentDirectoryPath
            var failed = false
            while let line = readLine() {
                let f = line.split(separator: " ").map(String.init)
                // <local ref> <local oid> <remote ref> <remote oid>: the remote's branch names the job.
                guard f.count == 4, f[2].hasPrefix("refs/heads/"), f[1].count == 40, !f[1].allSatisfy({ $0 == "0" })
                else { continue }
                let branch = String(f[2].dropFirst(11))
                let job = AgentRequest.SubmittedJob(
                    pipeline: "gate",
                    ref: f[2],
                    commit: f[1],
                    worktree: worktree,
                    environment: Agent.capturedEnvironment(paths)
                )
                Terminal.error("slipway gate: building \(branch) at \(f[1].prefix(7)) before the push to \(remote)")
                if try !Agent.submit(job, paths: paths, wait: true, label: "slipway gate: ") {
                    failed = true
                }
            }
            if failed {
                Terminal.error(
                    "slipway gate: the push was refused because the build failed (push with --no-verify to skip the gate)"
                )
                throw ExitCode.failure
            }
        }
    }
}

extension String {
    var trimmingSlash: String {
        var s = self
        while s.count > 1 && s.hasSuffix("/") { s.removeLast() }
        return s
    }
}

/// `slipway status` (and `slipway agent status`).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The agent's queue, its running job and the last result per pipeline."
    )
    @OptionGroup var repository: RepositoryOption
    @Flag(name: .customLong("json"), help: "Print the status as JSON.")
    var json = false

    func run() async throws {
        try Self.show(try repository.paths(), json: json)
    }

    static func show(_ paths: AgentPaths, json: Bool) throws {
        let status: AgentStatus
        let running: Bool
        do {
            (status, running) = try AgentControl.status(paths)
        } catch {
            Terminal.error("slipway: \(error.message)")
            throw ExitCode.failure
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            if let data = try? encoder.encode(status) { Terminal.out(String(decoding: data, as: UTF8.self) + "\n") }
            return
        }
        var out =
            running
            ? "agent: running (pid \(status.pid ?? 0)) for \(status.repository)\n"
            : "agent: not running for \(status.repository) (`slipway agent start`)\n"
        func describe(_ v: AgentStatus.JobView) -> String {
            "job \(v.id)  \(v.pipeline)  \(v.branch ?? "(detached)")@\(v.commit.prefix(7))"
        }
        let now = Date().timeIntervalSince1970
        for v in status.running {
            out +=
                "running:  \(describe(v))  for \(Int(now - (v.since ?? now))) s"
                + (running ? "" : " (interrupted: resumes when the agent starts)") + "\n"
        }
        for v in status.queued { out += "queued:   \(describe(v))" + (v.note.map { "  (\($0))" } ?? "") + "\n" }
        for v in status.awaitingPush { out += "waiting:  \(describe(v))  \(v.note ?? "")\n" }
        for v in status.dropped ?? [] { out += "dropped:  \(describe(v))  \(v.note ?? "")\n" }
        if status.running.isEmpty && status.queued.isEmpty && status.awaitingPush.isEmpty { out += "queue: empty\n" }
        if status.last.isEmpty {
            out += "last results: none yet\n"
        } else {
            out += "last results:\n"
            for v in status.last {
                let when =
                    v.result.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0.finishedAt)) }
                    ?? ""
                out +=
                    "  \(v.pipeline): \(v.state) (job \(v.id), \(v.branch ?? "detached")@\(v.commit.prefix(7)), \(when)): \(v.result?.message ?? "")\n"
                for line in v.result?.lastLines ?? [] { out += "      \(line)\n" }
            }
        }
        if let sessions = status.dev, !sessions.isEmpty {
            out += "dev sessions:\n"
            out += SlipwayCommand.Dev.DevStatus.describe(sessions).split(separator: "\n").map { "  \($0)\n" }.joined()
        }
        Terminal.out(out)
    }
}

/// `slipway cleanup images`.
struct Cleanup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove what slipway made and no longer needs.",
        subcommands: [Images.self]
    )

    struct Images: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "images",
            abstract: "Remove the commit-tagged images the agent built beyond the newest N per image.",
            usage: "slipway cleanup images [<options>]",
            discussion: """
                The agent tags an image per commit and keeps the newest N per image (N: --keep, else \
                SLIPWAY_KEEP_IMAGES, else `git config slipway.keepImages`, else 10). Tags that a \
                container (running or stopped) uses are kept. --all removes every such tag that \
                nothing uses.
                """
        )
        @OptionGroup var repository: RepositoryOption
        @Option(name: .customLong("keep"), help: "How many commit-tagged images to keep per image.")
        var keep: Int?
        @Flag(name: .customLong("all"), help: "Keep none (remove every commit-tagged image nothing uses).")
        var all = false
        @Flag(name: .customLong("dry-run"), help: "Say what would be removed.")
        var dryRun = false

        func validate() throws {
            if let keep, keep < 0 { throw ValidationError("--keep must be 0 or more") }
        }

        func run() async throws {
            let paths = try repository.paths()
            let retention = ImageRetention(paths: paths, environment: ProcessInfo.processInfo.environment)
            let n = all ? 0 : keep ?? retention.configuredKeep()
            do {
                let lines = try retention.prune(keep: n, dryRun: dryRun)
                for line in lines { Terminal.out(line + "\n") }
                if lines.isEmpty { Terminal.out("nothing to remove (keeping \(n) per image)\n") }
            } catch {
                Terminal.error("slipway: cleanup images: \(error.message)")
                throw ExitCode.failure
            }
        }
    }
}
