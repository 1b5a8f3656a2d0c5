import ArgumentParser
import SlipwayCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension SlipwayCommand {
    struct Dev: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dev",
            abstract:
                "Run the dev pipeline, then keep the dev containers in sync while you edit (Ctrl-C ends it and restores the deployed containers).",
            usage: "slipway dev [<options>] [<pipeline-flags> ...]",
            discussion: """
                The dev pipeline (the config's pipelines.dev, else DevSpace's default: \
                run_dependencies, ensure_pull_secrets, build_images, create_deployments, \
                start_dev) puts a dev container in place of each container a dev entry \
                selects, when the entry asks for one (devImage, command, args, workingDir, env, \
                a restart after uploads, terminal, attach). Then each entry's sync[] runs, the \
                commands of onUpload.exec and the restart of onUpload.restartContainer run after \
                each upload batch, and the containers' logs are printed with their names. \
                Ctrl-C (or SIGTERM) ends the syncs and puts the deployed containers back, as \
                stop_dev does. In a git repository the session runs in the repository's agent \
                (started when needed) and this command follows it; --detach leaves it there, \
                `slipway dev status` shows it and `slipway dev stop` ends it. docs/dev.md has the \
                details.
                """,
            subcommands: [DevStatus.self, DevStop.self]
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var flags: PipelineFlags

        @Flag(name: .customLong("no-logs"), help: "Do not print the containers' logs.")
        var noLogs = false

        @Flag(
            name: .customLong("detach"),
            help: "Leave the session running in the repository's agent and return once its syncs watch."
        )
        var detach = false

        @Argument(parsing: .captureForPassthrough, help: "The pipeline's own flags (--name value).")
        var pipelineFlags: [String] = []

        /// What the pipeline left for the sessions.
        final class Started: Sendable {
            let value = Mutex<(LoadedConfig, [DevTarget])?>(nil)
        }

        func run() async throws {
            // `slipway dev status|stop` (the pipeline's flags are captured before subcommands).
            if try await runSubcommand() { return }
            // In a git repository the session runs in the repository's agent.
            if let paths = try agentPaths() {
                try await runWithAgent(paths)
                return
            }
            if detach {
                Terminal.error(
                    "slipway dev: --detach needs a git repository (the session runs in its agent); outside one it runs in this process"
                )
                throw ExitCode(64)
            }
            guard let (loaded, targets) = try await runDevPipeline() else { return }
            let environment = try global.environment()
            guard let program = SyncHelperProgram.program(besides: selfExecutable(), environment: environment) else {
                Terminal.error(
                    "slipway dev: \(SyncHelperProgram.programName), the program sync runs inside the container, is not installed beside slipway nor on PATH; reinstall slipway (./install.sh installs it)"
                )
                throw ExitCode.failure
            }
            let silent = global.silent
            let debug = global.debug
            let renderer = Mutex<SyncEventRenderer?>(nil)
            let session = DevSession(
                loaded: loaded,
                targets: targets,
                environment: environment,
                program: program,
                hookInbox: await AgentControl.hookInbox(for: loaded.directory),
                events: { event in
                    switch event {
                    case .sync(let target, let event):
                        renderer.withLock { $0 }?.show(target, event)
                    case .decision(let text):
                        if !silent { Terminal.out("dev: \(text)\n") }
                    case .output(let source, let line):
                        Terminal.out("[\(source)] \(line)\n")
                    case .failure(let text):
                        Terminal.error("dev: \(text)")
                    }
                }
            )
            let interrupted = Mutex<String?>(nil)
            let open = OpenTerminal()
            let watch = session.stopOnSignals { name in
                interrupted.withLock { $0 = name }
                open.cancel()
            }
            let plan: SyncPlan
            do {
                plan = try await session.plan()
            } catch {
                Terminal.error("slipway dev: \(error)")
                try await restore(session, silent: silent)
                throw ExitCode.failure
            }
            renderer.withLock { $0 = SyncEventRenderer(plan: plan, json: false, silent: silent, debug: debug) }
            if !silent {
                for note in plan.notes { Terminal.error("note: \(note)") }
                Terminal.out(SlipwayCommand.Sync.describe(plan))
                Terminal.out("dev: watching; Ctrl-C ends the session and restores the deployed containers\n")
            }
            // A change that needs a new image runs the dev pipeline again: the build decision
            // rebuilds what changed, create_deployments puts the new original in place of the
            // swapped-out one, start_dev makes the dev container again from it, and the syncs
            // reconnect to it by name and sync it whole.
            let (global, flags, pipelineFlags) = (self.global, self.flags, self.pipelineFlags)
            // `terminal` (or `attach`) of an entry opens in place of the logs; when it ends by
            // itself the session ends.
            let interactive = Self.interactive(loaded: loaded, targets: targets)
            async let ended: Void = {
                guard let interactive else { return }
                await Self.openInteractive(interactive, environment: environment, open: open)
                session.stop()
            }()
            let failures = await session.run(plan, logs: !noLogs && interactive == nil) { request in
                if !silent {
                    Terminal.out(
                        "dev: rebuilding \(request.images.joined(separator: ", ")): \(request.reasons.joined(separator: "; "))\n"
                    )
                }
                do {
                    try await PipelineCommand.run(
                        "dev",
                        pipeline: "dev",
                        command: Self.self,
                        global: global,
                        flags: flags,
                        extra: pipelineFlags,
                        devRebuild: request.images
                    )
                } catch {
                    Terminal.error(
                        "slipway dev: the dev pipeline failed after the change; fix it and save again (the session goes on)"
                    )
                }
            }
            open.cancel()
            await ended
            withExtendedLifetime(watch) {}
            if let name = interrupted.withLock({ $0 }), !silent {
                Terminal.error("slipway dev: \(name): ending the session")
            }
            try await restore(session, silent: silent)
            if !failures.isEmpty && interrupted.withLock({ $0 }) == nil { throw ExitCode.failure }
        }

        func restore(_ session: DevSession, silent: Bool) async throws {
            do {
                let restored = try await session.restore()
                if !silent {
                    for name in restored { Terminal.out("dev: \(name) restored (the deployed container runs again)\n") }
                }
            } catch {
                Terminal.error(
                    "slipway dev: \(error); `slipway run-pipeline purge` or `docker ps -a` shows what is left"
                )
                throw ExitCode.failure
            }
        }

        /// Runs the dev pipeline; the config and the containers its `start_dev` prepared, or nil
        /// (said) when it prepared none.
        func runDevPipeline() async throws -> (LoadedConfig, [DevTarget])? {
            let started = Started()
            try await PipelineCommand.run(
                "dev",
                pipeline: "dev",
                command: Self.self,
                global: global,
                flags: flags,
                extra: pipelineFlags,
                finished: { loaded, directory in
                    started.value.withLock { $0 = (loaded, PipelineState.devStarted(in: directory)) }
                }
            )
            guard let (loaded, targets) = started.value.withLock({ $0 }), !targets.isEmpty else {
                if !global.silent {
                    Terminal.error(
                        "slipway dev: the dev pipeline started no dev session (no start_dev, or no dev entry)"
                    )
                }
                return nil
            }
            return (loaded, targets)
        }

        /// What opens on the terminal instead of the logs: the first entry with `terminal` (a
        /// shell, or its `command`, in the dev container), else the first with `attach`.
        struct Interactive: Sendable {
            var container: String
            var attach: Bool
            var command: [String]
            var workDir: String?
            var tty: Bool
        }

        static func interactive(loaded: LoadedConfig, targets: [DevTarget]) -> Interactive? {
            for target in targets {
                for c in loaded.config.devPod(target.dev)?.containers ?? [] {
                    if let t = c.terminal, t.enabled {
                        return Interactive(
                            container: target.name,
                            attach: false,
                            command: t.command.map { ["sh", "-c", $0] } ?? [],
                            workDir: t.workDir,
                            tty: !t.disableTTY
                        )
                    }
                }
            }
            for target in targets {
                for c in loaded.config.devPod(target.dev)?.containers ?? [] {
                    if let a = c.attach, a.enabled {
                        return Interactive(
                            container: target.name,
                            attach: true,
                            command: [],
                            workDir: nil,
                            tty: !a.disableTTY
                        )
                    }
                }
            }
            return nil
        }

        /// Runs the terminal or the attachment until it ends by itself. A dev container made
        /// again meanwhile (a rebuild) ends the connection, not the session: it is opened again.
        /// The terminal or attachment open now, so that a signal can end it.
        final class OpenTerminal: Sendable {
            let state = Mutex<(ContainerTerminal?, Bool)>((nil, false))

            func cancel() {
                let current = state.withLock { s in
                    s.1 = true
                    return s.0
                }
                current?.cancel()
            }

            /// Records `terminal` as open; false when the session already ended.
            func set(_ terminal: ContainerTerminal?) -> Bool {
                state.withLock { s in
                    s.0 = terminal
                    return !s.1
                }
            }

            var cancelled: Bool { state.withLock { $0.1 } }
        }

        static func openInteractive(_ what: Interactive, environment: [String: String], open: OpenTerminal) async {
            let resolver: ContainerResolver
            do {
                resolver = try ContainerResolver(environment: environment)
            } catch {
                Terminal.error("slipway dev: \(error)")
                return
            }
            signal(SIGPIPE, SIG_IGN)
            let stdinIsTerminal = isatty(STDIN_FILENO) == 1
            let tty = what.tty && stdinIsTerminal
            while !open.cancelled {
                let found = try? resolver.matches(ContainerSelector(container: what.container)).first { $0.running }
                guard let container = found else {
                    try? await Task.sleep(for: .milliseconds(500))
                    continue
                }
                let size = RawTerminal.size(STDIN_FILENO) ?? RawTerminal.size(STDOUT_FILENO)
                let session: ContainerTerminal
                do {
                    session =
                        what.attach
                        ? try ContainerTerminal.attach(resolver: resolver, container: container, tty: tty, size: size)
                        : try ContainerTerminal.start(
                            resolver: resolver,
                            container: container,
                            command: what.command,
                            workingDirectory: what.workDir,
                            tty: tty,
                            size: size ?? (tty ? TerminalSize(rows: 24, columns: 80) : nil),
                            environment: tty ? ["TERM=\(environment["TERM"] ?? "xterm")"] : []
                        )
                } catch {
                    Terminal.error("slipway dev: \(error)")
                    try? await Task.sleep(for: .milliseconds(500))
                    continue
                }
                guard open.set(session) else {
                    session.cancel()
                    return
                }
                let resizes =
                    tty
                    ? SignalWatch([SIGWINCH]) { _ in
                        if let size = RawTerminal.size(STDIN_FILENO) { session.resize(size) }
                    } : nil
                let saved = tty ? RawTerminal.enable(STDIN_FILENO) : nil
                let result: Int?? = try? await session.run(
                    input: { RawTerminal.readInput() },
                    output: { stream, bytes in RawTerminal.show(stream, bytes) }
                )
                if let saved { RawTerminal.restore(STDIN_FILENO, saved) }
                resizes?.stop()
                _ = open.set(nil)
                // Ended by itself (an exit code): the session ends with it. Cut off (the
                // container went away): open it again in the new one.
                if case .some(.some) = result { return }
                if case .some(.none) = result { return }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
