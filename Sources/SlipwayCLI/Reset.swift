import ArgumentParser
import Foundation
import SlipwayCore

extension SlipwayCommand {
    /// `slipway reset`: as `devspace reset`, for what slipway keeps (the vars cache).
    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset",
            abstract: "Reset what is remembered for the project (as devspace reset).",
            subcommands: [Vars.self]
        )

        /// `slipway reset vars`, as `devspace reset vars`: forgets the answers to the config's
        /// questions that DevSpace's vars cache (`.devspace/cache.yaml`) remembers.
        struct Vars: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "vars",
                abstract: "Forget the remembered answers to the config's questions (as devspace reset vars).",
                discussion: """
                    Removes `vars` from DevSpace's cache (.devspace/cache.yaml, or cache-<name> for
                    a config of another name); every other key of the file is kept. The next run
                    asks the questions again (or, without a terminal, takes their defaults).
                    """
            )

            @OptionGroup var global: GlobalOptions

            func run() async throws {
                let options = try global.loadOptions()
                let (display, path) = ConfigLoader.locate(options)
                guard FileManager.default.fileExists(atPath: path) else {
                    Terminal.error(
                        "\(display): no config here; run slipway reset vars in the project (or point --config at its devspace.yaml)"
                    )
                    throw ExitCode.failure
                }
                let cache = VariablesCache(configPath: path)
                let count: Int
                do { count = try cache.clear() } catch {
                    Terminal.error(error.description)
                    throw ExitCode.failure
                }
                if !global.silent {
                    Terminal.out(
                        "Successfully deleted all variables"
                            + (count == 0 ? " (none were remembered)\n" : " (\(count) forgotten)\n")
                    )
                }
            }
        }
    }
}
