import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The Docker engine that the integration tests build and run against, and the offline base
/// image they build `FROM`. `.ci/run` provides both through `./install.sh --deps-only`.
///
/// On a machine without an engine the test is skipped; in CI (`CI` set) it always runs and
/// fails when no engine answers, so a broken CI set-up cannot pass as a row of skips.
@Suite struct EngineTests {
    fileprivate static let baseImage = "slipway/busybox:latest"

    /// How long one `docker` call may take before it is killed: a hung daemon must fail the
    /// test, not hang the run. (No time limit on the test itself: Swift Testing counts the
    /// time a test waits for a thread of the loaded 2-core CI's pool, 60–200 s here, and the
    /// two calls are bounded anyway.)
    fileprivate static let commandTimeoutSeconds = 30

    @Test(
        .enabled("no Docker engine answers (CI=true makes this test require one)") {
            if EngineTests.engineRequired { return true }
            return try EngineTests.engineAnswers()
        }
    )
    func engineAnswersAndHasBaseImage() throws {
        let info = try Self.docker("info", "--format", "{{.ServerVersion}}")
        guard info.status == 0 else {
            if Self.engineRequired {
                Issue.record("CI=true but no Docker engine answers; .ci/run must start one. \(info)")
            } else {
                Issue.record("the Docker engine stopped answering during the test. \(info)")
            }
            return
        }
        let serverVersion = info.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!serverVersion.isEmpty, "docker info printed no server version. \(info)")

        let image = try Self.docker("image", "inspect", Self.baseImage)
        #expect(
            image.status == 0,
            "the offline base image \(Self.baseImage) is missing; run ./install.sh --deps-only. \(image)"
        )
    }
}

extension EngineTests {
    /// CI sets `CI` (to `true`); an empty value, `false` or `0` counts as unset.
    fileprivate static var engineRequired: Bool {
        guard let value = ProcessInfo.processInfo.environment["CI"]?.lowercased() else { return false }
        return !["", "0", "false", "no"].contains(value)
    }

    fileprivate static func engineAnswers() throws -> Bool {
        try docker("info", "--format", "{{.ServerVersion}}").status == 0
    }

    /// What a finished command left behind.
    fileprivate struct CommandResult: Sendable, CustomStringConvertible {
        var command: [String]
        var status: Int32
        var killedBySignal: Bool
        var standardOutput: String
        var standardError: String

        var description: String {
            let how = killedBySignal ? "was killed by signal \(status)" : "exited \(status)"
            let lastLines = standardError.split(separator: "\n").suffix(5).joined(separator: "\n")
            return "`\(command.joined(separator: " "))` \(how)" + (lastLines.isEmpty ? "" : ":\n\(lastLines)")
        }
    }

    fileprivate static func docker(_ arguments: String...) throws -> CommandResult {
        try run(["docker"] + arguments)
    }

    /// Runs `command` through `/usr/bin/env` (a missing tool exits 127) with stdin from
    /// /dev/null. Output goes to temporary files, so a chatty tool cannot block on a full
    /// pipe; the process is killed after `commandTimeoutSeconds`.
    private static func run(_ command: [String]) throws -> CommandResult {
        let files = FileManager.default
        let directory = files.temporaryDirectory
            .appendingPathComponent("slipway-engine-tests-\(UUID().uuidString)", isDirectory: true)
        try files.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? files.removeItem(at: directory) }
        let outputURL = directory.appendingPathComponent("stdout")
        let errorURL = directory.appendingPathComponent("stderr")
        guard files.createFile(atPath: outputURL.path, contents: nil),
            files.createFile(atPath: errorURL.path, contents: nil)
        else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: directory.path])
        }
        let output = try FileHandle(forWritingTo: outputURL)
        defer { try? output.close() }
        let error = try FileHandle(forWritingTo: errorURL)
        defer { try? error.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = error

        // Waited for on this thread, not awaited: a continuation would queue behind every test
        // the cooperative pool has yet to start, and on a loaded two-core CI that took 60–200 s.
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        if exited.wait(timeout: .now() + .seconds(commandTimeoutSeconds)) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            exited.wait()
        }
        let status = process.terminationStatus
        return CommandResult(
            command: command,
            status: status,
            killedBySignal: process.terminationReason == .uncaughtSignal,
            standardOutput: String(decoding: try Data(contentsOf: outputURL), as: UTF8.self),
            standardError: String(decoding: try Data(contentsOf: errorURL), as: UTF8.self)
        )
    }
}
