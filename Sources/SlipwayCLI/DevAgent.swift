import ArgumentParser
import Foundation
import SlipwayCore
import Synchronization

// `slipway dev` in a git repository: the dev pipeline runs here (it has the terminal for
// questions), the session runs in the repository's agent, and this command follows it
// (docs/dev.md, "In the agent").

extension SlipwayCommand.Dev {
    /// The session's options as the agent compares and replays them.
    func agentOptions(config: String) -> AgentDevOptions {
        var arguments = ["--config", config]
        for profile in global.profiles { arguments += ["-p", profile] }
        for v in global.vars { arguments += ["--var", v] }
        if global.disableProfileActivation { arguments.append("--disable-profile-activation") }
        if let name = global.overrideName { arguments += ["--override-name", name] }
        if let namespace = global.namespace { arguments += ["--namespace", namespace] }
        if let context = global.kubeContext { arguments += ["--kube-context", context] }
        if flags.skipBuild { arguments.append("--skip-build") }
        if flags.skipDeploy { arguments.append("--skip-deploy") }
        if flags.sequential { arguments.append("--build-sequential") }
        if flags.branchEnv { arguments.append("--branch-env") }
        if flags.local { arguments.append("--local") }
        for tag in flags.tags { arguments += ["--tag", tag] }
        arguments += pipelineFlags
        return AgentDevOptions(
            profiles: global.profiles,
            vars: global.vars,
            disableProfileActivation: global.disableProfileActivation,
            overrideName: global.overrideName,
            arguments: arguments
        )
    }

    /// Runs `slipway dev status` or `slipway dev stop` when the command line names one; false
    /// when it does not.
    func runSubcommand() async throws -> Bool {
        guard let first = pipelineFlags.first, ["status", "stop"].contains(first) else { return false }
        var rest = Array(pipelineFlags.dropFirst())
        if let chdir = global.chdir { rest = ["--chdir", chdir] + rest }
        do {
            if first == "status" {
                try await DevStatus.parse(rest).run()
            } else {
                try await DevStop.parse(rest).run()
            }
        } catch let error as ExitCode {
            throw error
        } catch {
            let type: any ParsableCommand.Type = first == "status" ? DevStatus.self : DevStop.self
            Terminal.error("slipway dev \(first): " + type.message(for: error))
            throw ExitCode(error is CleanExit ? 0 : 64)
        }
        return true
    }

    /// The repository's agent state, or nil outside a git repository (the session then runs
    /// in this process).
    func agentPaths() throws -> AgentPaths? {
        try? AgentPaths.forRepository(containing: global.workingDirectory())
    }

    /// `slipway dev` with the agent: attaches to the session of this config when one runs,
    /// else runs the dev pipeline and hands the session over; then follows it (or, with
    /// `--detach`, returns once its syncs watch).
    func runWithAgent(_ paths: AgentPaths) async throws {
        let options = try global.loadOptions()
        let config = ConfigLoader.locate(options).absolute
        let wanted = agentOptions(config: config)
        try Agent.ensureRunning(paths, quiet: true)
        let running: [AgentDevView]
        do {
            running = try AgentDevControl.sessions(paths, config: config) ?? []
        } catch {
            Terminal.error("slipway dev: \(error)")
            throw ExitCode.failure
        }
        if let session = running.first {
            guard session.options == wanted else {
                Terminal.error(
                    "slipway dev: a dev session with other options runs for \(config) (\(session.options.summary); this command has \(wanted.summary)); `slipway dev stop` ends it, then run `slipway dev` again"
                )
                throw ExitCode.failure
            }
            if !global.silent {
                Terminal.error(
                    "slipway dev: attaching to the dev session the agent runs for \(config) (session \(session.id), \(session.state))"
                )
            }
            try follow(paths, session: session.id, config: config, lines: 50)
            return
        }
        guard let (loaded, targets) = try await runDevPipeline() else { return }
        let start = AgentDevStart(
            config: loaded.absolutePath,
            directory: try global.workingDirectory(),
            options: agentOptions(config: loaded.absolutePath),
            targets: targets,
            environment: try global.environment(),
            logs: !noLogs && (detach || Self.interactive(loaded: loaded, targets: targets) == nil)
        )
        let session: Int
        do {
            let (id, attached) = try AgentDevControl.start(paths, start)
            session = id
            if !global.silent {
                Terminal.error(
                    "slipway dev: the agent "
                        + (attached ? "already runs dev session \(id)" : "runs the dev session (session \(id))")
                        + " for \(loaded.absolutePath)"
                        + (detach ? "" : "; Ctrl-C ends it and restores the deployed containers")
                )
            }
        } catch {
            Terminal.error("slipway dev: \(error)")
            throw ExitCode.failure
        }
        // `terminal` (or `attach`) opens here, in place of the logs; when it ends by itself the
        // session ends, as with Ctrl-C.
        if !detach, let interactive = Self.interactive(loaded: loaded, targets: targets) {
            let open = OpenTerminal()
            let watch = AgentDevControl.onSignals { _ in open.cancel() }
            await Self.openInteractive(interactive, environment: try global.environment(), open: open)
            withExtendedLifetime(watch) {}
            // Following first (its first item is the status), then asking: the end is not missed.
            var asked = false
            var failure: String?
            do {
                _ = try AgentDevControl.follow(paths, lines: 0) { item in
                    if !asked {
                        asked = true
                        do {
                            _ = try AgentDevControl.stop(paths, config: loaded.absolutePath)
                        } catch {
                            failure = "\(error)"
                            return false
                        }
                    }
                    switch item.event {
                    case "dev-out": if !global.silent { Terminal.out((item.line ?? "") + "\n") }
                    case "dev-err": Terminal.error(item.line ?? "")
                    case "dev-ended" where item.id == session:
                        failure = item.error
                        return false
                    default: break
                    }
                    return true
                }
            } catch {
                failure = "\(error)"
            }
            if let failure {
                Terminal.error("slipway dev: \(failure)")
                throw ExitCode.failure
            }
            return
        }
        try follow(paths, session: session, config: loaded.absolutePath, lines: 0)
    }

    /// Prints the session's output and its status line until it ends (Ctrl-C ends it), or
    /// with `--detach` until its syncs watch.
    func follow(_ paths: AgentPaths, session: Int, config: String, lines: Int) throws {
        let silent = global.silent
        let detach = self.detach
        let status = StatusLine(enabled: !silent && !detach && isatty(STDOUT_FILENO) == 1)
        let stopping = Mutex<String?>(nil)
        let noSession = Mutex(false)
        let watch =
            detach
            ? nil
            : AgentDevControl.onSignals { name in
                guard
                    stopping.withLock({ s in
                        defer { s = s ?? name }
                        return s == nil
                    })
                else { return }
                Terminal.error("slipway dev: \(name): ending the dev session")
                do {
                    if try !AgentDevControl.stop(paths, config: config) { noSession.withLock { $0 = true } }
                } catch {
                    Terminal.error("slipway dev: \(error)")
                    noSession.withLock { $0 = true }
                }
            }
        var failure: String?
        var ended = false
        let end: AgentDevControl.FollowEnd
        do {
            let keepGoing = { !noSession.withLock { $0 } }
            end = try AgentDevControl.follow(paths, lines: lines, keepGoing: keepGoing) { item in
                // Another session's (or an earlier one's) items.
                if item.event != "dev-status", item.id != session { return true }
                switch item.event {
                case "dev-out":
                    if !silent || (item.line ?? "").hasPrefix("[") { status.print(item.line ?? "", error: false) }
                case "dev-err":
                    status.print(item.line ?? "", error: true)
                case "dev-status":
                    // Items from before the session began (replayed) do not list it; its end
                    // comes as `dev-ended`.
                    guard let view = item.dev?.first(where: { $0.id == session }) else { return true }
                    status.show(view)
                    if detach && view.state == "watching" { return false }
                    if detach && view.state == "failed" {
                        failure = view.note ?? "the dev session failed"
                        return false
                    }
                case "dev-ended":
                    ended = true
                    failure = item.error
                    return false
                default:
                    break
                }
                return true
            }
        } catch {
            status.clear()
            Terminal.error("slipway dev: \(error)")
            throw ExitCode.failure
        }
        status.clear()
        withExtendedLifetime(watch) {}
        if detach {
            if let failure {
                Terminal.error("slipway dev: \(failure); `slipway dev status` and `slipway agent logs` say more")
                throw ExitCode.failure
            }
            if !silent {
                Terminal.error(
                    "slipway dev: the session runs in the agent; `slipway dev status` shows it, `slipway dev stop` ends it"
                )
            }
            return
        }
        if end == .hungUp && !ended {
            Terminal.error(
                "slipway dev: the agent stopped; the dev containers stay as they are and `slipway dev` attaches again (the next agent resumes the session; see \(paths.log))"
            )
            throw ExitCode.failure
        }
        if let failure {
            Terminal.error("slipway dev: \(failure)")
            throw ExitCode.failure
        }
    }

    /// `slipway dev status`.
    struct DevStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract:
                "The dev sessions the repository's agent runs: containers, files synced, latency, conflicts, rebuilds."
        )
        @OptionGroup var repository: RepositoryOption
        @Flag(name: .customLong("json"), help: "Print the sessions as JSON.")
        var json = false

        func run() async throws {
            let paths = try repository.paths()
            let sessions: [AgentDevView]
            let running: Bool
            do {
                if let live = try AgentDevControl.sessions(paths, config: nil) {
                    (sessions, running) = (live, true)
                } else {
                    (sessions, running) = (AgentDevControl.recorded(paths), false)
                }
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                if let data = try? encoder.encode(sessions) {
                    Terminal.out(String(decoding: data, as: UTF8.self) + "\n")
                }
                return
            }
            if sessions.isEmpty {
                Terminal.out(
                    "no dev session" + (running ? " runs" : " (the agent is not running)") + " for \(paths.commonDir)\n"
                )
                return
            }
            Terminal.out(Self.describe(sessions))
        }

        static func describe(_ sessions: [AgentDevView]) -> String {
            var out = ""
            let now = Date().timeIntervalSince1970
            for s in sessions {
                out +=
                    "dev session \(s.id): \(s.config) (\(s.options.summary)): \(s.state)"
                    + (s.note.map { " (\($0))" } ?? "")
                    + ", for \(Int(now - s.startedAt)) s; queue \(s.queue); last rebuild: "
                    + (s.lastRebuild ?? "none") + "\n"
                for c in s.containers {
                    out +=
                        "  \(c.dev)  \(c.name)  \(c.filesSynced) file\(c.filesSynced == 1 ? "" : "s") synced, last latency "
                        + (c.lastLatencyMs.map { String(format: "%.1f ms", $0) } ?? "-")
                        + ", \(c.conflicts) conflict\(c.conflicts == 1 ? "" : "s")\n"
                }
            }
            return out
        }
    }

    /// `slipway dev stop`.
    struct DevStop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop",
            abstract: "End the dev sessions the repository's agent runs and restore the deployed containers."
        )
        @OptionGroup var repository: RepositoryOption

        func run() async throws {
            let paths = try repository.paths()
            if !AgentDevControl.recorded(paths).isEmpty { try Agent.ensureRunning(paths, quiet: true) }
            let configs: Set<String>
            do {
                configs = Set((try AgentDevControl.sessions(paths, config: nil) ?? []).map(\.config))
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }
            guard !configs.isEmpty else {
                Terminal.out("no dev session runs for \(paths.commonDir)\n")
                return
            }
            var waiting = configs
            var failures: [String] = []
            var asked = false
            var askFailure: String?
            do {
                _ = try AgentDevControl.follow(paths, lines: 0) { item in
                    if !asked {
                        asked = true
                        do {
                            _ = try AgentDevControl.stop(paths, config: nil)
                        } catch {
                            askFailure = "\(error)"
                            return false
                        }
                    }
                    switch item.event {
                    case "dev-out": Terminal.out((item.line ?? "") + "\n")
                    case "dev-err": Terminal.error(item.line ?? "")
                    case "dev-ended":
                        if let config = item.config { waiting.remove(config) }
                        if let error = item.error { failures.append(error) }
                    default: break
                    }
                    return !waiting.isEmpty
                }
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }
            if let askFailure {
                Terminal.error("slipway: \(askFailure)")
                throw ExitCode.failure
            }
            if !waiting.isEmpty {
                Terminal.error("slipway: the agent stopped before the dev sessions ended; see \(paths.log)")
                throw ExitCode.failure
            }
            for failure in failures { Terminal.error("slipway dev stop: \(failure)") }
            if !failures.isEmpty { throw ExitCode.failure }
            Terminal.out("dev sessions ended: \(configs.sorted().joined(separator: ", "))\n")
        }
    }
}

/// The status line of a followed dev session on a terminal: the last line of the screen,
/// cleared before each printed line and drawn again after it.
final class StatusLine: Sendable {
    let enabled: Bool
    let current = Mutex<String?>(nil)

    init(enabled: Bool) {
        self.enabled = enabled
    }

    func print(_ line: String, error: Bool) {
        guard enabled, let shown = current.withLock({ $0 }) else {
            if error { Terminal.error(line) } else { Terminal.out(line + "\n") }
            return
        }
        Terminal.out("\r\u{1b}[K")
        if error { Terminal.error(line) } else { Terminal.out(line + "\n") }
        Terminal.out(shown)
    }

    func show(_ view: AgentDevView) {
        guard enabled else { return }
        var parts: [String] = []
        for c in view.containers {
            parts.append(
                "\(c.name): \(c.filesSynced) file\(c.filesSynced == 1 ? "" : "s") synced, last "
                    + (c.lastLatencyMs.map { String(format: "%.1f ms", $0) } ?? "-")
                    + (c.conflicts > 0 ? ", \(c.conflicts) conflict\(c.conflicts == 1 ? "" : "s")" : "")
            )
        }
        parts.append("queue \(view.queue)")
        parts.append("last rebuild: \(view.lastRebuild ?? "none")")
        var line = "[\(view.state)] " + parts.joined(separator: " | ")
        let width = Terminal.width
        if line.count >= width { line = String(line.prefix(max(10, width - 2))) + "…" }
        current.withLock { $0 = line }
        Terminal.out("\r\u{1b}[K" + line)
    }

    func clear() {
        guard enabled, current.withLock({ $0 }) != nil else { return }
        current.withLock { $0 = nil }
        Terminal.out("\r\u{1b}[K")
    }
}
