internal import Foundation
internal import Subprocess
internal import SystemPackage

/// Runs an engine's command line with its output (stdout and stderr merged, as a terminal
/// shows them) streamed line by line, keeping the last lines for the error.
enum EngineProcess {
    /// How many trailing lines a failed build carries.
    static let keptLines = 20

    struct Outcome: Sendable {
        var status: Int32
        var lastLines: [String]
    }

    /// Runs `executable` (a name looked up on PATH, or a path) with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: variables to set (a value) or unset (nil) on top of slipway's own
    ///     environment.
    ///   - skip: lines to drop from the log and from the kept lines (a tool's banner); blank
    ///     lines right after a dropped line go with it.
    /// - Throws: ``EngineError/toolMissing(engine:tool:)`` when the executable is not found,
    ///   ``EngineError/operationFailed(engine:operation:detail:)`` when it cannot be started.
    ///   A non-zero exit is returned, not thrown.
    static func stream(
        engine: String,
        _ executable: String,
        _ arguments: [String],
        environment: [String: String?] = [:],
        workingDirectory: String? = nil,
        skip: @Sendable (String) -> Bool = { _ in false },
        log: @Sendable (String) -> Void
    ) async throws -> Outcome {
        let exe: Executable = executable.contains("/") ? .path(FilePath(executable)) : .name(executable)
        var updates: [Environment.Key: String?] = [:]
        for (key, value) in environment {
            if let k = Environment.Key(rawValue: key) { updates[k] = value }
        }
        let env: Environment = updates.isEmpty ? .inherit : Environment.inherit.updating(updates)
        do {
            _ = try await exe.resolveExecutablePath(in: env)
        } catch {
            throw EngineError.toolMissing(engine: engine, tool: executable)
        }
        let result: ExecutionResult<[String], SequenceOutput, CombinedErrorOutput>
        do {
            result = try await Subprocess.run(
                exe,
                arguments: Arguments(arguments),
                environment: env,
                workingDirectory: workingDirectory.map { FilePath($0) },
                input: .none,
                output: .sequence,
                error: .combinedWithOutput
            ) { execution in
                var tail: [String] = []
                tail.reserveCapacity(keptLines + 1)
                // A skipped banner takes the blank line after it along.
                var skippedPrevious = false
                for try await line in execution.standardOutput.strings(bufferingPolicy: .unbounded) {
                    if skip(line) || (skippedPrevious && line.isEmpty) {
                        skippedPrevious = true
                        continue
                    }
                    skippedPrevious = false
                    log(line)
                    tail.append(line)
                    if tail.count > keptLines { tail.removeFirst() }
                }
                return tail
            }
        } catch let error as SubprocessError where error.code == .executableNotFound {
            throw EngineError.toolMissing(engine: engine, tool: executable)
        } catch let error as CancellationError {
            throw error
        } catch {
            throw EngineError.operationFailed(
                engine: engine,
                operation: "running \(executable)",
                detail: "\(error)"
            )
        }
        let status: Int32
        switch result.terminationStatus {
        case .exited(let code): status = code
        case .signaled(let signal): status = 128 + signal
        }
        return Outcome(status: status, lastLines: result.closureResult)
    }

    /// ``stream(engine:_:_:environment:workingDirectory:skip:log:)``, stopped (the process is
    /// killed) when it prints nothing for `stallTimeout`: then ``PushFailure/stalled(_:)``.
    static func streamWithStallLimit(
        engine: String,
        _ executable: String,
        _ arguments: [String],
        environment: [String: String?] = [:],
        stallTimeout: Duration,
        log: @escaping @Sendable (String) -> Void
    ) async throws -> Outcome {
        let activity = Activity()
        return try await withThrowingTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                try await stream(engine: engine, executable, arguments, environment: environment) { line in
                    activity.touch()
                    log(line)
                }
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: .milliseconds(200))
                    if activity.idle > stallTimeout { return nil }
                }
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let outcome = first else {
                throw PushFailure.stalled(stallTimeout)
            }
            return outcome
        }
    }

    /// Runs a short command and collects its output (stdout and stderr separately), mapping a
    /// missing executable to ``EngineError/toolMissing(engine:tool:)``.
    static func capture(
        engine: String,
        _ executable: String,
        _ arguments: [String],
        workingDirectory: String? = nil
    ) async throws(EngineError) -> ProcessOutput {
        do {
            let exe: Executable = executable.contains("/") ? .path(FilePath(executable)) : .name(executable)
            _ = try await exe.resolveExecutablePath(in: .inherit)
        } catch {
            throw .toolMissing(engine: engine, tool: executable)
        }
        do {
            return try await ProcessRunner.run(executable, arguments, workingDirectory: workingDirectory)
        } catch {
            throw .operationFailed(engine: engine, operation: "running \(executable)", detail: error.description)
        }
    }
}

/// When a process last showed a sign of life.
///
/// `@unchecked Sendable`: `last`, its only mutable state, is read and written with `lock` held.
final class Activity: @unchecked Sendable {
    private let lock = NSLock()
    private var last = ContinuousClock.now

    func touch() {
        lock.lock()
        last = ContinuousClock.now
        lock.unlock()
    }

    var idle: Duration {
        lock.lock()
        defer { lock.unlock() }
        return last.duration(to: .now)
    }
}
