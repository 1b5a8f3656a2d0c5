import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The restart helper (`slipway-helper run`, Sources/SlipwayHelper/run.c) as PID 1 of real
// busybox containers, `--network none`: restarts through the open sync channel and through the
// CLI form, the grace before SIGKILL, signals forwarded on `docker stop`, the command's status as
// the container's, `--wait-start`, orphans reaped, a command that exits by itself, and a
// container whose PID 1 is something else.

private let busybox = "slipway/busybox:latest"

/// The containers of one test (labelled with the test's own value), removed at the end.
private struct DevContainers {
    let api = DockerAPI()
    static let labelKey = "dev.slipway.restart-helper-test"
    let value = UUID().uuidString.lowercased()

    /// A busybox container whose entrypoint is `/.slipway/helper run OPTIONS --` and whose
    /// command is `command`; the helper is copied in while it is created and not started yet,
    /// as dev mode does.
    func start(helper options: [String] = [], user: String? = nil, _ command: [String]) async throws -> String {
        let spec = DockerContainerSpec(
            image: busybox,
            command: command,
            entrypoint: [SyncHelperProgram.containerPath, "run"] + options + ["--"],
            labels: [Self.labelKey: value],
            user: user,
            networkMode: "none"
        )
        let id = try await offPool { try api.createContainer(name: nil, spec: spec).id }
        try await SyncHelperProgram.install(api: api, container: id, program: try builtProgram("slipway-helper"))
        try await offPool { _ = try api.startContainer(id) }
        return id
    }

    /// A busybox container running `sleep 3600` as PID 1 (no restart helper).
    func startPlain() async throws -> String {
        let spec = DockerContainerSpec(
            image: busybox,
            command: ["sleep", "3600"],
            labels: [Self.labelKey: value],
            networkMode: "none"
        )
        return try await offPool {
            let id = try api.createContainer(name: nil, spec: spec).id
            _ = try api.startContainer(id)
            return id
        }
    }

    func connect(_ id: String) async throws -> ContainerSyncRemote {
        try await ContainerSyncRemote.connect(
            api: api,
            container: id,
            program: try builtProgram("slipway-helper"),
            options: .init(root: "/tmp/sync")
        )
    }

    func exitCode(_ id: String) async throws -> Int? {
        try await offPool {
            guard let info = try api.inspectContainer(id), !info.state.running else { return nil }
            return info.state.exitCode
        }
    }

    func removeAll() {
        _ = try? sh(
            [
                "sh", "-c", "docker ps -aq --filter \"label=$1\" | xargs -r docker rm -f -v", "sh",
                "\(Self.labelKey)=\(value)",
            ],
            cwd: "/"
        )
    }
}

private func docker(_ args: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await offPool { try sh(["docker"] + args, cwd: "/") }
}

/// The container's log: what the command printed (stdout) and the helper's lines (stderr).
private func logs(_ id: String) async throws -> (stdout: String, stderr: String) {
    let result = try await docker("logs", id)
    return (result.stdout, result.stderr)
}

private func startedCount(_ id: String) async throws -> Int {
    try await logs(id).stdout.split(separator: "\n").filter { $0 == "started" }.count
}

/// Waits (up to 30 s: a loaded CI machine) until `condition` holds; false when it never did.
private func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// The command lines of the container's processes (`ps -o args`, one per process).
private func processes(_ id: String) async throws -> [String] {
    try await docker("exec", id, "ps", "-o", "args").stdout.split(separator: "\n").map {
        $0.trimmingCharacters(in: .whitespaces)
    }
}

/// The restart times the helper logged itself (`… runs again (pid N, restart M, X ms)`): from
/// its decision to restart to the new process's exec, free of the test process's scheduling.
private func loggedRestartTimes(_ id: String) async throws -> [Int] {
    try await logs(id).stderr.split(separator: "\n").compactMap { line in
        guard line.contains(" runs again (pid "), line.hasSuffix(" ms)") else { return nil }
        return Int(line.dropLast(4).split(separator: " ").last ?? "")
    }
}

private func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

@Suite(.serialized, .timeLimit(.minutes(3)))
struct RestartHelperTests {
    @Test(.requiresDockerEngine)
    func restartsThroughTheOpenSyncChannelInMilliseconds() async throws {
        let containers = DevContainers()
        defer { containers.removeAll() }
        let id = try await containers.start(["sh", "-c", "echo started; exec sleep 1000"])
        #expect(try await eventually { try await startedCount(id) == 1 })
        let remote = try await containers.connect(id)
        defer { remote.close() }

        let first = try await remote.restartProcess()
        #expect(first.restarts == 1)
        #expect(first.pid > 1)
        #expect(try await eventually { try await startedCount(id) == 2 })

        var durations = [first.duration]
        var pids = Set([first.pid])
        for round in 2...6 {
            let report = try await remote.restartProcess()
            #expect(report.restarts == round)
            durations.append(report.duration)
            pids.insert(report.pid)
            // The answer comes once the new process runs, not once it printed: a restart
            // sent before that would stop it before its `echo`.
            #expect(try await eventually { try await startedCount(id) == round + 1 })
        }
        #expect(pids.count == 6, "every restart runs a new process")
        // A restart of a command that honours SIGTERM takes milliseconds. The cap is generous
        // for the helper's own figure; the round trip measured here also holds the test
        // process's scheduling, which a loaded CI machine stretches: one of six under 1 s, and
        // every one under 30 s (the helper's own figures above stay under 1 s).
        let logged = try await loggedRestartTimes(id)
        #expect(logged.count == 6, "\(logged)")
        #expect(logged.allSatisfy { $0 < 1000 }, "\(logged)")
        let sorted = durations.map(milliseconds).sorted()
        #expect(sorted[0] < 1000, "\(sorted)")
        #expect(sorted.allSatisfy { $0 < 30_000 }, "\(sorted)")
        print(
            "restart through the sync channel, n=\(sorted.count): min \(sorted[0]) ms, median "
                + "\(sorted[sorted.count / 2]) ms, max \(sorted[sorted.count - 1]) ms; the helper logged \(logged) ms"
        )
        #expect(try await eventually { try await startedCount(id) == 7 })
        // Starting a command that runs leaves it alone.
        let started = try await remote.startProcess()
        #expect(started.restarts == 6)
        #expect(try await startedCount(id) == 7)

        // The CLI form, for use through an exec.
        let cli = try await docker("exec", id, SyncHelperProgram.containerPath, "restart")
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(cli.stdout.hasPrefix("restarted: pid "), "\(cli.stdout)")
        let status = try await docker("exec", id, SyncHelperProgram.containerPath, "status")
        #expect(status.stdout.contains("7 restarts, running"), "\(status.stdout)")
        #expect(try await eventually { try await startedCount(id) == 8 })
        #expect(try await logs(id).stderr.contains("on request"))

        // `docker stop` reaches the command (SIGTERM forwarded to its group) well before the
        // 10 s timeout, and the command's status is the container's: 143, killed by SIGTERM
        // (the engine's SIGKILL at the timeout would give 137).
        let clock = ContinuousClock.now
        #expect(try await docker("stop", "-t", "10", id).status == 0)
        let stopped = clock.duration(to: .now)
        print("docker stop -t 10 of a dev container: \(milliseconds(stopped)) ms")
        #expect(stopped < .seconds(30), "the exit status below, 143 not 137, says the timeout was not reached")
        #expect(try await containers.exitCode(id) == 143)
    }

    @Test(.requiresDockerEngine)
    func aCommandThatIgnoresSIGTERMIsKilledAfterTheGrace() async throws {
        let containers = DevContainers()
        defer { containers.removeAll() }
        let id = try await containers.start(
            helper: ["--grace-ms", "500"],
            ["sh", "-c", "trap '' TERM; echo started; while :; do sleep 0.1; done"]
        )
        #expect(try await eventually { try await startedCount(id) == 1 })
        let remote = try await containers.connect(id)
        defer { remote.close() }
        let report = try await remote.restartProcess()
        let logged = try await loggedRestartTimes(id)
        print(
            "restart of a command that ignores SIGTERM, grace 500 ms: \(milliseconds(report.duration)) ms; "
                + "the helper logged \(logged) ms"
        )
        #expect(report.duration >= .milliseconds(500))
        // Caps for a loaded machine: the point is the grace (>= 500 ms) and the SIGKILL below.
        #expect(report.duration < .seconds(60))
        #expect(logged.count == 1 && logged.allSatisfy { $0 >= 500 && $0 < 10_000 }, "\(logged)")
        #expect(try await eventually { try await startedCount(id) == 2 })
        #expect(try await logs(id).stderr.contains("did not stop within 500 ms of SIGTERM; sending SIGKILL"))
    }

    @Test(.requiresDockerEngine)
    func signalsReachTheCommandAndItsStatusIsTheContainers() async throws {
        let containers = DevContainers()
        defer { containers.removeAll() }
        let id = try await containers.start([
            "sh", "-c",
            "trap 'echo usr1' USR1; trap 'echo stopping; exit 3' TERM; echo started; while :; do sleep 0.1; done",
        ])
        #expect(try await eventually { try await startedCount(id) == 1 })
        #expect(try await docker("kill", "-s", "USR1", id).status == 0)
        #expect(try await eventually { try await logs(id).stdout.contains("usr1\n") })
        // Still running: a forwarded SIGUSR1 is no stop.
        #expect(try await containers.exitCode(id) == nil)
        let clock = ContinuousClock.now
        #expect(try await docker("stop", "-t", "10", id).status == 0)
        #expect(
            clock.duration(to: .now) < .seconds(30),
            "well inside docker stop's 10 s timeout when idle; the exit status proves the forwarding"
        )
        #expect(try await containers.exitCode(id) == 3)
        #expect(try await logs(id).stdout.contains("stopping\n"))
    }

    @Test(.requiresDockerEngine)
    func waitStartRunsNothingUntilStart() async throws {
        let containers = DevContainers()
        defer { containers.removeAll() }
        let id = try await containers.start(
            helper: ["--wait-start"],
            ["sh", "-c", "echo started; exec sleep 1000"]
        )
        #expect(try await eventually { try await logs(id).stderr.contains("waiting for a start request") })
        let remote = try await containers.connect(id)
        defer { remote.close() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await startedCount(id) == 0)
        #expect(try await !processes(id).contains("sleep 1000"))
        // A restart before the start does not start it.
        do throws(SyncRemoteError) {
            _ = try await remote.restartProcess()
            Issue.record("a restart before the start must fail")
        } catch {
            guard case .processFailed(let code, let message) = error else {
                Issue.record("not started yet is .processFailed: \(error)")
                return
            }
            #expect(code == EAGAIN)
            #expect(message.contains("has not been started yet"), "\(message)")
        }
        #expect(try await startedCount(id) == 0)

        let started = try await remote.startProcess()
        #expect(started.restarts == 0)
        #expect(try await eventually { try await startedCount(id) == 1 })
        #expect(try await processes(id).contains("sleep 1000"))
        let again = try await remote.startProcess()
        #expect(again.pid == started.pid)
        #expect(try await startedCount(id) == 1)
    }

    @Test(.requiresDockerEngine)
    func orphansAreReaped() async throws {
        let containers = DevContainers()
        defer { containers.removeAll() }
        // Each subshell starts a waiter and exits: the waiters are orphans the helper inherits.
        // They end when /tmp/go appears.
        let waiter = "until [ -e /tmp/go ]; do sleep 0.05; done"
        let id = try await containers.start([
            "sh", "-c", "for i in 1 2 3; do (sh -c '\(waiter)' &); done; echo started; exec sleep 1000",
        ])
        #expect(try await eventually { try await startedCount(id) == 1 })
        // Reparented to PID 1, the helper, once their subshells are gone.
        var before = ""
        let reparented = try await eventually {
            before = try await docker("exec", id, "ps", "-o", "ppid,args").stdout
            let waiters = before.split(separator: "\n").filter { $0.hasSuffix("sh -c \(waiter)") }
            return waiters.count == 3 && waiters.allSatisfy { $0.trimmingCharacters(in: .whitespaces).hasPrefix("1 ") }
        }
        #expect(reparented, "\(before)")
        #expect(try await docker("exec", id, "touch", "/tmp/go").status == 0)
        // Once they end, nothing of them is left: no zombie.
        #expect(try await eventually { try await !processes(id).contains("sh -c \(waiter)") })
        let after = try await docker("exec", id, "ps", "-o", "stat,args").stdout
        #expect(!after.split(separator: "\n").contains { $0.hasPrefix("Z") }, "\(after)")
    }

    @Test(.requiresDockerEngine)
    func aCommandThatExitsRunsAgainAndOneThatIsNotFoundEndsTheContainer() async throws {
        let containers = DevContainers()
        defer { containers.removeAll() }
        let id = try await containers.start(
            helper: ["--restart-delay-ms", "200"],
            ["sh", "-c", "echo started; exit 5"]
        )
        #expect(try await eventually { try await startedCount(id) >= 3 })
        #expect(
            try await logs(id).stderr.contains(
                "`sh -c echo started; exit 5` exited with status 5; running it again in 200 ms"
            )
        )
        #expect(try await containers.exitCode(id) == nil, "the container stays, as with DevSpace's helper")

        let missing = try await containers.start(["no-such-command", "--flag"])
        #expect(try await eventually { try await containers.exitCode(missing) != nil })
        #expect(try await containers.exitCode(missing) == 127)
        #expect(try await logs(missing).stderr.contains("cannot run `no-such-command --flag`: command not found"))
    }

    @Test(.requiresDockerEngine)
    func aHelperRunningAsAnotherUserListensInTmpForItsUserAndRootOnly() async throws {
        let containers = DevContainers()
        defer { containers.removeAll() }
        let id = try await containers.start(user: "1234:1234", ["sh", "-c", "echo started; exec sleep 1000"])
        #expect(try await eventually { try await startedCount(id) == 1 })
        // /.slipway is root's: the socket is in /tmp, 0600, the helper's user's.
        let socket = try await docker("exec", id, "stat", "-c", "%a %u %F", "/tmp/.slipway-control.sock")
        #expect(socket.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "600 1234 socket", "\(socket)")
        let remote = try await containers.connect(id)  // the sync runs as the container's user
        defer { remote.close() }
        #expect(try await remote.restartProcess().restarts == 1)
        #expect(try await eventually { try await startedCount(id) == 2 })
        let root = try await docker("exec", "--user", "0", id, SyncHelperProgram.containerPath, "status")
        #expect(root.stdout.contains("1 restarts, running"), "\(root)")
        let stranger = try await docker("exec", "--user", "4321", id, SyncHelperProgram.containerPath, "restart")
        #expect(stranger.status == 1)
        #expect(stranger.stderr.contains("Permission denied"), "\(stranger.stderr)")
        #expect(try await startedCount(id) == 2)
    }

    @Test(.requiresDockerEngine)
    func aContainerWithoutTheHelperAsPID1IsRefusedClearly() async throws {
        let containers = DevContainers()
        defer { containers.removeAll() }
        let id = try await containers.startPlain()
        let remote = try await containers.connect(id)
        defer { remote.close() }
        do throws(SyncRemoteError) {
            _ = try await remote.restartProcess()
            Issue.record("a container without the restart helper cannot restart its process")
        } catch {
            guard case .unusable(let message) = error else {
                Issue.record("no restart helper is .unusable: \(error)")
                return
            }
            #expect(message.contains("was not started by slipway's restart helper"), "\(message)")
            #expect(message.contains("PID 1 is `sleep 3600`"), "\(message)")
        }
        // The channel still works for sync.
        #expect(try await remote.manifest(hashing: [], hashAll: false) == [])
        let cli = try await docker("exec", id, SyncHelperProgram.containerPath, "restart")
        #expect(cli.status == 1)
        #expect(cli.stderr.contains("not started by slipway's restart helper"), "\(cli.stderr)")
    }
}
