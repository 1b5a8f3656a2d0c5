import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let baseImage = "slipway/busybox:latest"

/// The containers one test makes: each carries the test's own label, every one has no network,
/// and all are removed (through the CLI, independently of the code under test) at the end.
private struct Scratch {
    let api = DockerAPI()
    static let labelKey = "dev.slipway.transport-test"
    let value = UUID().uuidString.lowercased()
    var selector: String { "\(Self.labelKey)=\(value)" }

    func spec(
        _ command: [String],
        labels: [String: String] = [:],
        environment: [String] = [],
        workingDirectory: String? = nil,
        tty: Bool = false,
        openStdin: Bool = false
    ) -> DockerContainerSpec {
        DockerContainerSpec(
            image: baseImage,
            command: command,
            environment: environment,
            labels: labels.merging([Self.labelKey: value]) { $1 },
            workingDirectory: workingDirectory,
            tty: tty,
            openStdin: openStdin,
            networkMode: "none"
        )
    }

    func create(_ command: [String], name: String? = nil, labels: [String: String] = [:]) throws -> String {
        try api.createContainer(name: name, spec: spec(command, labels: labels)).id
    }

    /// Creates and starts a container running `command`.
    func run(_ command: [String]) throws -> String {
        let id = try create(command)
        try api.startContainer(id)
        return id
    }

    func removeAll() {
        _ = try? sh(
            ["sh", "-c", "docker ps -aq --filter \"label=$1\" | xargs -r docker rm -f", "sh", selector],
            cwd: "/"
        )
    }
}

/// Collects a tar in memory.
private final class MemorySink: TarSink {
    var bytes: [UInt8] = []
    func write(_ data: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: data) }
}

/// Sleeps in a loop as PID 1: a process that the stop signal does not end (PID 1 has no default
/// action for SIGTERM), so a stop or restart has to wait for its timeout and kill it.
private let ignoresSIGTERM = ["sleep", "600"]

@Suite(.serialized, .timeLimit(.minutes(3)))
struct DockerTransportTests {
    // MARK: Archive upload

    @Test(.requiresDockerEngine)
    func archiveKeepsModesOwnersTimesAndLinks() throws {
        try withTemporaryDirectory { dir in
            let s = Scratch()
            defer { s.removeAll() }
            let tree = dir + "/tree"
            try FileManager.default.createDirectory(atPath: tree + "/bin", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: tree + "/shared", withIntermediateDirectories: true)
            try writeExecutable("#!/bin/sh\necho hi from \"$0\"\n", to: tree + "/bin/run.sh", mode: 0o755)
            try writeExecutable("not for others\n", to: tree + "/secret", mode: 0o600)
            #expect(chmod(tree + "/bin", 0o755) == 0)
            #expect(chmod(tree + "/shared", 0o2775) == 0, "a setgid directory")
            #expect(symlink("bin/run.sh", tree + "/link") == 0)
            var times = [timespec(tv_sec: 1_600_000_000, tv_nsec: 0), timespec(tv_sec: 1_600_000_000, tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, tree + "/secret", &times, 0) == 0)

            let id = try s.run(ignoresSIGTERM)
            try s.api.putArchive(container: id, path: "/") { tar in
                try tar.appendDirectory(
                    "app",
                    TarAttributes(mode: 0o750, uid: 1234, gid: 5678, modificationTime: 1_700_000_000)
                )
                for entry in ["bin", "bin/run.sh", "secret", "shared", "link"] {
                    #expect(
                        try tar.append(fromDisk: tree + "/" + entry, as: "app/" + entry, owner: (1234, 5678))
                            == .complete
                    )
                }
            }
            let stat = try s.api.exec(
                container: id,
                [
                    "stat", "-c", "%a %u %g %N", "/app", "/app/bin", "/app/bin/run.sh", "/app/secret", "/app/shared",
                    "/app/link",
                ]
            )
            #expect(stat.exitCode == 0, "\(stat.stderr)")
            #expect(
                stat.stdout == """
                    750 1234 5678 /app
                    755 1234 5678 /app/bin
                    755 1234 5678 /app/bin/run.sh
                    600 1234 5678 /app/secret
                    2775 1234 5678 /app/shared
                    777 1234 5678 '/app/link' -> 'bin/run.sh'

                    """
            )
            let stamps = try s.api.exec(container: id, ["stat", "-c", "%Y", "/app/secret", "/app"])
            #expect(stamps.stdout == "1600000000\n1700000000\n")
            let script = try s.api.exec(container: id, ["/app/link"])
            #expect(script.exitCode == 0 && script.stdout == "hi from /app/link\n", "\(script)")
        }
    }

    @Test(.requiresDockerEngine)
    func archiveGoesIntoACreatedContainerBeforeItStarts() throws {
        let s = Scratch()
        defer { s.removeAll() }
        let id = try s.create(ignoresSIGTERM)
        #expect(try s.api.inspectContainer(id)?.state.status == "created")
        try s.api.putArchive(container: id, path: "/") { tar in
            try tar.appendDirectory("data", TarAttributes(mode: 0o700, uid: 1234, gid: 5678))
            try tar.appendFile(
                "data/hello.txt",
                TarAttributes(mode: 0o640, uid: 1234, gid: 5678),
                contents: Array("hello\n".utf8)
            )
        }
        try s.api.startContainer(id)
        let out = try s.api.exec(
            container: id,
            ["sh", "-c", "stat -c '%a %u %g %N' /data /data/hello.txt; cat /data/hello.txt"]
        )
        #expect(out.exitCode == 0, "\(out.stderr)")
        #expect(out.stdout == "700 1234 5678 /data\n640 1234 5678 /data/hello.txt\nhello\n")
    }

    @Test(.requiresDockerEngine)
    func aBodyOfAnnouncedLengthIsSentInPiecesAndHeldToItsLength() throws {
        let s = Scratch()
        defer { s.removeAll() }
        let id = try s.run(ignoresSIGTERM)
        let sink = MemorySink()
        let tar = TarWriter(sink: sink)
        try tar.appendFile("sized.bin", TarAttributes(mode: 0o644), contents: Array(repeating: 7, count: 300_000))
        try tar.finish()
        let archive = sink.bytes
        // Content-Length instead of chunks; written in odd pieces.
        try s.api.putArchive(
            container: id,
            path: "/tmp",
            body: .stream(contentType: "application/x-tar", length: archive.count) { writer in
                for start in stride(from: 0, to: archive.count, by: 9_999) {
                    try writer.write(Array(archive[start..<min(start + 9_999, archive.count)]))
                }
            }
        )
        #expect(try s.api.exec(container: id, ["stat", "-c", "%s", "/tmp/sized.bin"]).stdout == "300000\n")
        let short = #expect(throws: DockerAPIError.self) {
            try s.api.putArchive(
                container: id,
                path: "/tmp",
                body: .stream(contentType: "application/x-tar", length: archive.count + 512) { writer in
                    try writer.write(archive)
                }
            )
        }
        #expect(
            short
                == .requestBodyFailed(
                    request: "PUT /containers/\(id)/archive",
                    reason: "the producer wrote \(archive.count) of the \(archive.count + 512) bytes it announced"
                )
        )
    }

    @Test(.requiresDockerEngine)
    func longNamesAndLinkTargetsGoThroughPAX() throws {
        let s = Scratch()
        defer { s.removeAll() }
        let id = try s.run(ignoresSIGTERM)
        let long = String(repeating: "n", count: 150) + ".txt"  // one component: ustar cannot split it
        let deep = (1...12).map { "directory\($0)" }.joined(separator: "/") + "/file.txt"  // ustar prefix + name
        let unicode = "café-ünïcode.txt"
        let target = "/" + (1...10).map { "target-part-\($0)" }.joined(separator: "/")
        #expect(long.utf8.count > 100 && deep.utf8.count > 100 && target.utf8.count > 100)
        try s.api.putArchive(container: id, path: "/tmp") { tar in
            let a = TarAttributes(mode: 0o644, uid: 1234, gid: 5678)
            try tar.appendFile(long, a, contents: Array("long\n".utf8))
            try tar.appendFile(deep, a, contents: Array("deep\n".utf8))
            try tar.appendFile(unicode, a, contents: Array("unicode\n".utf8))
            try tar.appendSymlink("longlink", target: target, a)
        }
        // Names reach the shell as arguments, never as part of the script.
        let out = try s.api.exec(
            container: id,
            [
                "sh", "-c", "cd /tmp && cat \"$1\" \"$2\" \"$3\" && readlink longlink && stat -c '%u %g' \"$1\"", "sh",
                long, deep, unicode,
            ]
        )
        #expect(out.exitCode == 0, "\(out.stderr)")
        #expect(out.stdout == "long\ndeep\nunicode\n\(target)\n1234 5678\n")
    }

    @Test(.requiresDockerEngine)
    func archiveFailuresSayWhatWentWrong() throws {
        try withTemporaryDirectory { dir in
            let s = Scratch()
            defer { s.removeAll() }
            let id = try s.run(ignoresSIGTERM)
            // The engine refuses at once and stops reading: its answer, not a broken pipe.
            let big = dir + "/big"
            #expect(FileManager.default.createFile(atPath: big, contents: Data(count: 8 << 20)))
            let missingPath = #expect(throws: DockerAPIError.self) {
                try s.api.putArchive(container: id, path: "/no/such/dir") { tar in
                    try tar.append(fromDisk: big, as: "big")
                }
            }
            guard case .status(_, 404, let message)? = missingPath else {
                Issue.record("expected a 404, got \(String(describing: missingPath))")
                return
            }
            #expect(message.contains("/no/such/dir"), "\(message)")

            let missingContainer = #expect(throws: DockerAPIError.self) {
                try s.api.putArchive(container: "slipway-no-such-container-\(s.value)", path: "/") { tar in
                    try tar.appendFile("x", TarAttributes(mode: 0o644), contents: [1])
                }
            }
            #expect(
                missingContainer?.description.contains("No such container") == true,
                "\(String(describing: missingContainer))"
            )

            // A file that cannot be read abandons the request and says which.
            let unreadable = #expect(throws: DockerAPIError.self) {
                try s.api.putArchive(container: id, path: "/tmp") { tar in
                    try tar.appendFile("first", TarAttributes(mode: 0o644), contents: [1])
                    try tar.append(fromDisk: dir + "/does-not-exist", as: "second")
                }
            }
            guard case .requestBodyFailed(_, let reason)? = unreadable else {
                Issue.record("expected requestBodyFailed, got \(String(describing: unreadable))")
                return
            }
            #expect(reason.contains(dir + "/does-not-exist"), "\(reason)")
            // The container and the connection handling are fine afterwards.
            #expect(try s.api.exec(container: id, ["true"]).exitCode == 0)
        }
    }

    // MARK: Exec

    @Test(.requiresDockerEngine)
    func execSplitsStdoutFromStderrAndReportsTheExitCode() throws {
        let s = Scratch()
        defer { s.removeAll() }
        let id = try s.run(ignoresSIGTERM)
        let small = try s.api.exec(container: id, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(small.exitCode == 3)
        #expect(small.stdout == "out\n")
        #expect(small.stderr == "err\n")

        // Well over 64 KiB on each stream, interleaved: frames span reads and reads span frames.
        let count = 3000
        let script = """
            i=0; while [ $i -lt \(count) ]; do echo "stdout line $i abcdefghijklmnopqrstuvwxyz"; \
            echo "stderr line $i ABCDEFGHIJKLMNOPQRSTUVWXYZ" >&2; i=$((i+1)); done
            """
        let large = try s.api.exec(container: id, ["sh", "-c", script])
        let expectedOut = (0..<count).map { "stdout line \($0) abcdefghijklmnopqrstuvwxyz\n" }.joined()
        let expectedErr = (0..<count).map { "stderr line \($0) ABCDEFGHIJKLMNOPQRSTUVWXYZ\n" }.joined()
        #expect(expectedOut.utf8.count > 64 * 1024 && expectedErr.utf8.count > 64 * 1024)
        #expect(large.exitCode == 0)
        #expect(large.stdout == expectedOut)
        #expect(large.stderr == expectedErr)

        // stdin through the hijacked connection, closed after the input.
        let input = Array((0..<100_000).map { UInt8(truncatingIfNeeded: $0 % 251) })
        let echoed = try s.api.exec(container: id, DockerExecConfig(command: ["cat"]), input: input)
        #expect(echoed.exitCode == 0)
        #expect(echoed.standardOutput == input)

        let missing = try s.api.exec(container: id, ["/no/such/program"])
        #expect(missing.exitCode != 0)
    }

    @Test(.requiresDockerEngine)
    func execWithATerminalIsRawAndCanBeResized() throws {
        let s = Scratch()
        defer { s.removeAll() }
        let id = try s.run(ignoresSIGTERM)
        let exec = try s.api.createExec(
            container: id,
            DockerExecConfig(command: ["sh", "-c", "sleep 0.3; stty size; echo to-stderr >&2; exit 2"], tty: true)
        )
        let stream = try s.api.startExec(exec, tty: true)
        #expect(stream.isRaw)
        try s.api.resizeExec(exec, height: 33, width: 101)
        var text = ""
        while let piece = try stream.next(timeout: .seconds(10)) {
            #expect(piece.stream == .stdout, "a terminal has one stream")
            text += piece.text
        }
        #expect(text.contains("33 101"), "\(text)")
        #expect(text.contains("to-stderr"), "\(text)")
        let state = try s.api.inspectExec(exec)
        #expect(!state.running && state.exitCode == 2, "\(state)")
    }

    // MARK: Lifecycle

    @Test(.requiresDockerEngine)
    func restartWaitsForTheTimeoutThenKills() throws {
        let s = Scratch()
        defer { s.removeAll() }
        let id = try s.run(ignoresSIGTERM)
        let before = try #require(try s.api.inspectContainer(id))
        #expect(before.state.running)
        let start = ContinuousClock.now
        try s.api.restartContainer(id, timeout: 1)
        let elapsed = start.duration(to: .now)
        #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(10), "took \(elapsed)")
        let after = try #require(try s.api.inspectContainer(id))
        #expect(after.state.running)
        #expect(after.state.startedAt != before.state.startedAt)
        #expect(after.state.pid != before.state.pid)

        let stopStart = ContinuousClock.now
        #expect(try s.api.stopContainer(id, timeout: 1))
        let stopElapsed = stopStart.duration(to: .now)
        #expect(stopElapsed >= .milliseconds(900) && stopElapsed < .seconds(10), "took \(stopElapsed)")
        let stopped = try #require(try s.api.inspectContainer(id))
        #expect(!stopped.state.running && stopped.state.exitCode == 137, "killed: \(stopped.state)")
        #expect(try s.api.stopContainer(id, timeout: 1) == false, "already stopped")
        #expect(try s.api.startContainer(id))
        #expect(try s.api.startContainer(id) == false, "already running")
    }

    @Test(.requiresDockerEngine)
    func containersAreListedByLabel() throws {
        let s = Scratch()
        defer { s.removeAll() }
        let web1 = try s.create(["true"], labels: ["role": "web"])
        let web2 = try s.create(["true"], labels: ["role": "web"])
        let db = try s.create(["true"], labels: ["role": "db", "empty": ""])
        let all = try s.api.containers(labels: [s.selector])
        #expect(Set(all.map(\.id)) == [web1, web2, db])
        #expect(
            all.allSatisfy {
                $0.state == "created" && $0.labels[Scratch.labelKey] == s.value && $0.imageID.hasPrefix("sha256:")
            }
        )
        #expect(Set(try s.api.containers(labels: [s.selector, "role=web"]).map(\.id)) == [web1, web2])
        #expect(
            try s.api.containers(labels: [s.selector, "empty="]).map(\.id) == [db],
            "an empty value matches an empty label"
        )
        #expect(try s.api.containers(labels: [s.selector, "empty"]).map(\.id) == [db])
        #expect(try s.api.containers(all: false, labels: [s.selector]).isEmpty, "none is running")
        // The CLI sees the same.
        let cli = try sh(
            ["docker", "ps", "--all", "--no-trunc", "--quiet", "--filter", "label=\(s.selector)"],
            cwd: "/"
        )
        #expect(Set(cli.stdout.split(separator: "\n").map(String.init)) == [web1, web2, db])
    }

    @Test(.requiresDockerEngine)
    func aContainerIsCreatedAgainFromItsInspectedSpec() throws {
        let s = Scratch()
        defer { s.removeAll() }
        let name = "slipway-transport-\(s.value.prefix(12))"
        let original = try s.api.createContainer(
            name: name,
            spec: s.spec(
                ["sh", "-c", "echo \"$A|$B\"; pwd; exit 4"],
                labels: ["role": "original"],
                environment: ["A=1", "B=two words"],
                workingDirectory: "/tmp"
            )
        ).id
        let inspected = try #require(try s.api.inspectContainer(name))
        #expect(inspected.id == original && inspected.name == name)

        var spec = DockerContainerSpec(inspected: inspected)
        #expect(spec.config["Hostname"] == nil, "the engine's generated hostname is left out")
        spec.labels["role"] = "copy"
        let copy = try s.api.createContainer(name: name + "-copy", spec: spec).id
        try s.api.startContainer(copy)
        #expect(try s.api.waitContainer(copy, timeout: .seconds(10)) == 4)
        let logs = try s.api.logs(container: copy)
        var out = ""
        while let piece = try logs.next(timeout: .seconds(10)) { out += piece.text }
        #expect(out == "1|two words\n/tmp\n")

        let copied = try #require(try s.api.inspectContainer(copy))
        for key in ["Env", "Cmd", "WorkingDir", "Image", "Entrypoint"] {
            #expect(copied.config[key] == inspected.config[key], "\(key)")
        }
        #expect(copied.labels["role"] == "copy" && copied.labels[Scratch.labelKey] == s.value)
        #expect(copied.hostConfig["NetworkMode"] == "none")
        #expect(Array(copied.networks.keys) == ["none"])

        try s.api.renameContainer(copy, to: name + "-renamed")
        #expect(try s.api.inspectContainer(name + "-renamed")?.id == copy)
        #expect(try s.api.inspectContainer(name + "-copy") == nil)
        #expect(try s.api.removeContainer(name + "-renamed"))
        #expect(try s.api.removeContainer(name + "-renamed") == false, "gone already")
        #expect(try s.api.inspectContainer(copy) == nil)
    }

    // MARK: Streams

    @Test(.requiresDockerEngine)
    func followedLogsDeliverLinesWhileTheContainerWrites() throws {
        let s = Scratch()
        defer { s.removeAll() }
        // Writes one line, then waits for a file before it writes the next.
        let id = try s.run([
            "sh", "-c", "echo one; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two >&2; sleep 600",
        ])
        let logs = try s.api.logs(container: id, follow: true)
        #expect(!logs.isRaw)
        let first = try #require(try logs.next(timeout: .seconds(10)))
        #expect(first == DockerOutput(stream: .stdout, bytes: Array("one\n".utf8)))
        // "two" does not exist yet: it is written only now, while the log is followed.
        #expect(try s.api.exec(container: id, ["touch", "/tmp/go"]).exitCode == 0)
        let second = try #require(try logs.next(timeout: .seconds(10)))
        #expect(second == DockerOutput(stream: .stderr, bytes: Array("two\n".utf8)))
        logs.cancel()
        #expect(try logs.next(timeout: .seconds(10)) == nil, "a cancelled stream ends")
    }

    @Test(.requiresDockerEngine)
    func followedLogsAsAnAsyncSequence() async throws {
        let s = Scratch()
        defer { s.removeAll() }
        let id = try s.run(["sh", "-c", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done"])
        let logs = try s.api.logs(container: id, follow: true)
        var lines = ""
        for try await piece in logs.pieces() {
            lines += piece.text
            if lines.contains("tick 2\n") { break }  // ending the iteration cancels the stream
        }
        #expect(lines.hasPrefix("tick 0\ntick 1\ntick 2\n"), "\(lines)")
    }

    @Test(.requiresDockerEngine)
    func eventsReportAContainersStartAndDeath() throws {
        let s = Scratch()
        defer { s.removeAll() }
        let events = try s.api.events(filters: ["type": ["container"], "label": [s.selector]])
        defer { events.cancel() }
        let id = try s.run(["sh", "-c", "exit 7"])
        var actions: [String] = []
        while let event = try events.next(timeout: .seconds(10)) {
            #expect(event.type == "container" && event.actor.id == id)
            actions.append(event.action)
            if event.action == "die" {
                #expect(event.actor.attributes["exitCode"] == "7")
                #expect(event.actor.attributes[Scratch.labelKey] == s.value)
                break
            }
        }
        #expect(actions == ["create", "start", "die"])
    }

    @Test(.requiresDockerEngine)
    func attachCarriesStdinAndStdout() throws {
        let s = Scratch()
        defer { s.removeAll() }
        var spec = s.spec(["cat"], openStdin: true)
        spec.config["StdinOnce"] = true  // the end of the attached stdin is the end of cat's
        let id = try s.api.createContainer(spec: spec).id
        let attached = try s.api.attach(container: id, stdin: true)
        try s.api.startContainer(id)
        try attached.write(Array("hello through attach\n".utf8))
        let echoed = try #require(try attached.next(timeout: .seconds(10)))
        #expect(echoed == DockerOutput(stream: .stdout, bytes: Array("hello through attach\n".utf8)))
        attached.closeInput()
        #expect(try attached.next(timeout: .seconds(10)) == nil, "cat ended with its input")
        #expect(try s.api.waitContainer(id, timeout: .seconds(10)) == 0)
    }

    // MARK: Pieces without an engine

    @Test func framesAreSplitAcrossReadsAtEveryBoundary() throws {
        func frame(_ stream: UInt8, _ text: String) -> [UInt8] {
            let payload = Array(text.utf8)
            let n = UInt32(payload.count)
            return [stream, 0, 0, 0, UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
                + payload
        }
        let bytes =
            frame(1, "out one\n") + frame(2, "err\n") + frame(1, "") + frame(1, String(repeating: "x", count: 70_000))
        for step in [1, 3, 7, 8, 9, 64, 65_536, bytes.count] {
            var decoder = FrameDecoder()
            var out: [UInt8] = []
            var err: [UInt8] = []
            var i = 0
            while i < bytes.count {
                for piece in try decoder.decode(Array(bytes[i..<min(i + step, bytes.count)]), request: "test") {
                    if piece.stream == .stdout { out += piece.bytes } else { err += piece.bytes }
                }
                i += step
            }
            #expect(
                String(decoding: out, as: UTF8.self) == "out one\n" + String(repeating: "x", count: 70_000),
                "step \(step)"
            )
            #expect(String(decoding: err, as: UTF8.self) == "err\n", "step \(step)")
            #expect(decoder.isAtFrameBoundary)
        }
        var bad = FrameDecoder()
        #expect(throws: DockerAPIError.self) { try bad.decode([9, 0, 0, 0, 0, 0, 0, 1, 65], request: "test") }
    }

    @Test func tarWriterOutputReadsBackWithGNUTar() throws {
        try withTemporaryDirectory { dir in
            let sink = MemorySink()
            let tar = TarWriter(sink: sink)
            let long = String(repeating: "n", count: 150)
            let deep = (1...12).map { "directory\($0)" }.joined(separator: "/") + "/file.txt"
            let target = "/" + (1...10).map { "target-part-\($0)" }.joined(separator: "/")
            try tar.appendDirectory(
                "d",
                TarAttributes(mode: 0o2755, uid: 1234, gid: 5678, modificationTime: 1_700_000_000)
            )
            try tar.appendFile(
                "d/script",
                TarAttributes(mode: 0o4755, uid: 3_000_000, gid: 7, modificationTime: -5),
                contents: Array("#!/bin/sh\n".utf8)
            )
            try tar.appendFile("d/" + long, TarAttributes(mode: 0o600), contents: Array(repeating: 65, count: 513))
            try tar.appendFile(deep, TarAttributes(mode: 0o644), contents: [])
            try tar.appendSymlink("d/link", target: target, TarAttributes(mode: 0o777))
            try tar.finish()
            #expect(sink.bytes.count % 512 == 0)
            #expect(sink.bytes.suffix(1024).allSatisfy { $0 == 0 }, "two zero blocks end it")
            #expect(tar.bytesWritten == sink.bytes.count)
            let file = dir + "/out.tar"
            #expect(FileManager.default.createFile(atPath: file, contents: Data(sink.bytes)))
            let listing = try sh(["tar", "--numeric-owner", "--full-time", "-tvf", file], cwd: dir, env: ["TZ": "UTC"])
            #expect(listing.status == 0, "\(listing.stderr)")
            let lines = listing.stdout.split(separator: "\n").map {
                $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            }
            try #require(lines.count == 5, "\(listing.stdout)")
            #expect(lines[0][0] == "drwxr-sr-x" && lines[0][1] == "1234/5678" && lines[0].last == "d/")
            #expect(lines[1][0] == "-rwsr-xr-x" && lines[1][1] == "3000000/7" && lines[1].last == "d/script")
            #expect(lines[1][3] == "1969-12-31", "a negative time through PAX: \(lines[1])")
            #expect(lines[2][0] == "-rw-------" && lines[2][2] == "513" && lines[2].last == "d/" + long)
            #expect(lines[3].last == deep)
            #expect(lines[4][0] == "lrwxrwxrwx" && lines[4].suffix(3) == ["d/link", "->", target])
            let x = try sh(["tar", "-xf", file], cwd: dir)
            #expect(x.status == 0, "\(x.stderr)")
            #expect(
                try String(contentsOfFile: dir + "/d/" + long, encoding: .utf8) == String(repeating: "A", count: 513)
            )
        }
    }

    @Test func paxRecordsCountTheirOwnLength() {
        for length in [1, 2, 5, 6, 7, 8, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 990, 995, 1000] {
            let record = TarWriter.paxRecord("path", String(repeating: "a", count: length))
            let declared = Int(record.split(separator: " ", maxSplits: 1)[0])
            #expect(declared == record.utf8.count, "\(length)")
        }
    }

    @Test func tarRefusesNamesThatLeaveTheTarget() {
        let tar = TarWriter(sink: MemorySink())
        for name in ["", "/etc/passwd", "a/../../b", "..", "nul\u{0}byte"] {
            #expect(throws: TarError.self, "\(name)") {
                try tar.appendFile(name, TarAttributes(mode: 0o644), contents: [])
            }
        }
    }

    @Test func anInspectedSpecLeavesOutWhatTheEngineGenerated() throws {
        let id = "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f"
        let inspected = DockerContainer(
            json: [
                "Id": .string(id), "Name": "/web",
                "Config": ["Hostname": .string(String(id.prefix(12))), "Image": "app:1", "Env": ["A=1"]],
                "HostConfig": ["NetworkMode": "appnet", "Links": ["/db:/web/database"], "Memory": 536_870_912],
                "NetworkSettings": [
                    "Networks": [
                        "appnet": [
                            "Aliases": ["web", .string(String(id.prefix(12)))], "IPAddress": "10.0.0.2",
                            "EndpointID": "abc", "IPAMConfig": nil,
                        ],
                        "other": ["Aliases": nil, "IPAddress": "10.1.0.2"],
                    ]
                ],
            ])
        let spec = DockerContainerSpec(inspected: inspected)
        #expect(spec.config["Hostname"] == nil)
        #expect(spec.config["Env"] == ["A=1"])
        #expect(spec.hostConfig["Links"] == ["db:database"])
        #expect(spec.hostConfig["Memory"] == 536_870_912)
        #expect(spec.networks == ["appnet": ["Aliases": ["web"]], "other": [:]])
        #expect(spec.primaryNetwork == "appnet")
        let body = spec.body
        #expect(body["NetworkingConfig"]?["EndpointsConfig"]?.object?.keys.sorted() == ["appnet"])
        #expect(body["Image"] == "app:1" && body["HostConfig"]?["NetworkMode"] == "appnet")
        // A JSON value survives the round trip with its integers intact.
        let text = JSONValue.object(["big": .int(9_007_199_254_740_993), "f": .double(1.5), "n": .null]).encoded()
        #expect(try JSONValue.parse(text) == ["big": .int(9_007_199_254_740_993), "f": .double(1.5), "n": .null])
    }

    @Test func eventTimestampsCarryNanoseconds() {
        #expect(DockerAPI.timestamp(1_700_000_000.5) == "1700000000.500000000")
        #expect(DockerAPI.timestamp(12) == "12.000000000")
    }
}
