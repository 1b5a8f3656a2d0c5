import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// A git repository with a devspace.yaml whose image builds on the offline base image, and
/// the agent of that repository, driven through the built binary.
struct AgentProject {
    let dir: String
    let repo: String
    let env: [String: String]

    /// `sleep`: seconds the image's build sleeps (a build long enough to interrupt).
    init(dir: String, sleep: Int = 0, extraConfig: String = "", image: String? = nil) throws {
        self.dir = dir
        repo = image ?? uniqueTestRepository()
        env = [
            "KUBECONFIG": dir + "/no-kubeconfig", "SLIPWAY": "1", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
        ]
        try FileManager.default.createDirectory(atPath: dir + "/app", withIntermediateDirectories: true)
        // The sleeping step names this project, so the engine's layer cache (shared by every
        // test run on the machine) can never make it fast.
        try write(
            "app/Dockerfile",
            "FROM slipway/busybox\nCOPY hello.txt /hello.txt\n"
                + (sleep > 0 ? "RUN sleep \(sleep) && echo \(repo)\n" : "")
        )
        try write("app/hello.txt", "hello\n")
        try write(".gitignore", ".devspace/\n")
        try write(
            "devspace.yaml",
            """
            version: v2beta1
            name: agent-test
            images:
              app:
                image: \(repo)
                dockerfile: app/Dockerfile
                context: app
            \(extraConfig)
            """
        )
        for args in [
            ["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "first"], ["tag", "-a", "v1.0", "-m", "v1"],
        ] {
            let r = try git(args)
            #expect(r.status == 0, "git \(args): \(r.stderr)")
        }
    }

    func write(_ path: String, _ text: String) throws {
        try text.write(toFile: dir + "/" + path, atomically: true, encoding: .utf8)
    }

    @discardableResult
    func git(
        _ args: [String],
        in directory: String? = nil,
        env extra: [String: String] = [:]
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        try sh(
            ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"] + args,
            cwd: directory ?? dir,
            env: env.merging(extra) { $1 }
        )
    }

    func commit(_ text: String, in directory: String? = nil, env extra: [String: String] = [:]) throws -> String {
        try (text + "\n").write(toFile: (directory ?? dir) + "/app/hello.txt", atomically: true, encoding: .utf8)
        #expect(try git(["commit", "-qam", text], in: directory, env: extra).status == 0)
        return try git(["rev-parse", "HEAD"], in: directory).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func describe(in directory: String? = nil) throws -> String {
        try git(["describe", "--always"], in: directory).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func slipway(
        _ args: [String],
        in directory: String? = nil,
        env extra: [String: String] = [:],
        timeout: Int = 300
    ) throws -> SlipwayBinary.Result {
        try SlipwayBinary.run(args, in: directory ?? dir, env: env.merging(extra) { $1 }, timeout: timeout)
    }

    var state: String { dir + "/.git/slipway" }

    func status() throws -> AgentStatus? {
        let r = try slipway(["status", "--json"])
        return try? JSONDecoder().decode(AgentStatus.self, from: Data(r.stdout.utf8))
    }

    /// Waits until nothing runs, is queued or awaits a push (at most `seconds`).
    func waitIdle(_ seconds: Double = 180) throws -> AgentStatus? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            // Idle means also that no hook's file waits in the inbox.
            let inbox = (try? FileManager.default.contentsOfDirectory(atPath: state + "/inbox")) ?? []
            if inbox.isEmpty, let s = try status(), s.running.isEmpty, s.queued.isEmpty, s.awaitingPush.isEmpty {
                return s
            }
            usleep(200_000)
        }
        Issue.record("the agent was still busy after \(seconds) s")
        return try status()
    }

    /// The journal's records.
    func journal() -> [JournalRecord] { Journal(path: state + "/journal.jsonl").read() }

    func agentPID() -> Int32? {
        (try? String(contentsOfFile: state + "/agent.pid", encoding: .utf8)).flatMap {
            Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    func imageExists(_ tag: String) throws -> Bool {
        try sh(["docker", "image", "inspect", "\(repo):\(tag)"], cwd: "/").status == 0
    }

    func log() -> String { (try? String(contentsOfFile: state + "/agent.log", encoding: .utf8)) ?? "" }

    /// `slipway agent start`, then waits until its log says it watches this project's build
    /// contexts (its warm digests).
    func startAgentWatchingContexts() throws {
        #expect(try slipway(["agent", "start"]).status == 0)
        #expect(
            AgentHookIntegrationTests.eventually(60) {
                log().contains("warm digests: watching the build contexts of \(dir)")
            },
            "\(log())"
        )
    }

    /// Stops the agent, removes the containers this project's deployments made, and its images.
    func cleanUp() {
        _ = try? slipway(["agent", "stop"], timeout: 30)
        _ = try? sh(
            [
                "sh", "-c",
                "docker ps -aq --filter \"label=dev.slipway.config=$1/devspace.yaml\" | xargs -r docker rm -f", "sh",
                dir,
            ],
            cwd: "/"
        )
        let images =
            (try? sh(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repo], cwd: "/"))?.stdout ?? ""
        let ours = images.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        if !ours.isEmpty { _ = try? sh(["docker", "rmi", "-f", "--no-prune"] + ours, cwd: "/") }
    }
}

/// The agent end to end: the built binary, real git repositories, the real Docker engine.
@Suite(.serialized, .requiresDockerEngine, .timeLimit(.minutes(15)))
struct AgentIntegrationTests {
    @Test func startStatusStopAndOneAgentPerRepository() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            let start = try p.slipway(["agent", "start"])
            #expect(start.status == 0, "\(start.stderr)")
            #expect(start.stdout.contains("started"))
            var st = stat()
            #expect(stat(p.state, &st) == 0 && st.st_mode & 0o777 == 0o700)
            #expect(
                lstat(p.state + "/agent.sock", &st) == 0 && st.st_mode & 0o777 == 0o600
                    && (st.st_mode & S_IFMT) == S_IFSOCK
            )
            let pid = try #require(p.agentPID())
            #expect(ChildProcess.isAlive(pid, start: nil))
            // A second start finds it; a second agent refuses to run.
            let again = try p.slipway(["agent", "start"])
            #expect(again.status == 0 && again.stdout.contains("running (pid \(pid))"))
            let second = try p.slipway(["agent", "run"])
            #expect(second.status == 1)
            #expect(second.stderr.contains("an agent already runs for \(dir)/.git (pid \(pid))"))
            // From a subdirectory the same agent answers.
            let status = try p.slipway(["agent", "status"], in: dir + "/app")
            #expect(status.stdout.contains("agent: running (pid \(pid))"))
            let stop = try p.slipway(["agent", "stop"])
            #expect(stop.status == 0 && stop.stdout.contains("stopped"))
            #expect(!ChildProcess.isAlive(pid, start: nil))
            #expect(!FileManager.default.fileExists(atPath: p.state + "/agent.pid"))
            #expect(try p.slipway(["status"]).stdout.contains("agent: not running"))
        }
    }

    @Test func aRepositoryTooDeepForASocketPathGetsAPrivateSocketElsewhere() throws {
        try withTemporaryDirectory { dir in
            let deep = dir + "/" + String(repeating: "d", count: 60) + "/" + String(repeating: "e", count: 60)
            try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
            let p = try AgentProject(dir: deep)
            defer { p.cleanUp() }
            let paths = AgentPaths(commonDir: deep + "/.git")
            #expect(paths.socket.hasPrefix("/tmp/slipway-\(getuid())/"))
            #expect(try p.slipway(["agent", "start"]).status == 0)
            var st = stat()
            #expect(lstat(paths.socket, &st) == 0 && st.st_mode & 0o777 == 0o600)
            #expect(stat("/tmp/slipway-\(getuid())", &st) == 0 && st.st_mode & 0o777 == 0o700 && st.st_uid == getuid())
            #expect(try p.slipway(["status"]).stdout.contains("agent: running"))
            #expect(try p.slipway(["agent", "stop"]).status == 0)
        }
    }

    @Test func aCommitJobBuildsTheImageTaggedWithTheCommitsDescription() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            _ = try p.commit("second")
            let describe = try p.describe()
            #expect(describe.hasPrefix("v1.0-1-g"))
            let r = try p.slipway(["agent", "submit", "commit", "--wait"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try p.imageExists(describe))
            let s = try #require(try p.status())
            #expect(s.last.first?.pipeline == "commit")
            #expect(s.last.first?.result?.tags == ["\(p.repo):\(describe)"])
            let text = try p.slipway(["status"]).stdout
            #expect(text.contains("commit: finished"))
            #expect(text.contains("\(p.repo):\(describe)"))
            let logs = try p.slipway(["agent", "logs", "-n", "200"])
            #expect(logs.stdout.contains("job 1 started: commit pipeline at"))
            #expect(logs.stdout.contains("job 1 finished"))
        }
    }

    @Test func killNineDuringABuildThenStartCompletesTheJobExactlyOnce() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, sleep: 4)
            defer { p.cleanUp() }
            _ = try p.commit("slow")
            let describe = try p.describe()
            #expect(try p.slipway(["agent", "submit", "commit"]).status == 0)
            // Wait until the build runs, then kill the agent without warning.
            var running = false
            for _ in 0..<100 {
                if let s = try p.status(), !s.running.isEmpty {
                    running = true
                    break
                }
                usleep(100_000)
            }
            #expect(running)
            usleep(500_000)
            let pid = try #require(p.agentPID())
            kill(pid, SIGKILL)
            for _ in 0..<50 where ChildProcess.isAlive(pid, start: nil) { usleep(100_000) }
            #expect(!ChildProcess.isAlive(pid, start: nil))
            #expect(try p.slipway(["status"]).stdout.contains("interrupted: resumes when the agent starts"))
            #expect(try p.slipway(["agent", "start"]).status == 0)
            let s = try #require(try p.waitIdle())
            #expect(s.last.first?.id == 1)
            #expect(s.last.first?.result?.ok == true)
            #expect(try p.imageExists(describe))
            let records = p.journal().filter { $0.id == 1 }
            #expect(records.filter { $0.kind == .finished }.count == 1)
            #expect(records.filter { $0.kind == .requeued }.count == 1)
            #expect(records.filter { $0.kind == .accepted }.count == 1)
            #expect(p.log().contains("was interrupted when the agent stopped: running it again"))
        }
    }

    @Test func jobsInTheMainWorktreeUseWarmDigestsAndStillSeeEveryChange() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            try p.startAgentWatchingContexts()
            for n in 1...2 {
                _ = try p.commit("warm \(n)")
                usleep(1_000_000)  // the warmer re-digests after its quiet period
                let r = try p.slipway(["agent", "submit", "commit", "--wait"])
                #expect(r.status == 0, "\(r.stderr)")
                let describe = try p.describe()
                let content = try sh(
                    ["docker", "run", "--rm", "--network", "none", "\(p.repo):\(describe)", "cat", "/hello.txt"],
                    cwd: "/"
                )
                #expect(content.stdout == "warm \(n)\n", "the image has the committed content")
            }
            #expect(p.log().contains("with warm digests"), "\(p.log())")
        }
    }

    @Test func retentionKeepsTheNewestCommitImagesAndWhatContainersUse() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            #expect(try p.slipway(["agent", "start"], env: ["SLIPWAY_KEEP_IMAGES": "2"]).status == 0)
            var tags: [String] = []
            for n in 1...4 {
                _ = try p.commit("retained \(n)")
                tags.append(try p.describe())
                #expect(try p.slipway(["agent", "submit", "commit", "--wait"]).status == 0)
                if n == 1 {
                    // A (stopped) container of the oldest image: it must stay.
                    #expect(
                        try sh(
                            [
                                "docker", "create", "--network", "none", "--label",
                                "dev.slipway.config=\(dir)/devspace.yaml", "\(p.repo):\(tags[0])", "true",
                            ],
                            cwd: "/"
                        ).status == 0
                    )
                }
            }
            // Retention runs after a job is reported finished.
            #expect(
                AgentHookIntegrationTests.eventually(60) { p.log().contains("\(p.repo):\(tags[1]): removed") },
                "\(p.log())"
            )
            #expect(try p.imageExists(tags[0]), "used by a container")
            #expect(try !p.imageExists(tags[1]), "beyond the newest 2 and unused")
            #expect(try p.imageExists(tags[2]) && p.imageExists(tags[3]))
            #expect(p.log().contains("\(p.repo):\(tags[0]): kept (a container uses it)"))
            // Once nothing uses it, `slipway cleanup images` removes it; --dry-run only says so.
            _ = try sh(
                [
                    "sh", "-c",
                    "docker ps -aq --filter \"label=dev.slipway.config=$1/devspace.yaml\" | xargs -r docker rm -f",
                    "sh", dir,
                ],
                cwd: "/"
            )
            let dry = try p.slipway(["cleanup", "images", "--keep", "2", "--dry-run"])
            #expect(dry.status == 0)
            #expect(dry.stdout == "\(p.repo):\(tags[0]): would be removed\n", "\(dry.stdout)")
            #expect(try p.imageExists(tags[0]))
            let all = try p.slipway(["cleanup", "images", "--all"])
            #expect(all.status == 0, "\(all.stderr)")
            for tag in [tags[0], tags[2], tags[3]] { #expect(try !p.imageExists(tag), "\(tag)") }
            #expect(try p.slipway(["cleanup", "images"]).stdout.contains("nothing to remove"))
        }
    }

    @Test func logsFollowStreamsTheJobsOutputAsItHappens() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            #expect(try p.slipway(["agent", "start"]).status == 0)
            let paths = AgentPaths(commonDir: dir + "/.git")
            let client = try #require(try AgentClient(paths: paths))
            client.setTimeout(60)
            try client.send(AgentRequest(op: "follow", lines: 0))
            _ = try p.commit("followed")
            #expect(try p.slipway(["agent", "submit", "commit"]).status == 0)
            var seen: [String] = []
            while let response = try client.receive(), let line = response.line {
                seen.append(line)
                if line.contains("job 1 finished") { break }
            }
            #expect(seen.contains { $0.contains("job 1 accepted: commit pipeline at") })
            #expect(seen.contains { $0.contains("job 1: ") }, "the pipeline's own output is streamed")
            #expect(seen.last?.contains("job 1 finished") == true)
        }
    }

    /// A job sees KUBECONFIG, DEVSPACE_* and the variables the config reads as the shell of
    /// the commit (or of `agent submit`) had them, not as the agent was started; the journal
    /// and the log keep names only.
    @Test func aJobSeesTheEnvironmentOfTheShellThatSubmittedIt() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(
                dir: dir,
                extraConfig: """
                    vars:
                      REGISTRY:
                        source: env
                        default: none
                      CTX: ${DEVSPACE_CONTEXT}
                    pipelines:
                      commit:
                        run: |-
                          printf '%s|%s|%s|%s\\n' "$KUBECONFIG" "${CTX}" "${REGISTRY}" "${DEVSPACE_FOO-unset}" > "$SLIPWAY_JOB_WORKTREE/.git/seen-$SLIPWAY_JOB_ID"
                    """
            )
            defer { p.cleanUp() }
            let unique = UUID().uuidString.lowercased().prefix(8)
            func kubeconfig(_ name: String) throws -> String {
                let path = "\(dir)/kubeconfig-\(name)-\(unique)"
                try """
                apiVersion: v1
                kind: Config
                current-context: \(name)-ctx-\(unique)
                contexts:
                - name: \(name)-ctx-\(unique)
                  context: {cluster: c, user: u}
                clusters:
                - name: c
                  cluster: {server: "https://127.0.0.1:1"}
                users:
                - name: u
                  user: {}
                """.write(toFile: path, atomically: true, encoding: .utf8)
                return path
            }
            func seen(_ id: Int) -> String? {
                (try? String(contentsOfFile: "\(dir)/.git/seen-\(id)", encoding: .utf8))?
                    .trimmingCharacters(in: .newlines)
            }
            #expect(try p.slipway(["hooks", "install"]).status == 0)
            // The agent starts from a shell with a kubeconfig and a DEVSPACE_ variable of its own.
            let agentsOwn = try kubeconfig("agent")
            let start = try p.slipway(["agent", "start"], env: ["KUBECONFIG": agentsOwn, "DEVSPACE_FOO": "agent-foo"])
            #expect(start.status == 0, "\(start.stderr)")

            // A commit from a shell with another kubeconfig: the job sees the commit's.
            let first = try kubeconfig("first")
            _ = try p.commit("first change", env: ["KUBECONFIG": first])
            #expect(AgentHookIntegrationTests.eventually { !(seen(1) ?? "").isEmpty }, "log:\n\(p.log())")
            #expect(seen(1) == "\(first)|first-ctx-\(unique)|none|unset")
            _ = try p.waitIdle()
            // The job told the agent the config reads REGISTRY: the hooks pass it on from now.
            #expect(
                (try? String(contentsOfFile: p.state + "/environment-names", encoding: .utf8)) == "REGISTRY\n"
            )

            let second = try kubeconfig("second")
            let registry = "reg-\(unique).example"
            _ = try p.commit(
                "second change",
                env: ["KUBECONFIG": second, "REGISTRY": registry, "DEVSPACE_FOO": "foo-\(unique)"]
            )
            #expect(AgentHookIntegrationTests.eventually { !(seen(2) ?? "").isEmpty }, "log:\n\(p.log())")
            #expect(seen(2) == "\(second)|second-ctx-\(unique)|\(registry)|foo-\(unique)")
            _ = try p.waitIdle()

            // `slipway agent submit` passes its own environment on too.
            let third = try kubeconfig("third")
            let submit = try p.slipway(["agent", "submit", "commit", "--wait"], env: ["KUBECONFIG": third])
            #expect(submit.status == 0, "\(submit.stderr)")
            #expect(seen(3) == "\(third)|third-ctx-\(unique)|none|unset")

            // The journal keeps the names; no value reaches the journal or the log, and the
            // per-job environment files are gone with their jobs.
            let accepted = p.journal().filter { $0.kind == .accepted }.compactMap(\.job)
            #expect(
                accepted.map(\.environment) == [
                    ["KUBECONFIG"], ["DEVSPACE_FOO", "KUBECONFIG", "REGISTRY"], ["KUBECONFIG"],
                ]
            )
            let journal = try String(contentsOfFile: p.state + "/journal.jsonl", encoding: .utf8)
            for text in [journal, p.log()] {
                for value in [agentsOwn, first, second, third, registry, "foo-\(unique)", "agent-foo"] {
                    #expect(!text.contains(value), "\(value) was written: \(text)")
                }
            }
            #expect(p.log().contains("with DEVSPACE_FOO, KUBECONFIG, REGISTRY as submitted"), "\(p.log())")
            let jobFiles = try FileManager.default.contentsOfDirectory(atPath: p.state + "/jobs")
            #expect(jobFiles.isEmpty, "\(jobFiles)")
        }
    }

    @Test func aFailingJobIsReportedOnceAndTheAgentCarriesOn() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            try p.write("app/Dockerfile", "FROM slipway/busybox\nRUN echo this-step-breaks && false\n")
            _ = try p.commit("broken build")
            let r = try p.slipway(["agent", "submit", "commit", "--wait"])
            #expect(r.status == 1)
            #expect(r.stderr.contains("job 1 failed"))
            let notices = try FileManager.default.contentsOfDirectory(atPath: p.state + "/failed")
            #expect(notices == ["1"])
            let notice = try String(contentsOfFile: p.state + "/failed/1", encoding: .utf8)
            #expect(notice.hasPrefix("job 1 (commit pipeline at "))
            // The build's error and its last lines, not a row of the summary table.
            #expect(
                notice.contains(") failed: build:app failed: docker: building app failed (exit status 1)\n"),
                "\(notice)"
            )
            #expect(notice.contains("\n  this-step-breaks\n"), "\(notice)")
            #expect(notice.contains("returned a non-zero code: 1\n"), "\(notice)")
            #expect(!notice.contains("RESULT") && !notice.contains("no previous build recorded"), "\(notice)")
            #expect(
                r.stderr.contains("job 1 failed: build:app failed: docker: building app failed (exit status 1)"),
                "\(r.stderr)"
            )
            #expect(r.stderr.contains("  this-step-breaks\n"), "\(r.stderr)")
            let s = try #require(try p.status())
            #expect(s.last.first?.result?.lastLines?.contains("this-step-breaks") == true)
            let text = try p.slipway(["status"]).stdout
            #expect(text.contains("commit: failed (job 1, "), "\(text)")
            #expect(text.contains("): build:app failed: docker: building app failed (exit status 1)\n"), "\(text)")
            #expect(text.contains("\n      this-step-breaks\n"), "\(text)")
            #expect(p.log().contains("job 1 failed after "), "\(p.log())")
            #expect(p.log().contains("job 1 failed:   this-step-breaks"), "\(p.log())")
            // The agent is alive and runs the next job.
            try p.write("app/Dockerfile", "FROM slipway/busybox\nCOPY hello.txt /hello.txt\n")
            _ = try p.commit("fixed")
            #expect(try p.slipway(["agent", "submit", "commit", "--wait"]).status == 0)
            #expect(try p.imageExists(try p.describe()))
        }
    }

    @Test func aBrokenConfigOrAQuestionFailsTheJobWithTheReason() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            try p.write("devspace.yaml", "version: v2beta1\nname: broken\nimages:\n  app:\n    image: [unclosed\n")
            _ = try p.commit("break the config")
            let r = try p.slipway(["agent", "submit", "commit", "--wait"])
            #expect(r.status == 1)
            #expect(r.stderr.contains("devspace.yaml:"), "\(r.stderr)")
            let s = try #require(try p.status())
            #expect(
                s.last.first?.result?.message.contains("devspace.yaml:5:") == true,
                "\(String(describing: s.last.first?.result))"
            )
            // A variable that would be asked for interactively.
            try p.write(
                "devspace.yaml",
                """
                version: v2beta1
                name: asks
                vars:
                  REGISTRY_USER:
                    question: Which registry user?
                images:
                  app:
                    image: \(p.repo)-${REGISTRY_USER}
                    dockerfile: app/Dockerfile
                    context: app
                """
            )
            _ = try p.commit("ask")
            let q = try p.slipway(["agent", "submit", "commit", "--wait"])
            #expect(q.status == 1)
            #expect(q.stderr.contains("REGISTRY_USER"), "\(q.stderr)")
            #expect(q.stderr.contains("--var") || q.stderr.contains("environment"), "\(q.stderr)")
        }
    }

    @Test func aRepositoryWithoutAConfigHasNothingToDoAndNothingToReport() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            #expect(try p.git(["rm", "-q", "devspace.yaml"]).status == 0)
            #expect(try p.git(["commit", "-qm", "no config"]).status == 0)
            let r = try p.slipway(["agent", "submit", "commit", "--wait"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("no devspace.yaml in \(dir): nothing to do"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: p.state + "/failed").isEmpty)
        }
    }

    @Test func anotherUserCannotUseTheSocket() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            #expect(try p.slipway(["agent", "start"]).status == 0)
            // Let "nobody" reach the repository, not the state directory (0700).
            chmod(dir, 0o755)
            // libgit2 refuses a repository of another owner unless safe.directory says otherwise.
            let home = dir + "-nobody-home"
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: home) }
            try "[safe]\n\tdirectory = \(dir)\n\tdirectory = \(dir)/\n".write(
                toFile: home + "/.gitconfig",
                atomically: true,
                encoding: .utf8
            )
            chmod(home, 0o755)
            chmod(home + "/.gitconfig", 0o644)
            let asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SlipwayBinary.path]
            let denied = try sh(asNobody + ["agent", "status", "--chdir", dir], cwd: "/", env: ["HOME": home])
            #expect(denied.status == 1, "\(denied.stdout)")
            #expect(
                denied.stderr.contains("permission denied") || denied.stderr.contains("Permission denied"),
                "\(denied.stderr)"
            )
            // Even with the directory and the socket opened up, the agent checks the peer's uid.
            chmod(p.state, 0o711)
            chmod(p.state + "/agent.sock", 0o666)
            defer { chmod(p.state, 0o700) }
            let refused = try sh(asNobody + ["agent", "status", "--chdir", dir], cwd: "/", env: ["HOME": home])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("refused: this agent serves only its own user"), "\(refused.stderr)")
            #expect(p.log().contains("refused a connection from uid 65534"))
            // The owner still gets answers.
            #expect(try p.slipway(["agent", "status"]).stdout.contains("agent: running"))
        }
    }

    @Test func aJobWhoseWorktreeWasDeletedRunsInACheckoutOfItsCommit() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, sleep: 2)
            defer { p.cleanUp() }
            let linked = dir + "-feature"
            defer { try? FileManager.default.removeItem(atPath: linked) }
            #expect(try p.git(["worktree", "add", "-q", "-b", "feature", linked]).status == 0)
            _ = try p.commit("on the feature branch", in: linked)
            let describe = try p.describe(in: linked)
            // Hold the worker with a slow job, queue the feature's job, delete its worktree.
            #expect(try p.slipway(["agent", "submit", "commit"]).status == 0)
            #expect(try p.slipway(["agent", "submit", "commit"], in: linked).status == 0)
            try FileManager.default.removeItem(atPath: linked)
            let s = try #require(try p.waitIdle())
            let feature = try #require(s.last.first { $0.pipeline == "commit" })
            #expect(feature.id == 2)
            #expect(feature.result?.ok == true, "\(String(describing: feature.result))")
            #expect(try p.imageExists(describe))
            #expect(p.log().contains("\(linked) no longer exists: running in \(p.state)/checkouts/feature"))
        }
    }
}
