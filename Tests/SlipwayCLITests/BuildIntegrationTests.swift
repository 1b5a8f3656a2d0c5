import Foundation
import SlipwayTestSupport
import Testing

/// `slipway build` end to end: the built binary, the real Docker engine, real files and real
/// git repositories. Skipped on a machine without an engine; in CI an engine is required.
@Suite(.serialized, .requiresDockerEngine, .timeLimit(.minutes(10)))
struct BuildIntegrationTests {
    /// A project in a fresh directory with a multi-stage Dockerfile on the offline base image.
    struct Project {
        let dir: String
        let repo: String

        init(dir: String, images: String? = nil) throws {
            self.dir = dir
            repo = "slipway-test/\(UUID().uuidString.lowercased().prefix(12))"
            try write(
                "devspace.yaml",
                images
                    ?? """
                    version: v2beta1
                    name: build-test
                    images:
                      app:
                        image: \(repo)-app
                        buildArgs:
                          GREETING: hello-from-args
                          UNSET: null
                        target: runtime
                      base:
                        image: \(repo)-base
                        target: base
                    """
            )
            // The label makes this project's layers its own: the classic builder shares cached
            // intermediate images between identical Dockerfiles, and another test's clean-up could
            // remove one while this test's build is using it.
            try write(
                "Dockerfile",
                """
                FROM slipway/busybox AS base
                LABEL slipway.test.project=\(repo)
                ARG GREETING=default
                RUN echo "$GREETING" > /greeting
                FROM base AS runtime
                COPY src/ /src/
                CMD ["cat", "/greeting"]
                """
            )
            // `.git` is ignored, as Docker recommends: otherwise every commit changes the context.
            try write(".dockerignore", ".git\nignored/\n*.log\n")
            try write("src/main.txt", "main\n")
            try write("ignored/data.txt", "not sent\n")
            try write("debug.log", "log\n")
        }

        func write(_ path: String, _ text: String) throws {
            let full = dir + "/" + path
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true
            )
            try text.write(toFile: full, atomically: false, encoding: .utf8)
        }

        func build(_ args: [String] = [], in directory: String? = nil) throws -> SlipwayBinary.Result {
            // These images are named for Docker Hub, which this machine cannot reach: no push.
            try SlipwayBinary.run(["build", "--json", "--skip-push"] + args, in: directory ?? dir, timeout: 300)
        }

        func cleanUp() {
            let images =
                (try? sh(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], cwd: "/"))?.stdout ?? ""
            let ours = images.split(separator: "\n").map(String.init).filter { $0.hasPrefix(repo) }
            if !ours.isEmpty { _ = try? sh(["docker", "rmi", "-f", "--no-prune"] + ours, cwd: "/") }
        }
    }

    /// The JSON summary: image key → (result, tags, reason).
    static func summary(_ r: SlipwayBinary.Result) throws -> [String: (result: String, tags: [String], reason: String)]
    {
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
            "stdout: \(r.stdout)\n\(r.stderr)"
        )
        var out: [String: (String, [String], String)] = [:]
        for item in json["images"] as? [[String: Any]] ?? [] {
            out[item["image"] as? String ?? ""] = (
                item["result"] as? String ?? "", item["tags"] as? [String] ?? [], item["reason"] as? String ?? ""
            )
        }
        return out
    }

    @Test func multiStageBuildWithArgsAndTargetsRunsOffline() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            let first = try p.build()
            #expect(first.status == 0, "\(first.stderr)")
            let s = try Self.summary(first)
            #expect(s["app"]?.result == "built")
            #expect(s["base"]?.result == "built")
            let tag = try #require(s["app"]?.tags.first)
            #expect(tag.count == 12 && tag.allSatisfy(\.isHexDigit), "the default tag comes from the digest")

            let run = try sh(["docker", "run", "--rm", "--network", "none", "\(p.repo)-app:\(tag)"], cwd: dir)
            #expect(run.stdout == "hello-from-args\n", "\(run.stderr)")
            let listing = try sh(
                ["docker", "run", "--rm", "--network", "none", "\(p.repo)-app:\(tag)", "ls", "/src"],
                cwd: dir
            )
            #expect(listing.stdout == "main.txt\n")
            let inspect = try sh(
                ["docker", "image", "inspect", "--format", "{{json .Config.Cmd}}", "\(p.repo)-app:\(tag)"],
                cwd: dir
            )
            #expect(inspect.stdout.contains("[\"cat\",\"/greeting\"]"))
            // The base target has no COPY and no CMD of its own.
            let baseTag = try #require(s["base"]?.tags.first)
            let noSrc = try sh(
                ["docker", "run", "--rm", "--network", "none", "\(p.repo)-base:\(baseTag)", "ls", "/src"],
                cwd: dir
            )
            #expect(noSrc.status != 0)

            let cache = try String(contentsOfFile: dir + "/.devspace/cache.yaml", encoding: .utf8)
            #expect(cache.contains("imageName: \(p.repo)-app"))
            #expect(cache.contains("tag: \(tag)"))
        }
    }

    @Test func rebuildsOnlyWhenTheImageWouldChange() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            #expect(try p.build().status == 0)

            // touch every file: no rebuild.
            _ = try sh(["sh", "-c", "find . -exec touch {} +"], cwd: dir)
            var s = try Self.summary(try p.build())
            #expect(s["app"]?.result == "skipped", "\(s)")

            // a change in an excluded file: no rebuild.
            try p.write("ignored/data.txt", "changed\n")
            try p.write("debug.log", "changed\n")
            s = try Self.summary(try p.build())
            #expect(s["app"]?.result == "skipped", "\(s)")

            // only the tags change: a re-tag, not a build.
            let retag = try p.build(["-t", "v1,v2"])
            s = try Self.summary(retag)
            #expect(s["app"]?.result == "retagged", "\(s)")
            #expect(try sh(["docker", "image", "inspect", "\(p.repo)-app:v2"], cwd: dir).status == 0)

            // a one-byte change in an included file: rebuild.
            try p.write("src/main.txt", "mainX\n")
            s = try Self.summary(try p.build())
            #expect(s["app"]?.result == "built", "\(s)")
            #expect(s["app"]?.reason.contains("context changed") == true)

            // docker rmi: rebuild.
            let tag = try #require(s["app"]?.tags.first)
            #expect(try sh(["docker", "rmi", "\(p.repo)-app:\(tag)"], cwd: dir).status == 0)
            s = try Self.summary(try p.build(["app"]))
            #expect(s["app"]?.result == "built", "\(s)")
            #expect(s["app"]?.reason.contains("missing") == true)

            // -b forces.
            s = try Self.summary(try p.build(["-b", "base"]))
            #expect(s["base"]?.result == "built")
            #expect(s["app"] == nil)
        }
    }

    @Test func movingTheCheckoutDoesNotRebuildAndClonesAgreeOnTheTag() throws {
        try withTemporaryDirectory { root in
            let first = root + "/one"
            try FileManager.default.createDirectory(atPath: first, withIntermediateDirectories: true)
            let p = try Project(dir: first)
            defer { p.cleanUp() }
            let git = ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-c", "init.defaultBranch=main"]
            _ = try sh(git + ["init", "-q"], cwd: first)
            _ = try sh(git + ["add", "-A"], cwd: first)
            _ = try sh(git + ["commit", "-qm", "init"], cwd: first)
            let built = try Self.summary(try p.build())
            let tag = try #require(built["app"]?.tags.first)

            // Move the checkout: nothing is rebuilt.
            let moved = root + "/moved"
            try FileManager.default.moveItem(atPath: first, toPath: moved)
            let afterMove = try Self.summary(try p.build(in: moved))
            #expect(afterMove["app"]?.result == "skipped", "\(afterMove)")
            #expect(afterMove["app"]?.tags.first == tag)

            // A fresh clone (no cache) computes the same default tag.
            let clone = root + "/clone"
            _ = try sh(["git", "clone", "-q", moved, clone], cwd: root)
            let cloned = try Self.summary(try p.build(in: clone))
            #expect(cloned["app"]?.tags.first == tag, "\(cloned)")
        }
    }

    @Test func errorsNameTheConfigPlaceAndKeepOtherResults() throws {
        try withTemporaryDirectory { dir in
            let repo = "slipway-test/\(UUID().uuidString.lowercased().prefix(12))"
            let p = try Project(
                dir: dir,
                images: """
                    version: v2beta1
                    name: errors
                    images:
                      good:
                        image: \(repo)-good
                      broken:
                        image: \(repo)-broken
                        dockerfile: ./broken.Dockerfile
                    """
            )
            defer { p.cleanUp() }
            try p.write("Dockerfile", "FROM slipway/busybox\nRUN echo ok > /ok\n")
            try p.write("broken.Dockerfile", "FROM slipway/busybox\nRUN echo about to fail && exit 3\n")
            let r = try p.build()
            #expect(r.status == 1)
            let s = try Self.summary(r)
            #expect(s["good"]?.result == "built")
            #expect(s["broken"]?.result == "failed")
            #expect(r.stderr.contains("about to fail"), "the engine's last lines: \(r.stderr)")
            let cache = try String(contentsOfFile: dir + "/.devspace/cache.yaml", encoding: .utf8)
            #expect(cache.contains("good:"))
            #expect(!cache.contains("broken:"), "nothing is cached for a failed build")

            // Sections slipway does not run yet are named, not silently skipped.
            try p.write(
                "devspace.yaml",
                "version: v2beta1\nname: errors\nimages:\n  good:\n    image: \(repo)-good\nhooks:\n  - command: echo hi\n    events: [\"before:build\"]\n"
            )
            let withHooks = try SlipwayBinary.run(["build", "--skip-push"], in: dir)
            #expect(withHooks.status == 0, "\(withHooks.stderr)")
            #expect(withHooks.stdout.contains("has hooks, which slipway does not run yet"), "\(withHooks.stdout)")

            // A missing Dockerfile is reported at its place in the config.
            try p.write(
                "devspace.yaml",
                "version: v2beta1\nname: errors\nimages:\n  app:\n    image: \(repo)-x\n    dockerfile: ./docker/app.Dockerfile\n"
            )
            let missing = try SlipwayBinary.run(["build"], in: dir)
            #expect(missing.status == 1)
            #expect(
                missing.stderr.hasPrefix(
                    "devspace.yaml:6:17: images.app.dockerfile: ./docker/app.Dockerfile does not exist"
                ),
                "\(missing.stderr)"
            )

            // A context outside the project.
            try p.write(
                "devspace.yaml",
                "version: v2beta1\nname: errors\nimages:\n  app:\n    image: \(repo)-x\n    context: ../\n"
            )
            let outside = try SlipwayBinary.run(["build"], in: dir)
            #expect(outside.status == 1)
            #expect(outside.stderr.contains("images.app.context: ../ is outside the project"), "\(outside.stderr)")

            // A branch name as a tag on the command line is a usage error that names the flag,
            // docker's grammar and the way out (nothing slipway-only, nothing about the config).
            try p.write("devspace.yaml", "version: v2beta1\nname: errors\nimages:\n  app:\n    image: \(repo)-x\n")
            let branch = try SlipwayBinary.run(["build", "-t", "feature/x"], in: dir)
            #expect(branch.status == 64)
            #expect(branch.stderr.contains("-t feature/x: not a valid image tag"), "\(branch.stderr)")
            #expect(branch.stderr.contains("docker's tag grammar") && branch.stderr.contains("-t feature-x"))
            #expect(!branch.stderr.contains("SLIPWAY_BRANCH_TAG") && !branch.stderr.contains("images.app"))
        }
    }

    /// DevSpace users switch its forced rebuild off with `-b=false` (pflag's booleans take a
    /// value); `--force-build=true` forces. slipway's own default is not to force.
    @Test func forceBuildTakesPflagsValues() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            let first = try p.build(["base"])
            #expect(first.status == 0, "\(first.stderr)")
            let off = try p.build(["base", "-b=false"])
            #expect(try Self.summary(off)["base"]?.result == "skipped", "\(off.stdout)")
            let on = try p.build(["base", "--force-build=true"])
            #expect(try Self.summary(on)["base"]?.result == "built", "\(on.stdout)")
            let last = try p.build(["base", "-b", "--force-build=false"])
            #expect(try Self.summary(last)["base"]?.result == "skipped", "the last one wins: \(last.stdout)")
        }
    }

    @Test func unreachableEngineSaysHowToStartOne() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            let r = try SlipwayBinary.run(
                ["build", "--engine", "docker"],
                in: dir,
                env: ["DOCKER_HOST": "unix://\(dir)/no-such.sock"]
            )
            #expect(r.status == 1)
            #expect(r.stderr.contains("cannot reach the Docker engine"), "\(r.stderr)")
            #expect(r.stderr.contains("install.sh --deps-only"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/.devspace/cache.yaml"), "nothing is cached")
            _ = p
        }
    }

    @Test func concurrentBuildsBothLandInTheCache() throws {
        try withTemporaryDirectory { dir in
            let p = try Project(dir: dir)
            defer { p.cleanUp() }
            let path = SlipwayBinary.path
            // Two slipway processes at once, each building one image.
            let both = try sh(
                ["sh", "-c", "\"$0\" build app >/dev/null 2>&1 & \"$0\" build base >/dev/null 2>&1; wait", path],
                cwd: dir
            )
            #expect(both.status == 0)
            let cache = try String(contentsOfFile: dir + "/.devspace/cache.yaml", encoding: .utf8)
            #expect(cache.contains("imageName: \(p.repo)-app"), "\(cache)")
            #expect(cache.contains("imageName: \(p.repo)-base"), "\(cache)")
            let again = try Self.summary(try p.build())
            #expect(again["app"]?.result == "skipped")
            #expect(again["base"]?.result == "skipped")
        }
    }

    @Test(.requiresBuildah) func buildahBuildsIntoItsOwnStore() throws {
        try withTemporaryDirectory { dir in
            let repo = "localhost/slipway-test-\(UUID().uuidString.lowercased().prefix(12))"
            let p = try Project(
                dir: dir,
                images: "version: v2beta1\nname: buildah\nimages:\n  app:\n    image: \(repo)\n    tags: [one]\n"
            )
            try p.write("Dockerfile", "FROM scratch\nCOPY src/main.txt /main.txt\n")
            defer { _ = try? sh(["buildah", "rmi", "-f", "\(repo):one"], cwd: dir) }
            let r = try p.build(["--engine", "buildah"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Self.summary(r)["app"]?.result == "built")
            #expect(try sh(["buildah", "inspect", "--type", "image", "\(repo):one"], cwd: dir).status == 0)
            #expect(try sh(["docker", "image", "inspect", "\(repo):one"], cwd: dir).status != 0)
            // "present" is asked of buildah: the next run skips.
            #expect(try Self.summary(try p.build(["--engine", "buildah"]))["app"]?.result == "skipped")
        }
    }
}
