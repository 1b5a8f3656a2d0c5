import ArgumentParser
import SlipwayCore

extension SlipwayCommand {
    struct Validate: AsyncParsableCommand {
        // The name is spelled out: deriving it from the type costs a dynamic cast per run.
        static let configuration = CommandConfiguration(
            commandName: "validate",
            abstract: "Check the config: syntax, keys, types, DevSpace's rules, variables and what a build reads.",
            discussion: """
                Besides the file itself, it checks what `slipway build` would refuse: each image's \
                context and Dockerfile exist, and its target is a stage of the Dockerfile.
                """
        )

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let loaded = try await global.load()
            do {
                // The build's own checks, so that validate refuses what build would.
                _ = try BuildPlanner.plan(loaded, options: BuildOptions())
            } catch {
                printDiagnostics(error.diagnostics)
                throw ExitCode.failure
            }
            let c = loaded.config
            if !global.silent {
                Terminal.out(
                    "\(loaded.displayPath): valid (\(c.images.count) images, \(c.deployments.count) deployments, \(c.pipelines.count) pipelines)\n"
                )
                for key in c.notYetSupported {
                    Terminal.out("note: \(key) is loaded but slipway does not run it yet\n")
                }
                // dev.*.sync[] fields slipway loads and checks but does not act on, at their places.
                for note in c.syncNotes(file: loaded.displayPath) { Terminal.out("note: \(note)\n") }
            }
        }
    }
}
