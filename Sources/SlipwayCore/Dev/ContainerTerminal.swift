internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// A terminal's size in character cells.
public struct TerminalSize: Sendable, Equatable {
    public var rows: Int
    public var columns: Int

    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
    }
}

/// Why `enter` or `logs` could not run, or stopped.
public enum ContainerSessionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The engine refused or broke off a call; `action` says which (`start sh in api-main`).
    case engine(action: String, reason: String)

    public var description: String {
        switch self {
        case .engine(let action, let reason): return "cannot \(action): \(reason)"
        }
    }
}

/// A command running in a container for `slipway enter` (as `devspace enter` runs one): an
/// exec with stdin attached and, with `tty`, a terminal. The caller hands it its input and takes
/// its output through closures; the process's exit code is the result.
///
/// `@unchecked Sendable`: the stream is read by one thread (``run(input:output:)``) and written
/// by one (the input pump); ``resize(_:)`` and ``cancel()`` are calls the engine and the socket
/// take from any thread; `cancelled` is guarded by `lock`.
public final class ContainerTerminal: @unchecked Sendable {
    /// DevSpace's default: bash when the container has it, else sh (`terminal.go`'s
    /// `getCommand`).
    public static let defaultCommand = ["sh", "-c", "command -v bash >/dev/null 2>&1 && exec bash || exec sh"]

    public let container: SelectedContainer
    public let command: [String]
    public let tty: Bool
    let api: DockerAPI
    /// The exec's ID; empty when attached to the container's own process (``attach(resolver:container:tty:size:)``).
    let execID: String
    let stream: DockerHijackedStream
    private let lock = NSLock()
    private var cancelled = false

    init(
        api: DockerAPI,
        container: SelectedContainer,
        command: [String],
        tty: Bool,
        execID: String,
        stream: DockerHijackedStream
    ) {
        self.api = api
        self.container = container
        self.command = command
        self.tty = tty
        self.execID = execID
        self.stream = stream
    }

    /// Creates and starts `command` (empty: ``defaultCommand``) in `container`, in
    /// `workingDirectory` (nil: the container's), with a terminal of `size` when `tty`.
    /// `environment` (`NAME=value`) is added to the container's (`TERM` for a terminal).
    public static func start(
        resolver: ContainerResolver,
        container: SelectedContainer,
        command: [String],
        workingDirectory: String?,
        tty: Bool,
        size: TerminalSize?,
        environment: [String] = []
    ) throws(ContainerSessionError) -> ContainerTerminal {
        let api = resolver.api
        let command = command.isEmpty ? defaultCommand : command
        let action = "start \(command.joined(separator: " ")) in \(container.name)"
        let config = DockerExecConfig(
            command: command,
            environment: environment,
            workingDirectory: workingDirectory,
            tty: tty,
            stdin: true
        )
        let id: String
        let stream: DockerHijackedStream
        do {
            id = try api.createExec(container: container.id, config)
            stream = try api.startExec(id, tty: tty)
        } catch {
            throw .engine(action: action, reason: error.description)
        }
        let terminal = ContainerTerminal(
            api: api,
            container: container,
            command: command,
            tty: tty,
            execID: id,
            stream: stream
        )
        if tty, let size { terminal.resize(size, attempts: 10) }
        return terminal
    }

    /// Attaches to `container`'s own process (its stdin, stdout and stderr, as `docker attach`):
    /// what `dev.*.attach` opens in place of the logs. The session ends when the process does
    /// (``run(input:output:)`` then returns 0) or on ``cancel()``.
    public static func attach(
        resolver: ContainerResolver,
        container: SelectedContainer,
        tty: Bool,
        size: TerminalSize?
    ) throws(ContainerSessionError) -> ContainerTerminal {
        let api = resolver.api
        let stream: DockerHijackedStream
        do {
            stream = try api.attach(container: container.id, stdin: true, tty: tty)
        } catch {
            throw .engine(action: "attach to \(container.name)", reason: error.description)
        }
        let terminal = ContainerTerminal(
            api: api,
            container: container,
            command: [],
            tty: tty,
            execID: "",
            stream: stream
        )
        if tty, let size { terminal.resize(size, attempts: 10) }
        return terminal
    }

    /// Sets the terminal's size (a window resized: SIGWINCH). A failure is left alone: the
    /// process may have ended, and its output ends too.
    public func resize(_ size: TerminalSize) {
        resize(size, attempts: 1)
    }

    /// The first resize may come before the engine has the process running: it is tried again
    /// for a moment, as docker's CLI does.
    func resize(_ size: TerminalSize, attempts: Int) {
        guard tty, size.rows > 0, size.columns > 0 else { return }
        for attempt in 1...max(1, attempts) {
            do {
                if execID.isEmpty {
                    try api.resizeContainer(container.id, height: size.rows, width: size.columns)
                } else {
                    try api.resizeExec(execID, height: size.rows, width: size.columns)
                }
                return
            } catch {
                if attempt < attempts { usleep(10_000) }
            }
        }
    }

    /// Runs the session until the process ends: `input` is called on a thread of its own and
    /// what it returns is written to the process's stdin (nil: end of input — stdin is then
    /// closed, without a terminal); the output is handed to `output` on the calling thread as it
    /// arrives (`output` returns false when it can no longer be written: the session is then
    /// cancelled). Returns the process's exit code, or nil after ``cancel()``.
    public func run(
        input: @escaping @Sendable () -> [UInt8]?,
        output: (DockerOutput.Stream, [UInt8]) -> Bool
    ) throws(ContainerSessionError) -> Int? {
        let pump = Thread { [self] in
            while let bytes = input() {
                guard !bytes.isEmpty else { continue }
                do { try stream.write(bytes, timeout: .seconds(60)) } catch { return }
            }
            // A terminal has no end of input: a ^D is a byte the shell reads. Attached to the
            // container's own process, a closed input would end the attachment (and its output)
            // before the process answered: the output's end decides instead.
            if !tty && !execID.isEmpty { stream.closeInput() }
        }
        pump.stackSize = 1 << 18
        pump.start()
        do {
            while let piece = try stream.next() {
                guard output(piece.stream, piece.bytes) else {
                    cancel()
                    return nil
                }
            }
        } catch {
            if isCancelled { return nil }
            throw .engine(
                action: "read the output of \(command.joined(separator: " ")) in \(container.name)",
                reason: error.description
            )
        }
        stream.cancel()
        if isCancelled { return nil }
        // Attached: the output ends as the container's process does (or detaches).
        if execID.isEmpty { return 0 }
        // The output ends as the process does; its status follows within moments.
        let start = ContinuousClock.now
        while true {
            do {
                let state = try api.inspectExec(execID)
                if !state.running, let code = state.exitCode { return code }
            } catch {
                throw .engine(
                    action: "read the exit status of \(command.joined(separator: " "))",
                    reason: error.description
                )
            }
            if start.duration(to: .now) > api.timeout {
                throw .engine(
                    action: "read the exit status of \(command.joined(separator: " "))",
                    reason: "the engine still reports it running \(api.timeout) after its output ended"
                )
            }
            usleep(2_000)
        }
    }

    /// ``run(input:output:)`` on a thread of its own.
    public func run(
        input: @escaping @Sendable () -> [UInt8]?,
        output: @escaping @Sendable (DockerOutput.Stream, [UInt8]) -> Bool
    ) async throws(ContainerSessionError) -> Int? {
        let result = await onOwnThread {
            Result { () throws(ContainerSessionError) in try self.run(input: input, output: output) }
        }
        return try result.get()
    }

    /// Ends the session from any thread (a signal): the connection is closed, ``run`` returns
    /// nil. The process in the container gets a hang-up on its terminal, as with docker exec.
    public func cancel() {
        lock.withLock { cancelled = true }
        stream.cancel()
    }

    var isCancelled: Bool { lock.withLock { cancelled } }
}

/// A container's log for `slipway logs` (as `devspace logs`): the last lines it wrote, stdout
/// and stderr, and with `follow` what it writes until it stops.
///
/// `@unchecked Sendable`: one thread reads (``run(output:)``); ``cancel()`` may come from any.
public final class ContainerLog: @unchecked Sendable {
    public let container: SelectedContainer
    let stream: DockerOutputStream
    private let lock = NSLock()
    private var cancelled = false

    init(container: SelectedContainer, stream: DockerOutputStream) {
        self.container = container
        self.stream = stream
    }

    /// Opens the log of `container`: its last `lines` lines (nil: all of it), then with
    /// `follow` what it writes from now on.
    public static func start(
        resolver: ContainerResolver,
        container: SelectedContainer,
        lines: Int?,
        follow: Bool
    ) throws(ContainerSessionError) -> ContainerLog {
        do {
            let stream = try resolver.api.logs(container: container.id, follow: follow, tail: lines)
            return ContainerLog(container: container, stream: stream)
        } catch {
            throw .engine(action: "read the log of \(container.name)", reason: error.description)
        }
    }

    /// Hands the log to `output` as it arrives, until its end (without follow), the
    /// container's stop, ``cancel()``, or `output` returning false. True when the log ended
    /// by itself (not cancelled).
    public func run(output: (DockerOutput.Stream, [UInt8]) -> Bool) throws(ContainerSessionError) -> Bool {
        defer { stream.cancel() }
        do {
            while let piece = try stream.next() {
                guard output(piece.stream, piece.bytes) else { return false }
            }
        } catch {
            if isCancelled { return false }
            throw .engine(action: "read the log of \(container.name)", reason: error.description)
        }
        return !isCancelled
    }

    /// ``run(output:)`` on a thread of its own (a followed log may wait for hours).
    public func run(
        output: @escaping @Sendable (DockerOutput.Stream, [UInt8]) -> Bool
    ) async throws(ContainerSessionError) -> Bool {
        let result = await onOwnThread {
            Result { () throws(ContainerSessionError) in try self.run(output: output) }
        }
        return try result.get()
    }

    /// Stops reading, from any thread (a signal).
    public func cancel() {
        lock.withLock { cancelled = true }
        stream.cancel()
    }

    var isCancelled: Bool { lock.withLock { cancelled } }
}
