import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// Every repository here is made at test time with the git CLI, and every answer of
// GitRepository is compared with what the git CLI prints for the same repository.

/// The environment of every git command in these tests: no user or system configuration,
/// fixed identities and dates (object ids are the same on every run).
let gitEnvironment: [String: String] = [
    "GIT_AUTHOR_NAME": "Slipway Test", "GIT_AUTHOR_EMAIL": "test@slipway.invalid",
    "GIT_COMMITTER_NAME": "Slipway Test", "GIT_COMMITTER_EMAIL": "test@slipway.invalid",
    "GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
]

/// Author and committer (and tagger) date `offset` seconds after the default one.
private func at(_ offset: Int) -> [String: String] {
    let date = "\(1_700_000_000 + offset) +0000"
    return ["GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date]
}

/// Runs git in `directory` with ``gitEnvironment``.
@discardableResult
func git(
    _ arguments: [String],
    in directory: String,
    env: [String: String] = [:]
) throws -> (status: Int32, stdout: String, stderr: String) {
    try sh(["git"] + arguments, cwd: directory, env: gitEnvironment.merging(env) { $1 })
}

/// What git prints on success (without the final newline), or `nil` when it fails.
func gitOutput(_ arguments: [String], in directory: String, env: [String: String] = [:]) throws -> String? {
    let result = try git(arguments, in: directory, env: env)
    guard result.status == 0 else { return nil }
    return result.stdout.hasSuffix("\n") ? String(result.stdout.dropLast()) : result.stdout
}

// MARK: Repository states

/// One step that builds a repository state, run in `<root>/repo`; `{root}` in any string
/// stands for the temporary directory.
enum GitStep: Sendable {
    case git([String], env: [String: String] = [:])
    /// Any other command.
    case run([String])
    case write(String, String)
    case remove(String)
}

/// A repository state built with the git CLI, and where to look at it from.
struct GitScenario: Sendable, CustomTestStringConvertible {
    var name: String
    var steps: [GitStep]
    /// The directory to discover the repository from, relative to the temporary directory.
    var openFrom = "repo"
    /// Paths (relative to the work tree) checked with isDirty(path:) and treeID(path:).
    var paths = ["", ".", "app", "app/main.txt", "missing"]

    init(_ name: String, _ steps: [GitStep], openFrom: String = "repo", paths: [String]? = nil) {
        self.name = name
        self.steps = steps
        self.openFrom = openFrom
        if let paths { self.paths = paths }
    }

    var testDescription: String { name }

    func build(in root: String) throws {
        try expectSuccess(git(["-c", "init.defaultBranch=main", "init", "-q", "repo"], in: root), "git init")
        let repo = root + "/repo"
        for step in steps {
            switch step {
            case .git(let arguments, let env):
                let arguments = arguments.map { $0.replacingOccurrences(of: "{root}", with: root) }
                try expectSuccess(git(arguments, in: repo, env: env), "git \(arguments.joined(separator: " "))")
            case .run(let arguments):
                try expectSuccess(sh(arguments, cwd: repo), arguments.joined(separator: " "))
            case .write(let path, let content):
                let url = URL(
                    fileURLWithPath: path.replacingOccurrences(of: "{root}", with: root),
                    relativeTo: URL(fileURLWithPath: repo + "/")
                )
                try FileManager.default.createDirectory(
                    at: url.deletingLastPathComponent(),
                    withIntermediateDirectories: true
                )
                try Data(content.utf8).write(to: url)
            case .remove(let path):
                try FileManager.default.removeItem(atPath: repo + "/" + path)
            }
        }
    }

    private func expectSuccess(_ result: (status: Int32, stdout: String, stderr: String), _ what: String) throws {
        guard result.status == 0 else {
            throw TestSupportError("\(name): \(what) exited \(result.status): \(result.stderr)")
        }
    }
}

/// Writes `path` and commits it.
private func commit(_ path: String, _ content: String, _ message: String, env: [String: String] = [:]) -> [GitStep] {
    [.write(path, content), .git(["add", "--", path]), .git(["commit", "-q", "-m", message], env: env)]
}

/// Two commits: app/main.txt, then README.md.
private let history: [GitStep] =
    commit("app/main.txt", "hello\n", "first") + commit("README.md", "readme\n", "Add the readme")

/// Annotated tags on two branches merged into main. With `datesApart` every commit has
/// its own date (side-branch commits older); otherwise all share one second.
private func mergedBranches(datesApart: Bool) -> [GitStep] {
    func date(_ offset: Int) -> [String: String] { datesApart ? at(offset) : [:] }
    var steps = history
    steps += [.git(["checkout", "-q", "-b", "side"])]
    steps += commit("side.txt", "s1\n", "side one", env: date(10))
    steps += [.git(["tag", "-a", "side-v1", "-m", "side"], env: date(11))]
    steps += commit("side.txt", "s2\n", "side two", env: date(20))
    steps += [.git(["checkout", "-q", "main"])]
    steps += commit("app/main.txt", "m1\n", "main one", env: date(30))
    steps += [.git(["tag", "-a", "main-v1", "-m", "main"], env: date(31))]
    steps += commit("app/main.txt", "m2\n", "main two", env: date(40))
    steps += [.git(["merge", "-q", "--no-ff", "-m", "Merge side", "side"], env: date(50))]
    steps += commit("app/main.txt", "m3\n", "after the merge", env: date(60))
    return steps
}

/// Twelve tagged commits (the oldest tag annotated, the eleven newer ones lightweight), then
/// one more: with `--tags` git gives up after ten candidates.
private let manyTags: [GitStep] =
    history
    + (1...12).flatMap { index -> [GitStep] in
        commit("app/main.txt", "\(index)\n", "commit \(index)")
            + [index == 1 ? .git(["tag", "-a", "t\(index)", "-m", "t"]) : .git(["tag", "l\(index)"])]
    } + commit("app/main.txt", "last\n", "last")

extension GitScenario {
    static let all: [GitScenario] = [
        GitScenario("no commits", []),
        GitScenario("no commits, untracked file", [.write("app/main.txt", "hello\n")]),
        GitScenario("no commits, staged file", [.write("app/main.txt", "hello\n"), .git(["add", "app"])]),
        GitScenario("one commit", commit("app/main.txt", "hello\n", "first")),
        GitScenario(
            "several commits, multi-line subject",
            history + [
                .write("app/main.txt", "three\n"),
                .git(["commit", "-q", "-a", "-m", "Change the app\nacross two lines\n\nThe body is not part of it."]),
            ]
        ),
        GitScenario(
            "subject with odd whitespace (verbatim message)",
            history + [
                .write("app/main.txt", "three\n"),
                .git([
                    "commit", "-q", "-a", "--cleanup=verbatim", "-m",
                    "\n \n  Indented  subject \t\n\tcontinued\r\n \nbody\n",
                ]),
            ]
        ),
        GitScenario("lightweight tag on HEAD", history + [.git(["tag", "v1.0"])]),
        GitScenario("annotated tag on HEAD", history + [.git(["tag", "-a", "v1.0", "-m", "Release 1.0"])]),
        GitScenario(
            "annotated tag two commits behind HEAD",
            history + [.git(["tag", "-a", "v1.0", "-m", "Release 1.0"])] + commit("app/main.txt", "2\n", "two")
                + commit("app/main.txt", "3\n", "three")
        ),
        GitScenario(
            "lightweight tag behind HEAD (only --tags uses it)",
            history + [.git(["tag", "v0.9"])] + commit("app/main.txt", "2\n", "two")
        ),
        GitScenario(
            "two annotated tags in history",
            history + [.git(["tag", "-a", "v1.0", "-m", "one"])] + commit("app/main.txt", "2\n", "two")
                + [.git(["tag", "-a", "v2.0", "-m", "two"])] + commit("app/main.txt", "3\n", "three")
        ),
        GitScenario(
            "two annotated tags on HEAD, the newer tagger date wins",
            history + [
                .git(["tag", "-a", "a-older", "-m", "a"], env: at(100)),
                .git(["tag", "-a", "b-newer", "-m", "b"], env: at(200)),
            ]
        ),
        GitScenario(
            "annotated and lightweight tag on HEAD",
            history + [.git(["tag", "a-light"]), .git(["tag", "-a", "z-annotated", "-m", "z"])]
        ),
        GitScenario(
            "two lightweight tags on HEAD, one of them packed",
            history + [.git(["tag", "alpha"]), .git(["pack-refs", "--all"]), .git(["tag", "beta"])]
        ),
        GitScenario(
            "detached HEAD",
            history + commit("app/main.txt", "2\n", "two") + [.git(["checkout", "-q", "--detach", "HEAD~1"])]
        ),
        GitScenario(
            "detached at an annotated tag",
            history + [.git(["tag", "-a", "v1.0", "-m", "one"])] + commit("app/main.txt", "2\n", "two")
                + [.git(["checkout", "-q", "v1.0"])]
        ),
        GitScenario(
            "branch name with a slash",
            history + [.git(["checkout", "-q", "-b", "feature/x"])] + commit("app/feature.txt", "f\n", "feature")
        ),
        GitScenario(
            "linked worktree, opened from a subdirectory of it",
            history + [.git(["tag", "-a", "v1.0", "-m", "one"])]
                + [
                    .git(["worktree", "add", "-q", "-b", "feature/wt", "{root}/wt"]),
                    .write("{root}/wt/app/main.txt", "in the worktree\n"),
                    .git(["-C", "{root}/wt", "commit", "-q", "-a", "-m", "Commit in the worktree"]),
                    .write("{root}/wt/app/new.txt", "untracked\n"),
                    .write("app/main.txt", "main work tree is dirty\n"),
                ],
            openFrom: "wt/app"
        ),
        GitScenario(
            "discovered from a nested subdirectory",
            history + commit("a/b/c/file.txt", "abc\n", "nested"),
            openFrom: "repo/a/b/c",
            paths: ["", "a", "a/b", "a/b/c/file.txt", "app"]
        ),
        GitScenario("modified tracked file in the context", history + [.write("app/main.txt", "changed\n")]),
        GitScenario(
            "staged change in the context",
            history + [.write("app/main.txt", "staged\n"), .git(["add", "app"])]
        ),
        GitScenario("untracked file in the context", history + [.write("app/new.txt", "new\n")]),
        GitScenario(
            "staged change reverted in the work tree",
            history + [.write("app/main.txt", "staged\n"), .git(["add", "app"]), .write("app/main.txt", "hello\n")]
        ),
        GitScenario(
            "file added with intent to add",
            history + [.write("app/new.txt", "new\n"), .git(["add", "-N", "app/new.txt"])]
        ),
        GitScenario(
            "executable bit changed in the work tree",
            history + [.run(["chmod", "+x", "app/main.txt"])]
        ),
        GitScenario(
            "untracked nested repository in the context",
            history + [.git(["init", "-q", "app/nested"]), .write("app/nested/file.txt", "nested\n")],
            paths: ["", "app", "app/nested", "app/main.txt", "README.md"]
        ),
        GitScenario(
            "ignored files only",
            history + commit(".gitignore", "*.log\nbuild/\n", "Ignore logs")
                + [.write("app/debug.log", "log\n"), .write("app/build/out.bin", "bin\n")],
            paths: ["", "app", "app/build", "app/debug.log"]
        ),
        GitScenario(
            "changes outside the context only",
            history + commit("apps/other.txt", "o\n", "other") + commit("app2/x.txt", "x\n", "x")
                + [
                    .write("apps/other.txt", "changed\n"), .write("README.md", "changed\n"),
                    .write("app2/new.txt", "new\n"), .write("appendix.txt", "new\n"),
                ],
            paths: ["", "app", "apps", "app2", "ap", "app/main.txt"]
        ),
        GitScenario(
            "deleted files, unstaged and staged",
            history + commit("lib/old.txt", "old\n", "old") + [
                .remove("app/main.txt"), .git(["rm", "-q", "lib/old.txt"]),
            ],
            paths: ["", "app", "app/main.txt", "lib", "lib/old.txt", "README.md"]
        ),
        GitScenario(
            "untracked directory around the context",
            history + [.write("new/deep/file.txt", "new\n")],
            paths: ["new", "new/deep", "new/deep/file.txt", "new/other", "newer", "app"]
        ),
        GitScenario(
            "paths with glob characters are literal",
            history + commit("a[1]/file.txt", "1\n", "brackets") + commit("a1/file.txt", "1\n", "plain")
                + [.write("a1/file.txt", "changed\n")],
            paths: ["a[1]", "a1", "a*", "a[1]/file.txt"]
        ),
        GitScenario(
            "core.abbrev = 10",
            history + [.git(["config", "core.abbrev", "10"]), .git(["tag", "-a", "v1", "-m", "v1", "HEAD~1"])]
        ),
        GitScenario("merged branches, one commit date", mergedBranches(datesApart: false)),
        GitScenario("merged branches, distinct commit dates", mergedBranches(datesApart: true)),
        GitScenario(
            "annotated tag whose ref was renamed, on HEAD",
            history + [
                .git(["tag", "-a", "v1.0", "-m", "one"]), .git(["update-ref", "refs/tags/renamed", "v1.0"]),
                .git(["update-ref", "-d", "refs/tags/v1.0"]),
            ]
        ),
        GitScenario(
            "annotated tag whose ref was renamed, behind HEAD",
            history + [
                .git(["tag", "-a", "v1.0", "-m", "one"]), .git(["update-ref", "refs/tags/renamed", "v1.0"]),
                .git(["update-ref", "-d", "refs/tags/v1.0"]),
            ] + commit("app/main.txt", "2\n", "two")
        ),
        GitScenario("more than ten candidate tags", manyTags),
        GitScenario(
            "shallow clone",
            mergedBranches(datesApart: true) + [
                .git(["tag", "tip-of-side", "side"]),
                .git(["clone", "-q", "--depth", "3", "--no-single-branch", "file://{root}/repo", "{root}/shallow"]),
            ],
            openFrom: "shallow"
        ),
        GitScenario(
            "ambiguous abbreviation is lengthened",
            // The blob was searched for: its id starts with "bf50f0", like the commit's.
            commit("app/main.txt", "hello\n", "first") + [
                .write("collision.txt", "collision 13641999\n"), .git(["hash-object", "-w", "collision.txt"]),
                .remove("collision.txt"), .git(["config", "core.abbrev", "4"]),
            ]
        ),
    ]
}

// MARK: Answers

/// Everything GitRepository answers about a repository, from the library or from the CLI.
struct GitAnswers: Equatable {
    var workdir: String?
    var gitDir: String?
    var commonDir: String?
    var head: GitHead?
    var shortCommit: String?
    var summary: String?
    var describe: String?
    var describeTags: String?
    var describeExact: String?
    var describeTagsExact: String?
    var describeDirty: String?
    var describeTagsDirty: String?
    var dirty: Bool?
    var dirtyPaths: [String: Bool] = [:]
    var trees: [String: String] = [:]

    var facts: GitFacts {
        GitFacts(
            branch: head?.branchName,
            commit: head?.commit,
            shortCommit: shortCommit,
            describe: describe,
            describeTags: describeTags,
            summary: summary
        )
    }

    init(library repository: GitRepository, paths: [String]) throws {
        workdir = repository.workdir
        gitDir = repository.gitDir
        commonDir = repository.commonDir
        let head = try repository.head()
        self.head = head
        if let commit = head.commit {
            shortCommit = try repository.shortID(commit)
            summary = try repository.summary(of: commit)
        }
        describe = try repository.describe(tags: false)
        describeTags = try repository.describe(tags: true)
        describeExact = try repository.describe(tags: false, always: false)
        describeTagsExact = try repository.describe(tags: true, always: false)
        describeDirty = try repository.describe(tags: false, dirtySuffix: "-dirty")
        describeTagsDirty = try repository.describe(tags: true, dirtySuffix: ".modified")
        dirty = try repository.isDirty()
        for path in paths {
            dirtyPaths[path] = try repository.isDirty(path: path)
            trees[path] = try repository.treeID(path: path) ?? "-"
        }
    }

    init(cli directory: String, paths: [String]) throws {
        workdir = try gitOutput(["rev-parse", "--show-toplevel"], in: directory)
        gitDir = try gitOutput(["rev-parse", "--absolute-git-dir"], in: directory)
        commonDir = try gitOutput(["rev-parse", "--path-format=absolute", "--git-common-dir"], in: directory)
        let commit = try gitOutput(["rev-parse", "--verify", "-q", "HEAD"], in: directory)
        let branch = try gitOutput(["branch", "--show-current"], in: directory).flatMap { $0.isEmpty ? nil : $0 }
        switch (commit, branch) {
        case (nil, let branch): head = .unborn(branch: branch ?? "")
        case (let commit?, let branch?): head = .branch(name: branch, commit: commit)
        case (let commit?, nil): head = .detached(commit: commit)
        }
        if commit != nil {
            shortCommit = try gitOutput(["rev-parse", "--short", "HEAD"], in: directory)
            summary = try gitOutput(["log", "-1", "--format=%s"], in: directory)
        }
        describe = try gitOutput(["describe", "--always"], in: directory)
        describeTags = try gitOutput(["describe", "--tags", "--always"], in: directory)
        describeExact = try gitOutput(["describe"], in: directory)
        describeTagsExact = try gitOutput(["describe", "--tags"], in: directory)
        describeDirty = try gitOutput(["describe", "--always", "--dirty=-dirty"], in: directory)
        describeTagsDirty = try gitOutput(["describe", "--tags", "--always", "--dirty=.modified"], in: directory)

        let top = workdir ?? directory
        // Literal pathspecs: the library takes paths literally, `[` and `*` included.
        let literal = ["GIT_LITERAL_PATHSPECS": "1"]
        dirty = try gitOutput(["status", "--porcelain"], in: top).map { !$0.isEmpty }
        for path in paths {
            let pathspec = path.isEmpty || path == "." ? [] : ["--", path]
            dirtyPaths[path] = try gitOutput(["status", "--porcelain"] + pathspec, in: top, env: literal).map {
                !$0.isEmpty
            }
            // `HEAD:.` is an error in git and `HEAD:./` is relative to the current directory.
            let revision = path == "." ? "HEAD:./" : "HEAD:\(path)"
            trees[path] = try gitOutput(["rev-parse", "--verify", "-q", revision], in: top) ?? "-"
        }
    }
}

// MARK: Tests

@Suite struct GitTests {
    @Test(arguments: GitScenario.all)
    func matchesTheGitCLI(_ scenario: GitScenario) throws {
        try withTemporaryDirectory { root in
            try scenario.build(in: root)
            let start = root + "/" + scenario.openFrom
            // The library first, so that `git status` has not refreshed the index for it.
            let library = try GitAnswers(library: GitRepository.discover(from: start), paths: scenario.paths)
            let facts = GitFacts.load(from: start)
            let cli = try GitAnswers(cli: start, paths: scenario.paths)
            #expect(library == cli)
            #expect(facts == cli.facts)
        }
    }

    @Test func scenarioTableCoversTheRequiredStates() {
        #expect(GitScenario.all.count >= 20)
        #expect(Set(GitScenario.all.map(\.name)).count == GitScenario.all.count)
    }

    @Test func outsideARepository() async throws {
        try await withTemporaryDirectory { directory in
            await Task.yield()  // The async variant of withTemporaryDirectory.
            #expect(try git(["rev-parse", "--git-dir"], in: directory).status != 0)
            let error = #expect(throws: GitError.self) { try GitRepository.discover(from: directory) }
            #expect(error == .notARepository(path: directory))
            let message = try #require(error?.description)
            #expect(message.contains("not inside a git repository"))
            #expect(message.contains("git init"))
            #expect(message.contains("--chdir"))
            #expect(GitFacts.load(from: directory) == nil)
        }
    }

    @Test func missingDirectory() throws {
        try withTemporaryDirectory { directory in
            let missing = directory + "/does/not/exist"
            #expect(throws: GitError.directoryNotFound(path: missing)) { try GitRepository.discover(from: missing) }
            #expect(GitFacts.load(from: missing) == nil)
        }
    }

    @Test func emptyRepositoryGivesClearAnswers() throws {
        try withTemporaryDirectory { root in
            try GitScenario("empty", []).build(in: root)
            let repository = try GitRepository.discover(from: root + "/repo")
            #expect(try repository.head() == .unborn(branch: "main"))
            #expect(try repository.describe(tags: true) == nil)
            #expect(try repository.describe(tags: false, dirtySuffix: "-dirty") == nil)
            #expect(try repository.treeID(path: "") == nil)
            #expect(try repository.isDirty() == false)
            #expect(GitFacts.load(from: root + "/repo") == GitFacts(branch: "main"))
        }
    }

    @Test func discoversFromAFileAndFromTheGitDirectory() throws {
        try withTemporaryDirectory { root in
            try GitScenario("one commit", history).build(in: root)
            let fromFile = try GitRepository.discover(from: root + "/repo/app/main.txt")
            #expect(fromFile.workdir == root + "/repo")
            let fromGitDir = try GitRepository.discover(from: root + "/repo/.git")
            #expect(fromGitDir.gitDir == root + "/repo/.git")
            #expect(fromGitDir.commonDir == root + "/repo/.git")
        }
    }

    @Test func bareRepository() throws {
        try withTemporaryDirectory { root in
            try GitScenario("source", history + [.git(["tag", "-a", "v1", "-m", "v1"])]).build(in: root)
            #expect(try git(["clone", "-q", "--bare", "repo", "bare.git"], in: root).status == 0)
            let repository = try GitRepository.discover(from: root + "/bare.git")
            #expect(repository.workdir == nil)
            #expect(repository.gitDir == root + "/bare.git")
            #expect(repository.commonDir == root + "/bare.git")
            #expect(
                try repository.describe(tags: false) == gitOutput(["describe", "--always"], in: root + "/bare.git")
            )
            #expect(
                try repository.treeID(path: "app") == gitOutput(["rev-parse", "HEAD:app"], in: root + "/bare.git")
            )
            #expect(throws: GitError.bareRepository(gitDir: root + "/bare.git")) { try repository.isDirty() }
            #expect(throws: GitError.bareRepository(gitDir: root + "/bare.git")) {
                try repository.describe(tags: false, dirtySuffix: "-dirty")
            }
        }
    }

    @Test func pathsOutsideTheWorkTreeAreRejected() throws {
        try withTemporaryDirectory { root in
            try GitScenario("one commit", history).build(in: root)
            let repository = try GitRepository.discover(from: root + "/repo")
            let outside = GitError.pathOutsideWorkTree(path: "../elsewhere", workTree: root + "/repo")
            #expect(throws: outside) { try repository.isDirty(path: "../elsewhere") }
            #expect(throws: outside) { try repository.treeID(path: "../elsewhere") }
            #expect(throws: GitError.pathOutsideWorkTree(path: root, workTree: root + "/repo")) {
                try repository.isDirty(path: root)
            }
            // Absolute paths inside the work tree, and relative ones with `.` and `..`, are fine.
            #expect(try repository.treeID(path: root + "/repo/app") == repository.treeID(path: "app"))
            #expect(try repository.treeID(path: "./app/../app/") == repository.treeID(path: "app"))
            #expect(try repository.treeID(path: root + "/repo") == repository.treeID(path: ""))
        }
    }

    @Test func absolutePathsThroughASymbolicLink() throws {
        try withTemporaryDirectory { root in
            try GitScenario("one commit", history + [.write("app/new.txt", "new\n")]).build(in: root)
            try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: root + "/repo")
            let repository = try GitRepository.discover(from: root + "/link/app")
            #expect(repository.workdir == root + "/repo")
            #expect(try repository.isDirty(path: root + "/link/app") == true)
            #expect(try repository.isDirty(path: root + "/link/missing") == false)
            #expect(try repository.treeID(path: root + "/link/app") == repository.treeID(path: "app"))
        }
    }

    @Test func invalidObjectIDs() throws {
        try withTemporaryDirectory { root in
            try GitScenario("one commit", history).build(in: root)
            let repository = try GitRepository.discover(from: root + "/repo")
            #expect(throws: GitError.invalidObjectID("HEAD")) { try repository.shortID("HEAD") }
            #expect(throws: GitError.invalidObjectID("abc")) { try repository.summary(of: "abc") }
            let absent = String(repeating: "0", count: 40)
            #expect(throws: GitError.objectNotFound(id: absent)) { try repository.shortID(absent) }
            #expect(throws: GitError.objectNotFound(id: absent)) { try repository.summary(of: absent) }
            let commit = try #require(try repository.head().commit)
            #expect(try repository.shortID(commit.uppercased()) == repository.shortID(commit))
        }
    }

    @Test func abbreviationGrowsWithThePackedObjectCount() throws {
        try withTemporaryDirectory { root in
            try GitScenario("one commit", history).build(in: root)
            // 2^14 objects in a pack make git's "auto" abbreviation 8 characters long.
            var stream = ""
            for index in 0..<16_400 { stream += "blob\ndata \(String(index).utf8.count)\n\(index)\n" }
            try stream.write(toFile: root + "/stream", atomically: true, encoding: .utf8)
            let result = try sh(
                ["sh", "-c", "git fast-import --quiet < ../stream"],
                cwd: root + "/repo",
                env: gitEnvironment
            )
            #expect(result.status == 0, "\(result.stderr)")

            let repository = try GitRepository.discover(from: root + "/repo")
            let commit = try #require(try repository.head().commit)
            let expected = try #require(try gitOutput(["rev-parse", "--short", "HEAD"], in: root + "/repo"))
            #expect(expected.count == 8)
            #expect(try repository.shortID(commit) == expected)
            #expect(
                try repository.describe(tags: true)
                    == gitOutput(["describe", "--tags", "--always"], in: root + "/repo")
            )
        }
    }

    @Test func ambiguousPrefixIsLengthened() throws {
        try withTemporaryDirectory { root in
            let scenario = try #require(GitScenario.all.first { $0.name == "ambiguous abbreviation is lengthened" })
            try scenario.build(in: root)
            let repository = try GitRepository.discover(from: root + "/repo")
            let commit = try #require(try repository.head().commit)
            // core.abbrev is 4, but another object shares the first six digits.
            #expect(commit.hasPrefix("bf50f0"))
            #expect(try repository.shortID(commit) == "bf50f01")
        }
    }

    @Test(arguments: [(0, 7), (1, 7), (16_383, 7), (16_384, 8), (65_535, 8), (65_536, 9), (1 << 24, 13)])
    func automaticAbbreviationLength(objects: Int, length: Int) {
        #expect(GitRepository.automaticAbbreviationLength(packedObjects: objects) == length)
    }

    @Test(arguments: [
        ("subject", "subject"),
        ("subject\n\nbody\n", "subject"),
        ("\n\n  \nfirst  \nsecond\t\n\nbody", "first second"),
        ("  leading kept\r\n", "  leading kept"),
        ("one\ntwo\nthree", "one two three"),
        ("", ""),
        ("\n \n", ""),
    ])
    func subjectLikeGitFormatSubject(message: String, subject: String) {
        let result = Array(message.utf8).withUnsafeBytes { GitRepository.subject(of: $0) }
        #expect(result == subject)
    }

    @Test func headConveniences() {
        #expect(GitHead.unborn(branch: "main").commit == nil)
        #expect(GitHead.unborn(branch: "main").branchName == "main")
        #expect(GitHead.branch(name: "feature/x", commit: "abc").commit == "abc")
        #expect(GitHead.branch(name: "feature/x", commit: "abc").branchName == "feature/x")
        #expect(GitHead.detached(commit: "abc").commit == "abc")
        #expect(GitHead.detached(commit: "abc").branchName == nil)
    }

    @Test func errorDescriptions() {
        #expect(
            GitError.libgit2(operation: "git_status_list_new", code: -1, message: "index is locked").description
                == "git: git_status_list_new failed: index is locked (libgit2 error -1)"
        )
        #expect(GitError.pathNotFoundAtHead(path: "app").description.contains("app does not exist in the HEAD commit"))
        #expect(GitError.directoryNotFound(path: "/x").description == "/x: no such directory")
    }
}

/// The common directory found without libgit2 (what a build asks to find the agent's socket)
/// is the one libgit2's discovery gives, wherever the path is; or it says it is unsure.
@Suite struct CommonDirWithoutLibgit2Tests {
    @Test func agreesWithLibgit2InWorktreesSubdirectoriesAndThroughLinks() throws {
        try withTemporaryDirectory { root in
            let repo = root + "/repo"
            try FileManager.default.createDirectory(atPath: repo + "/a/b", withIntermediateDirectories: true)
            try git(["init", "-q", "-b", "main"], in: repo)
            try "x\n".write(toFile: repo + "/a/b/f", atomically: true, encoding: .utf8)
            try git(["add", "-A"], in: repo)
            try git(["commit", "-qm", "one"], in: repo)
            #expect(try git(["worktree", "add", "-q", root + "/linked"], in: repo).status == 0)
            try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: repo + "/a")
            try FileManager.default.createDirectory(atPath: root + "/plain", withIntermediateDirectories: true)
            for path in [
                repo, repo + "/a/b", root + "/linked", root + "/link/b", root + "/link",
                repo + "/.git/worktrees/linked",
            ] {
                let expected = try GitRepository.discover(from: path).commonDir
                #expect(
                    GitRepository.commonDirWithoutLibgit2(from: path) == .found(expected),
                    "\(path): libgit2 says \(expected)"
                )
            }
            #expect(GitRepository.commonDirWithoutLibgit2(from: root + "/plain") == .none)
            #expect(GitRepository.commonDirWithoutLibgit2(from: root + "/missing") == .unsure)
        }
    }
}
