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

    @Option(name: .customLong("push-timeout"), help: "Stop a push that makes no progress for this many seconds.")
    var pushTimeout: Double = 60

    func validate() throws {
        if !(pushTimeout > 0 && pushTimeout <= 86_400) {
            throw ValidationError("--push-timeout must be a number of seconds above 0 (at most 86400)")
        }
    }

    var policy: PushPolicy { PushPolicy(stallTimeout: .milliseconds(Int64(pushTimeout * 1000))) }
}

/// DevSpace's pipeline flags (`AddPipelineFlags`): the defaults of the built-in functions.
struct PipelineFlags: ParsableArguments {
    @Flag(name: [.customShort("b"), .customLong("force-build")], help: "Rebuild every image build_images builds.")
    var forceBuild = false

    @Flag(name: .customLong("skip-build"), help: "build_images builds nothing (uses what the cache knows).")
    var skipBuild = false

    @Flag(name: .customLong("build-sequential"), help: "Build one image at a time.")
    var sequential = false

    @Option(name: .customLong("max-concurrent-builds"), help: "At most N builds at once (0: no limit).")
    var maxConcurrent = 0

    @Option(name: [.short, .customLong("tag")], help: "Tags for every built image (repeatable or comma-separated).")
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

    func validate() throws {
        if maxConcurrent < 0 { throw ValidationError("--max-concurrent-builds must be 0 or more") }
    }

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
    }

    var defaults: PipelineState.FunctionDefaults {
        var d = PipelineState.FunctionDefaults()
        d.tags = tags.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
            .filter { !$0.isEmpty }
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
        return d
    }
}

/// Runs a pipeline for a command (`deploy`, `purge`, `render`, `run-pipeline NAME`).
enum PipelineCommand {
    static func run(
        _ name: String,
        global: GlobalOptions,
        flags: PipelineFlags,
        render: Bool = false,
        extra: [String]
    ) async throws {
        // Global flags may follow the pipeline's name, as DevSpace (cobra) accepts them.
        var global = global
        let (globals, extra) = GlobalOptions.extract(extra)
        if !globals.isEmpty {
            do {
                global.merge(try GlobalOptions.parse(globals))
            } catch {
                Terminal.error("slipway: \(GlobalOptions.message(for: error))")
                throw ExitCode(64)
            }
        }
        let loaded = try await global.load()
        let declared = loaded.config.pipeline(name)?.flags ?? []
        let pipelineFlags: [String: String]
        var flags = flags
        do {
            // After the pipeline's name come its own flags and slipway's, in any order.
            let (own, others) = PipelineFlagParser.split(extra, declared: declared)
            pipelineFlags = try PipelineFlagParser.parse(own, declared: declared, pipeline: name)
            if !others.isEmpty { flags.merge(try PipelineFlags.parse(others)) }
        } catch let error as PipelineError {
            Terminal.error("slipway: \(error.message)")
            throw ExitCode(64)
        } catch {
            let own = declared.map { "--\($0.name)" }.joined(separator: ", ")
            Terminal.error(
                "slipway: \(PipelineFlags.message(for: error)); pipeline \(name) takes "
                    + (own.isEmpty ? "no flags of its own" : own)
                    + " besides the flags of `slipway run-pipeline --help`"
            )
            throw ExitCode(64)
        }
        var defaults = flags.defaults
        if render { defaults.render = true }
        defaults.silent = global.silent
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
                environment: ProcessInfo.processInfo.environment
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
            discussion: """
                The pipeline runs as a bash script (set -e unless continueOnError) in the config's
                directory, with the config's variables in its environment and the built-in
                functions build_images, create_deployments, purge_deployments,
                ensure_pull_secrets, run_pipelines, run_default_pipeline, run_dependencies,
                get_image, get_flag, is_equal, is_empty, is_true, is_in, is_os (also with a __
                prefix). The flags below become the defaults of those functions' flags, as in
                DevSpace; the pipeline's own flags follow its name.
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var flags: PipelineFlags

        @Argument(help: "The pipeline to run.")
        var name: String

        @Argument(
            parsing: .captureForPassthrough,
            help: "The pipeline's own flags (--name value), and the flags above."
        )
        var pipelineFlags: [String] = []

        func run() async throws {
            try await PipelineCommand.run(name, global: global, flags: flags, extra: pipelineFlags)
        }
    }

    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "deploy",
            abstract: "Run the deploy pipeline: build the images, then create the deployments with their tags."
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var flags: PipelineFlags

        @Argument(parsing: .captureForPassthrough, help: "The pipeline's own flags (--name value).")
        var pipelineFlags: [String] = []

        func run() async throws {
            try await PipelineCommand.run("deploy", global: global, flags: flags, extra: pipelineFlags)
        }
    }

    struct Render: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "render",
            abstract: "Run the deploy pipeline with --render: print what would be deployed, deploy nothing."
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var flags: PipelineFlags

        @Argument(parsing: .captureForPassthrough, help: "The pipeline's own flags (--name value).")
        var pipelineFlags: [String] = []

        func run() async throws {
            try await PipelineCommand.run("deploy", global: global, flags: flags, render: true, extra: pipelineFlags)
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "purge",
            abstract: "Run the purge pipeline: remove what the deployments created."
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var flags: PipelineFlags

        @Argument(parsing: .captureForPassthrough, help: "The pipeline's own flags (--name value).")
        var pipelineFlags: [String] = []

        func run() async throws {
            try await PipelineCommand.run("purge", global: global, flags: flags, extra: pipelineFlags)
        }
    }
}
