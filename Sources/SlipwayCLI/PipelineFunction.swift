import ArgumentParser
import Foundation
import SlipwayCore

extension SlipwayCommand {
    /// `slipway __pipeline-function NAME ARGS…`: one built-in function of a running pipeline
    /// (the bash functions of the pipeline's prelude call it). Not for direct use.
    struct PipelineFunction: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "__pipeline-function",
            abstract: "Runs one built-in function of a pipeline.",
            shouldDisplay: false
        )

        @Argument var name: String
        @Argument(parsing: .allUnrecognized) var arguments: [String] = []

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            guard let directory = environment[PipelineState.environmentKey] else {
                Terminal.error("\(name): built-in functions run only inside a pipeline (`slipway run-pipeline`)")
                throw ExitCode.failure
            }
            do {
                let state = try PipelineState.read(from: directory)
                let functions = PipelineFunctions(
                    state: state,
                    directory: directory,
                    environment: environment,
                    executable: selfExecutable(),
                    output: TerminalPipelineOutput(
                        render: state.defaults.render,
                        silent: state.defaults.silent,
                        debug: state.defaults.debug
                    ),
                    warm: AgentControl.warmLookup(environment: environment)
                )
                let status = try await functions.call(name, arguments)
                if status != 0 { throw ExitCode(status) }
            } catch let error as PipelineError {
                Terminal.error("\(name): \(error.message)")
                throw ExitCode.failure
            }
        }
    }
}

/// A pipeline function's output on the terminal: lines on stdout, notes on stderr, builds
/// rendered as `slipway build` renders them — on stderr when rendering, so that standard
/// output is only manifests (`slipway render | kubectl apply -f -`).
struct TerminalPipelineOutput: PipelineOutput {
    let renderer: BuildRenderer
    /// `--silent`: notes are left out (failures are not).
    let silent: Bool

    init(render: Bool = false, silent: Bool = false, debug: Bool = false) {
        renderer = BuildRenderer(json: false, silent: silent, colors: true, toStandardError: render, debug: debug)
        self.silent = silent
    }

    func line(_ text: String) { Terminal.out(text + "\n") }
    func note(_ text: String) {
        if silent && text.hasPrefix("note:") { return }
        Terminal.error(text)
    }
    func build(_ event: BuildEvent) { renderer.render(event) }
    func buildReport(_ report: BuildReport) { renderer.summary(report) }
}
