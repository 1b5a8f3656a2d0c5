import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

/// A file of the context is rewritten at a different moment of each build — before the walk,
/// while the engine reads the context, while it builds, after it is done — in place and by
/// rename, as editors save. Whatever the moment, slipway never records an image under a
/// digest of other content: either the recorded digest is the digest of what the image
/// holds, or the build is recorded as unknown (built again next time) and said so.
@Suite(.serialized, .requiresDockerEngine, .timeLimit(.minutes(10)))
struct EditDuringBuildTests {
    static let runs = 20

    /// When, after the build starts, run `index` rewrites the file: spread over 0–0.8 s (a
    /// build here takes about half a second), with a fixed jitter.
    static func delay(_ index: Int) -> Double {
        var rng = HostileConfigTests.SplitMix64(state: UInt64(index) &* 7919)
        return Double(index) * 0.8 / Double(runs) + Double(rng.next() % 50) / 1000
    }

    /// Starts `command` (a slipway invocation) and rewrites `app/hello.txt` with `text` after
    /// `delay` seconds (in place on even runs, by rename on odd ones); returns the command's
    /// combined output and status.
    static func buildWhileEditing(
        _ p: AgentProject,
        _ command: [String],
        delay: Double,
        text: String,
        index: Int
    ) throws -> (status: Int32, output: String) {
        let edit =
            index % 2 == 0
            ? "printf '%s\\n' \"$text\" > app/hello.txt"
            : "printf '%s\\n' \"$text\" > app/.hello.txt.tmp && mv app/.hello.txt.tmp app/hello.txt"
        let script = """
            delay=$1 text=$2
            shift 2
            "$@" > .build-output 2>&1 &
            pid=$!
            sleep "$delay"
            \(edit)
            wait "$pid"
            status=$?
            cat .build-output
            exit "$status"
            """
        let r = try sh(
            ["sh", "-c", script, "edit-during-build", String(format: "%.3f", delay), text] + command,
            cwd: p.dir,
            env: p.env
        )
        return (r.status, r.stdout + r.stderr)
    }

    /// Checks the record the last build left and returns whether it was recorded as unknown.
    static func check(_ p: AgentProject, output: String, run: Int) throws -> Bool {
        let entry = try #require(try BuildCache(configPath: p.dir + "/devspace.yaml").read()["app"], "run \(run)")
        if entry.buildDigest == nil {
            // The edit's file, or its temp file when the check ran between the editor's write
            // and its rename (odd runs save by rename).
            let edited = [p.dir + "/app/hello.txt", p.dir + "/app/.hello.txt.tmp"]
            #expect(
                edited.contains { entry.changedDuringBuild.contains($0) },
                "run \(run): \(entry.changedDuringBuild)"
            )
            #expect(
                edited.contains { output.contains("changed during build: \($0)") },
                "run \(run): \(output)"
            )
            return true
        }
        #expect(!output.contains("changed during build"), "run \(run): \(output)")
        let id = try #require(entry.imageID)
        let held = try sh(["docker", "run", "--rm", "--network", "none", id, "cat", "/hello.txt"], cwd: "/")
        #expect(held.status == 0, "\(held.stderr)")
        // The digest of the context as it would be with exactly the image's content.
        let digest = try withTemporaryDirectory { copy in
            #expect(try sh(["cp", "-a", p.dir + "/app/.", copy], cwd: "/").status == 0)
            unlink(copy + "/.hello.txt.tmp")
            try held.stdout.write(toFile: copy + "/hello.txt", atomically: false, encoding: .utf8)
            let (matcher, _) = try IgnoreMatcher.forContext(contextDir: copy, dockerfileRelativeToContext: "Dockerfile")
            return try ContextDigester().snapshot(contextDir: copy, matcher: matcher).snapshot.digest
        }
        #expect(
            digest == entry.contextDigest,
            "run \(run): the image holds \(held.stdout.debugDescription), which is not the content its record describes"
        )
        return false
    }

    @Test func foregroundBuilds() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, extraConfig: "    tags: [edited]")
            defer { p.cleanUp() }
            var unknown = 0
            for run in 0..<Self.runs {
                try p.write("app/hello.txt", "run \(run) before\n")
                let (status, output) = try Self.buildWhileEditing(
                    p,
                    [SlipwayBinary.path, "build", "--skip-push"],
                    delay: Self.delay(run),
                    text: "run \(run) after",
                    index: run
                )
                #expect(status == 0, "run \(run): \(output)")
                if try Self.check(p, output: output, run: run) { unknown += 1 }
            }
            // Both kinds of moment were met: the check above was not vacuous.
            print("edit during a foreground build: \(unknown) of \(Self.runs) builds recorded as unknown")
            #expect(unknown > 0 && unknown < Self.runs, "\(unknown) of \(Self.runs) recorded as unknown")
            // An unknown record is rebuilt; a known one is not.
            let again = try p.slipway(["build", "--skip-push"])
            let record = try #require(try BuildCache(configPath: dir + "/devspace.yaml").read()["app"])
            #expect(record.buildDigest != nil && record.changedDuringBuild.isEmpty, "\(again.stderr)")
            let third = try p.slipway(["build", "--skip-push"])
            #expect(third.stdout.contains("up to date"), "\(third.stdout)\n\(third.stderr)")
        }
    }

    /// The engine read the old content and the build failed on it; the file changed
    /// meanwhile: slipway decides and builds once more on the files as they are.
    @Test func aBuildThatFailsWhileItsFilesChangeIsTriedAgain() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, extraConfig: "    tags: [retried]")
            defer { p.cleanUp() }
            try p.write(
                "app/Dockerfile",
                "FROM slipway/busybox\nCOPY hello.txt /hello.txt\nRUN sleep 2 && grep -q good /hello.txt\n"
            )
            try p.write("app/hello.txt", "bad\n")
            let (status, output) = try Self.buildWhileEditing(
                p,
                [SlipwayBinary.path, "build", "--skip-push"],
                delay: 1,
                text: "good",
                index: 0
            )
            #expect(status == 0, "\(output)")
            #expect(
                output.contains(
                    "the build failed while its files changed (changed during build: \(dir)/app/hello.txt); building it again"
                ),
                "\(output)"
            )
            let held = try sh(
                ["docker", "run", "--rm", "--network", "none", "\(p.repo):retried", "cat", "/hello.txt"],
                cwd: "/"
            )
            #expect(held.stdout == "good\n")
            let record = try #require(try BuildCache(configPath: dir + "/devspace.yaml").read()["app"])
            #expect(record.buildDigest != nil, "the second build read settled files")
        }
    }

    @Test func agentJobsWithWarmDigests() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir)
            defer { p.cleanUp() }
            try p.startAgentWatchingContexts()
            var unknown = 0
            for run in 0..<Self.runs {
                try p.write("app/hello.txt", "job \(run) before\n")
                usleep(600_000)  // the warmer digests the new content after its quiet period
                let logStart = p.log().utf8.count
                let (status, output) = try Self.buildWhileEditing(
                    p,
                    [SlipwayBinary.path, "agent", "submit", "commit", "--wait"],
                    delay: Self.delay(run),
                    text: "job \(run) after",
                    index: run
                )
                #expect(status == 0, "run \(run): \(output)")
                let log = String(decoding: Array(p.log().utf8).dropFirst(logStart), as: UTF8.self)
                if try Self.check(p, output: log, run: run) { unknown += 1 }
            }
            print("edit during an agent job: \(unknown) of \(Self.runs) builds recorded as unknown")
            #expect(unknown > 0 && unknown < Self.runs, "\(unknown) of \(Self.runs) recorded as unknown")
            #expect(p.log().contains("with warm digests"), "the jobs were handed the warmer's digests")
        }
    }
}

extension EditDuringBuildTests {
    /// `slipway build` typed by hand with the agent running takes a context's digest from the
    /// agent when its watcher vouches for it. Each run starts from a recorded, warm state (the
    /// file's content A, built cold, the agent's digest current), then the file is rewritten
    /// to B either just before the build starts (no time for the agent to digest it: the build
    /// must not find the image up to date) or at a moment during it. Afterwards the record
    /// describes the image's content exactly (or says unknown), and a cold `--dry-run`
    /// (`SLIPWAY_WARM=0`) finds the image up to date exactly when it holds B: a stale warm
    /// answer would leave an image with A recorded as B.
    @Test func warmBuildsTypedByHandWhileFilesChange() throws {
        try withTemporaryDirectory { dir in
            let p = try AgentProject(dir: dir, extraConfig: "    tags: [warm]")
            defer { p.cleanUp() }
            try p.startAgentWatchingContexts()
            var cold = p.env
            cold["SLIPWAY_WARM"] = "0"
            var (warmAnswers, unknown) = (0, 0)
            for run in 0..<Self.runs {
                try p.write("app/hello.txt", "warm \(run) A\n")
                let first = try sh([SlipwayBinary.path, "build", "--skip-push"], cwd: dir, env: cold)
                #expect(first.status == 0, "run \(run): \(first.stderr)")
                // Until the agent's digest of A is current (it digests after its quiet period).
                let warm = AgentHookIntegrationTests.eventually(20) {
                    let r = try? sh([SlipwayBinary.path, "build", "--dry-run", "--debug"], cwd: dir, env: p.env)
                    return r?.stderr.contains(": warm (the agent's digest)") == true
                        && r?.stdout.contains("up to date") == true
                }
                #expect(warm, "run \(run): the agent's digest never became current\n\(p.log())")
                let before = run % 2 == 0
                let (status, output): (Int32, String)
                if before {
                    // Rewritten, then built at once: the agent has not digested B yet.
                    try p.write("app/hello.txt", "warm \(run) B\n")
                    let r = try sh([SlipwayBinary.path, "build", "--skip-push", "--debug"], cwd: dir, env: p.env)
                    (status, output) = (r.status, r.stdout + r.stderr)
                    #expect(!output.contains("up to date"), "run \(run): a stale warm answer\n\(output)")
                } else {
                    (status, output) = try Self.buildWhileEditing(
                        p,
                        [SlipwayBinary.path, "build", "--skip-push", "--debug"],
                        delay: Double(run) * 0.006,
                        text: "warm \(run) B",
                        index: run
                    )
                }
                #expect(status == 0, "run \(run): \(output)")
                if output.contains(": warm (the agent's digest)") { warmAnswers += 1 }
                if try Self.check(p, output: output, run: run) { unknown += 1 }
                // After the edit: a cold decision finds the image up to date exactly when the
                // image holds B.
                let record = try #require(try BuildCache(configPath: dir + "/devspace.yaml").read()["app"])
                let decision = try sh([SlipwayBinary.path, "build", "--dry-run"], cwd: dir, env: cold)
                if let id = record.imageID, record.buildDigest != nil {
                    let held = try sh(
                        ["docker", "run", "--rm", "--network", "none", id, "cat", "/hello.txt"],
                        cwd: "/"
                    )
                    #expect(
                        decision.stdout.contains("up to date") == (held.stdout == "warm \(run) B\n"),
                        "run \(run): the image holds \(held.stdout.debugDescription); cold decision: \(decision.stdout)"
                    )
                } else {
                    #expect(!decision.stdout.contains("up to date"), "run \(run): \(decision.stdout)")
                }
            }
            print(
                "warm builds typed by hand: \(warmAnswers) of \(Self.runs) took the agent's digest, \(unknown) recorded as unknown"
            )
            // The warm path was taken (the runs with the edit during the build, when the edit
            // came after the agent's answer), and not taken where it must not be.
            #expect(warmAnswers > 0, "no build took the agent's digest")
        }
    }
}
