import ArgumentParser
import SlipwayCore

extension SlipwayCommand {
    struct Print: AsyncParsableCommand {
        // The name is spelled out: deriving it from the type costs a dynamic cast per run.
        static let configuration = CommandConfiguration(
            commandName: "print",
            abstract: "Print the loaded config: profiles applied, variables resolved, DevSpace's adjustments made."
        )

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let loaded = try await global.load()
            do {
                Terminal.out(try YAMLEmitter().emit(loaded.tree))
            } catch {
                Terminal.error("\(loaded.displayPath): \(error.message)")
                throw ExitCode.failure
            }
        }
    }
}
