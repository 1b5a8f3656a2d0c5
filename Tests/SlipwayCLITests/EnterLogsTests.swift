import ArgumentParser
import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

@testable import SlipwayCLI

/// `slipway enter` and `slipway logs`'s flags, parsed in-process as the binary parses them.
@Suite struct EnterLogsParsingTests {
    @Test func enterFlagsAndTheCommand() throws {
        let e = try #require(
            try SlipwayCommand.parseCommandLine([
                "enter", "-c", "api", "--workdir", "/srv", "--no-tty", "--branch-env=feature/x", "--", "sh", "-c",
                "exit 3",
            ]) as? SlipwayCommand.Enter
        )
        #expect(e.selection.containerName == "api" && e.workdir == "/srv" && e.tty == false)
        #expect(e.selection.branchEnv == "feature/x")
        #expect(e.commandLine == ["sh", "-c", "exit 3"])
        let d = try #require(try SlipwayCommand.parseCommandLine(["enter"]) as? SlipwayCommand.Enter)
        #expect(d.tty == nil && d.commandLine.isEmpty && d.workdir == nil)
        let t = try #require(
            try SlipwayCommand.parseCommandLine(["enter", "--tty=true", "bash", "-l"]) as? SlipwayCommand.Enter
        )
        #expect(t.tty == true && t.commandLine == ["bash", "-l"])
        #expect(
            (try SlipwayCommand.parseCommandLine(["enter", "--tty=false"]) as? SlipwayCommand.Enter)?.tty == false
        )
    }

    @Test func logsFlags() throws {
        let l = try #require(
            try SlipwayCommand.parseCommandLine(["logs", "-f", "--lines", "5", "--container", "x"])
                as? SlipwayCommand.Logs
        )
        #expect(l.follow && l.lines == 5 && l.selection.container == "x")
        let d = try #require(try SlipwayCommand.parseCommandLine(["logs"]) as? SlipwayCommand.Logs)
        #expect(!d.follow && d.lines == 200)
        #expect(
            (try SlipwayCommand.parseCommandLine(["logs", "--follow=false"]) as? SlipwayCommand.Logs)?.follow == false
        )
    }

    @Test(arguments: [
        ["enter", "--workdir", ""], ["enter", "--container", "x", "-c", "y"], ["enter", "--tty=maybe"],
        ["enter", "--wait-timeout", "3"], ["logs", "--lines", "x"], ["logs", "--lines=-1"], ["logs", "-f=maybe"],
        ["logs", "extra"], ["logs", "--nope"],
    ])
    func usageErrorsExit64(_ args: [String]) {
        do {
            _ = try SlipwayCommand.parseCommandLine(args)
            Issue.record("\(args) parsed")
        } catch {
            #expect(SlipwayCommand.exitCode(for: error).rawValue == 64, "\(args): \(error)")
        }
    }
}

/// `slipway enter` and `slipway logs` end to end: the built binary against containers of the
/// real engine (`slipway/busybox`, `--network none`).
extension DockerHeavyDevTests {
    @Suite(.requiresDockerEngine) struct EnterLogsCommandTests {
        /// A container running `script` (default: sleep), removed after `body`.
        func withContainer(_ script: String = "sleep 300", _ body: (String) async throws -> Void) async throws {
            let name = "slipway-enter-" + UUID().uuidString.prefix(8).lowercased()
            let out = try await shOff(
                [
                    "docker", "run", "-d", "--network", "none", "--name", name, "slipway/busybox:latest", "sh", "-c",
                    script,
                ],
                cwd: "/"
            )
            guard out.status == 0 else { throw TestSupportError("docker run: \(out.stderr)") }
            do {
                try await body(name)
            } catch {
                _ = try? await shOff(["docker", "rm", "-f", name], cwd: "/")
                throw error
            }
            _ = try? await shOff(["docker", "rm", "-f", name], cwd: "/")
        }

        // Every blocking call runs off Swift's cooperative pool (`offPool`): the sync engines of
        // other tests in this process need its few threads.
        func shOff(_ args: [String], cwd: String) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await offPool { try sh(args, cwd: cwd) }
        }

        func slipwayOff(
            _ arguments: [String],
            in directory: String,
            env: [String: String] = [:],
            timeout: Int = 60
        ) async throws -> SlipwayBinary.Result {
            try await offPool { try SlipwayBinary.run(arguments, in: directory, env: env, timeout: timeout) }
        }

        /// Runs `command` with `sh -c` (its `$B` is the slipway binary), killed after 30 s.
        func shell(
            _ command: String,
            in directory: String = "/"
        ) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await offPool {
                try sh(
                    ["timeout", "--kill-after=5", "30", "sh", "-c", command],
                    cwd: directory,
                    env: ["B": SlipwayBinary.path]
                )
            }
        }

        @Test func enterExitsWithTheCommandsExitCode() async throws {
            try await withContainer { name in
                let r = try await slipwayOff(["enter", "--container", name, "--", "sh", "-c", "exit 3"], in: "/")
                #expect(r.status == 3, "\(r.stderr)")
                let ok = try await slipwayOff(
                    ["enter", "--container", name, "--workdir", "/etc", "--", "sh", "-c", "pwd; echo oops >&2"],
                    in: "/"
                )
                #expect(ok.status == 0 && ok.stdout == "/etc\n" && ok.stderr == "oops\n", "\(ok)")
            }
        }

        @Test func enterPassesStdinOnAndClosesIt() async throws {
            try await withContainer { name in
                let r = try await shell("printf 'one\\ntwo\\n' | \"$B\" enter --container \(name) -- cat")
                #expect(r.status == 0 && r.stdout == "one\ntwo\n", "\(r)")
            }
        }

        @Test func enterOnATerminalIsAnInteractiveShellAndPutsTheTerminalBack() async throws {
            try await withContainer { name in
                try await withTemporaryDirectory { dir in
                    // Inside script's pseudo-terminal: the shell, then the local terminal's settings.
                    try writeExecutable(
                        "#!/bin/sh\n\"$B\" enter --container \(name)\necho \"rc=$?\"\nstty -a\n",
                        to: dir + "/session.sh"
                    )
                    let typed = try await shell(
                        "(sleep 0.5; printf 'echo hello-$((1+2)); exit 5\\n') | script -qec ./session.sh /dev/null",
                        in: dir
                    )
                    #expect(typed.stdout.contains("hello-3"), "\(typed)")
                    #expect(typed.stdout.contains("rc=5"), "\(typed)")
                    // Raw mode is off again: canonical input and echo.
                    #expect(typed.stdout.contains(" icanon") && typed.stdout.contains(" echo "), "\(typed.stdout)")
                }
            }
        }

        @Test func aSignalEndsEnterAndPutsTheTerminalBack() async throws {
            try await withContainer { name in
                try await withTemporaryDirectory { dir in
                    try writeExecutable(
                        "#!/bin/sh\nsh -c '(sleep 1; kill -TERM $$) & exec \"$B\" enter --container \(name) -- sleep 30'\necho \"rc=$?\"\nstty -a\n",
                        to: dir + "/session.sh"
                    )
                    let start = ContinuousClock.now
                    let r = try await shell("sleep 3 | script -qec ./session.sh /dev/null", in: dir)
                    #expect(r.stdout.contains("rc=143"), "\(r)")
                    #expect(r.stdout.contains(" icanon") && r.stdout.contains(" echo "), "\(r.stdout)")
                    #expect(start.duration(to: .now) < .seconds(60), "ended by the signal, not by the 30 s sleep")
                }
            }
        }

        @Test func logsPrintsTheLastLines() async throws {
            try await withContainer("echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three; sleep 300") { name in
                // The engine copies stdout and stderr apart, so their order in the log is its own:
                // docker logs --tail 2, once the three lines are there, is the reference.
                var reference = try await shOff(["docker", "logs", name], cwd: "/")
                for _ in 0..<100 where reference.stdout.count + reference.stderr.count < 14 {
                    try await Task.sleep(for: .milliseconds(100))
                    reference = try await shOff(["docker", "logs", name], cwd: "/")
                }
                let tail = try await shOff(["docker", "logs", "--tail", "2", name], cwd: "/")
                let r = try await slipwayOff(["logs", "--container", name, "--lines", "2"], in: "/")
                #expect(r.status == 0 && r.stdout == tail.stdout && r.stderr == tail.stderr, "\(r) \(tail)")
                #expect((r.stdout + r.stderr).split(separator: "\n").count == 2, "\(r)")
                let all = try await slipwayOff(["logs", "--container", name], in: "/")
                #expect(all.stdout == "one\nthree\n" && all.stderr == "two\n", "\(all)")
            }
        }

        @Test func logsFollowStreamsNewLinesUntilSIGINT() async throws {
            try await withContainer("while true; do if [ -f /go ]; then echo after-start; rm /go; fi; sleep 0.1; done")
            {
                name in
                try await withTemporaryDirectory { dir in
                    // The log is followed, then a line is asked for, then Ctrl-C's signal ends it.
                    let r = try await shell(
                        """
                        "$B" logs -f --container \(name) > out 2> err & pid=$!
                        sleep 1
                        docker exec \(name) touch /go
                        i=0; while ! grep -q after-start out && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
                        kill -INT $pid; wait $pid; echo "rc=$?"
                        """,
                        in: dir
                    )
                    let out = try String(contentsOfFile: dir + "/out", encoding: .utf8)
                    #expect(out == "after-start\n", "\(out) \(r)")
                    #expect(r.stdout.contains("rc=130"), "\(r)")
                }
            }
        }

        @Test func logsFollowEndsWhenTheContainerStops() async throws {
            try await withContainer("sleep 1; echo bye") { name in
                let r = try await slipwayOff(["logs", "-f", "--container", name], in: "/", timeout: 60)
                #expect(r.status == 0 && r.stdout.contains("bye"), "\(r)")
            }
        }

        @Test func errorsAreClearAndExit1() async throws {
            let missing = try await slipwayOff(["enter", "--container", "slipway-no-such-container"], in: "/")
            #expect(missing.status == 1 && missing.stderr.contains("no running container matches"), "\(missing)")
            let logs = try await slipwayOff(["logs", "--container", "slipway-no-such-container"], in: "/")
            #expect(logs.status == 1 && logs.stderr.contains("no running container matches"), "\(logs)")
            let down = try await slipwayOff(
                ["enter", "--container", "x"],
                in: "/",
                env: ["DOCKER_HOST": "unix:///nonexistent/docker.sock"]
            )
            #expect(down.status == 1 && down.stderr.contains("no Docker engine answers"), "\(down)")
            let bad = try await slipwayOff(["logs", "--lines", "x"], in: "/")
            #expect(bad.status == 64, "\(bad)")
        }

        static let config = """
            version: v2beta1
            name: enter-cli
            dev:
              app:
                labelSelector:
                  tier: web

            """

        @Test func theDefaultSelectionIsTheRunningContainerOfTheOnlyDevEntry() async throws {
            try await withTemporaryDirectory { dir in
                try Self.config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
                let c = LabelledCLIContainers(config: dir + "/devspace.yaml")
                defer { c.removeAll() }
                // The original, stopped (dev mode replaced it), sorts first; the dev container runs
                // with the same labels; another deployment's container runs too.
                let original = try c.make("a-original", container: "main", user: ["tier": "web"])
                #expect(try await shOff(["docker", "kill", original], cwd: "/").status == 0)
                let dev = try c.make("b-dev", container: "main", user: ["tier": "web"])
                try c.make("c-jobs", container: "main", user: ["tier": "jobs"])

                let r = try await slipwayOff(["enter", "--", "hostname"], in: dir)
                #expect(r.status == 0 && r.stdout == String(dev.prefix(12)) + "\n", "\(r)")
                let logs = try await slipwayOff(["logs", "-l", "tier=web"], in: dir)
                #expect(logs.status == 0, "\(logs)")

                // Without the dev entry two running containers match: an error that lists them.
                try "version: v2beta1\nname: enter-cli\n".write(
                    toFile: dir + "/devspace.yaml",
                    atomically: true,
                    encoding: .utf8
                )
                let ambiguous = try await slipwayOff(["enter", "--", "hostname"], in: dir)
                #expect(ambiguous.status == 1, "\(ambiguous)")
                #expect(ambiguous.stderr.contains("2 containers match any container"), "\(ambiguous.stderr)")
                #expect(ambiguous.stderr.contains(c.name("b-dev")) && ambiguous.stderr.contains(c.name("c-jobs")))
                #expect(!ambiguous.stderr.contains(c.name("a-original")), "\(ambiguous.stderr)")
            }
        }
    }
}
