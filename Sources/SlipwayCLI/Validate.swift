import ArgumentParser
import SlipwayCore

extension SlipwayCommand {
    struct Validate: AsyncParsableCommand {
        // The name is spelled out: deriving it from the type costs a dynamic cast per run.
        static let configuration = CommandConfiguration(
            commandName: "validate",
            abstract: "Check the config: syntax, keys, types, DevSpace's rules and variables."
        )

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let loaded = try await global.load()
            let c = loaded.config
            if !global.silent {
                Terminal.out(
                    "\(loaded.displayPath): valid (\(c.images.count) images, \(c.deployments.count) deployments, \(c.pipelines.count) pipelines)\n"
                )
                for key in c.notYetSupported {
                    Terminal.out("note: \(key) is loaded but slipway does not run it yet\n")
                }
            }
        }
    }
}
