import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// Tags from git: branch names made into Docker tags, and the tags a config's `tags:` gives
// on real repositories (made here with the git CLI).

// The git CLI helpers (`git`, `gitOutput`, fixed identities and dates) are GitTests.swift's.

/// Thirty branch names: ordinary ones, and every kind of character a tag cannot hold.
let branchNames: [String] = [
    "main", "feature/Login_v2", "feature/x", "feature-x", "release/1.2.3", ".hidden", "-dash", "..dots",
    "fix/ümlaut", "fix/ä", "fix/ö", "日本語", "emoji-🚀", "$(touch x)", "$(touch${IFS}pwned)", "`touch y`",
    "a\"quote", "it's", "with space", "tab\tname", String(repeating: "a", count: 300),
    String(repeating: "b/", count: 150), "UPPER/lower", "x", "_under", "a..b", "a.b-c_d", "semi;colon|pipe",
    "back\\slash", "question?star*",
]

@Suite struct TagTests {
    @Test func branchNamesBecomeValidDeterministicTags() {
        #expect(branchNames.count == 30)
        var seen: [String: String] = [:]
        for name in branchNames {
            let tag = BranchTag.tag(for: name)
            #expect(BuildRunner.isValidTag(tag), "\(name) → \(tag)")
            #expect(tag.utf8.count <= 128, "\(name)")
            #expect(BranchTag.tag(for: name) == tag, "deterministic: \(name)")
            if let other = seen[tag] {
                // The one documented collision: `/` and `-` are the same in a tag.
                #expect(Set([other, name]) == ["feature/x", "feature-x"], "\(other) and \(name) share \(tag)")
            }
            seen[tag] = name
        }
        #expect(BranchTag.tag(for: "feature/Login_v2") == "feature-Login_v2")
        #expect(BranchTag.tag(for: "main") == "main")
        #expect(BranchTag.tag(for: "release/1.2.3") == "release-1.2.3")
        // Lossy names keep a readable part and end in 8 hex digits of the name's SHA-256.
        let umlaut = BranchTag.tag(for: "fix/ä")
        #expect(umlaut.hasPrefix("fix----"))
        #expect(umlaut.count == "fix---".count + 1 + 8)  // "/" and the two bytes of "ä", then "-" and the hash
        #expect(umlaut != BranchTag.tag(for: "fix/ö"))
        #expect(BranchTag.tag(for: ".hidden").hasPrefix("hidden-"))
        #expect(BranchTag.tag(for: String(repeating: "a", count: 300)).count == 128)
        #expect(BranchTag.tag(for: "...").hasPrefix("branch-"))
    }

    /// On real repositories: each name git accepts is checked out and the config's
    /// `${SLIPWAY_BRANCH_TAG}` tag is what ``BranchTag`` says, and no name runs anything.
    @Test func branchTagsOnRealRepositories() async throws {
        try await withTemporaryDirectory { root in
            let repo = root + "/repo"
            try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
            try git(["init", "-q", "-b", "main"], in: repo)
            try "x\n".write(toFile: repo + "/file", atomically: true, encoding: .utf8)
            try """
            version: v2beta1
            name: tags
            images:
              app:
                image: example.test/app
                tags: ["${SLIPWAY_BRANCH_TAG}", "${DEVSPACE_GIT_COMMIT}"]
            """.write(toFile: repo + "/devspace.yaml", atomically: true, encoding: .utf8)
            try git(["add", "-A"], in: repo)
            try git(["commit", "-qm", "one"], in: repo)
            let commit = String(try #require(try gitOutput(["rev-parse", "HEAD"], in: repo)).prefix(8))

            var checked = 0
            for name in branchNames {
                // Names git refuses (spaces, `..`, a leading `-`…) are covered by the test above.
                guard try git(["check-ref-format", "--branch", name], in: repo).status == 0 else { continue }
                let switched = try git(["checkout", "-q", "-B", name], in: repo)
                guard switched.status == 0 else { continue }  // e.g. too long for the filesystem
                let loaded = try await ConfigLoader.load(
                    LoadOptions(workingDirectory: repo, environment: ["PATH": "/usr/bin:/bin", "HOME": root])
                )
                let tags = loaded.config.images.first?.tags ?? []
                #expect(tags == [BranchTag.tag(for: name), commit], "branch \(name)")
                checked += 1
            }
            #expect(checked >= 18, "git accepted only \(checked) of the names")
            // `$(touch x)`, `$(touch${IFS}pwned)` and `` `touch y` `` were data, never commands.
            for file in ["x", "y", "pwned"] {
                #expect(!FileManager.default.fileExists(atPath: repo + "/" + file))
                #expect(!FileManager.default.fileExists(atPath: root + "/" + file))
            }
        }
    }

    /// `$(git describe --always)` in `tags:` (also with `--tags` and `--dirty`) is what the
    /// git CLI prints, on ten repository states (no tags, lightweight and annotated tags,
    /// commits after a tag, a merge, detached HEAD, a dirty tree).
    @Test func describeTagsMatchGit() async throws {
        try await withTemporaryDirectory { root in
            let repo = root + "/repo"
            try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
            try """
            version: v2beta1
            name: describe
            images:
              app:
                image: example.test/app
                tags:
                  - $(git describe --always)
                  - ${SLIPWAY_GIT_DESCRIBE}
                  - $(git describe --tags --always)
                  - $(git describe --always --dirty)
                  - $(git describe --dirty=.mod --tags --always)
            """.write(toFile: repo + "/devspace.yaml", atomically: true, encoding: .utf8)
            var counter = 0
            func commit(_ message: String) throws {
                counter += 1
                try "\(counter)\n".write(toFile: repo + "/file", atomically: true, encoding: .utf8)
                try git(["add", "-A"], in: repo)
                try git(["commit", "-qm", message], in: repo)
            }
            func check(_ state: String) async throws {
                // No git on PATH: every answer must come from libgit2, none from a shell.
                let loaded = try await ConfigLoader.load(
                    LoadOptions(workingDirectory: repo, environment: ["PATH": root + "/no-tools", "HOME": root])
                )
                let tags = loaded.config.images.first?.tags ?? []
                let describe = try #require(try gitOutput(["describe", "--always"], in: repo))
                let describeTags = try #require(try gitOutput(["describe", "--tags", "--always"], in: repo))
                let dirty = try #require(try gitOutput(["describe", "--always", "--dirty"], in: repo))
                let dirtyTags = try #require(
                    try gitOutput(["describe", "--dirty=.mod", "--tags", "--always"], in: repo)
                )
                #expect(tags == [describe, describe, describeTags, dirty, dirtyTags], "\(state)")
            }
            try git(["init", "-q", "-b", "main"], in: repo)
            try commit("one")
            try await check("one commit, no tags")
            try git(["tag", "light"], in: repo)
            try await check("a lightweight tag")
            try git(["tag", "-a", "v1.0.0", "-m", "release"], in: repo)
            try await check("an annotated tag on HEAD")
            try commit("two")
            try commit("three")
            try await check("two commits after the tag")
            try git(["checkout", "-q", "-b", "side", "HEAD~1"], in: repo)
            try commit("side")
            try git(["tag", "-a", "v1.1.0-rc1", "-m", "rc"], in: repo)
            try git(["checkout", "-q", "main"], in: repo)
            try git(["merge", "-q", "--no-edit", "-X", "theirs", "side"], in: repo)
            try await check("a merge of a tagged branch")
            try commit("four")
            try await check("a commit after the merge")
            try git(["checkout", "-q", "--detach", "HEAD~2"], in: repo)
            try await check("detached HEAD")
            try git(["checkout", "-q", "main"], in: repo)
            try "dirty\n".write(toFile: repo + "/file", atomically: true, encoding: .utf8)
            try await check("a dirty work tree")
            try git(["checkout", "-q", "--", "file"], in: repo)
            try git(["tag", "-a", "v2.0.0", "-m", "two"], in: repo)
            try await check("a newer annotated tag on HEAD")
            try git(["tag", "-d", "v2.0.0"], in: repo)
            try await check("that tag deleted again")
        }
    }
}
