import Foundation
import SlipwayTestSupport
import Testing

// slipway's hooks next to the hook managers people already use: pre-commit and lefthook for
// real (PyPI packages; `.ci/run` installs them into the test venv), husky by its exact on-disk
// layout (npm is not reachable from the machines this project is built on).

private func toolRuns(_ tool: String) -> Bool {
    (try? sh([tool, "--version"], cwd: "/").status) == 0
}

extension Trait where Self == ConditionTrait {
    /// `pre-commit` (PyPI) must be on PATH (always in CI).
    static var requiresPreCommit: Self {
        .enabled("pre-commit is not on PATH (CI=true makes this test require it)") {
            EngineAvailability.required || toolRuns("pre-commit")
        }
    }

    /// `lefthook` (PyPI) must be on PATH (always in CI).
    static var requiresLefthook: Self {
        .enabled("lefthook is not on PATH (CI=true makes this test require it)") {
            EngineAvailability.required || toolRuns("lefthook")
        }
    }
}

@Suite struct HookManagersTests {
    /// A `repo: local` pre-commit config with one hook at pre-commit and one at post-commit.
    private func preCommitRepo(_ root: String) throws -> HookRepo {
        let repo = try HookRepo(root)
        let log = root + "/managers"
        try write(
            """
            repos:
              - repo: local
                hooks:
                  - id: before
                    name: before
                    entry: sh -c 'echo pre-commit >> "$0"' \(log)
                    language: system
                    always_run: true
                    pass_filenames: false
                    stages: [pre-commit]
                  - id: after
                    name: after
                    entry: sh -c 'echo post-commit >> "$0"' \(log)
                    language: system
                    always_run: true
                    pass_filenames: false
                    stages: [post-commit]

            """,
            to: repo.dir + "/.pre-commit-config.yaml"
        )
        try repo.git(["add", ".pre-commit-config.yaml"])
        try repo.git(["commit", "-q", "-m", "pre-commit config"])
        return repo
    }

    @Test(.requiresPreCommit, arguments: [true, false])
    func preCommitFramework(preCommitFirst: Bool) throws {
        try withTemporaryDirectory { root in
            let repo = try preCommitRepo(root)
            let preCommit = ["pre-commit", "install", "-t", "pre-commit", "-t", "post-commit"]
            if preCommitFirst {
                try #require(try sh(preCommit, cwd: repo.dir, env: repo.env, replacingEnvironment: true).status == 0)
                try #require(try repo.slipway(["hooks", "install"]).status == 0)
                #expect(
                    try repo.slipway(["hooks", "status"]).stdout.contains(
                        "slipway, chaining post-commit.slipway-chained"
                    )
                )
            } else {
                try #require(try repo.slipway(["hooks", "install"]).status == 0)
                try #require(try sh(preCommit, cwd: repo.dir, env: repo.env, replacingEnvironment: true).status == 0)
                // pre-commit moved slipway's hook to post-commit.legacy and runs it first.
                #expect(try repo.slipway(["hooks", "status"]).stdout.contains("runs slipway's as post-commit.legacy"))
                // Installing again keeps that arrangement (no second copy of slipway's hook).
                let again = try repo.slipway(["hooks", "install"])
                #expect(again.stdout.contains("run by pre-commit's hook as post-commit.legacy"))
            }
            let r = try repo.git(["commit", "-q", "--allow-empty", "-m", "both"])
            let oid = try repo.out(["rev-parse", "HEAD"])
            #expect(
                try String(contentsOfFile: root + "/managers", encoding: .utf8) == "pre-commit\npost-commit\n",
                "\(r.stdout)\(r.stderr)"
            )
            #expect(
                Array(repo.inboxFiles(prefix: "commit").values) == [
                    "v1\tcommit\t\(oid)\trefs/heads/main\t\(repo.dir)\n"
                ]
            )

            // Uninstall leaves pre-commit's hooks working.
            #expect(try repo.slipway(["hooks", "uninstall"]).status == 0)
            repo.clearInbox()
            try repo.git(["commit", "-q", "--allow-empty", "-m", "pre-commit only"])
            #expect(
                try String(contentsOfFile: root + "/managers", encoding: .utf8)
                    == "pre-commit\npost-commit\n".repeated(2)
            )
            #expect(repo.inboxFiles().isEmpty)
        }
    }

    @Test(.requiresLefthook)
    func lefthookThenSlipway() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            try write(
                "post-commit:\n  commands:\n    mark:\n      run: echo lefthook >> '\(root)/managers'\n",
                to: repo.dir + "/lefthook.yml"
            )
            try repo.git(["add", "lefthook.yml"])
            try repo.git(["commit", "-q", "-m", "lefthook config"])
            let lefthook = ["lefthook", "install"]

            // The wrong order first: lefthook renames slipway's hook to .old and never runs it.
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            try #require(try sh(lefthook, cwd: repo.dir, env: repo.env, replacingEnvironment: true).status == 0)
            #expect(try repo.slipway(["hooks", "status"]).stdout.contains("post-commit.old and does not run"))
            // Installing slipway after lefthook chains lefthook's hook.
            try #require(try repo.slipway(["hooks", "install"]).status == 0)
            #expect(
                try repo.slipway(["hooks", "status"]).stdout.contains("slipway, chaining post-commit.slipway-chained")
            )
            try repo.git(["commit", "-q", "--allow-empty", "-m", "both"])
            let oid = try repo.out(["rev-parse", "HEAD"])
            #expect(try String(contentsOfFile: root + "/managers", encoding: .utf8) == "lefthook\n")
            #expect(
                Array(repo.inboxFiles(prefix: "commit").values) == [
                    "v1\tcommit\t\(oid)\trefs/heads/main\t\(repo.dir)\n"
                ]
            )
        }
    }

    /// husky 9.1.7's `.husky/_/h`, as its `husky` command writes it.
    private static let huskyRunner = """
        #!/usr/bin/env sh
        [ "$HUSKY" = "2" ] && set -x
        n=$(basename "$0")
        s=$(dirname "$(dirname "$0")")/$n

        [ ! -f "$s" ] && exit 0

        if [ -f "$HOME/.huskyrc" ]; then
        \techo "husky - '~/.huskyrc' is DEPRECATED, please move your code to ~/.config/husky/init.sh"
        fi
        i="${XDG_CONFIG_HOME:-$HOME/.config}/husky/init.sh"
        [ -f "$i" ] && . "$i"

        [ "${HUSKY-}" = "0" ] && exit 0

        export PATH="node_modules/.bin:$PATH"
        sh -e "$s" "$@"
        c=$?

        [ $c != 0 ] && echo "husky - $n script failed (code $c)"
        [ $c = 127 ] && echo "husky - command not found in PATH=$PATH"
        exit $c
        """
    private static let huskyHooks = [
        "pre-commit", "pre-merge-commit", "prepare-commit-msg", "commit-msg", "post-commit", "applypatch-msg",
        "pre-applypatch", "post-applypatch", "pre-rebase", "post-rewrite", "post-checkout", "post-merge", "pre-push",
        "pre-auto-gc",
    ]

    /// Reproduces what husky 9 writes (npm, which would install the real one, is unreachable
    /// here): core.hooksPath `.husky/_` (relative), `.husky/_/.gitignore`, the runner `h` and
    /// one stub per hook that sources it; the user's scripts are `.husky/<hook>`.
    @Test func husky() throws {
        try withTemporaryDirectory { root in
            let repo = try HookRepo(root)
            let generated = repo.dir + "/.husky/_"
            try write("*", to: generated + "/.gitignore")
            try write(Self.huskyRunner, to: generated + "/h", mode: 0o644)
            let stub = "#!/usr/bin/env sh\n. \"$(dirname \"$0\")/h\""
            for name in Self.huskyHooks { try write(stub, to: generated + "/" + name, mode: 0o755) }
            try repo.git(["config", "core.hooksPath", ".husky/_"])
            try write("echo \"husky post-commit\" >> '\(root)/managers'\n", to: repo.dir + "/.husky/post-commit")
            try write("cat >> '\(root)/pushed'\nexit 1\n", to: repo.dir + "/.husky/pre-push")

            let installed = try repo.slipway(["hooks", "install"])
            #expect(installed.status == 0, "\(installed.stderr)")
            #expect(installed.stdout.contains("installed in \(generated)"))
            #expect(try repo.slipway(["hooks", "status"]).stdout.contains("(from core.hooksPath = .husky/_)"))
            try repo.git(["commit", "-q", "--allow-empty", "-m", "with husky"])
            let oid = try repo.out(["rev-parse", "HEAD"])
            #expect(try String(contentsOfFile: root + "/managers", encoding: .utf8) == "husky post-commit\n")
            #expect(
                Array(repo.inboxFiles(prefix: "commit").values) == [
                    "v1\tcommit\t\(oid)\trefs/heads/main\t\(repo.dir)\n"
                ]
            )

            // The user's husky pre-push sees git's stdin and still refuses the push.
            let bare = root + "/remote.git"
            try repo.git(["init", "-q", "--bare", bare], in: root)
            let push = try repo.git(["push", bare, "main"], expect: 1)
            #expect(
                push.stdout.contains("husky - pre-push script failed (code 1)")
                    || push.stderr.contains("husky - pre-push script failed")
            )
            #expect(
                try String(contentsOfFile: root + "/pushed", encoding: .utf8)
                    == "refs/heads/main \(oid) refs/heads/main \(zeros)\n"
            )
            #expect(repo.inboxFiles(prefix: "prepush").isEmpty)

            #expect(try repo.slipway(["hooks", "uninstall"]).status == 0)
            for name in Self.huskyHooks {
                #expect(try String(contentsOfFile: generated + "/" + name, encoding: .utf8) == stub)
            }
        }
    }
}

extension String {
    fileprivate func repeated(_ count: Int) -> String { String(repeating: self, count: count) }
}
