import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// The whole loop: slipway's hooks installed in real repositories, the agent they start, real
/// commits and pushes to local bare remotes, a real registry and the real Docker engine.
@Suite(.serialized, .requiresDockerEngine, .requiresRegistry, .timeLimit(.minutes(20)))
struct AgentHookIntegrationTests {
    /// A project whose image lives in `registry` and whose `web` deployment runs it as a
    /// container, with hooks installed and a bare remote `origin`.
    static func project(
        _ dir: String,
        registry: TestRegistry? = nil,
        sleep: Int = 0
    ) throws -> (AgentProject, remote: String) {
        let name = UUID().uuidString.lowercased().prefix(12)
        var extra = ""
        if let registry {
            extra = """
                deployments:
                  web:
                    docker:
                      network: none
                      containers:
                        - name: app
                          image: \(registry.host)/\(name)/app
                          command: ["sleep", "3600"]
                """
        }
        let p = try AgentProject(
            dir: dir + "/work",
            sleep: sleep,
            extraConfig: extra,
            image: registry.map { "\($0.host)/\(name)/app" }
        )
        let remote = dir + "/remote.git"
        #expect(try sh(["git", "init", "-q", "--bare", remote], cwd: dir).status == 0)
        #expect(try p.git(["remote", "add", "origin", remote]).status == 0)
        let installed = try p.slipway(["hooks", "install"])
        #expect(installed.status == 0, "\(installed.stderr)")
        return (p, remote)
    }

    static func registryTags(_ registry: TestRegistry, _ repository: String) throws -> [String] {
        let name = repository.dropFirst(registry.host.count + 1)
        let r = try sh(
            [
                "python3", "-c",
                "import json,sys,urllib.request\ntry:\n print('\\n'.join(json.load(urllib.request.urlopen(sys.argv[1]))['tags'] or []))\nexcept Exception as e:\n pass",
                "http://\(registry.host)/v2/\(name)/tags/list",
            ],
            cwd: "/"
        )
        return r.stdout.split(separator: "\n").map(String.init).sorted()
    }

    static func containers(_ p: AgentProject) throws -> [String: String] {
        let out = try sh(
            [
                "docker", "ps", "--filter", "label=dev.slipway.config=\(p.dir)/devspace.yaml", "--format",
                "{{.Names}} {{.Image}}",
            ],
            cwd: "/"
        )
        var found: [String: String] = [:]
        for line in out.stdout.split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            if f.count == 2 { found[f[0]] = f[1] }
        }
        return found
    }

    /// Waits until `condition` holds (at most `seconds`).
    static func eventually(_ seconds: Double = 120, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(100_000)
        }
        return false
    }

    @Test func aCommitBuildsTheImageTaggedWithItsDescriptionInTheBackground() throws {
        try withTemporaryDirectory { dir in
            let (p, _) = try Self.project(dir)
            defer { p.cleanUp() }
            try "changed\n".write(toFile: p.dir + "/app/hello.txt", atomically: true, encoding: .utf8)
            // git's output on a pipe: the hook's children must not hold it.
            let started = Date()
            let commit = try sh(
                ["sh", "-c", "git -c user.name=t -c user.email=t@localhost commit -qam change 2>&1 | cat"],
                cwd: p.dir,
                env: p.env
            )
            let took = Date().timeIntervalSince(started)
            #expect(commit.status == 0)
            #expect(took < 1.0, "git commit took \(took) s with the hooks")
            let describe = try p.describe()
            #expect(try Self.eventually { try p.imageExists(describe) }, "no \(p.repo):\(describe); log:\n\(p.log())")
            #expect(p.agentPID() != nil, "the hook started the agent")
            let s = try #require(try p.waitIdle())
            #expect(s.last.first { $0.pipeline == "commit" }?.result?.tags == ["\(p.repo):\(describe)"])
        }
    }

    @Test func theNextHookReportsAFailedJobOnce() throws {
        try withTemporaryDirectory { dir in
            let (p, _) = try Self.project(dir)
            defer { p.cleanUp() }
            try p.write("app/Dockerfile", "FROM slipway/busybox\nRUN echo breaks && false\n")
            let broken = try p.commit("broken")
            // The hook hands the commit over asynchronously: wait for the job's end itself.
            #expect(Self.eventually { p.journal().contains { $0.kind == .finished && $0.id == 1 } }, "log:\n\(p.log())")
            try p.write("app/Dockerfile", "FROM slipway/busybox\nCOPY hello.txt /hello.txt\n")
            let next = try p.git(["commit", "-qam", "fixed"])
            #expect(
                next.stderr.contains(
                    "slipway: job 1 (commit pipeline at \(broken.prefix(7)) on main) failed: build:app failed: docker: building app failed (exit status 1) — see `slipway agent logs`\n"
                ),
                "\(next.stderr)"
            )
            // Then the build's last lines, its own output among them.
            #expect(next.stderr.contains("\nslipway:   breaks\n"), "\(next.stderr)")
            #expect(next.stderr.contains("returned a non-zero code: 1\n"), "\(next.stderr)")
            #expect(next.stderr.contains("slipway agent logs"))
            _ = try p.waitIdle()
            let quiet = try p.git(["commit", "-q", "--allow-empty", "-m", "quiet"])
            #expect(quiet.status == 0)
            #expect(!quiet.stderr.contains("slipway: job"), "reported once only: \(quiet.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: p.state + "/failed").isEmpty)
        }
    }

    @Test func aPushBuildsPushesTheBranchTagsAndDeploysTheBranch() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let (p, _) = try Self.project(dir, registry: registry)
            defer { p.cleanUp() }
            #expect(try p.git(["checkout", "-q", "-b", "feature/Login"]).status == 0)
            _ = try p.commit("feature work")
            let describe = try p.describe()
            // Pushed as `HEAD`: pre-push names the local ref as typed; the job is the remote's branch.
            let push = try p.git(["push", "-q", "origin", "HEAD"])
            #expect(push.status == 0, "\(push.stderr)")
            #expect(
                try Self.eventually {
                    try Self.registryTags(registry, p.repo) == [describe, "feature-Login"].sorted()
                },
                "registry tags: \((try? Self.registryTags(registry, p.repo)) ?? []); log:\n\(p.log())"
            )
            let s = try #require(try p.waitIdle())
            let pushed = try #require(s.last.first { $0.pipeline == "push" })
            #expect(pushed.result?.ok == true, "\(String(describing: pushed.result))")
            #expect(pushed.branch == "feature/Login")
            let running = try Self.containers(p)
            #expect(running["agent-test-web-app-feature-Login"] == "\(p.repo):feature-Login", "\(running)")
            #expect(p.log().contains("the push was confirmed"))
        }
    }

    @Test func aPushTheRemoteRefusesDeploysNothingAndAPushToAURLIsConfirmedByTheRemote() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let (p, remote) = try Self.project(dir, registry: registry)
            defer { p.cleanUp() }
            // The remote refuses every push after pre-push has run, by name and by URL.
            let policy = remote + "/hooks/pre-receive"
            try writeExecutable("#!/bin/sh\necho 'refused by policy' >&2\nexit 1\n", to: policy)
            _ = try p.commit("refused")
            #expect(try p.git(["push", "-q", "origin", "main"]).status != 0)
            #expect(try p.git(["push", "-q", remote, "main"]).status != 0)
            #expect(Self.eventually { p.journal().filter { $0.kind == .dropped }.count == 2 }, "log:\n\(p.log())")
            var s = try #require(try p.waitIdle())
            #expect(s.last.first { $0.pipeline == "push" } == nil)
            // `slipway status` shows the dropped pushes, and why.
            #expect(s.dropped?.count == 2, "\(String(describing: s.dropped))")
            #expect(
                s.dropped?.allSatisfy { $0.state == "dropped" && $0.note?.contains("nothing deployed") == true } == true
            )
            let shown = try p.slipway(["status"]).stdout
            #expect(
                shown.contains(
                    "dropped:  job 2  push  main@\(try p.git(["rev-parse", "--short=7", "HEAD"]).stdout.prefix(7))"
                ),
                "\(shown)"
            )
            #expect(shown.components(separatedBy: "dropped:  ").count == 3, "\(shown)")
            #expect(try Self.registryTags(registry, p.repo).isEmpty)
            #expect(try Self.containers(p).isEmpty)
            #expect(p.log().contains("nothing deployed"))
            // Accepted now, pushed to the URL: no remote-tracking ref moves, the remote says yes.
            try FileManager.default.removeItem(atPath: policy)
            #expect(try p.git(["push", "-q", remote, "main"]).status == 0)
            #expect(
                try Self.eventually { try Self.containers(p)["agent-test-web-app-main"] != nil },
                "log:\n\(p.log())"
            )
            s = try #require(try p.waitIdle())
            #expect(s.last.first { $0.pipeline == "push" }?.result?.ok == true)
            #expect(p.log().contains("the push succeeded"))
        }
    }

    @Test func gateModeRefusesAPushWhoseBuildFails() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let (p, remote) = try Self.project(dir, registry: registry)
            defer { p.cleanUp() }
            #expect(try p.git(["config", "slipway.gate", "true"]).status == 0)
            try p.write("app/Dockerfile", "FROM slipway/busybox\nRUN echo gate-breaks && false\n")
            let broken = try p.commit("broken")
            let push = try p.git(["push", "origin", "main"])
            #expect(push.status != 0)
            #expect(
                push.stderr.contains("slipway gate: the push was refused because the build failed"),
                "\(push.stderr)"
            )
            let there = try sh(
                ["git", "--git-dir", remote, "rev-parse", "--verify", "-q", "refs/heads/main"],
                cwd: dir
            )
            #expect(there.status != 0, "the refused push reached the remote")
            // Fixed, the gate passes and the push goes through.
            try p.write("app/Dockerfile", "FROM slipway/busybox\nCOPY hello.txt /hello.txt\n")
            let fixed = try p.commit("fixed")
            #expect(fixed != broken)
            let again = try p.git(["push", "origin", "main"])
            #expect(again.status == 0, "\(again.stderr)")
            #expect(
                try sh(["git", "--git-dir", remote, "rev-parse", "refs/heads/main"], cwd: dir).stdout.hasPrefix(fixed)
            )
            _ = try p.waitIdle()
        }
    }

    @Test func twentyQuickCommitsBuildTheNewestAndSupersedeTheRest() throws {
        try withTemporaryDirectory { dir in
            let (p, _) = try Self.project(dir, sleep: 2)
            defer { p.cleanUp() }
            #expect(try p.slipway(["agent", "start"]).status == 0)
            var commits: [String] = []
            for n in 1...20 { commits.append(try p.commit("burst \(n)")) }
            let describe = try p.describe()
            let s = try #require(try p.waitIdle(240))
            let pid = try #require(p.agentPID())
            #expect(ChildProcess.isAlive(pid, start: nil), "the agent survived")
            let records = p.journal()
            let accepted = records.filter { $0.kind == .accepted && $0.job?.pipeline == "commit" }
            #expect(accepted.count == 20)
            #expect(accepted.map { $0.job!.commit } == commits)
            let queue = JobQueue(replaying: records)
            var built: [Int] = []
            for record in accepted {
                switch queue.entries[record.id!]!.state {
                case .finished(let result):
                    #expect(result.ok, "\(result.message)")
                    built.append(record.id!)
                case .superseded: break
                default: Issue.record("job \(record.id!) ended as \(queue.entries[record.id!]!.state)")
                }
            }
            #expect(built.last == accepted.last?.id, "the newest commit is built")
            #expect(built.count <= 2, "built: \(built)")
            #expect(try p.imageExists(describe))
            #expect(s.last.first?.commit == commits.last)
        }
    }

    @Test func killNineThenTheNextCommitCompletesTheInterruptedJobOnce() throws {
        try withTemporaryDirectory { dir in
            let (p, _) = try Self.project(dir, sleep: 4)
            defer { p.cleanUp() }
            _ = try p.commit("first slow")
            let firstDescribe = try p.describe()
            #expect(try Self.eventually(60) { try p.status()?.running.isEmpty == false })
            usleep(500_000)
            let pid = try #require(p.agentPID())
            kill(pid, SIGKILL)
            #expect(Self.eventually(10) { !ChildProcess.isAlive(pid, start: nil) })
            // The next commit's hook starts a new agent, which resumes the interrupted job.
            _ = try p.commit("second")
            let secondDescribe = try p.describe()
            #expect(
                Self.eventually(60) { p.agentPID().map { $0 != pid && ChildProcess.isAlive($0, start: nil) } ?? false }
            )
            _ = try p.waitIdle(240)
            let records = p.journal()
            let first = try #require(records.first { $0.kind == .accepted }?.id)
            #expect(records.filter { $0.id == first && $0.kind == .finished }.count == 1)
            #expect(records.filter { $0.id == first && $0.kind == .requeued }.count == 1)
            #expect(try p.imageExists(firstDescribe), "the interrupted commit's image")
            #expect(try p.imageExists(secondDescribe))
        }
    }

    @Test func aHostileBranchNameBuildsAndDeploysWithASanitizedTagAndRunsNothing() throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        try withTemporaryDirectory { dir in
            let (p, _) = try Self.project(dir, registry: registry)
            defer { p.cleanUp() }
            let marker = dir + "/executed"
            let branch = "$(touch${IFS}\(marker))"
            #expect(try p.git(["checkout", "-q", "-b", branch]).status == 0)
            _ = try p.commit("hostile")
            let push = try p.git(["push", "-q", "origin", branch])
            #expect(push.status == 0, "\(push.stderr)")
            let tag = BranchTag.tag(for: branch)
            #expect(try Self.eventually { try Self.registryTags(registry, p.repo).contains(tag) }, "log:\n\(p.log())")
            let s = try #require(try p.waitIdle())
            #expect(s.last.first { $0.pipeline == "push" }?.result?.ok == true)
            #expect(!FileManager.default.fileExists(atPath: marker), "a branch name was executed")
            let running = try Self.containers(p)
            #expect(running.values.contains("\(p.repo):\(tag)"), "\(running)")
        }
    }
}
