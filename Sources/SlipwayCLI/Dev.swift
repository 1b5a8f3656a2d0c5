import ArgumentParser
import SlipwayCore
import Synchronization

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
            let started = Started()
            try await PipelineCommand.run(
                "dev",
                pipeline: "dev",
                command: Self.self,
                global: global,
                flags: flags,
                extra: pipelineFlags,
                finished: { loaded, directory in
                    let targets = PipelineState.devStarted(in: directory).map {
                        DevTarget(dev: $0.dev, name: $0.name, containerID: $0.containerID, branch: $0.branch)
                    }
                    started.value.withLock { $0 = (loaded, targets) }
                }
            )
            guard let (loaded, targets) = started.value.withLock({ $0 }), !targets.isEmpty else {
                if !global.silent {
                    Terminal.error(
                        "slipway dev: the dev pipeline started no dev session (no start_dev, or no dev entry)"
                    )
                }
                return
            }
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
            let watch = session.stopOnSignals { name in interrupted.withLock { $0 = name } }
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
            let failures = await session.run(plan, logs: !noLogs) { request in
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
                        extra: pipelineFlags
                    )
                } catch {
                    Terminal.error(
                        "slipway dev: the dev pipeline failed after the change; fix it and save again (the session goes on)"
                    )
                }
            }
            withExtendedLifetime(watch) {}
            for failure in failures { Terminal.error("slipway dev: \(failure)") }
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
    }
}
