public import ArgumentParser
import SlipwayCore

/// The root command: `slipway <subcommand>`.
public struct SlipwayCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "slipway",
        abstract: "Git-driven container builds, tags and deploys for devspace.yaml projects.",
        discussion: """
            slipway reads the devspace.yaml (version v2beta1) that DevSpace projects already have.
            Global flags (--config, --var, -p, --chdir, …) go after the subcommand, as in DevSpace.
            """,
        version: "slipway \(ConfigLoader.version)",
        subcommands: [
            Build.self, Deploy.self, Render.self, Purge.self, RunPipeline.self, Print.self, PullSecrets.self,
            Validate.self, Version.self, Reset.self, Agent.self, Hooks.self, StatusCommand.self, Cleanup.self,
            PipelineFunction.self,
        ]
    )

    public init() {}
}

extension SlipwayCommand {
    /// Parses the process's arguments and runs the command (the async entry point; a plain
    /// `main()` call from top-level code would pick ParsableCommand's synchronous one).
    public static func run() async {
        let command: any AsyncParsableCommand.Type = SlipwayCommand.self
        await command.main(nil)
    }
}
