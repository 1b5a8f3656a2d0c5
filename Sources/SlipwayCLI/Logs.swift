import ArgumentParser
import Foundation
import SlipwayCore

#if canImport(Glibc)
import Glibc
#endif

extension SlipwayCommand {
    /// `slipway logs`, as `devspace logs`: a running container's log.
    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "logs",
            abstract: "Print the log of a running container (as devspace logs).",
            discussion: """
                The container is chosen as slipway enter and slipway sync choose (docs/enter-logs.md). \
                Its stdout goes to stdout and its stderr to stderr (one stream for a container with a \
                terminal). With -f the log is followed until the container stops or Ctrl-C.
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var selection: ContainerSelectionOptions

        @Flag(name: [.short, .customLong("follow")], help: "Keep printing what the container writes.")
        var follow = false

        @Option(
            name: .customLong("lines"),
            help: ArgumentHelp("How many of the last lines to print first (default 200).", valueName: "n")
        )
        var lines = 200

        func validate() throws {
            if lines < 0 { throw ValidationError("--lines must be 0 or more") }
        }

        func run() async throws {
            let (resolver, container) = try await selection.one(global)
            let log: ContainerLog
            do {
                log = try ContainerLog.start(resolver: resolver, container: container, lines: lines, follow: follow)
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }
            // A closed stdout is a failed write (the session ends), not the end of the process.
            signal(SIGPIPE, SIG_IGN)
            let ended = SignalRecord()
            let signals = SignalWatch([SIGINT, SIGTERM, SIGHUP]) { number in
                ended.record(number)
                log.cancel()
            }
            defer { signals.stop() }
            do {
                _ = try await log.run { stream, bytes in RawTerminal.show(stream, bytes) }
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }
            // A signal ends a followed log with the shell's convention, 128 + N.
            let number = ended.signal
            if number != 0 { throw ExitCode(128 + number) }
        }
    }
}
