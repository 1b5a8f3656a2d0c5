import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// Builds of one image running at the same time on one record, each with other content under
/// the same tag: whichever moved the tag last is what the record names, so the next build
/// decides on the truth (not "new tags" for a tag that exists).
@Suite(.serialized, .requiresDockerEngine, .timeLimit(.minutes(5)))
struct ConcurrentBuildTests {
    @Test func theRecordNamesTheImageTheTagPointsTo() throws {
        try withTemporaryDirectory { dir in
            let repo = uniqueTestRepository()
            try "FROM slipway/busybox\nARG V\nRUN echo \"$V\" > /v\n".write(
                toFile: dir + "/Dockerfile",
                atomically: true,
                encoding: .utf8
            )
            try """
            version: v2beta1
            name: concurrent
            images:
              app:
                image: \(repo)
                tags: [shared]
                buildArgs:
                  V: ${V}
            """.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            defer {
                let images =
                    (try? sh(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repo], cwd: "/"))?.stdout
                    ?? ""
                let ours = images.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
                if !ours.isEmpty { _ = try? sh(["docker", "rmi", "-f", "--no-prune"] + ours, cwd: "/") }
            }
            for round in 0..<10 {
                let values = (0..<3).map { "round\(round)-\($0)-\(UUID().uuidString.prefix(8))" }
                // Each started in the background, then waited for by its pid (a bare `wait`
                // can miss the children's exit when the test process blocks SIGCHLD).
                let script =
                    values.enumerated().map { i, v in
                        "\"$0\" build --skip-push --var V=\(v) >/dev/null 2>&1 & p\(i)=$!"
                    }.joined(separator: "\n")
                    + "\nstatus=0\nfor p in $p0 $p1 $p2; do wait \"$p\" || status=1; done\nexit $status"
                let all = try sh(["sh", "-c", script, SlipwayBinary.path], cwd: dir)
                #expect(all.status == 0)
                let record = try #require(try BuildCache(configPath: dir + "/devspace.yaml").read()["app"])
                let tagged = try sh(["docker", "image", "inspect", "--format", "{{.Id}}", "\(repo):shared"], cwd: "/")
                #expect(
                    record.imageID == tagged.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                    "round \(round): the record names \(record.imageID ?? "nil"), the tag points to \(tagged.stdout)"
                )
                // The value in the image the record names is "up to date" for the next build.
                let held = try sh(
                    ["docker", "run", "--rm", "--network", "none", "\(repo):shared", "cat", "/v"],
                    cwd: "/"
                )
                let value = held.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(values.contains(value))
                let next = try SlipwayBinary.run(["build", "--dry-run", "--skip-push", "--var", "V=\(value)"], in: dir)
                #expect(next.stdout.contains("up to date"), "round \(round): \(next.stdout)")
            }
        }
    }
}
