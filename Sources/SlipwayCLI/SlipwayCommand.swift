public import ArgumentParser
import SlipwayCore

#if canImport(Glibc)
import Glibc
#endif

/// The root command: `slipway <subcommand>`.
public struct SlipwayCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "slipway",
        abstract: "Git-driven container builds, tags and deploys for devspace.yaml projects.",
        discussion: """
            slipway reads the devspace.yaml (version v2beta1) that DevSpace projects already have.

            Global flags (--config, --var, -p, -C/--chdir, …) go after the subcommand, as in \
            DevSpace. Boolean flags also take a value, as DevSpace's do: -b=false, \
            --skip-push-local-kube=false.
            """,
        version: "slipway \(ConfigLoader.version)",
        subcommands: [
            Build.self, Deploy.self, Render.self, Purge.self, RunPipeline.self, Print.self, PullSecrets.self,
            Validate.self, Version.self, Reset.self, Agent.self, Hooks.self, StatusCommand.self, Cleanup.self,
            Sync.self, Dev.self, Enter.self, Logs.self, PipelineFunction.self, SyncChannel.self,
        ]
    )

    public init() {}
}

extension SlipwayCommand {
    /// The boolean flags of every command, for pflag's `--flag=false` / `-b=false`, which
    /// DevSpace users type (`CommandFlags.normalizeBooleans`).
    static let booleans: [CommandFlags.Boolean] =
        GlobalOptions.booleans + PipelineFlags.booleans + Build.booleans + Sync.booleans + Enter.booleans + [
            .init("quiet"), .init("json"), .init("follow", short: "f"), .init("wait"), .init("all"),
            .init("show-secrets"),
        ]

    /// `args` (without the program's name) with pflag's booleans rewritten for the parser.
    static func normalized(_ args: [String]) throws(PipelineError) -> [String] {
        // Only a flag given a value is rewritten: without one (nearly every command line) the
        // arguments are the parser's as they are, and the flag tables are not even built.
        guard CommandFlags.mayHaveValuedFlag(args) else { return args }
        // `sync --branch-env=BRANCH` (and enter's, logs') takes a value where `deploy
        // --branch-env` is a switch.
        if let first = args.first, ["sync", "enter", "logs"].contains(first) {
            return try CommandFlags.normalizeBooleans(
                args,
                booleans.filter { !ContainerSelectionOptions.valued.contains($0.long) }
            )
        }
        return try CommandFlags.normalizeBooleans(args, booleans)
    }

    /// Parses `args` as the binary does (pflag's booleans first), in-process.
    static func parseCommandLine(_ args: [String]) throws -> any ParsableCommand {
        do {
            return try parseAsRoot(try normalized(args))
        } catch let error as PipelineError {
            throw ValidationError(error.message)
        }
    }

    /// Parses the process's arguments and runs the command (the async entry point; a plain
    /// `main()` call from top-level code would pick ParsableCommand's synchronous one).
    public static func run() async {
        let arguments: [String]
        do {
            arguments = try normalized(Array(CommandLine.arguments.dropFirst()))
        } catch {
            // A usage error: exit 64, as swift-argument-parser's own.
            SlipwayCommand.exit(withError: ValidationError(error.message))
        }
        let command: any AsyncParsableCommand.Type = SlipwayCommand.self
        await command.main(arguments)
        // The command succeeded (a failure, --help and --version end inside `main` with their
        // exit status). Every command has finished its work and written its state by now:
        // exit without libc's exit handlers and the runtime's teardown, which cost a no-op
        // `slipway build` 0.6 ms. Buffered standard output is flushed first.
        fflush(nil)
        _exit(0)
    }
}
