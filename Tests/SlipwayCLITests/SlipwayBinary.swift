import Foundation
import Testing

/// The built `slipway` binary, run as a real process. A missing binary is always a failure.
enum SlipwayBinary {
    static let path: String = {
        if let p = ProcessInfo.processInfo.environment["SLIPWAY_BIN"] { return p }
        // `swift test` runs the test bundle from the build directory that also holds the binary.
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle.appendingPathComponent("slipway"),
                          bundle.deletingLastPathComponent().appendingPathComponent("slipway")]
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

    /// Runs slipway with `arguments` in `directory`, with a clean, fixed environment plus `env`.
    static func run(_ arguments: [String], in directory: String, env: [String: String] = [:],
                    timeout: TimeInterval = 60) throws -> Result {
        #expect(FileManager.default.isExecutableFile(atPath: path), "slipway binary not found at \(path)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": ProcessInfo.processInfo.environment["HOME"] ?? "/root",
            "LANG": "C.UTF-8",
        ]
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        let outFile = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-out-\(UUID().uuidString)")
        let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outFile)
            try? FileManager.default.removeItem(at: errFile)
        }
        let out = try FileHandle(forWritingTo: outFile)
        let err = try FileHandle(forWritingTo: errFile)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        try process.run()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            done.wait()
            Issue.record("slipway \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        try out.close()
        try err.close()
        return Result(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: outFile, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errFile, encoding: .utf8)) ?? "",
            crashed: process.terminationReason == .uncaughtSignal)
    }

    /// The package's `Tests/SlipwayCLITests/Fixtures` directory.
    static let fixtures: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
}
