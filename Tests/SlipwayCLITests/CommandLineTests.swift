import ArgumentParser
import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCLI

/// The CLI parses, calls the core and renders: it starts no process, opens no socket and
/// writes no state file of its own. Checked on its sources (comments and string literals left
/// out); writing to the terminal (`Terminal`, `FileHandle.standardOutput`, and the controlling
/// terminal `/dev/tty` that the config's questions are asked on) is what it is for.
@Suite struct CLIBoundaryTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/SlipwayCLI").path

    /// The APIs that start processes, open sockets or write files, as they appear in Swift code.
    static let forbidden: [(pattern: String, what: String)] = [
        ("Subprocess", "starts a process"), ("ProcessRunner", "starts a process"), ("ChildProcess", "starts a process"),
        ("posix_spawn", "starts a process"), ("Process(", "starts a process"), ("fork(", "starts a process"),
        ("execv", "starts a process"), ("popen(", "starts a process"), ("system(", "starts a process"),
        ("Shell.run", "starts a process"),
        ("socket(", "opens a socket"), ("connect(", "opens a socket"), ("bind(", "opens a socket"),
        ("accept(", "opens a socket"), ("AgentClient", "opens a socket"), ("DockerAPI", "opens a socket"),
        ("AtomicFile", "writes a file"), ("write(toFile", "writes a file"), (".write(to:", "writes a file"),
        ("createFile(", "writes a file"), ("FileHandle(forWriting", "writes a file"),
        ("FileHandle(forUpdating", "writes a file"),
        ("open(", "writes a file"), ("fopen(", "writes a file"), ("mkdir(", "writes a file"),
        ("rename(", "writes a file"),
        ("unlink(", "writes a file"), ("removeItem(", "writes a file"), ("createDirectory(", "writes a file"),
        ("moveItem(", "writes a file"), ("copyItem(", "writes a file"), ("mkdtemp(", "writes a file"),
    ]

    @Test func theCLIStartsNoProcessOpensNoSocketAndWritesNoFile() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.sources).filter { $0.hasSuffix(".swift") }
        #expect(files.count >= 10, "the CLI's sources were not found at \(Self.sources)")
        var found: [String] = []
        for file in files.sorted() {
            let source = try String(contentsOfFile: Self.sources + "/" + file, encoding: .utf8)
            let raw = source.split(separator: "\n", omittingEmptySubsequences: false)
            let code = SwiftSource.code(source)
            for (n, line) in code.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                for (pattern, what) in Self.forbidden where Self.contains(line, pattern) {
                    // Opening the controlling terminal, named on the same line, is the terminal.
                    if pattern == "open(", n < raw.count, raw[n].contains("open(\"/dev/tty\"") { continue }
                    found.append("Sources/SlipwayCLI/\(file):\(n + 1) \(what): \(pattern)")
                }
            }
        }
        let listed = found.joined(separator: "\n")
        #expect(found.isEmpty, "\(listed)")
    }

    /// `pattern` as a whole word at its start (so `reopen(` does not count as `open(`).
    static func contains(_ line: Substring, _ pattern: String) -> Bool {
        var rest = line[...]
        while let range = rest.range(of: pattern) {
            let before = range.lowerBound == line.startIndex ? nil : line[line.index(before: range.lowerBound)]
            if let before, before.isLetter || before.isNumber || before == "_" {
                rest = rest[range.upperBound...]
                continue
            }
            return true
        }
        return false
    }

    @Test func theCheckFindsAForbiddenCall() {
        let code = SwiftSource.code(
            "let x = try ProcessRunner.run(\"docker\") // ChildProcess\nlet s = \"socket(\"\nreopen(x)\n"
        )
        let lines = code.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(Self.contains(lines[0], "ProcessRunner"))
        #expect(!Self.contains(lines[0], "ChildProcess"), "comments are left out")
        #expect(!Self.contains(lines[1], "socket("), "strings are left out")
        #expect(!Self.contains(lines[2], "open("), "a longer name is not the call")
    }
}

/// The flags DevSpace users type, parsed in-process as the binary parses them.
@Suite struct CommandParsingTests {
    @Test func buildTakesDevSpacesFlags() throws {
        let parsed = try SlipwayCommand.parseAsRoot([
            "build", "app", "-t", "v1", "--tag", "v2,v3", "-b", "--build-sequential", "--max-concurrent-builds", "2",
            "--skip-push", "--kube-context", "kind-dev", "-n", "team", "--var", "A=1", "-p", "prod", "--config",
            "other.yaml",
        ])
        let build = try #require(parsed as? SlipwayCommand.Build)
        #expect(build.images == ["app"])
        #expect(build.flags.tags == ["v1", "v2,v3"])
        #expect(build.flags.forceBuild && build.flags.sequential && build.flags.maxConcurrent == 2)
        #expect(build.flags.push.skipPush)
        #expect(build.global.kubeContext == "kind-dev" && build.global.namespace == "team")
        #expect(build.global.parsedVars.map { "\($0.0)=\($0.1)" } == ["A=1"])
        #expect(build.global.profiles == ["prod"] && build.global.config == "other.yaml")
    }

    @Test func deployRenderPurgeAndRunPipeline() throws {
        let deploy = try #require(
            try SlipwayCommand.parseAsRoot(["deploy", "--force-build", "--force-deploy", "--skip-build", "-t", "x"])
                as? SlipwayCommand.Deploy
        )
        #expect(deploy.flags.forceBuild && deploy.flags.forceDeploy && deploy.flags.skipBuild)
        #expect(deploy.flags.defaults.tags == ["x"])
        let render = try #require(try SlipwayCommand.parseAsRoot(["render", "--skip-push"]) as? SlipwayCommand.Render)
        #expect(render.flags.push.skipPush)
        #expect(try SlipwayCommand.parseAsRoot(["purge", "--debug"]) is SlipwayCommand.Purge)
        let run = try #require(
            try SlipwayCommand.parseAsRoot(["run-pipeline", "dev", "--debug", "--who", "me"])
                as? SlipwayCommand.RunPipeline
        )
        #expect(run.name == "dev")
        // What follows the name is the pipeline's own, split later (global flags among it too).
        #expect(run.pipelineFlags == ["--debug", "--who", "me"])
        let (globals, rest) = GlobalOptions.extract(run.pipelineFlags)
        #expect(globals == ["--debug"] && rest == ["--who", "me"])
    }

    @Test func usageErrorsExit64() {
        for args in [["build", "--max-concurrent-builds", "-1"], ["build", "--nope"], ["print", "--var", "novalue"]] {
            #expect(throws: (any Error).self, "\(args)") { try SlipwayCommand.parseAsRoot(args) }
            do {
                _ = try SlipwayCommand.parseAsRoot(args)
            } catch {
                #expect(SlipwayCommand.exitCode(for: error).rawValue == 64, "\(args)")
            }
        }
    }
}
