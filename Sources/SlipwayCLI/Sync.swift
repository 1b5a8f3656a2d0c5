import ArgumentParser
import Foundation
import SlipwayCore

extension SlipwayCommand {
    /// `slipway sync`, as `devspace sync`: local paths and paths in running containers kept
    /// equal, both ways.
    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sync",
            abstract: "Sync local paths with paths in running containers, both ways (as devspace sync).",
            discussion: """
                Containers are found on the local Docker engine among those slipway deployed for the \
                config (--branch-env for a branch's environment); a selector that matches several \
                syncs into each. A remote path is relative to the container's working directory. With \
                --config (or DEVSPACE_CONFIG), or a dev entry's name, the config's dev.*.sync[] entries \
                are synced, as devspace sync does. Examples and every sync[] field: docs/sync.md.
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var selection: ContainerSelectionOptions

        @Argument(help: ArgumentHelp("Use this dev entry's sync[] paths (dev.NAME).", valueName: "dev"))
        var dev: String?

        @Option(
            name: .customLong("path"),
            help: ArgumentHelp(
                "LOCAL:REMOTE, split on the last ':' (repeatable; default .:.). REMOTE is relative to the container's working directory.",
                valueName: "local:remote"
            )
        )
        var paths: [String] = []

        @Option(
            name: [.short, .customLong("exclude")],
            help: ArgumentHelp(
                "Exclude a path pattern, both ways (repeatable or comma-separated).",
                valueName: "pattern"
            )
        )
        var excludes: [String] = []

        @Flag(name: .customLong("upload-only"), help: "Only upload (local → container).")
        var uploadOnly = false

        @Flag(name: .customLong("download-only"), help: "Only download (container → local).")
        var downloadOnly = false

        @Option(
            name: .customLong("initial-sync"),
            help: ArgumentHelp(
                "The initial sync strategy: \(SyncConfig.InitialSync.allCases.map(\.rawValue).joined(separator: ", ")) (default preferLocal).",
                valueName: "strategy"
            )
        )
        var initialSync: String?

        @Flag(
            name: .customLong("download-on-initial-sync"),
            inversion: .prefixedNo,
            help: "Download the container's files the local side lacks at the start (preferLocal); off: mirrorLocal."
        )
        var downloadOnInitialSync = true

        @Flag(name: .customLong("no-watch"), help: "Sync once, then exit.")
        var noWatch = false

        @Flag(name: .customLong("polling"), help: "Not supported: slipway's helper watches the container with inotify.")
        var polling = false

        @Option(
            name: .customLong("quiet-ms"),
            help: ArgumentHelp(
                "Send a change after this much quiet (default 5; SLIPWAY_SYNC_QUIET_MS).",
                valueName: "ms"
            )
        )
        var quietMs: Int?

        @Option(
            name: .customLong("burst-ms"),
            help: ArgumentHelp(
                "The quiet to wait for during a burst of changes (default 150; SLIPWAY_SYNC_BURST_MS).",
                valueName: "ms"
            )
        )
        var burstMs: Int?

        @Option(
            name: .customLong("max-delay-ms"),
            help: ArgumentHelp(
                "Send a batch at most this long after its first change (default 1000; SLIPWAY_SYNC_MAX_DELAY_MS).",
                valueName: "ms"
            )
        )
        var maxDelayMs: Int?

        @Flag(name: .customLong("json"), help: "Print for machines (JSON).")
        var json = false

        static let booleans: [CommandFlags.Boolean] = [
            .init("upload-only"), .init("download-only"), .init("no-watch"), .init("polling"), .init("pick"),
            .init("download-on-initial-sync", off: "no-download-on-initial-sync"),
        ]

        func validate() throws {
            if polling {
                throw ValidationError(
                    "--polling is not supported: slipway's helper watches the container with inotify, which costs nothing while idle (DevSpace's polling walks the whole tree every 1.7 s); leave it out"
                )
            }
            if uploadOnly && downloadOnly {
                throw ValidationError("--upload-only cannot be used together with --download-only")
            }
            if let initialSync, SyncConfig.InitialSync(rawValue: initialSync) == nil {
                let valid = SyncConfig.InitialSync.allCases.map(\.rawValue).joined(separator: ", ")
                throw ValidationError("--initial-sync \(initialSync) is not valid; use one of \(valid)")
            }
            for path in paths where path.isEmpty || path.contains("\u{0}") {
                throw ValidationError("--path needs LOCAL:REMOTE (e.g. --path .:/app)")
            }
            if let dev, dev.isEmpty || dev.hasPrefix("-") {
                throw ValidationError("\(dev): not the name of a dev entry")
            }
            for (flag, value) in [("--quiet-ms", quietMs), ("--burst-ms", burstMs), ("--max-delay-ms", maxDelayMs)] {
                if let value, value < 0 || value > SyncTiming.limit {
                    throw ValidationError("\(flag) must be a number of milliseconds from 0 to \(SyncTiming.limit)")
                }
            }
            if let q = quietMs, let b = burstMs, let m = maxDelayMs,
                let problem = SyncTiming.orderProblem((q, "--quiet-ms"), (b, "--burst-ms"), (m, "--max-delay-ms"))
            {
                throw ValidationError(problem)
            }
        }

        /// The request the flags make (the timing is resolved with the environment in `run`).
        func request(timing: SyncTiming, workingDirectory: String, configNamed: Bool) -> SyncRequest {
            SyncRequest(
                selector: selection.selector(),
                pick: selection.pick,
                wait: selection.wait,
                waitTimeout: selection.waitTimeout.map { .seconds($0) },
                paths: paths,
                excludes: excludes,
                uploadOnly: uploadOnly,
                downloadOnly: downloadOnly,
                initialSync: initialSync.flatMap(SyncConfig.InitialSync.init(rawValue:)),
                downloadOnInitialSync: downloadOnInitialSync,
                noWatch: noWatch,
                timing: timing,
                devName: dev,
                configNamed: configNamed,
                workingDirectory: workingDirectory
            )
        }

        func run() async throws {
            if let given = selection.kubernetesRequest(global) {
                Terminal.error("slipway: \(ContainerSelectionError.kubernetesNotSupported(given: given))")
                throw ExitCode.failure
            }
            let environment = try global.environment()
            let directory = try global.workingDirectory()
            let timing: SyncTiming
            do {
                timing = try SyncTiming.resolve(
                    quiet: quietMs,
                    burst: burstMs,
                    maximumDelay: maxDelayMs,
                    environment: environment
                )
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }

            // The config: named (its sync[] entries are used, as devspace sync does), or found
            // here or above (the scope of the selectors, the images of --image-selector).
            let options = try global.loadOptions()
            let configNamed = global.config != nil || !(environment["DEVSPACE_CONFIG"] ?? "").isEmpty
            let found = FileManager.default.fileExists(atPath: ConfigLoader.locate(options).absolute)
            var loaded: LoadedConfig?
            if configNamed || dev != nil || (found && selection.container == nil) {
                loaded = try await global.load()
            }

            let resolver: ContainerResolver
            do {
                resolver = try ContainerResolver(environment: environment)
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }
            let plan: SyncPlan
            do {
                plan = try await SyncPlanner.plan(
                    request(timing: timing, workingDirectory: directory, configNamed: configNamed),
                    loaded: loaded,
                    resolver: resolver,
                    choose: Self.chooser(silent: global.silent)
                )
            } catch {
                Terminal.error(error.description.split(separator: "\n").map { "slipway: " + $0 }.first ?? "slipway:")
                for line in error.description.split(separator: "\n").dropFirst() { Terminal.error(String(line)) }
                throw ExitCode.failure
            }
            // Held until the process ends, whichever way it ends.
            let lock: SyncLock
            do {
                lock = try SyncLock.acquire(
                    plan,
                    directory: SyncLock.directory(for: directory, environment: environment)
                )
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }
            if !global.silent { for note in plan.notes { Terminal.error("note: \(note)") } }
            if json {
                Terminal.out(plan.json() + "\n")
            } else if !global.silent {
                Terminal.out(Self.describe(plan))
            }
            guard let program = SyncHelperProgram.program(besides: selfExecutable(), environment: environment) else {
                Terminal.error(
                    "slipway: \(SyncHelperProgram.programName), the program sync runs inside the container, is not installed beside slipway nor on PATH; reinstall slipway (./install.sh installs it)"
                )
                throw ExitCode.failure
            }
            let stateDirectory = loaded?.directory ?? directory
            let render = SyncEventRenderer(plan: plan, json: json, silent: global.silent, debug: global.debug)
            let failures = await SyncRunner.run(
                plan,
                program: program,
                stateDirectory: stateDirectory,
                environment: environment,
                events: { target, event in render.show(target, event) }
            )
            withExtendedLifetime(lock) {}
            for failure in failures { Terminal.error("slipway: \(failure.message)") }
            if !failures.isEmpty { throw ExitCode.failure }
        }

        /// Asks on the terminal when standard input is one (and not `--silent`).
        static func chooser(silent: Bool) -> SyncPlanner.Chooser? {
            guard QuestionPrompt.asker(silent: silent) != nil else { return nil }
            return { question, options in
                let answer = QuestionPrompt.ask(
                    VariableQuestion(variable: "", text: question, defaultValue: options.first, options: options)
                )
                guard let answer else { return nil }
                return options.firstIndex(of: answer) ?? (answer.isEmpty ? 0 : nil)
            }
        }

        /// The plan, one block per target.
        static func describe(_ plan: SyncPlan) -> String {
            let t = plan.timing
            var out =
                "sync \(plan.targets.count) path\(plan.targets.count == 1 ? "" : "s")"
                + " (batches after \(t.quietMilliseconds) ms of quiet, \(t.burstMilliseconds) ms in a burst, at most \(t.maximumDelayMilliseconds) ms):\n"
            for target in plan.targets {
                out += "  \(target.summary)\n"
                out += "      from \(target.origin); container \(target.container.summary)\n"
                out += "      excludes: \(target.excludePaths.joined(separator: ", "))\n"
                if !target.uploadExcludePaths.isEmpty {
                    out += "      not uploaded: \(target.uploadExcludePaths.joined(separator: ", "))\n"
                }
                if !target.downloadExcludePaths.isEmpty {
                    out += "      not downloaded: \(target.downloadExcludePaths.joined(separator: ", "))\n"
                }
                if !target.localRootExists {
                    out += "      \(target.localRoot) does not exist yet: the download makes it\n"
                }
            }
            return out
        }
    }
}
