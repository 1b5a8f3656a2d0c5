import Foundation
import SlipwayTestSupport
import Testing

/// The built `slipway` binary, run as a real process. A missing binary is always a failure.
enum SlipwayBinary {
    static let path: String = {
        if let p = ProcessInfo.processInfo.environment["SLIPWAY_BIN"] { return p }
        // `swift test` runs the test bundle from the build directory that also holds the binary.
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [
            bundle.appendingPathComponent("slipway"),
            bundle.deletingLastPathComponent().appendingPathComponent("slipway"),
        ]
        where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate.path
        }
        return bundle.appendingPathComponent("slipway").path
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        /// True when the process was killed by a signal (a crash or a trap).
        var crashed: Bool
    }

    /// Runs slipway with `arguments` in `directory`, with a clean, fixed environment plus `env`,
    /// killed after `timeout` seconds (exit 124, recorded as an issue).
    static func run(
        _ arguments: [String],
        in directory: String,
        env: [String: String] = [:],
        timeout: Int = 60
    ) throws -> Result {
        #expect(FileManager.default.isExecutableFile(atPath: path), "slipway binary not found at \(path)")
        var environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": ProcessInfo.processInfo.environment["HOME"] ?? "/root",
            "LANG": "C.UTF-8",
        ]
        if let ci = ProcessInfo.processInfo.environment["CI"] { environment["CI"] = ci }
        for (k, v) in env { environment[k] = v }
        // posix_spawn through the shared helper: Foundation's Process is not safe to start
        // from parallel tests on Linux.
        let r = try sh(
            ["timeout", "--kill-after=5", String(timeout), path] + arguments,
            cwd: directory,
            env: environment,
            replacingEnvironment: true
        )
        if r.status == 124 || r.status == 137 {
            Issue.record("slipway \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        // `timeout` exits 128+N when the command dies of signal N (a crash or a trap).
        return Result(status: r.status, stdout: r.stdout, stderr: r.stderr, crashed: r.status > 128 && r.status != 137)
    }

    /// The package's `Tests/SlipwayCLITests/Fixtures` directory.
    static let fixtures: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
}
