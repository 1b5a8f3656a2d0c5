import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// MARK: - Helpers

private func write(_ path: String, _ text: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

private func mkdirs(_ path: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
}

/// Runs `body` with a started watcher over `roots`, stopped afterwards.
private func withWatcher<T>(
    _ roots: [WatchRoot], skipping: [String] = [], _ body: (ContextWatcher) throws -> T
) throws -> T {
    let watcher = ContextWatcher(roots: roots, skipping: skipping)
    try watcher.start()
    defer { watcher.stop() }
    return try body(watcher)
}

/// The generation of `root` after draining, and whether the step bumped it.
private func bumped(_ watcher: ContextWatcher, root: Int = 0, _ step: () throws -> Void) -> Bool {
    let before = watcher.drain()[root]
    do { try step() } catch { Issue.record(error) }
    let after = watcher.drain()[root]
    return after.generation > before.generation
}

/// Every test that starts a watcher lives in this one serialized suite: libinotifytools is
/// process-global, so one watcher runs at a time.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct WatcherTests {
    // MARK: ContextWatcher

    @Test func editsAnywhereInTheTreeBumpTheGeneration() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx + "/a/b")
            try write(ctx + "/a/b/file.txt", "one")
            try write(ctx + "/top.txt", "top")
            try withWatcher([.directory(ctx)]) { watcher in
                #expect(watcher.drain()[0].unknown == false)
                #expect(bumped(watcher) { try write(ctx + "/a/b/file.txt", "two") })  // modify
                #expect(bumped(watcher) { try write(ctx + "/a/new.txt", "new") })  // create
                #expect(bumped(watcher) { try FileManager.default.removeItem(atPath: ctx + "/a/new.txt") })
                #expect(bumped(watcher) { rename(ctx + "/top.txt", ctx + "/a/b/moved.txt") })
                #expect(bumped(watcher) { chmod(ctx + "/a/b/moved.txt", 0o755) })  // attrib
                // Rename-over, as editors save.
                #expect(
                    bumped(watcher) {
                        try write(ctx + "/a/.file.txt.swp", "three")
                        rename(ctx + "/a/.file.txt.swp", ctx + "/a/b/file.txt")
                    })
                #expect(bumped(watcher) { symlink("file.txt", ctx + "/a/b/link") })
                // Nothing happening: no bump.
                #expect(!bumped(watcher) {})
            }
        }
    }

    @Test func newDirectoriesAreWatchedAndTheirFirstFilesCount() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx)
            try withWatcher([.directory(ctx)]) { watcher in
                // A tree made at once: the files inside it were created before any watch.
                #expect(bumped(watcher) { try mkdirs(ctx + "/n1/n2/n3"); try write(ctx + "/n1/n2/n3/f", "x") })
                // Now watched: each later change in the new directories counts.
                #expect(bumped(watcher) { try write(ctx + "/n1/n2/n3/f", "y") })
                #expect(bumped(watcher) { chmod(ctx + "/n1/n2/n3/f", 0o600) })
                #expect(bumped(watcher) { try write(ctx + "/n1/g", "z") })
                // A directory moved in from outside the root is watched under its new name.
                try mkdirs(dir + "/outside/deep")
                #expect(bumped(watcher) { rename(dir + "/outside", ctx + "/n1/inside") })
                #expect(bumped(watcher) { try write(ctx + "/n1/inside/deep/f", "1") })
                // Renamed within the root: still watched.
                #expect(bumped(watcher) { rename(ctx + "/n1/inside", ctx + "/renamed") })
                #expect(bumped(watcher) { try write(ctx + "/renamed/deep/g", "2") })
                // Moved out of the root: its changes no longer count.
                #expect(bumped(watcher) { rename(ctx + "/renamed", dir + "/gone") })
                #expect(!bumped(watcher) { try write(dir + "/gone/deep/h", "3") })
                #expect(bumped(watcher) { try FileManager.default.removeItem(atPath: ctx + "/n1") })
                // Made again under the same name: a new directory, watched again.
                #expect(bumped(watcher) { try mkdirs(ctx + "/n1/n2") })
                #expect(bumped(watcher) { try write(ctx + "/n1/n2/again", "4") })
                #expect(bumped(watcher) { try FileManager.default.removeItem(atPath: ctx + "/n1/n2") })
                #expect(bumped(watcher) { try mkdirs(ctx + "/n1/n2") })
                #expect(bumped(watcher) { try write(ctx + "/n1/n2/again", "5") })
                #expect(watcher.drain()[0].unknown == false)
            }
        }
    }

    @Test func gitAndDevspaceWritesDoNotCount() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx + "/.git/objects")
            try mkdirs(ctx + "/.devspace/slipway")
            try mkdirs(ctx + "/src/.git")
            let matcher = try IgnoreMatcher(patterns: [".git", "**/.git", ".devspace"])
            try withWatcher([.directory(ctx, matcher: matcher)], skipping: [ctx + "/.devspace"]) { watcher in
                #expect(watcher.drain()[0].unknown == false)
                #expect(!bumped(watcher) { try write(ctx + "/.git/objects/ab", "obj") })
                #expect(!bumped(watcher) { try write(ctx + "/.git/index", "idx") })
                #expect(!bumped(watcher) { try write(ctx + "/src/.git/HEAD", "ref") })
                #expect(!bumped(watcher) { try write(ctx + "/.devspace/slipway/stat-1.idx", "i") })
                #expect(!bumped(watcher) { try write(ctx + "/.devspace/cache.yaml", "c") })
                #expect(bumped(watcher) { try write(ctx + "/src/main.swift", "code") })
            }
        }
    }

    @Test func dockerignoredDirectoriesAreNotWatchedUnlessSomethingComesBack() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx + "/node_modules/pkg")
            try mkdirs(ctx + "/logs")
            try mkdirs(ctx + "/vendor/keep")
            let matcher = try IgnoreMatcher(patterns: ["node_modules", "*.log", "vendor", "!vendor/keep"])
            try withWatcher([.directory(ctx, matcher: matcher)]) { watcher in
                #expect(!bumped(watcher) { try write(ctx + "/node_modules/pkg/index.js", "x") })
                #expect(!bumped(watcher) { try write(ctx + "/app.log", "x") })
                #expect(bumped(watcher) { try write(ctx + "/vendor/keep/lib.c", "x") })
                #expect(bumped(watcher) { try write(ctx + "/logs/kept.txt", "x") })
            }
        }
    }

    @Test func aGitDirectoryTheBuildReadsMakesTheRootUnknown() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx + "/.git")
            try withWatcher([.directory(ctx, matcher: IgnoreMatcher())]) { watcher in
                #expect(watcher.drain()[0].unknown)
            }
        }
    }

    @Test func singleFilesAreWatchedByName() throws {
        try withTemporaryDirectory { dir in
            try mkdirs(dir + "/docker")
            try write(dir + "/docker/app.Dockerfile", "FROM scratch\n")
            try withWatcher([.file(dir + "/docker/app.Dockerfile")]) { watcher in
                #expect(watcher.drain()[0].unknown == false)
                #expect(!bumped(watcher) { try write(dir + "/docker/other.Dockerfile", "FROM x\n") })
                #expect(bumped(watcher) { try write(dir + "/docker/app.Dockerfile", "FROM y\n") })
                #expect(bumped(watcher) { try FileManager.default.removeItem(atPath: dir + "/docker/app.Dockerfile") })
                #expect(bumped(watcher) { try write(dir + "/docker/app.Dockerfile", "FROM z\n") })
            }
        }
    }

    @Test func anOverflowMakesEveryRootUnknownUntilItIsWatchedAgain() throws {
        try withTemporaryDirectory { dir in
            try mkdirs(dir + "/a")
            try mkdirs(dir + "/b")
            try withWatcher([.directory(dir + "/a"), .directory(dir + "/b")]) { watcher in
                let before = watcher.drain()
                #expect(before.allSatisfy { !$0.unknown })
                watcher.simulateOverflow()
                let after = watcher.states
                #expect(after.allSatisfy { $0.unknown })
                #expect(zip(before, after).allSatisfy { $1.generation > $0.generation })
                // The next drain watches the roots again (a full re-digest follows it).
                let again = watcher.drain()
                #expect(again.allSatisfy { !$0.unknown })
                #expect(bumped(watcher, root: 1) { try write(dir + "/b/f", "x") })
            }
        }
    }

    @Test func aRealQueueOverflowMakesEveryRootUnknown() throws {
        try withTemporaryDirectory { dir in
            try mkdirs(dir + "/a")
            try mkdirs(dir + "/b")
            try write(dir + "/a/x", "x")
            try write(dir + "/a/y", "y")
            let limit = Int((try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 16384
            let notes = Lines()
            let watcher = ContextWatcher(roots: [.directory(dir + "/a"), .directory(dir + "/b")]) { notes.append($0) }
            try watcher.start()
            defer { watcher.stop() }
            let before = watcher.drain()
            #expect(before.allSatisfy { !$0.unknown })
            watcher.holdingReader {
                // Alternating names: inotify merges an event identical to the last queued one.
                // The reader buffers a few thousand before it blocks; the rest overflow.
                for index in 0..<(2 * limit + 8192) {
                    chmod(dir + (index % 2 == 0 ? "/a/x" : "/a/y"), index % 4 < 2 ? 0o644 : 0o600)
                }
            }
            // The drain's own event may be dropped with the others: the overflow releases it.
            let drained = watcher.drain()
            #expect(notes.all.contains { $0.contains("overflowed") })
            // Nothing happened in b: only the overflow can have moved its generation.
            #expect(drained[1].generation > before[1].generation)
            // The next drain watches the roots again: known, at a new generation.
            let again = watcher.drain()
            #expect(again.allSatisfy { !$0.unknown })
        }
    }

    @Test func oneWatcherPerProcess() throws {
        try withTemporaryDirectory { dir in
            try withWatcher([.directory(dir)]) { _ in
                let second = ContextWatcher(roots: [.directory(dir)])
                #expect(throws: WatchError.alreadyWatching) { try second.start() }
            }
            // Stopped: the next one starts.
            try withWatcher([.directory(dir)]) { watcher in #expect(watcher.drain()[0].unknown == false) }
        }
    }
}

// MARK: - DigestWarmer and the build's use of its snapshot

private func loadProject(_ dir: String, contexts: [String] = ["app"]) async throws -> LoadedConfig {
    var yaml = "version: v2beta1\nname: warm\nimages:\n"
    for context in contexts {
        yaml += "  \(context):\n    image: example.com/\(context)\n    dockerfile: ./\(context)/Dockerfile\n    context: ./\(context)\n"
    }
    try write(dir + "/devspace.yaml", yaml)
    return try await ConfigLoader.load(
        LoadOptions(workingDirectory: dir, environment: ["HOME": dir, "PATH": "/usr/bin:/bin"]))
}

private func makeContext(_ dir: String, files: Int = 5) throws {
    try mkdirs(dir + "/src/deep")
    try write(dir + "/Dockerfile", "FROM scratch\nCOPY . /\n")
    try write(dir + "/.dockerignore", "*.log\n")
    for index in 0..<files { try write(dir + "/src/deep/f\(index).txt", "content \(index)\n") }
}

/// The digest a build computes for `plan`, walking (no warm snapshot) or with `warm`.
private func buildDigest(_ loaded: LoadedConfig, warm: WarmSnapshot? = nil) throws -> (digest: String, warmHits: Int) {
    let plan = try BuildPlanner.plan(loaded, options: BuildOptions())[0]
    var cache = ContextCache(configDirectory: loaded.directory, warm: warm)
    let digest = try cache.digest(plan: plan, displayPath: loaded.displayPath)
    return (digest, cache.warmHits)
}

extension WatcherTests {
    @Test func theWarmDigestIsTheBuildsDigestAndSkipsTheWalk() async throws {
        try await withTemporaryDirectory { dir in
            try makeContext(dir + "/app")
            let loaded = try await loadProject(dir)
            let warmer = DigestWarmer(loaded: loaded, quietPeriodMilliseconds: 50)
            try warmer.start()
            defer { warmer.stop() }
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            let snapshot = warmer.snapshot()
            #expect(snapshot.entries.count == 1)
            let plan = try BuildPlanner.plan(loaded, options: BuildOptions())[0]
            let index = ContextCache(configDirectory: loaded.directory).indexPath(for: plan.contextPath)
            let saved = try #require(IndexIdentity.of(index))
            #expect(snapshot.entries.first?.index == saved)

            // Through the file and the environment variable, as the agent hands it over.
            let file = dir + "/warm.json"
            try snapshot.write(to: file)
            let handed = try #require(WarmSnapshot.fromEnvironment([WarmSnapshot.environmentVariable: file]))
            #expect(handed == snapshot)

            let warm = try buildDigest(loaded, warm: handed)
            #expect(warm.warmHits == 1)
            let cold = try buildDigest(loaded)
            #expect(cold.warmHits == 0)
            #expect(warm.digest == cold.digest)
            // The warm build did not touch the index the warmer saved.
            #expect(IndexIdentity.of(index) == saved)
            // Another config directory's snapshot is not used.
            var foreign = handed
            foreign.configDirectory = dir + "/elsewhere"
            #expect(try buildDigest(loaded, warm: foreign).warmHits == 0)
        }
    }

    @Test func anEditBeforeTheSnapshotMeansWalkingUntilItIsDigestedAgain() async throws {
        try await withTemporaryDirectory { dir in
            try makeContext(dir + "/app")
            let loaded = try await loadProject(dir)
            let warmer = DigestWarmer(loaded: loaded, quietPeriodMilliseconds: 50)
            try warmer.start()
            defer { warmer.stop() }
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            let before = warmer.snapshot()
            #expect(before.entries.count == 1)

            try write(dir + "/app/src/deep/f1.txt", "edited\n")
            let after = warmer.snapshot()
            #expect(after.entries.isEmpty)  // changed since its digest: the build walks
            let walked = try buildDigest(loaded, warm: after)
            #expect(walked.warmHits == 0)
            #expect(walked.digest != before.entries.first?.digest)

            // Once the change settled it is warm again, with the new content's digest.
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            let again = warmer.snapshot()
            #expect(again.entries.first?.digest == walked.digest)
            #expect(try buildDigest(loaded, warm: again) == (walked.digest, 1))
            // The old snapshot no longer matches: the index it saw was replaced.
            #expect(try buildDigest(loaded, warm: before).warmHits == 0)

            // An ignored file changes nothing; a mode change does.
            try write(dir + "/app/debug.log", "noise\n")
            #expect(warmer.snapshot().entries.count == 1)
            chmod(dir + "/app/src/deep/f2.txt", 0o755)
            #expect(warmer.snapshot().entries.isEmpty)
        }
    }

    @Test func aReplacedIndexOrAnOverflowMeansWalking() async throws {
        try await withTemporaryDirectory { dir in
            try makeContext(dir + "/app")
            let loaded = try await loadProject(dir)
            let warmer = DigestWarmer(loaded: loaded, quietPeriodMilliseconds: 50)
            try warmer.start()
            defer { warmer.stop() }
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            let snapshot = warmer.snapshot()
            #expect(snapshot.entries.count == 1)

            // Another process rewrote the stat index (same bytes, new file).
            let plan = try BuildPlanner.plan(loaded, options: BuildOptions())[0]
            let index = ContextCache(configDirectory: loaded.directory).indexPath(for: plan.contextPath)
            try FileManager.default.copyItem(atPath: index, toPath: index + ".copy")
            #expect(rename(index + ".copy", index) == 0)
            let walked = try buildDigest(loaded, warm: snapshot)
            #expect(walked.warmHits == 0)
            #expect(walked.digest == snapshot.entries.first?.digest)

            // Overflow: nothing is handed out until the context is digested again.
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            warmer.simulateOverflow()
            #expect(warmer.snapshot().entries.isEmpty)
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            let recovered = warmer.snapshot()
            #expect(recovered.entries.first?.digest == walked.digest)
        }
    }

    @Test func aDockerignoreChangeIsFollowed() async throws {
        try await withTemporaryDirectory { dir in
            try makeContext(dir + "/app")
            try mkdirs(dir + "/app/cache/sub")
            try write(dir + "/app/.dockerignore", "cache\n")
            let loaded = try await loadProject(dir)
            let warmer = DigestWarmer(loaded: loaded, quietPeriodMilliseconds: 50)
            try warmer.start()
            defer { warmer.stop() }
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            try write(dir + "/app/cache/sub/x", "ignored\n")
            #expect(warmer.snapshot().entries.count == 1)
            // No longer ignored: the directory is watched again and its files count.
            try write(dir + "/app/.dockerignore", "*.log\n")
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            let snapshot = warmer.snapshot()
            #expect(snapshot.entries.first?.ignorePatterns == ["*.log", ".devspace"])
            #expect(try buildDigest(loaded, warm: snapshot) == (try buildDigest(loaded).digest, 1))
            try write(dir + "/app/cache/sub/x", "now read\n")
            #expect(warmer.snapshot().entries.isEmpty)
        }
    }
}

// MARK: - Measurements (printed, not asserted: speed figures belong in bench/)

private func residentKilobytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
    return 0
}

private func cpuMilliseconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000
}

private func milliseconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
}

private final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

extension WatcherTests {
    /// 200 directories × 100 files. Run alone for clean figures:
    /// `SLIPWAY_WATCH_IDLE_SECONDS=10 swift test --filter WatcherTests/measurements`.
    @Test func measurements() async throws {
        try await withTemporaryDirectory { dir in
            let context = dir + "/app"
            try mkdirs(context)
            try write(context + "/Dockerfile", "FROM scratch\nCOPY . /\n")
            let payload = [UInt8](repeating: 0x61, count: 512)
            for d in 0..<200 {
                let sub = context + "/d\(d / 20)/e\(d)"
                try mkdirs(sub)
                for f in 0..<100 {
                    // POSIX calls: Foundation's Data.write takes milliseconds per file here.
                    let fd = open(sub + "/f\(f).txt", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                    guard fd >= 0 else { throw TestSupportError("cannot create a file in \(sub)") }
                    _ = payload.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
                    close(fd)
                }
            }
            let loaded = try await loadProject(dir)

            // The watcher alone.
            let rssBefore = residentKilobytes()
            let watcher = ContextWatcher(roots: [.directory(context)])
            let setup = try milliseconds { try watcher.start() }
            let watched = watcher.watchedDirectoryCount
            let rssWatching = residentKilobytes()
            watcher.stop()
            #expect(watched >= 211)  // 200 + 10 + the context + the private directory

            // The warmer: a cold digest (every file hashed), then one edit.
            let notes = Lines()
            let warmer = DigestWarmer(loaded: loaded, quietPeriodMilliseconds: 200) { notes.append($0) }
            var settled = false
            let coldWarm = try milliseconds {
                try warmer.start()
                settled = warmer.waitUntilSettled(timeoutSeconds: 120)
            }
            #expect(settled)
            defer { warmer.stop() }
            let rssWarm = residentKilobytes()
            let statWalk = try milliseconds { _ = try buildDigest(loaded) }
            try write(context + "/d3/e77/f5.txt", "edited")
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            let snapshot = warmer.snapshot()
            #expect(snapshot.entries.count == 1)
            var warmHits = 0
            let warmBuild = try milliseconds { warmHits = try buildDigest(loaded, warm: snapshot).warmHits }
            #expect(warmHits == 1)

            let idleSeconds = Double(ProcessInfo.processInfo.environment["SLIPWAY_WATCH_IDLE_SECONDS"] ?? "") ?? 1
            let cpuStart = cpuMilliseconds()
            try await Task.sleep(nanoseconds: UInt64(idleSeconds * 1_000_000_000))
            let idleCPU = cpuMilliseconds() - cpuStart

            print(
                """
                watch-measure: 20,000 files in 210 directories
                watch-measure: watcher setup \(String(format: "%.1f", setup)) ms for \(watched) watches; RSS \(rssBefore) → \(rssWatching) kB (+\(rssWatching - rssBefore) kB)
                watch-measure: warmer start + cold digest (all hashed) \(String(format: "%.0f", coldWarm)) ms; RSS after \(rssWarm) kB
                watch-measure: build digest by stat walk (index warm, nothing hashed) \(String(format: "%.1f", statWalk)) ms; with the warm snapshot \(String(format: "%.2f", warmBuild)) ms
                watch-measure: re-digest after one edit: \(notes.all.last ?? "-")
                watch-measure: process CPU while idle for \(idleSeconds) s: \(String(format: "%.1f", idleCPU)) ms
                """)
        }
    }
}

extension WatcherTests {
    @Test func aRootThatGoesAwayIsWatchedAgainWhenItComesBack() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx + "/sub")
            try withWatcher([.directory(ctx)]) { watcher in
                #expect(!watcher.drain()[0].unknown)
                try FileManager.default.removeItem(atPath: ctx)
                #expect(watcher.drain()[0].unknown)
                #expect(watcher.drain()[0].unknown)  // retried, still missing
                try mkdirs(ctx + "/sub")  // as a checkout makes it again
                #expect(!watcher.drain()[0].unknown)
                #expect(bumped(watcher) { try write(ctx + "/sub/f", "x") })
            }
        }
    }
}
