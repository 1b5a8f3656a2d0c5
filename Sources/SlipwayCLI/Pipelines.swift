import ArgumentParser
import Foundation
import SlipwayCore

/// `--skip-push`, `--[no-]skip-push-local-kube`, `--push-timeout`: for `build` and the pipelines.
struct PushFlags: ParsableArguments {
    @Flag(name: .customLong("skip-push"), help: "Push nothing (a kind cluster still gets `kind load`).")
    var skipPush = false

    @Flag(
        name: .customLong("skip-push-local-kube"),
        inversion: .prefixedNo,
        help: "Do not push when the kube context is a local cluster (minikube, kind-*, docker-desktop, orbstack)."
    )
    var skipPushLocalKube = true

    @Option(
        name: .customLong("push-timeout"),
        help: ArgumentHelp("Stop a push that makes no progress for this many seconds.", valueName: "seconds")
    )
    var pushTimeout: Double = 60

    func validate() throws {
        if !(pushTimeout > 0 && pushTimeout <= 86_400) {
            throw ValidationError("--push-timeout must be a number of seconds above 0 (at most 86400)")
        }
    }

    var policy: PushPolicy { PushPolicy(stallTimeout: .milliseconds(Int64(pushTimeout * 1000))) }
}

/// DevSpace's pipeline flags (`AddPipelineFlags`): the defaults of the built-in functions,
/// the pipeline to run, and the dependency selection. Shared by build, deploy, render, purge
/// and run-pipeline, as in DevSpace.
struct PipelineFlags: ParsableArguments {
    @Flag(name: [.customShort("b"), .customLong("force-build")], help: "Rebuild every image build_images builds.")
    var forceBuild = false

    @Flag(name: .customLong("skip-build"), help: "build_images builds nothing (uses what the cache knows).")
    var skipBuild = false

    @Flag(name: .customLong("build-sequential"), help: "Build one image at a time.")
    var sequential = false

    @Option(
        name: .customLong("max-concurrent-builds"),
        help: ArgumentHelp("At most N builds at once (0: no limit).", valueName: "n")
    )
    var maxConcurrent = 0

    @Option(
        name: [.short, .customLong("tag")],
        help: ArgumentHelp("Tags for every built image (repeatable or comma-separated).", valueName: "tag")
    )
    var tags: [String] = []

    @OptionGroup var push: PushFlags

    @Flag(name: [.customShort("d"), .customLong("force-deploy")], help: "Redeploy every deployment.")
    var forceDeploy = false

    @Flag(name: .customLong("skip-deploy"), help: "create_deployments deploys nothing.")
    var skipDeploy = false

    @Flag(name: .customLong("render"), help: "Print what create_deployments would deploy instead of deploying.")
    var render = false

    @Flag(name: .customLong("branch-env"), help: "Deploy under the current git branch's name (its own environment).")
    var branchEnv = false

    @Flag(
        name: .customLong("local"),
        help: "Run component-chart deployments (helm without a chart) as pods on the local Docker engine."
    )
    var local = false

    @Option(
        name: .customLong("pipeline"),
        help: ArgumentHelp(
            "Run this pipeline (of pipelines: or DevSpace's defaults) instead of the command's own.",
            valueName: "name"
        )
    )
    var pipeline: String?

    @Option(
        name: .customLong("dependency"),
        help: ArgumentHelp(
            "run_dependencies runs only these dependencies (repeatable or comma-separated).",
            valueName: "name"
        )
    )
    var dependencies: [String] = []

    @Option(
        name: .customLong("skip-dependency"),
        help: ArgumentHelp(
            "run_dependencies leaves these dependencies out (repeatable or comma-separated).",
            valueName: "name"
        )
    )
    var skipDependencies: [String] = []

    @Flag(
        name: .customLong("sequential-dependencies"),
        help: "Accepted for DevSpace; ignored (slipway runs no dependencies yet)."
    )
    var sequentialDependencies = false

    @Flag(name: .customLong("force-purge"), help: "Accepted for DevSpace; ignored (no deployment is shared here).")
    var forcePurge = false

    @Flag(name: .customLong("show-ui"), help: "Accepted for DevSpace; ignored (slipway has no UI server).")
    var showUI = false

    func validate() throws {
        if maxConcurrent < 0 { throw ValidationError("--max-concurrent-builds must be 0 or more") }
        for tag in CommandFlags.tags(tags) {
            if let problem = CommandFlags.tagProblem(tag, flag: "-t") { throw ValidationError(problem) }
        }
        if let pipeline, let problem = CommandFlags.pipelineNameProblem(pipeline) { throw ValidationError(problem) }
    }

    /// The boolean flags, for pflag's `--flag=false` (`CommandFlags.normalizeBooleans`).
    static let booleans: [CommandFlags.Boolean] = [
        .init("force-build", short: "b"), .init("skip-build"), .init("build-sequential"), .init("skip-push"),
        .init("skip-push-local-kube", off: "no-skip-push-local-kube"), .init("force-deploy", short: "d"),
        .init("skip-deploy"), .init("render"), .init("branch-env"), .init("sequential-dependencies"),
        .init("force-purge"), .init("show-ui"),
    ]

    /// Adds the flags given after the pipeline's name.
    mutating func merge(_ other: PipelineFlags) {
        forceBuild = forceBuild || other.forceBuild
        skipBuild = skipBuild || other.skipBuild
        sequential = sequential || other.sequential
        if other.maxConcurrent != 0 { maxConcurrent = other.maxConcurrent }
        tags += other.tags
        push.skipPush = push.skipPush || other.push.skipPush
        push.skipPushLocalKube = push.skipPushLocalKube && other.push.skipPushLocalKube
        if other.push.pushTimeout != 60 { push.pushTimeout = other.push.pushTimeout }
        forceDeploy = forceDeploy || other.forceDeploy
        skipDeploy = skipDeploy || other.skipDeploy
        render = render || other.render
        branchEnv = branchEnv || other.branchEnv
        local = local || other.local
        pipeline = other.pipeline ?? pipeline
        dependencies += other.dependencies
        skipDependencies += other.skipDependencies
        sequentialDependencies = sequentialDependencies || other.sequentialDependencies
        forcePurge = forcePurge || other.forcePurge
        showUI = showUI || other.showUI
    }

    var defaults: PipelineState.FunctionDefaults {
        var d = PipelineState.FunctionDefaults()
        d.tags = CommandFlags.tags(tags)
        d.skipBuild = skipBuild
        d.forceRebuild = forceBuild
        // --local runs the images on this engine: nothing needs pushing.
        d.skipPush = push.skipPush || local
        d.skipPushLocalKube = push.skipPushLocalKube
        d.sequential = sequential
        d.maxConcurrent = maxConcurrent
        d.pushTimeout = push.pushTimeout
        d.forceRedeploy = forceDeploy
        d.skipDeploy = skipDeploy
        d.render = render
        d.branchEnv = branchEnv
        d.local = local
        d.dependencies = CommandFlags.tags(dependencies)
        d.skipDependencies = CommandFlags.tags(skipDependencies)
        return d
    }

    /// DevSpace's flags given here that change nothing in slipway.
    var ignored: Set<CommandFlags.Ignored> {
        var ignored: Set<CommandFlags.Ignored> = []
        if showUI { ignored.insert(.showUI) }
        if forcePurge { ignored.insert(.forcePurge) }
        if sequentialDependencies { ignored.insert(.sequentialDependencies) }
        return ignored
    }
}

/// Runs a pipeline for a command (`deploy`, `purge`, `render`, `run-pipeline NAME`, `build
/// --pipeline NAME`).
enum PipelineCommand {
    /// Whether `args` ask for help (`-h`, `--help`) before any `--`.
    static func asksForHelp(_ args: [String]) -> Bool {
        args.prefix { $0 != "--" }.contains { $0 == "-h" || $0 == "--help" }
    }

    /// `command`'s help, and the pipeline's own flags (`pipelines.NAME.flags`) when the config
    /// loads, as DevSpace adds them to its help; without a config, the help alone (exit 0).
    static func help(_ command: any ParsableCommand.Type, pipeline: String?, global: GlobalOptions) async -> String {
        var text = SlipwayCommand.helpMessage(for: command, columns: Terminal.width)
        // Help never asks a variable's question: defaults, or the clear error.
        guard let pipeline, var options = try? global.loadOptions() else { return text }
        options.ask = nil
        let located = ConfigLoader.locate(options)
        guard FileManager.default.fileExists(atPath: located.absolute) else { return text }
        do {
            let loaded = try await ConfigLoader.load(options)
            let rows = PipelineFlagParser.helpRows(loaded.config.pipeline(pipeline)?.flags ?? [])
            guard !rows.isEmpty else { return text }
            text += "\nPIPELINE FLAGS (pipelines.\(pipeline).flags of \(loaded.displayPath)):\n"
            text += Terminal.rows(rows)
        } catch {
            let first = error.diagnostics.first.map(\.description) ?? "\(error)"
            text +=
                "\n"
                + Terminal.wrap(
                    "\(located.display) did not load, so pipeline \(pipeline)'s own flags are not listed: \(first)"
                ) + "\n"
        }
        return text
    }

    /// DevSpace's check of the kube context against the one this project last used (`-s`,
    /// `--no-warn`), for the commands that run pipelines: a warning printed, and `global`'s
    /// context and namespace set to the chosen ones, so that the config's `DEVSPACE_CONTEXT`
    /// and the functions see them.
    static func chooseKubeContext(_ global: inout GlobalOptions) throws -> KubeContextChoice {
        let configPath = ConfigLoader.locate(try global.loadOptions()).absolute
        let choice = KubeContextChoice.choose(
            context: global.kubeContext,
            namespace: global.namespace,
            last: LastKubeContext.read(configPath: configPath),
            switchContext: global.switchContext,
            noWarn: global.noWarn,
            environment: try global.environment()
        )
        if let warning = choice.warning, !global.silent { Terminal.error(warning) }
        global.kubeContext = choice.context
        global.namespace = choice.namespace
        return choice
    }

    /// Records where the project ran, as DevSpace does (`lastContext` in `.devspace/cache.yaml`).
    static func record(_ choice: KubeContextChoice, loaded: LoadedConfig, global: GlobalOptions) {
        guard let target = choice.target else { return }
        let recorded = LastKubeContext(context: target.context, namespace: target.namespace)
        if let warning = recorded.record(configPath: loaded.absolutePath), !global.silent { Terminal.error(warning) }
    }

    /// Runs pipeline `pipeline` (the command's own; `--pipeline` among `extra` wins) with the
    /// flags of the command line; `extra` is what followed the command's flags: the pipeline's
    /// own flags, slipway's and global ones, in any order.
    static func run(
        _ commandName: String,
        pipeline ownPipeline: String?,
        command: any ParsableCommand.Type,
        global: GlobalOptions,
        flags: PipelineFlags,
        render: Bool = false,
        extra: [String],
        devRebuild: [String] = [],
        finished: (_ loaded: LoadedConfig, _ stateDirectory: String) -> Void = { _, _ in }
    ) async throws {
        // Global flags may follow the pipeline's name, as DevSpace (cobra) accepts them.
        var global = global
        var flags = flags
        let (globals, afterGlobals) = GlobalOptions.extract(extra)
        if !globals.isEmpty {
            do {
                global.merge(try GlobalOptions.parse(globals))
            } catch {
                Terminal.error("slipway \(commandName): \(GlobalOptions.message(for: error))")
                throw ExitCode(64)
            }
        }
        let extra: [String]
        do {
            let (given, rest) = try PipelineFlagParser.extractPipelineOption(afterGlobals)
            if let given { flags.pipeline = given }
            extra = rest
        } catch {
            Terminal.error("slipway \(commandName): \(error.message)")
            throw ExitCode(64)
        }
        if asksForHelp(extra) {
            Terminal.out(await help(command, pipeline: flags.pipeline ?? ownPipeline, global: global))
            return
        }
        guard let name = flags.pipeline ?? ownPipeline else {
            Terminal.error(
                "slipway \(commandName): name the pipeline to run: slipway run-pipeline NAME (or --pipeline NAME)"
            )
            throw ExitCode(64)
        }
        let environment = try global.environment()
        let choice = try chooseKubeContext(&global)
        let loaded = try await global.load()
        if let missing = PipelineScript.missing(name, in: loaded) {
            Terminal.error(
                (flags.pipeline != nil ? "slipway \(commandName) --pipeline \(name): " : "") + missing.message
            )
            throw ExitCode.failure
        }
        let declared = loaded.config.pipeline(name)?.flags ?? []
        let pipelineFlags: [String: String]
        do {
            // After the pipeline's name come its own flags and slipway's, in any order.
            let (own, others) = PipelineFlagParser.split(extra, declared: declared)
            pipelineFlags = try PipelineFlagParser.parse(own, declared: declared, pipeline: name)
            if !others.isEmpty { flags.merge(try PipelineFlags.parse(others)) }
        } catch let error as PipelineError {
            Terminal.error("slipway \(commandName): \(error.message)")
            throw ExitCode(64)
        } catch {
            let own = declared.map { "--\($0.name)" }.joined(separator: ", ")
            Terminal.error(
                "slipway \(commandName): \(PipelineFlags.message(for: error)); pipeline \(name) declares "
                    + (own.isEmpty ? "no flags of its own" : "the flags \(own)")
                    + ", and slipway's are listed by `slipway \(commandName) --help`"
            )
            throw ExitCode(64)
        }
        if !global.silent { for note in CommandFlags.notes(flags.ignored) { Terminal.error(note) } }
        var defaults = flags.defaults
        if render { defaults.render = true }
        defaults.devRebuild = devRebuild
        defaults.silent = global.silent
        defaults.debug = global.debug
        if !defaults.render { record(choice, loaded: loaded, global: global) }
        let options = try global.loadOptions()
        let status: Int32
        do {
            status = try await PipelineSession.run(
                name,
                loaded: loaded,
                options: options,
                defaults: defaults,
                flags: pipelineFlags,
                executable: selfExecutable(),
                environment: environment,
                output: TerminalPipelineOutput(render: defaults.render, silent: defaults.silent, debug: defaults.debug),
                warm: AgentControl.warmLookup(environment: environment),
                finished: { finished(loaded, $0) }
            )
        } catch {
            Terminal.error(error.message)
            throw ExitCode.failure
        }
        if status != 0 {
            if !global.silent { Terminal.error("pipeline \(name) failed (exit status \(status))") }
            throw ExitCode(status)
        }
    }
}
extension SlipwayCommand {
    struct RunPipeline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run-pipeline",
            abstract: "Run a pipeline of devspace.yaml (or one of DevSpace's defaults: build, deploy, dev, purge).",
            usage: "slipway run-pipeline [<options>] <name> [<pipeline-flags> ...]",
            discussion: """
                The pipeline runs as a bash script (set -e unless continueOnError) in the config's \
                directory, with the config's variables in its environment and the built-in \
                functions build_images, create_deployments, purge_deployments, \
                ensure_pull_secrets, run_pipelines, run_default_pipeline, run_dependencies, \
                get_image, get_flag, is_equal, is_empty, is_true, is_in, is_os (also with a __ \
                prefix). The flags below become the defaults of those functions' flags, as in \
                DevSpace; the pipeline's own flags (pipelines.NAME.flags) follow its name, and \
                `slipway run-pipeline NAME --help` lists them when the config loads.
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var flags: PipelineFlags

        @Argument(help: "The pipeline to run (or give it with --pipeline).")
        var name: String?

        @Argument(
            parsing: .captureForPassthrough,
            help: "The pipeline's own flags (--name value), and the flags above."
        )
        var pipelineFlags: [String] = []

        func run() async throws {
            // DevSpace takes the pipeline as NAME or as --pipeline, not both.
            if let name, flags.pipeline != nil || pipelineFlags.contains(where: { $0.hasPrefix("--pipeline") }) {
                Terminal.error(
                    "slipway run-pipeline: the pipeline is named twice (\(name) and --pipeline); give one of them"
                )
                throw ExitCode(64)
            }
            try await PipelineCommand.run(
                "run-pipeline",
                pipeline: name,
                command: Self.self,
                global: global,
                flags: flags,
                extra: pipelineFlags
            )
        }
    }

    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "deploy",
            abstract: "Run the deploy pipeline: build the images, then create the deployments with their tags.",
            usage: "slipway deploy [<options>] [<pipeline-flags> ...]"
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var flags: PipelineFlags

        @Argument(parsing: .captureForPassthrough, help: "The pipeline's own flags (--name value).")
        var pipelineFlags: [String] = []

        func run() async throws {
            try await PipelineCommand.run(
                "deploy",
                pipeline: "deploy",
                command: Self.self,
                global: global,
                flags: flags,
                extra: pipelineFlags
            )
        }
    }

    struct Render: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "render",
            abstract: "Run the deploy pipeline with --render: print what would be deployed, deploy nothing.",
            usage: "slipway render [<options>] [<pipeline-flags> ...]"
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var flags: PipelineFlags

        @Argument(parsing: .captureForPassthrough, help: "The pipeline's own flags (--name value).")
        var pipelineFlags: [String] = []

        func run() async throws {
            try await PipelineCommand.run(
                "render",
                pipeline: "deploy",
                command: Self.self,
                global: global,
                flags: flags,
                render: true,
                extra: pipelineFlags
            )
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "purge",
            abstract: "Run the purge pipeline: remove what the deployments created.",
            usage: "slipway purge [<options>] [<pipeline-flags> ...]"
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var flags: PipelineFlags

        @Argument(parsing: .captureForPassthrough, help: "The pipeline's own flags (--name value).")
        var pipelineFlags: [String] = []

        func run() async throws {
            try await PipelineCommand.run(
                "purge",
                pipeline: "purge",
                command: Self.self,
                global: global,
                flags: flags,
                extra: pipelineFlags
            )
        }
    }
}
