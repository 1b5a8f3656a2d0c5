import ArgumentParser
import SlipwayCore

extension SlipwayCommand {
    struct Version: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "version", abstract: "Print slipway's version.")

        func run() async throws {
            Terminal.out(
                "slipway \(ConfigLoader.version) (reads devspace.yaml version v2beta1, as DevSpace \(ConfigLoader.devspaceCompatVersion))\n"
            )
        }
    }
}
