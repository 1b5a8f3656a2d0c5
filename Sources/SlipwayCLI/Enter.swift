import ArgumentParser
import Foundation
import SlipwayCore

#if canImport(Glibc)
import Glibc
#endif

extension SlipwayCommand {
    /// `slipway enter`, as `devspace enter`: a command, or a shell, in a running container.
    struct Enter: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enter",
            abstract: "Run a command, or open a shell, in a running container (as devspace enter).",
            discussion: """
                The container is chosen as slipway sync chooses (docs/enter-logs.md): among those \
                slipway deployed for the config, narrowed by the flags, or by the config's only dev \
                entry. Without a command, bash runs when the container has it, else sh. With a \
                terminal on stdin (or --tty) the command gets a terminal; without one, stdin is \
                passed on and stdout and stderr stay apart. slipway exits with the command's exit code.
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var selection: ContainerSelectionOptions

        @Option(
            name: .customLong("workdir"),
            help: ArgumentHelp("The working directory of the command (default: the container's).", valueName: "dir")
        )
        var workdir: String?

        @Flag(
            name: .customLong("tty"),
            inversion: .prefixedNo,
            help: "Give the command a terminal (default: when stdin is one)."
        )
        var tty: Bool?

        @Argument(
            parsing: .captureForPassthrough,
            help: ArgumentHelp(
                "The command and its arguments, after -- (default: bash, else sh).",
                valueName: "command"
            )
        )
        var command: [String] = []

        static let booleans: [CommandFlags.Boolean] = [.init("tty", off: "no-tty"), .init("pick")]

        func validate() throws {
            if let workdir, workdir.isEmpty || workdir.contains("\u{0}") {
                throw ValidationError("--workdir needs a directory")
            }
        }

        /// The command to run: the arguments without a leading `--`.
        var commandLine: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

        func run() async throws {
            let (resolver, container) = try await selection.one(global)
            let environment = try global.environment()
            let stdinIsTerminal = isatty(STDIN_FILENO) == 1
            let wantsTTY = tty ?? stdinIsTerminal
            let size = RawTerminal.size(STDIN_FILENO) ?? RawTerminal.size(STDOUT_FILENO)
            var extra: [String] = []
            if wantsTTY, let term = environment["TERM"], !term.isEmpty { extra.append("TERM=\(term)") }
            if global.debug {
                Terminal.error("slipway: entering \(container.summary)")
            }
            let session: ContainerTerminal
            do {
                session = try ContainerTerminal.start(
                    resolver: resolver,
                    container: container,
                    command: commandLine,
                    workingDirectory: workdir,
                    tty: wantsTTY,
                    size: size ?? (wantsTTY ? TerminalSize(rows: 24, columns: 80) : nil),
                    environment: extra
                )
            } catch {
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            }

            // A closed stdout is a failed write (the session ends), not the end of the process.
            signal(SIGPIPE, SIG_IGN)
            // Signals end the session; the terminal is put back below, whichever way it ends.
            let ended = SignalRecord()
            let signals = SignalWatch([SIGINT, SIGTERM, SIGHUP, SIGQUIT]) { number in
                ended.record(number)
                session.cancel()
            }
            let resizes =
                wantsTTY && stdinIsTerminal
                ? SignalWatch([SIGWINCH]) { _ in
                    if let size = RawTerminal.size(STDIN_FILENO) { session.resize(size) }
                } : nil
            let saved = wantsTTY ? RawTerminal.enable(STDIN_FILENO) : nil
            let result: Result<Int?, ContainerSessionError>
            do {
                result = .success(
                    try await session.run(
                        input: { RawTerminal.readInput() },
                        output: { stream, bytes in RawTerminal.show(stream, bytes) }
                    )
                )
            } catch {
                result = .failure(error)
            }
            if let saved { RawTerminal.restore(STDIN_FILENO, saved) }
            resizes?.stop()
            signals.stop()

            switch result {
            case .failure(let error):
                Terminal.error("slipway: \(error)")
                throw ExitCode.failure
            case .success(nil):
                // Interrupted (a signal), or stdout closed: the shell's convention, 128 + N.
                let number = ended.signal
                throw ExitCode(number == 0 ? 1 : 128 + number)
            case .success(let code?):
                if code != 0 { throw ExitCode(Int32(truncatingIfNeeded: code)) }
            }
        }
    }
}
