internal import Foundation
internal import Subprocess
internal import SystemPackage

/// A child process that exited non-zero (or could not start), with the last lines it printed.
public struct ToolFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var tool: String
    public var arguments: [String]
    public var status: Int32
    public var standardError: String

    public var description: String {
        let tail = standardError.split(separator: "\n", omittingEmptySubsequences: true).suffix(10)
            .joined(separator: "\n")
        return "\(tool) exited with status \(status)" + (tail.isEmpty ? "" : ":\n\(tail)")
    }
}

/// The result of a finished child process.
public struct ProcessOutput: Sendable, Equatable {
    public var status: Int32
    public var standardOutput: String
    public var standardError: String
}

/// Runs child processes through swift-subprocess (no shell unless the caller asks for one).
public enum ProcessRunner {
    /// Runs `executable` (a name looked up on PATH, or a path) with `arguments`, collecting
    /// output up to `limit` bytes per stream; `input`, when given, is its standard input.
    /// Never throws for a non-zero exit.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        workingDirectory: String? = nil,
        input: String? = nil,
        limit: Int = 4 << 20
    ) async throws(ToolFailure) -> ProcessOutput {
        let exe: Executable = executable.contains("/") ? .path(FilePath(executable)) : .name(executable)
        let env: Environment
        if let environment {
            var custom: [Environment.Key: String] = [:]
            for (key, value) in environment {
                if let k = Environment.Key(rawValue: key) { custom[k] = value }
            }
            env = .custom(custom)
        } else {
            env = .inherit
        }
        do {
            let directory = workingDirectory.map { FilePath($0) }
            let result =
                if let input {
                    try await Subprocess.run(
                        exe,
                        arguments: Arguments(arguments),
                        environment: env,
                        workingDirectory: directory,
                        input: .array(Array(input.utf8)),
                        output: .string(limit: limit),
                        error: .string(limit: limit)
                    )
                } else {
                    try await Subprocess.run(
                        exe,
                        arguments: Arguments(arguments),
                        environment: env,
                        workingDirectory: directory,
                        output: .string(limit: limit),
                        error: .string(limit: limit)
                    )
                }
            let status: Int32
            switch result.terminationStatus {
            case .exited(let code): status = code
            case .signaled(let signal): status = 128 + signal
            }
            return ProcessOutput(
                status: status,
                standardOutput: result.standardOutput,
                standardError: result.standardError
            )
        } catch {
            throw ToolFailure(tool: executable, arguments: arguments, status: 127, standardError: "\(error)")
        }
    }
}

/// The first executable file named `tool` in the directories of `path` (a PATH value; nil:
/// `/usr/local/bin:/usr/bin:/bin`), or nil.
public func findExecutable(_ tool: String, path: String?) -> String? {
    for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(dir)/\(tool)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}
