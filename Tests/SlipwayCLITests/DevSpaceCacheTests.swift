import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// slipway and DevSpace on one project: DevSpace rewrites `.devspace/cache.yaml` from its own
/// struct (its keys only) whenever it builds. slipway's decisions do not depend on that file,
/// and whenever slipway records a build, DevSpace's fields for the image describe that build's
/// tag and nothing else (its content hashes are removed, so DevSpace rebuilds rather than
/// deploying slipway's tag for content it hashed earlier).
@Suite(.serialized, .requiresDockerEngine, .timeLimit(.minutes(5)))
struct DevSpaceCacheTests {
    /// `.devspace/cache.yaml` as DevSpace v6 writes it after `devspace build` of content it
    /// hashed (yaml.v3 of `LocalCache`: no `slipway` key anywhere).
    static func devspaceShapedCache(image: String, tag: String, step: Int) -> String {
        """
        vars:
          SOME_QUESTION: answered-\(step)
        images:
          app:
            imageConfigHash: \(String(repeating: "a", count: 63))\(step % 10)
            dockerfileHash: \(String(repeating: "b", count: 63))\(step % 10)
            contextHash: \(String(repeating: "c", count: 63))\(step % 10)
            entrypointHash: ""
            imageName: \(image)
            tag: \(tag)
        lastContext:
          context: kind-dev
          namespace: default

        """
    }

    /// The decision `slipway build --dry-run` reports for `app`: result and reason.
    static func decision(_ p: AgentProject) throws -> String {
        let r = try p.slipway(["build", "--dry-run", "--json", "--skip-push"])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let image = (object?["images"] as? [[String: Any]])?.first
        return "\(image?["result"] ?? "?"): \(image?["reason"] ?? "?")"
    }

    @Test func devspaceWritesNeitherChangeSlipwaysDecisionNorMakeItsFieldsLie() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            let cachePath = dir + "/.devspace/cache.yaml"
            for (step, content) in ["A", "B", "A", "B", "B", "A"].enumerated() {
                try p.write("app/hello.txt", "content \(content)\n")
                let without = try Self.decision(p)
                // DevSpace built in between: its own tag and hashes, no slipway record.
                try FileManager.default.createDirectory(atPath: dir + "/.devspace", withIntermediateDirectories: true)
                try Self.devspaceShapedCache(image: p.repo, tag: "devspace\(step)", step: step)
                    .write(toFile: cachePath, atomically: true, encoding: .utf8)
                #expect(try Self.decision(p) == without, "step \(step): DevSpace's write changed slipway's decision")

                let build = try p.slipway(["build", "--skip-push", "-t", "slipway\(step)"])
                #expect(build.status == 0, "\(build.stderr)")
                let record = try #require(try BuildCache(configPath: dir + "/devspace.yaml").read()["app"])
                #expect(record.tag == "slipway\(step)")

                // Read back what DevSpace will read.
                let text = try String(contentsOfFile: cachePath, encoding: .utf8)
                let tree = try #require(try YAMLParser().parse(text))
                let app = try #require(tree["images"]?["app"])
                #expect(app["tag"]?.scalar == "slipway\(step)", "\(text)")
                #expect(app["imageName"]?.scalar == p.repo)
                for key in ["imageConfigHash", "dockerfileHash", "contextHash", "entrypointHash", "customFilesHash"] {
                    #expect(
                        app[key] == nil,
                        "step \(step): \(key) would describe DevSpace's content under slipway's tag"
                    )
                }
                #expect(app["slipway"] == nil, "slipway's record lives in its own file")
                #expect(tree["vars"]?["SOME_QUESTION"]?.scalar == "answered-\(step)", "DevSpace's other keys are kept")
                #expect(tree["lastContext"]?["context"]?.scalar == "kind-dev")

                // The tag DevSpace would deploy holds the content of the tree.
                let held = try sh(
                    ["docker", "run", "--rm", "--network", "none", "\(p.repo):slipway\(step)", "cat", "/hello.txt"],
                    cwd: "/"
                )
                #expect(held.stdout == "content \(content)\n")
            }
        }
    }

    /// A project slipway built before its record had a file of its own: the old records in
    /// `cache.yaml` are read, so nothing is rebuilt, and moved on the next record.
    @Test func oldRecordsInCacheYamlAreRead() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/.devspace", withIntermediateDirectories: true)
            try """
            images:
              app:
                imageName: acme/app
                tag: v1
                slipway:
                  buildDigest: abc
                  tags: [v1]
                  imageID: sha256:11
            """.write(toFile: dir + "/.devspace/cache.yaml", atomically: true, encoding: .utf8)
            let cache = BuildCache(configPath: dir + "/devspace.yaml")
            #expect(try cache.read()["app"]?.buildDigest == "abc")
            try await cache.recordBuilds([
                "web": ImageCacheEntry(imageName: "acme/web", tag: "w1", imageID: "sha256:22")
            ])
            let records = try cache.read()
            #expect(records["app"]?.imageID == "sha256:11")
            #expect(records["web"]?.imageID == "sha256:22")
            let text = try String(contentsOfFile: dir + "/.devspace/cache.yaml", encoding: .utf8)
            #expect(!text.contains("slipway"), "\(text)")
            #expect(text.contains("tag: v1") && text.contains("tag: w1"))
        }
    }

    /// A build skipped as up to date records the tags it was asked for: a later pipeline
    /// without build_images (DevSpace's dev pipeline, `get_image`) uses the deploy's tag, and
    /// DevSpace's `tag` names the same content (the record's image).
    @Test func aSkippedBuildRecordsItsTags() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(
                dir: dir,
                extraConfig: """
                    pipelines:
                      show:
                        run: |-
                          get_image app
                    """
            )
            defer { p.cleanUp() }
            for (tag, expected) in [("t1", "build"), ("t2", "re-tag"), ("t1", "skip")] {
                let build = try p.slipway(["build", "--skip-push", "-t", tag])
                #expect(build.status == 0, "\(build.stderr)")
                #expect(build.stdout.contains("build:app \(expected) → \(tag)"), "\(build.stdout)")
                let record = try #require(try BuildCache(configPath: dir + "/devspace.yaml").read()["app"])
                #expect(record.tag == tag, "after \(expected): the record names \(record.tag)")
                #expect(record.tags == [tag])
                let text = try String(contentsOfFile: dir + "/.devspace/cache.yaml", encoding: .utf8)
                let app = try #require(try YAMLParser().parse(text)?["images"]?["app"])
                #expect(app["tag"]?.scalar == tag, "\(text)")
                // The pipeline that builds nothing injects what the last build used.
                let shown = try p.slipway(["run-pipeline", "show"])
                #expect(shown.status == 0, "\(shown.stderr)")
                #expect(
                    shown.stdout.split(separator: "\n").last.map(String.init) == "\(p.repo):\(tag)",
                    "\(shown.stdout)"
                )
            }
            // t1 and t2 are one image; the record's is the one t1 names.
            let id = try sh(["docker", "image", "inspect", "--format", "{{.Id}}", "\(p.repo):t1"], cwd: "/").stdout
            let record = try #require(try BuildCache(configPath: dir + "/devspace.yaml").read()["app"])
            #expect(record.imageID == id.trimmingCharacters(in: .whitespacesAndNewlines))
            // A no-op run with the same tags writes nothing.
            let before = try FileManager.default.attributesOfItem(atPath: dir + "/.devspace/slipway/builds.json")
            #expect(try p.slipway(["build", "--skip-push", "-t", "t1"]).status == 0)
            let after = try FileManager.default.attributesOfItem(atPath: dir + "/.devspace/slipway/builds.json")
            #expect(before[.modificationDate] as? Date == after[.modificationDate] as? Date)
        }
    }
}
