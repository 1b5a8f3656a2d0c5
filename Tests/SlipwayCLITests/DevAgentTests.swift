import Foundation
import SlipwayTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// `slipway dev` in a git repository (issue 16 item 4): the session runs in the repository's
// agent. The real engine, real git repositories, the built binary.

/// Waits until `condition` holds (checked every 50 ms), at most `timeout`.
private func within(_ timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// A ``DevProject`` in a git repository (the agent needs one), whose process stops at once on
/// SIGTERM (the swap stops the original: no 10 s stop timeout), deployed.
private func gitProject(in dir: String) async throws -> DevProject {
    let project = try DevProject.make(
        in: dir,
        dev: """
              app:
                imageSelector: slipway-test/PROJECT
                workingDir: /www
                env:
                  - name: DEV_MODE
                    value: "on"
                sync:
                  - path: ./site:/www
            """
    )
    try project.fill()
    try """
    FROM slipway/busybox
    COPY site/ /www/
    CMD ["sh", "-c", "trap 'exit 0' TERM; echo started; sleep 100000 & wait"]
    """.write(toFile: dir + "/Dockerfile", atomically: true, encoding: .utf8)
    try ".devspace\n.git\nnotes.txt\n".write(toFile: dir + "/.dockerignore", atomically: true, encoding: .utf8)
    try ".devspace\n".write(toFile: dir + "/.gitignore", atomically: true, encoding: .utf8)
    _ = try await offPool {
        try sh(["git", "init", "-q", "."], cwd: dir)
        try sh(["git", "add", "-A"], cwd: dir)
        try sh(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"], cwd: dir)
    }
    let deploy = try await offPool { try SlipwayBinary.run(["deploy"], in: dir, timeout: 120) }
    #expect(deploy.status == 0, "\(deploy.stderr)")
    return project
}

private func slipway(_ arguments: [String], in dir: String, timeout: Int = 120) async throws -> SlipwayBinary.Result {
    try await offPool { try SlipwayBinary.run(arguments, in: dir, timeout: timeout) }
}

extension DockerHeavyDevTests {
    @Suite(.requiresDockerEngine, .timeLimit(.minutes(5)))
    struct DevAgentTests {
        @Test func detachLeavesTheSessionInTheAgentStatusShowsItASecondDevAttachesOrRefusesAndStopRestores()
            async throws
        {
            try await withTemporaryDirectory { dir in
                let project = try await gitProject(in: dir)
                defer {
                    _ = try? SlipwayBinary.run(["agent", "stop"], in: dir, timeout: 30)
                    Task { await project.purge() }
                }
                let originalID = try await project.inspect(project.container, "{{.Id}}")
                let originalConfig = try await project.inspect(project.container, "{{json .Config}}")
                let originalHost = try await project.inspect(project.container, "{{json .HostConfig}}")
                #expect(!originalID.isEmpty)

                // --detach: the container is replaced, the command returns, the session runs on.
                let began = ContinuousClock.now
                let detached = try await slipway(["dev", "--detach", "--no-logs"], in: dir)
                let took = ContinuousClock.now - began
                #expect(detached.status == 0, "\(detached.stdout)\n\(detached.stderr)")
                #expect(detached.stderr.contains("the session runs in the agent"), "\(detached.stderr)")
                let devID = try await project.inspect(project.container, "{{.Id}}")
                #expect(!devID.isEmpty && devID != originalID)
                #expect(try await project.inspect(project.container, "{{json .Config.Env}}").contains("DEV_MODE=on"))
                #expect(
                    FileManager.default.fileExists(atPath: dir + "/.git/slipway/dev-sessions.json"),
                    "the session is recorded for a restarted agent"
                )

                // A synced edit arrives, though no `slipway dev` runs any more.
                try "<h1>detached</h1>\n".write(toFile: dir + "/site/index.html", atomically: false, encoding: .utf8)
                #expect(try await within { try await project.read("/www/index.html") == "<h1>detached</h1>\n" })

                // `slipway dev status` and `slipway status` show the session and what it synced.
                #expect(
                    try await within {
                        let status = try await slipway(["dev", "status"], in: dir)
                        return status.status == 0 && status.stdout.contains("watching")
                            && status.stdout.contains("\(project.container)  1 file synced")
                    }
                )
                let overall = try await slipway(["status"], in: dir)
                #expect(overall.stdout.contains("dev sessions:") && overall.stdout.contains(project.container))

                // A second `slipway dev` with the same options attaches: no pipeline, no second
                // session (it is ended by SIGINT while attached, below, in the other test).
                let again = try await slipway(["dev", "--detach", "--no-logs"], in: dir)
                #expect(again.status == 0, "\(again.stderr)")
                #expect(again.stderr.contains("attaching to the dev session"), "\(again.stderr)")
                #expect(!again.stdout.contains("IMAGE"), "the pipeline did not run again: \(again.stdout)")
                #expect(try await project.inspect(project.container, "{{.Id}}") == devID)
                let sessions = try await slipway(["dev", "status", "--json"], in: dir)
                #expect(
                    sessions.stdout.components(separatedBy: "\"config\"").count == 2,
                    "one session: \(sessions.stdout)"
                )

                // Other options: refused, nothing changed.
                let other = try await slipway(["dev", "--detach", "--var", "X=1"], in: dir)
                #expect(other.status == 1)
                #expect(
                    other.stderr.contains("a dev session with other options runs")
                        && other.stderr.contains("slipway dev stop"),
                    "\(other.stderr)"
                )
                #expect(try await project.inspect(project.container, "{{.Id}}") == devID)

                // `slipway dev stop`: the original back exactly.
                let stop = try await slipway(["dev", "stop"], in: dir)
                #expect(stop.status == 0, "\(stop.stdout)\n\(stop.stderr)")
                #expect(stop.stdout.contains("restored"), "\(stop.stdout)")
                #expect(try await project.inspect(project.container, "{{.Id}}") == originalID)
                #expect(try await project.inspect(project.container, "{{.State.Running}}") == "true")
                #expect(try await project.inspect(project.container, "{{json .Config}}") == originalConfig)
                #expect(try await project.inspect(project.container, "{{json .HostConfig}}") == originalHost)
                #expect(try await docker("inspect", devID).status != 0, "the dev container is removed")
                #expect(!FileManager.default.fileExists(atPath: dir + "/.git/slipway/dev-sessions.json"))
                let none = try await slipway(["dev", "status"], in: dir)
                #expect(none.stdout.contains("no dev session runs"), "\(none.stdout)")
                print("dev --detach took \(took)")
            }
        }

        @Test func aKilledAgentIsStartedAgainByTheNextDevWhichAttachesAndCtrlCEndsTheSession() async throws {
            try await withTemporaryDirectory { dir in
                let project = try await gitProject(in: dir)
                defer {
                    _ = try? SlipwayBinary.run(["agent", "stop"], in: dir, timeout: 30)
                    Task { await project.purge() }
                }
                let originalID = try await project.inspect(project.container, "{{.Id}}")
                let originalConfig = try await project.inspect(project.container, "{{json .Config}}")
                let originalHost = try await project.inspect(project.container, "{{json .HostConfig}}")
                let out = NSTemporaryDirectory() + "slipway-devagent-" + project.name
                try FileManager.default.createDirectory(atPath: out + "/1", withIntermediateDirectories: true)
                try FileManager.default.createDirectory(atPath: out + "/2", withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: out) }

                // A foreground `slipway dev` follows the session in the agent.
                let first = try await BackgroundSlipway.start(["dev"], in: dir, out: out + "/1")
                defer { first.kill9() }
                #expect(
                    try await within(.seconds(90)) {
                        first.stderr.contains("watching both sides") || first.exitStatus != nil
                    },
                    "\(first.stdout)\n\(first.stderr)"
                )
                #expect(first.stdout.contains("[\(project.container)] started"), "the container's log: \(first.stdout)")
                let devID = try await project.inspect(project.container, "{{.Id}}")
                #expect(devID != originalID)

                // kill -9 of the agent: the follower says so and exits 1; the dev container stays.
                let pid = try #require(
                    readFile(dir + "/.git/slipway/agent.pid").flatMap {
                        Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
                    }
                )
                kill(pid, SIGKILL)
                #expect(try await first.finished(timeout: .seconds(20)) == 1, "\(first.stderr)")
                #expect(first.stderr.contains("the agent stopped"), "\(first.stderr)")
                #expect(try await project.inspect(project.container, "{{.Id}}") == devID)

                // The next `slipway dev` starts the agent, which resumes the recorded session (a dev
                // job converges the containers), and attaches to it.
                let second = try await BackgroundSlipway.start(["dev", "--no-logs"], in: dir, out: out + "/2")
                defer { second.kill9() }
                #expect(
                    try await within(.seconds(90)) {
                        second.stderr.contains("watching both sides") || second.exitStatus != nil
                    },
                    "\(second.stdout)\n\(second.stderr)"
                )
                #expect(second.exitStatus == nil)
                #expect(second.stderr.contains("attaching to the dev session"), "\(second.stderr)")
                #expect(second.stdout.contains("(resume the session)"), "\(second.stdout)")
                #expect(try await project.inspect(project.container, "{{.State.Running}}") == "true")
                #expect(
                    try await project.inspect(project.container, "{{index .Config.Labels \"dev.slipway.dev\"}}")
                        == "app",
                    "a dev container, not a half-replaced state"
                )
                let swapped = project.container + ".slipway-dev-original"
                #expect(try await project.inspect(swapped, "{{.Id}}") == originalID)
                try "<h1>resumed</h1>\n".write(toFile: dir + "/site/index.html", atomically: false, encoding: .utf8)
                #expect(try await within { try await project.read("/www/index.html") == "<h1>resumed</h1>\n" })

                // Ctrl-C of the attached `slipway dev` ends the session and restores the original.
                second.send(SIGINT)
                #expect(try await second.finished(timeout: .seconds(60)) == 0, "\(second.stdout)\n\(second.stderr)")
                #expect(second.stdout.contains("restored"), "\(second.stdout)")
                #expect(try await project.inspect(project.container, "{{.Id}}") == originalID)
                #expect(try await project.inspect(project.container, "{{.State.Running}}") == "true")
                #expect(try await project.inspect(project.container, "{{json .Config}}") == originalConfig)
                #expect(try await project.inspect(project.container, "{{json .HostConfig}}") == originalHost)
                #expect(try await project.inspect(swapped, "{{.Id}}") == "")
                let status = try await slipway(["dev", "status"], in: dir)
                #expect(status.stdout.contains("no dev session runs"), "\(status.stdout)")
            }
        }
    }
}
