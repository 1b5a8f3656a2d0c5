import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

// `slipway hooks` and hooks/slipway-hook, end to end: real repositories, the real hooks run by
// git. SLIPWAY_BIN points at a recording script (it appends its arguments to `calls`), so the
// agent's start is observed without an agent (the agent has tests of its own).

/// A repository in a temporary directory, with a pinned environment for git and its hooks.
struct HookRepo {
    let root: String  // the temporary directory
    let dir: String  // the work tree
    let recorder: String
    var env: [String: String]

    init(_ root: String, name: String = "repo") throws {
        self.root = root
        dir = root + "/" + name
        recorder = root + "/recorder"
        env = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": root + "/home", "LANG": "C.UTF-8", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
            "SLIPWAY_BIN": recorder, "RECORDER_LOG": root + "/calls",
        ]
        try FileManager.default.createDirectory(atPath: root + "/home", withIntermediateDirectories: true)
        try write(
            """
            #!/bin/sh
            # Records how the hooks call slipway; `agent gate` also records its stdin.
            printf '%s\\n' "$*" >>"$RECORDER_LOG"
            if [ "$1 $2" = "agent gate" ]; then
                cat >"$RECORDER_LOG.gate-stdin"
                echo "gate: checking"
                exit "${RECORDER_GATE_STATUS:-0}"
            fi
            [ -n "${RECORDER_SLEEP-}" ] && sleep "$RECORDER_SLEEP"
            exit 0

            """,
            to: recorder,
            mode: 0o755
        )
        try git(["init", "-q", "-b", "main", dir], in: root)
        try git(["commit", "-q", "--allow-empty", "-m", "first"])
    }

    var gitDir: String { dir + "/.git" }
    var inbox: String { gitDir + "/slipway/inbox" }

    @discardableResult
    func git(
        _ args: [String],
        in cwd: String? = nil,
        env extra: [String: String] = [:],
        expect: Int32? = 0
    )
        throws -> (status: Int32, stdout: String, stderr: String)
    {
        let r = try sh(["git"] + args, cwd: cwd ?? dir, env: env.merging(extra) { $1 }, replacingEnvironment: true)
        if let expect, r.status != expect {
            Issue.record("git \(args.joined(separator: " ")) exited \(r.status): \(r.stderr)")
        }
        return r
    }

    func out(_ args: [String], in cwd: String? = nil) throws -> String {
        try git(args, in: cwd).stdout.trimmingCharacters(in: .newlines)
    }

    @discardableResult
    func slipway(
        _ args: [String],
        in cwd: String? = nil,
        env extra: [String: String] = [:]
    ) throws -> SlipwayBinary.Result {
        try SlipwayBinary.run(args, in: cwd ?? dir, env: extra)
    }

    /// The inbox files (name → content), waiting for none.
    /// The inbox's files by name; without `environment`, their `v1 env …` lines are left out
    /// (the event lines are what most tests look at).
    func inboxFiles(environment: Bool = false) -> [String: String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: inbox)) ?? []
        var files: [String: String] = [:]
        for name in names {
            let text = (try? String(contentsOfFile: inbox + "/" + name, encoding: .utf8)) ?? ""
            files[name] =
                environment
                ? text
                : text.split(separator: "\n", omittingEmptySubsequences: false)
                    .filter { !$0.hasPrefix("v1\tenv\t") }.joined(separator: "\n")
        }
        return files
    }

    func inboxFiles(prefix: String, environment: Bool = false) -> [String: String] {
        inboxFiles(environment: environment).filter { $0.key.hasPrefix(prefix + ".") }
    }

    func clearInbox() {
        for name in inboxFiles().keys { try? FileManager.default.removeItem(atPath: inbox + "/" + name) }
    }

    /// The recorder's calls, after waiting (up to 5 s) until there are at least `count`.
    func calls(atLeast count: Int = 1) -> [String] {
        let deadline = Date().addingTimeInterval(5)
        while true {
            let text = (try? String(contentsOfFile: root + "/calls", encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n").map(String.init)
            if lines.count >= count || Date() > deadline { return lines }
            usleep(20_000)
        }
    }
}

func write(_ text: String, to path: String, mode: Int = 0o644) throws {
    try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent,
        withIntermediateDirectories: true
    )
    try writeExecutable(text, to: path, mode: mode_t(mode))
}

func fileMode(_ path: String) -> Int {
    var st = stat()
    guard lstat(path, &st) == 0 else { return -1 }
    return Int(st.st_mode & 0o7777)
}

let hookNames = ["post-commit", "pre-push", "reference-transaction", "post-checkout", "post-merge", "post-rewrite"]
let zeros = String(repeating: "0", count: 40)

@Suite struct HooksTests {
    @Test func installStatusUninstall() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let binary = URL(fileURLWithPath: SlipwayBinary.path).resolvingSymlinksInPath().path
            try FileManager.default.createDirectory(atPath: repo.dir + "/sub/dir", withIntermediateDirectories: true)
            // From a subdirectory: the repository's hooks directory.
            let installed = try repo.slipway(["hooks", "install"], in: repo.dir + "/sub/dir")
            #expect(installed.status == 0, "\(installed.stderr)")
            for name in hookNames {
                let path = repo.gitDir + "/hooks/" + name
                #expect(fileMode(path) == 0o755, "\(name)")
                let text = try String(contentsOfFile: path, encoding: .utf8)
                #expect(text.contains("\n# slipway-hook v1\n"))
                #expect(text.contains("\nSLIPWAY_INSTALLED_BIN='\(binary)'\n"))
                #expect(!text.contains("@SLIPWAY_BIN@"))
            }
            let status = try repo.slipway(["hooks", "status", "-C", "sub"])
            #expect(status.status == 0)
            #expect(status.stdout.contains("hooks directory: \(repo.gitDir)/hooks (git's default"))
            #expect(status.stdout.contains("binary: \(binary)\n"))
            #expect(status.stdout.contains("gate mode: off"))
            for name in hookNames {
                #expect(
                    status.stdout.contains("  \(name)" + String(repeating: " ", count: 22 - name.count) + " slipway\n")
                )
            }
            // Idempotent.
            let again = try repo.slipway(["hooks", "install"])
            #expect(again.status == 0)
            #expect(again.stdout.components(separatedBy: "already installed").count == 7)

            try repo.git(["config", "slipway.gate", "true"])
            #expect(try repo.slipway(["hooks", "status"]).stdout.contains("gate mode: on"))

            let removed = try repo.slipway(["hooks", "uninstall"])
            #expect(removed.status == 0)
            for name in hookNames { #expect(fileMode(repo.gitDir + "/hooks/" + name) == -1) }
            #expect(try repo.slipway(["hooks", "uninstall"]).status == 0)
            #expect(try repo.slipway(["hooks", "status"]).stdout.contains("  post-commit            missing\n"))
        }
    }

    @Test func outsideARepository() throws {
        try withTemporaryDirectory { root in
            let r = try SlipwayBinary.run(["hooks", "install"], in: root)
            #expect(r.status == 1)
            #expect(r.stderr.contains("not a git repository (run inside the project's repository)"))
            let usage = try SlipwayBinary.run(["hooks", "install", "--bogus"], in: root)
            #expect(usage.status == 64)
        }
    }

    @Test func postCommitWritesTheInboxAndStartsTheAgent() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            try repo.git(["commit", "-q", "--allow-empty", "-m", "second"])
            let oid = try repo.out(["rev-parse", "HEAD"])
            let files = repo.inboxFiles(prefix: "commit")
            #expect(files.count == 1)
            let (name, text) = try #require(files.first)
            #expect(name.hasPrefix("commit.") && name.hasSuffix("." + oid))
            #expect(text == "v1\tcommit\t\(oid)\trefs/heads/main\t\(repo.dir)\n")
            #expect(repo.calls().contains("agent start --quiet"))
            // A plain commit changes no remote-tracking ref: no tracking file.
            #expect(repo.inboxFiles(prefix: "tracking").isEmpty)

            // Detached HEAD.
            try repo.git(["checkout", "-q", "--detach"])
            repo.clearInbox()
            try repo.git(["commit", "-q", "--allow-empty", "-m", "detached"])
            let detached = try repo.out(["rev-parse", "HEAD"])
            #expect(Array(repo.inboxFiles(prefix: "commit").values) == ["v1\tcommit\t\(detached)\tHEAD\t\(repo.dir)\n"])
        }
    }

    @Test func anInboxThatCannotBeWrittenIsSaidInOneLineAndTheCommitStands() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let bare = root + "/remote.git"
            try repo.git(["init", "-q", "--bare", bare], in: root)
            try repo.git(["remote", "add", "origin", bare])
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            // The state directory cannot be made: a file has its name.
            #expect(FileManager.default.createFile(atPath: repo.gitDir + "/slipway", contents: Data("x".utf8)))
            let commit = try repo.git(["commit", "-q", "--allow-empty", "-m", "lost"])
            let oid = try repo.out(["rev-parse", "HEAD"])
            #expect(commit.status == 0)
            let said = commit.stderr.split(separator: "\n").filter { $0.hasPrefix("slipway:") }
            #expect(
                said == [
                    "slipway: cannot write to \(repo.gitDir)/slipway/inbox (disk full?): commit \(oid.prefix(7)) will not be built; "
                        + "free space there, then run `slipway agent submit commit`"
                ],
                "\(commit.stderr)"
            )
            #expect(commit.stderr.split(separator: "\n").count == 1, "one line: \(commit.stderr)")
            let push = try repo.git(["push", "-q", "origin", "main"])
            #expect(push.status == 0)
            #expect(
                push.stderr.split(separator: "\n").filter { $0.hasPrefix("slipway:") } == [
                    "slipway: cannot write to \(repo.gitDir)/slipway/inbox (disk full?): this push will not be built or deployed; "
                        + "free space there, then run `slipway agent submit push` after the push"
                ],
                "\(push.stderr)"
            )
            // A checkout only hints the agent: nothing said.
            let checkout = try repo.git(["checkout", "-q", "-b", "other"])
            #expect(checkout.stderr.isEmpty, "\(checkout.stderr)")
            // With the directory back, the next commit's file is there and nothing is said.
            try FileManager.default.removeItem(atPath: repo.gitDir + "/slipway")
            try FileManager.default.createDirectory(atPath: repo.inbox, withIntermediateDirectories: true)
            #expect(try repo.git(["commit", "-q", "--allow-empty", "-m", "kept"]).stderr.isEmpty)
            #expect(repo.inboxFiles(prefix: "commit").count == 1)
        }
    }

    @Test func aSlowAgentStartDoesNotDelayTheCommit() throws {
        try withTemporaryDirectory { root in
            var repo = try HookRepo(root)
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            repo.env["RECORDER_SLEEP"] = "2"
            // git's output piped, as in IDEs and CI wrappers: a hook's child holding stderr
            // would keep the pipe open for the 2 s.
            let start = Date()
            let r = try sh(
                ["sh", "-c", "git commit --allow-empty -m piped 2>&1 | cat"],
                cwd: repo.dir,
                env: repo.env,
                replacingEnvironment: true
            )
            let elapsed = Date().timeIntervalSince(start)
            #expect(r.status == 0)
            #expect(elapsed < 0.5, "git commit took \(elapsed) s")
            #expect(repo.calls().contains("agent start --quiet"))
        }
    }

    @Test func earlierHooksRunFirstAndComeBackOnUninstall() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let hooks = repo.gitDir + "/hooks"
            let own = "#!/bin/sh\necho \"own $*\" >> '\(root)/own-post-commit'\n"
            try write(own, to: hooks + "/post-commit", mode: 0o750)
            // A symbolic link as the post-merge hook, and a non-executable post-checkout.
            try write(
                "#!/bin/sh\necho merged >> '\(root)/own-post-merge'\n",
                to: root + "/scripts/merge-hook",
                mode: 0o755
            )
            try FileManager.default.createSymbolicLink(
                atPath: hooks + "/post-merge",
                withDestinationPath: "../../../scripts/merge-hook"
            )
            try write("#!/bin/sh\nexit 3\n", to: hooks + "/post-checkout", mode: 0o644)

            let installed = try repo.slipway(["hooks", "install"])
            #expect(installed.status == 0, "\(installed.stderr)")
            #expect(installed.stdout.contains("runs the earlier hook first (post-commit.slipway-chained)"))
            #expect(
                try repo.slipway(["hooks", "status"]).stdout.contains("slipway, chaining post-commit.slipway-chained")
            )
            try repo.git(["commit", "-q", "--allow-empty", "-m", "second"])
            #expect(try String(contentsOfFile: root + "/own-post-commit", encoding: .utf8) == "own \n")
            #expect(repo.inboxFiles(prefix: "commit").count == 1)
            try repo.git(["checkout", "-q", "-b", "side"])
            try repo.git(["commit", "-q", "--allow-empty", "-m", "on side"])
            try repo.git(["checkout", "-q", "main"])
            try repo.git(["merge", "-q", "--no-ff", "-m", "merge", "side"])
            #expect(try String(contentsOfFile: root + "/own-post-merge", encoding: .utf8) == "merged\n")
            #expect(repo.inboxFiles(prefix: "refresh").values.contains("v1\trefresh\tpost-merge\t\(repo.dir)\n"))

            #expect(try repo.slipway(["hooks", "uninstall"]).status == 0)
            #expect(try Data(contentsOf: URL(fileURLWithPath: hooks + "/post-commit")) == Data(own.utf8))
            #expect(fileMode(hooks + "/post-commit") == 0o750)
            #expect(
                try FileManager.default.destinationOfSymbolicLink(atPath: hooks + "/post-merge")
                    == "../../../scripts/merge-hook"
            )
            #expect(fileMode(hooks + "/post-checkout") == 0o644)
            for name in hookNames { #expect(fileMode(hooks + "/" + name + ".slipway-chained") == -1) }
            #expect(fileMode(hooks + "/pre-push") == -1)
        }
    }

    @Test func aChainedPostCheckoutFailureIsKept() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try write("#!/bin/sh\nexit 3\n", to: repo.gitDir + "/hooks/post-checkout", mode: 0o755)
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            // git makes any failure of post-checkout the checkout's status 1, as without slipway.
            try repo.git(["checkout", "-q", "-b", "next"], expect: 1)
            let oid = try repo.out(["rev-parse", "HEAD"])
            #expect(Array(repo.inboxFiles(prefix: "checkout").values) == ["v1\tcheckout\t\(oid)\t1\t\(repo.dir)\n"])
        }
    }

    @Test func aChainedReferenceTransactionRefusingInPreparedAbortsTheUpdate() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            // The user's hook sees git's stdin and vetoes any update of refs/heads/locked.
            try write(
                "#!/bin/sh\n[ \"$1\" = prepared ] || exit 0\nwhile read -r old new ref; do echo \"$1 $ref\" >> '\(root)/seen'; [ \"$ref\" = refs/heads/locked ] && exit 1; done\nexit 0\n",
                to: repo.gitDir + "/hooks/reference-transaction",
                mode: 0o755
            )
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            try repo.git(["branch", "locked"], expect: 128)
            #expect(try repo.git(["rev-parse", "--verify", "-q", "refs/heads/locked"], expect: nil).status != 0)
            try repo.git(["branch", "free"])
            let seen = try String(contentsOfFile: root + "/seen", encoding: .utf8)
            #expect(seen.contains("prepared refs/heads/locked") && seen.contains("prepared refs/heads/free"), "\(seen)")
        }
    }

    @Test func postRewriteLeavesARefreshHint() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            try repo.git(["commit", "-q", "--allow-empty", "-m", "second"])
            repo.clearInbox()
            try repo.git(["commit", "-q", "--amend", "--allow-empty", "-m", "second, amended"])
            #expect(Array(repo.inboxFiles(prefix: "refresh").values) == ["v1\trefresh\tpost-rewrite\t\(repo.dir)\n"])
        }
    }

    @Test func aConflictingChainedHookIsRefused() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try write("#!/bin/sh\n", to: repo.gitDir + "/hooks/pre-push", mode: 0o755)
            try write("#!/bin/sh\n", to: repo.gitDir + "/hooks/pre-push.slipway-chained", mode: 0o755)
            let r = try repo.slipway(["hooks", "install"])
            #expect(r.status == 1)
            #expect(r.stderr.contains("\(repo.gitDir)/hooks/pre-push is not slipway's hook"))
            #expect(r.stderr.contains("pre-push.slipway-chained"))
            #expect(fileMode(repo.gitDir + "/hooks/post-commit") == -1)  // nothing changed
        }
    }

    @Test func preAndPostPush() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let bare = root + "/remote.git"
            try repo.git(["init", "-q", "--bare", bare], in: root)
            try repo.git(["remote", "add", "origin", bare])
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            let oid = try repo.out(["rev-parse", "HEAD"])
            try repo.git(["push", "-q", "origin", "main"])
            let gitLines = repo.inboxFiles(prefix: "prepush").values.flatMap { $0.split(separator: "\n") }
            #expect(gitLines.count == 1)
            let fields =
                gitLines.first.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
                ?? []
            #expect(fields.count == 10)
            if fields.count == 10 {
                #expect(fields[0...1] == ["v1", "prepush"])
                #expect(Int(fields[2]) != nil)
                #expect(
                    Array(fields[3...]) == ["origin", bare, "refs/heads/main", oid, "refs/heads/main", zeros, repo.dir]
                )
            }
            #expect(
                Array(repo.inboxFiles(prefix: "tracking").values) == [
                    "v1\ttracking\t\(zeros)\t\(oid)\trefs/remotes/origin/main\t\(repo.dir)\n"
                ]
            )

            // `git push origin HEAD` names the local ref HEAD; to a URL, the remote is the URL.
            repo.clearInbox()
            try repo.git(["commit", "-q", "--allow-empty", "-m", "second"])
            let second = try repo.out(["rev-parse", "HEAD"])
            try repo.git(["push", "-q", bare, "HEAD:refs/heads/other"])
            #expect(
                Array(repo.inboxFiles(prefix: "prepush").values).map {
                    $0.split(separator: "\t").dropFirst(3).joined(separator: "\t")
                }
                    == ["\(bare)\t\(bare)\tHEAD\t\(second)\trefs/heads/other\t\(zeros)\t\(repo.dir)\n"]
            )
            // No remote-tracking ref is updated by a push to a URL.
            #expect(repo.inboxFiles(prefix: "tracking").isEmpty)
            // Deleting a branch submits nothing.
            repo.clearInbox()
            try repo.git(["push", "-q", bare, ":refs/heads/other"])
            #expect(repo.inboxFiles(prefix: "prepush").isEmpty)
        }
    }

    @Test func aFailingPrePushStillRefusesThePush() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let bare = root + "/remote.git"
            try repo.git(["init", "-q", "--bare", bare], in: root)
            try repo.git(["remote", "add", "origin", bare])
            try write(
                "#!/bin/sh\necho \"$1 $2\" > '\(root)/args'\ncat > '\(root)/stdin'\necho 'own hook: no' >&2\nexit 1\n",
                to: repo.gitDir + "/hooks/pre-push",
                mode: 0o755
            )
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            let oid = try repo.out(["rev-parse", "HEAD"])
            let r = try repo.git(["push", "origin", "main"], expect: 1)
            #expect(r.stderr.contains("own hook: no"))
            #expect(try String(contentsOfFile: root + "/args", encoding: .utf8) == "origin \(bare)\n")
            #expect(
                try String(contentsOfFile: root + "/stdin", encoding: .utf8)
                    == "refs/heads/main \(oid) refs/heads/main \(zeros)\n"
            )
            #expect(repo.inboxFiles().isEmpty)
            #expect(try repo.git(["ls-remote", bare]).stdout.isEmpty)
        }
    }

    @Test func gateMode() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let bare = root + "/remote.git"
            try repo.git(["init", "-q", "--bare", bare], in: root)
            try repo.git(["remote", "add", "origin", bare])
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            try repo.git(["config", "slipway.gate", "true"])
            let oid = try repo.out(["rev-parse", "HEAD"])
            let refused = try repo.git(["push", "origin", "main"], env: ["RECORDER_GATE_STATUS": "7"], expect: 1)
            #expect((refused.stdout + refused.stderr).contains("gate: checking"))
            #expect(repo.calls().contains("agent gate origin \(bare)"))
            #expect(
                try String(contentsOfFile: root + "/calls.gate-stdin", encoding: .utf8)
                    == "refs/heads/main \(oid) refs/heads/main \(zeros)\n"
            )
            #expect(repo.inboxFiles().isEmpty)
            let passed = try repo.git(["push", "origin", "main"], env: ["RECORDER_GATE_STATUS": "0"])
            #expect((passed.stdout + passed.stderr).contains("gate: checking"))
            #expect(repo.inboxFiles(prefix: "prepush").count == 1)
            // SLIPWAY_GATE=0 overrides the config.
            repo.clearInbox()
            let off = try repo.git(
                ["push", "origin", "HEAD:refs/heads/y"],
                env: ["RECORDER_GATE_STATUS": "7", "SLIPWAY_GATE": "0"]
            )
            #expect(!(off.stdout + off.stderr).contains("gate: checking"))
            #expect(repo.inboxFiles(prefix: "prepush").count == 1)
            // A missing binary in gate mode refuses the push.
            let gone = root + "/gone-slipway"
            try FileManager.default.copyItem(atPath: repo.recorder, toPath: gone)
            try #require(try repo.slipway(["hooks", "install", "--bin", gone]).status == 0)
            try FileManager.default.removeItem(atPath: gone)
            let missing = try repo.git(
                ["push", "origin", "HEAD:refs/heads/x"],
                env: ["SLIPWAY_BIN": "", "PATH": "/usr/bin:/bin", "SLIPWAY_GATE": "1"],
                expect: 1
            )
            #expect(
                missing.stderr.contains(
                    "slipway: hook pre-push: slipway binary not found (set SLIPWAY_BIN or put it on PATH); nothing submitted"
                )
            )
        }
    }

    @Test func hooksPathRelativeAndAbsolute() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try repo.git(["config", "core.hooksPath", "tools/hooks"])
            // In the work tree and not ignored: slipway's hooks would be committed.
            let refused = try repo.slipway(["hooks", "install"])
            #expect(refused.status == 1)
            #expect(
                refused.stderr.contains(
                    "core.hooksPath is tools/hooks (set in .git/config): \(repo.dir)/tools/hooks is in the work tree and git does not ignore it"
                ),
                "\(refused.stderr)"
            )
            #expect(refused.stderr.contains("Nothing was installed") && refused.stderr.contains("--force"))
            #expect(fileMode(repo.dir + "/tools/hooks/post-commit") == -1)
            // Ignored there (as husky's .husky/_ is): installed.
            try write("*\n", to: repo.dir + "/tools/hooks/.gitignore")
            #expect(try repo.slipway(["hooks", "install"]).status == 0)
            #expect(fileMode(repo.dir + "/tools/hooks/post-commit") == 0o755)
            #expect(try repo.out(["status", "--porcelain"]).isEmpty, "nothing of slipway's shows in git status")
            #expect(fileMode(repo.gitDir + "/hooks/post-commit") == -1)
            #expect(try repo.slipway(["hooks", "status"]).stdout.contains("(from core.hooksPath = tools/hooks)"))
            try repo.git(["commit", "-q", "--allow-empty", "-m", "second"])
            #expect(repo.inboxFiles(prefix: "commit").count == 1)

            // Outside the repository: other repositories may run hooks from there.
            let absolute = root + "/shared-hooks"
            try repo.git(["config", "core.hooksPath", absolute])
            let shared = try repo.slipway(["hooks", "install"])
            #expect(shared.status == 1)
            #expect(
                shared.stderr.contains("\(absolute) is outside this repository, so other repositories may run"),
                "\(shared.stderr)"
            )
            #expect(fileMode(absolute + "/reference-transaction") == -1)
            #expect(try repo.slipway(["hooks", "install", "--force"]).status == 0)
            #expect(fileMode(absolute + "/reference-transaction") == 0o755)
            repo.clearInbox()
            try repo.git(["commit", "-q", "--allow-empty", "-m", "third"])
            #expect(repo.inboxFiles(prefix: "commit").count == 1)
        }
    }

    /// A hooks directory the repository commits: install refuses (slipway's hooks would be
    /// committed by `git commit -a`, its tracked hook replaced) and changes nothing; --force
    /// installs there anyway.
    @Test func aTrackedHooksPathIsRefused() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try write("#!/bin/sh\necho team hook\n", to: repo.dir + "/.githooks/post-checkout", mode: 0o755)
            try repo.git(["add", ".githooks"])
            try repo.git(["commit", "-q", "-m", "team hooks"])
            try repo.git(["config", "core.hooksPath", ".githooks"])
            let refused = try repo.slipway(["hooks", "install"])
            #expect(refused.status == 1)
            #expect(
                refused.stderr.contains(
                    "\(repo.dir)/.githooks is a directory this repository tracks (post-checkout), so slipway's hooks written there would be committed by `git add` or `git commit -a`"
                ),
                "\(refused.stderr)"
            )
            #expect(refused.stderr.contains("`slipway hooks install --force`"))
            #expect(refused.stderr.contains("git config core.hooksPath .git/hooks"))
            #expect(try repo.out(["status", "--porcelain"]).isEmpty, "nothing changed")
            let forced = try repo.slipway(["hooks", "install", "--force"])
            #expect(forced.status == 0, "\(forced.stderr)")
            #expect(try repo.out(["status", "--porcelain"]).contains(" M .githooks/post-checkout"))
            #expect(try repo.slipway(["hooks", "uninstall"]).status == 0)
            #expect(try repo.out(["status", "--porcelain"]).isEmpty, "uninstall puts the tracked hook back")
        }
    }

    @Test func linkedWorktree() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let tree = root + "/feature-tree"
            try repo.git(["worktree", "add", "-q", "-b", "feature", tree])
            let installed = try repo.slipway(["hooks", "install"], in: tree)
            #expect(installed.status == 0, "\(installed.stderr)")
            #expect(fileMode(repo.gitDir + "/hooks/post-commit") == 0o755)
            try repo.git(["commit", "-q", "--allow-empty", "-m", "in the worktree"], in: tree)
            let oid = try repo.out(["rev-parse", "HEAD"], in: tree)
            #expect(
                Array(repo.inboxFiles(prefix: "commit").values) == ["v1\tcommit\t\(oid)\trefs/heads/feature\t\(tree)\n"]
            )
        }
    }

    @Test func switchedOff() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try write("#!/bin/sh\necho ran >> '\(root)/own'\n", to: repo.gitDir + "/hooks/post-commit", mode: 0o755)
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            try repo.git(["commit", "-q", "--allow-empty", "-m", "off"], env: ["SLIPWAY": "0"])
            try repo.git(["commit", "-q", "--allow-empty", "-m", "ci"], env: ["CI": "true"])
            #expect(repo.inboxFiles().isEmpty)
            // The user's own hook still runs.
            #expect(try String(contentsOfFile: root + "/own", encoding: .utf8) == "ran\nran\n")
            try repo.git(["commit", "-q", "--allow-empty", "-m", "ci, on"], env: ["CI": "true", "SLIPWAY": "1"])
            #expect(repo.inboxFiles(prefix: "commit").count == 1)
        }
    }

    @Test(arguments: ["$(touch${IFS}MARKER)", "`touch${IFS}MARKER`", "q\"uote'semi;colon$HOME"])
    func branchNamesAreLiteral(_ template: String) throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let marker = root + "/marker"
            let branch = template.replacingOccurrences(of: "MARKER", with: marker)
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            try repo.git(["checkout", "-q", "-b", branch])
            try repo.git(["commit", "-q", "--allow-empty", "-m", "odd"])
            let oid = try repo.out(["rev-parse", "HEAD"])
            #expect(
                Array(repo.inboxFiles(prefix: "commit").values) == [
                    "v1\tcommit\t\(oid)\trefs/heads/\(branch)\t\(repo.dir)\n"
                ]
            )
            #expect(!FileManager.default.fileExists(atPath: marker))
        }
    }

    /// The variables a job must see as the committing shell saw them travel in the hook's
    /// inbox entry (mode 0600): KUBECONFIG, DOCKER_HOST, DOCKER_CONFIG (set or not), every
    /// DEVSPACE_*, and the names the agent recorded; values with tabs, newlines, backslashes
    /// and shell syntax arrive as they were, names that are not plain never reach eval.
    @Test func theJobsEnvironmentTravelsInAPrivateInboxEntry() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let bare = root + "/remote.git"
            try repo.git(["init", "-q", "--bare", bare], in: root)
            try repo.git(["remote", "add", "origin", bare])
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            let marker = root + "/marker"
            try FileManager.default.createDirectory(atPath: repo.gitDir + "/slipway", withIntermediateDirectories: true)
            try write(
                "REGISTRY\nlowercase\nBAD-NAME\n$(touch${IFS}\(marker))\nX;touch${IFS}\(marker)\n",
                to: repo.gitDir + "/slipway/environment-names"
            )
            let kubeconfig = "/k c/$(touch \(marker))/`x`'q'"
            let devspace = "a\tb\\c\nd\\n"
            let env = [
                "KUBECONFIG": kubeconfig, "DEVSPACE_FOO": devspace, "DEVSPACE_EMPTY": "", "REGISTRY": "reg.example",
                "lowercase": "not passed",
            ]
            try repo.git(["commit", "-q", "--allow-empty", "-m", "second"], env: env)
            let oid = try repo.out(["rev-parse", "HEAD"])
            let (name, text) = try #require(repo.inboxFiles(prefix: "commit", environment: true).first)
            #expect(fileMode(repo.inbox + "/" + name) == 0o600)
            let lines = text.split(separator: "\n").map(String.init)
            #expect(lines.first == "v1\tcommit\t\(oid)\trefs/heads/main\t\(repo.dir)")
            #expect(
                Set(lines.dropFirst()) == [
                    "v1\tenv\tKUBECONFIG\t\(kubeconfig)", "v1\tenv\tDOCKER_HOST", "v1\tenv\tDOCKER_CONFIG",
                    "v1\tenv\tREGISTRY\treg.example", "v1\tenv\tDEVSPACE_FOO\ta\\tb\\\\c\\nd\\\\n",
                    "v1\tenv\tDEVSPACE_EMPTY\t",
                ],
                "\(text)"
            )
            let (events, errors) = InboxEvent.parse(text)
            #expect(errors.isEmpty)
            let captured = try #require(InboxEvent.capturedEnvironment(events))
            #expect(
                captured.values == [
                    "KUBECONFIG": kubeconfig, "DEVSPACE_FOO": devspace, "DEVSPACE_EMPTY": "", "REGISTRY": "reg.example",
                ]
            )
            #expect(captured.unset == ["DOCKER_CONFIG", "DOCKER_HOST"])
            #expect(!FileManager.default.fileExists(atPath: marker))

            // pre-push carries the environment of the `git push`.
            repo.clearInbox()
            try repo.git(["push", "-q", "origin", "main"], env: ["DOCKER_HOST": "unix:///run/other.sock"])
            let push = try #require(repo.inboxFiles(prefix: "prepush", environment: true).first)
            #expect(push.value.contains("\nv1\tenv\tDOCKER_HOST\tunix:///run/other.sock\n"), "\(push.value)")
            #expect(fileMode(repo.inbox + "/" + push.key) == 0o600)
            // Remote-tracking updates carry no environment.
            #expect(
                repo.inboxFiles(prefix: "tracking", environment: true).values.allSatisfy { !$0.contains("\tenv\t") }
            )
        }
    }

    @Test func failedJobsAreReportedOnce() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            let failed = repo.gitDir + "/slipway/failed"
            try write("job 11 (commit pipeline at 1111111 on main) failed: images.api: exit 1\n", to: failed + "/11")
            // The newest file's line is printed.
            let older = Date().addingTimeInterval(-60)
            try FileManager.default.setAttributes([.modificationDate: older], ofItemAtPath: failed + "/11")
            try write(
                "job 12 (commit pipeline at 1a2b3c4 on main) failed: images.app: build failed\n",
                to: failed + "/12"
            )
            let r = try repo.git(["commit", "-q", "--allow-empty", "-m", "next"])
            #expect(
                r.stderr
                    == "slipway: job 12 (commit pipeline at 1a2b3c4 on main) failed: images.app: build failed — see `slipway agent logs` (and 1 more)\n"
            )
            #expect(try FileManager.default.contentsOfDirectory(atPath: failed).isEmpty)
            let quiet = try repo.git(["commit", "-q", "--allow-empty", "-m", "again"])
            #expect(quiet.stderr.isEmpty)
        }
    }

    @Test func missingBinaryIsSaidOnce() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try #require(try repo.slipway(["hooks", "install", "--bin", repo.recorder]).status == 0)
            try FileManager.default.removeItem(atPath: repo.recorder)
            let r = try repo.git(
                ["commit", "-q", "--allow-empty", "-m", "x"],
                env: ["SLIPWAY_BIN": "", "PATH": "/usr/bin:/bin"]
            )
            #expect(
                r.stderr
                    == "slipway: hook post-commit: slipway binary not found (set SLIPWAY_BIN or put it on PATH); nothing submitted\n"
            )
            #expect(repo.inboxFiles().isEmpty)
            #expect(
                try repo.slipway(["hooks", "status"]).stdout.contains("(missing: run `slipway hooks install` again)")
            )
        }
    }
}
