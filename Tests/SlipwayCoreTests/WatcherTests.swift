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

/// Runs `body` with a subscription to the process's watcher over `roots`, cancelled afterwards.
private func withWatcher<T>(
    _ roots: [WatchRoot],
    skipping: [String] = [],
    _ body: (WatchSubscription) throws -> T
) throws -> T {
    let watcher = try FileWatcher.shared.subscribe(roots, skipping: skipping)
    defer { watcher.cancel() }
    return try body(watcher)
}

/// The generation of `root` after draining, and whether the step bumped it.
private func bumped(_ watcher: WatchSubscription, root: Int = 0, _ step: () throws -> Void) -> Bool {
    let before = watcher.drain()[root]
    do { try step() } catch { Issue.record(error) }
    let after = watcher.drain()[root]
    return after.generation > before.generation
}

/// Every test that subscribes to the watcher lives in this one serialized suite: it is
/// process-global (a real overflow, or the count of inotify instances, would see another
/// test's subscriptions).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct WatcherTests {
    // MARK: FileWatcher: what changes count for a root

    @Test func editsAnywhereInTheTreeBumpTheGeneration() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx + "/a/b")
            try write(ctx + "/a/b/file.txt", "one")
            try write(ctx + "/top.txt", "top")
            try withWatcher([.tree(ctx)]) { watcher in
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
                    }
                )
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
            try withWatcher([.tree(ctx)]) { watcher in
                // A tree made at once: the files inside it were created before any watch.
                #expect(
                    bumped(watcher) {
                        try mkdirs(ctx + "/n1/n2/n3")
                        try write(ctx + "/n1/n2/n3/f", "x")
                    }
                )
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
            try withWatcher([.tree(ctx, filter: matcher)], skipping: [ctx + "/.devspace"]) { watcher in
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
            try withWatcher([.tree(ctx, filter: matcher)]) { watcher in
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
            try withWatcher([.tree(ctx, filter: IgnoreMatcher())]) { watcher in
                #expect(watcher.drain()[0].unknown)
                // Not only a state: the subscriber's first batch asks for a rescan.
                #expect(nextBatch(watcher)?.rescan[0] == .unwatchedDirectory)
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
            try withWatcher([.tree(dir + "/a"), .tree(dir + "/b")]) { watcher in
                let before = watcher.drain()
                #expect(before.allSatisfy { !$0.unknown })
                FileWatcher.shared.simulateOverflow()
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

    @Test func aRealQueueOverflowReachesEverySubscriberAsARescan() throws {
        try withTemporaryDirectory { dir in
            try mkdirs(dir + "/a")
            try mkdirs(dir + "/b")
            try write(dir + "/a/x", "x")
            try write(dir + "/a/y", "y")
            let limit =
                Int(
                    (try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8))?
                        .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                ) ?? 16384
            let notes = Lines()
            let watcher = try FileWatcher.shared.subscribe([.tree(dir + "/a"), .tree(dir + "/b")]) { notes.append($0) }
            defer { watcher.cancel() }
            // A second subscriber, on a root where nothing happens: it must hear of the overflow too.
            let other = try FileWatcher.shared.subscribe([.directory(dir + "/b")])
            defer { other.cancel() }
            let before = watcher.drain()
            #expect(before.allSatisfy { !$0.unknown })
            #expect(other.drain().allSatisfy { !$0.unknown })
            FileWatcher.shared.holdingReader {
                // Alternating names: inotify merges an event identical to the last queued one.
                // The reader buffers a few thousand before it blocks; the rest overflow.
                for index in 0..<(4 * limit + 65536) {  // more than the queue and the reader's buffer hold
                    chmod(dir + (index % 2 == 0 ? "/a/x" : "/a/y"), index % 4 < 2 ? 0o644 : 0o600)
                }
            }
            // The drain's own event may be dropped with the others: the overflow releases it.
            let drained = watcher.drain()
            #expect(notes.all.contains { $0.contains("overflowed") })
            // Nothing happened in b: only the overflow can have moved its generation.
            #expect(drained[1].generation > before[1].generation)
            // Each subscriber gets a batch that says: rescan every root, because of the overflow.
            for (subscription, roots) in [(watcher, 2), (other, 1)] {
                let batch = try #require(nextBatch(subscription))
                #expect(batch.rescan.count == roots)
                #expect(batch.rescan.values.allSatisfy { $0 == .overflow }, "\(batch.rescan)")
                // The coalesced chmods of the two files, at most.
                #expect(batch.changes.count <= 2)
            }
            // Delivered after the roots were watched again: known, at a new generation.
            let again = watcher.drain()
            #expect(again.allSatisfy { !$0.unknown })
            #expect(other.drain().allSatisfy { !$0.unknown })
        }
    }

    @Test func aRootThatCannotBeWatchedIsARescanOrAnError() throws {
        try withTemporaryDirectory { dir in
            try withWatcher([.tree(dir + "/missing"), .tree(dir)]) { watcher in
                #expect(watcher.states.map(\.unknown) == [true, false])
                let batch = try #require(nextBatch(watcher))
                #expect(batch.rescan == [0: .watchFailed])
            }
            #expect(throws: WatchError.cannotWatch(path: dir + "/missing", reason: "it does not exist")) {
                try FileWatcher.shared.subscribe([.tree(dir), .tree(dir + "/missing")], requireRoots: true)
            }
            // The failed subscription left nothing behind.
            #expect(!FileWatcher.shared.isRunning)
        }
    }

    /// libinotifytools keeps events it read and did not return in static variables that
    /// survive `inotifytools_cleanup`; a restarted watcher must not take them for its own
    /// (their watch descriptors name other directories now).
    @Test func aRestartedWatcherIgnoresThePreviousInstancesLeftovers() throws {
        try withTemporaryDirectory { dir in
            for index in 0..<50 { try mkdirs(dir + "/tree/d\(index)") }
            for _ in 0..<8 {
                // Cancelling removes 51 watches at once: their IN_IGNORED events, and the stop's
                // own, reach the reader in one read, and it stops after the first.
                let watcher = try FileWatcher.shared.subscribe([.tree(dir + "/tree")])
                #expect(!watcher.drain()[0].unknown)
                #expect(FileWatcher.shared.watchedDirectoryCount == 52)
                watcher.cancel()
                #expect(!FileWatcher.shared.isRunning)
            }
        }
    }

    @Test func oneInotifyInstanceForEverySubscription() throws {
        try withTemporaryDirectory { dir in
            #expect(FileWatcher.inotifyDescriptors().isEmpty)
            try withWatcher([.tree(dir)]) { first in
                try withWatcher([.directory(dir)]) { second in
                    #expect(FileWatcher.inotifyDescriptors().count == 1)
                    #expect(first.drain()[0].unknown == false)
                    #expect(second.drain()[0].unknown == false)
                }
                #expect(FileWatcher.shared.isRunning)
            }
            // The last subscription stopped the watcher; the next one starts it again.
            #expect(!FileWatcher.shared.isRunning)
            #expect(FileWatcher.inotifyDescriptors().isEmpty)
            try withWatcher([.tree(dir)]) { watcher in #expect(watcher.drain()[0].unknown == false) }
        }
    }
}

// MARK: - DigestWarmer and the build's use of its snapshot

private func loadProject(_ dir: String, contexts: [String] = ["app"]) async throws -> LoadedConfig {
    var yaml = "version: v2beta1\nname: warm\nimages:\n"
    for context in contexts {
        yaml +=
            "  \(context):\n    image: example.com/\(context)\n    dockerfile: ./\(context)/Dockerfile\n    context: ./\(context)\n"
    }
    try write(dir + "/devspace.yaml", yaml)
    return try await ConfigLoader.load(
        LoadOptions(workingDirectory: dir, environment: ["HOME": dir, "PATH": "/usr/bin:/bin"])
    )
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
            // A snapshot the agent answered just now does not depend on the index file: its
            // generations were checked at the request.
            var fresh = ContextCache(configDirectory: loaded.directory, warm: snapshot, warmIsFresh: true)
            #expect(try fresh.digest(plan: plan, displayPath: "") == walked.digest)
            #expect(fresh.warmHits == 1)
            #expect(fresh.origins.map(\.origin) == ["warm (the agent's digest)"])

            // Overflow: nothing is handed out until the context is digested again, and a build
            // says why it walks.
            #expect(warmer.waitUntilSettled(timeoutSeconds: 60))
            warmer.simulateOverflow()
            let overflowed = warmer.snapshot()
            #expect(overflowed.entries.isEmpty)
            // (The watcher has watched the roots again by now: the overflow shows as a change.)
            let reason = try #require(overflowed.stale?[plan.contextPath], "\(overflowed)")
            var after = ContextCache(configDirectory: loaded.directory, warm: overflowed, warmIsFresh: true)
            #expect(try after.digest(plan: plan, displayPath: "") == walked.digest)
            #expect(after.warmHits == 0)
            #expect(after.origins.map(\.origin) == ["walked: " + reason])
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
            var subscription: WatchSubscription?
            let setup = try milliseconds { subscription = try FileWatcher.shared.subscribe([.tree(context)]) }
            let watched = FileWatcher.shared.watchedDirectoryCount
            let rssWatching = residentKilobytes()
            subscription?.cancel()
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
            #expect(
                snapshot.entries.count == 1,
                "why not warm: \(snapshot.stale ?? [:]); notes: \(notes.all.suffix(5))"
            )
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
                """
            )
        }
    }
}

extension WatcherTests {
    @Test func aRootThatGoesAwayIsWatchedAgainWhenItComesBack() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx + "/sub")
            try withWatcher([.tree(ctx)]) { watcher in
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

// MARK: - Subscriptions: paths, filters, batching, runtime changes

/// The next batch within 10 s (nil: none came).
private func nextBatch(_ subscription: WatchSubscription, seconds: Int = 10) -> WatchBatch? {
    if case .batch(let batch) = subscription.next(until: .now + .seconds(seconds)) { return batch }
    return nil
}

/// Every change of the events queued so far: drained, then batches taken until none waits.
private func gather(_ subscription: WatchSubscription) -> [PathChange] {
    subscription.drain()
    var changes: [PathChange] = []
    while subscription.hasPending, let batch = nextBatch(subscription) { changes += batch.changes }
    return changes
}

private func paths(_ changes: [PathChange], root: Int = 0) -> Set<String> {
    Set(changes.filter { $0.root == root }.map(\.path))
}

private let fast = WatchBatching(quiet: .milliseconds(10), maximumDelay: .milliseconds(100))

extension WatcherTests {
    @Test func twoSubscribersOnOverlappingRootsEachGetTheirOwnPaths() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx + "/sub")
            try write(ctx + "/keep.txt", "1")
            let logs = try IgnoreMatcher(patterns: ["**/*.log"])
            let tree = try FileWatcher.shared.subscribe([.tree(ctx, filter: logs)], batching: fast)
            defer { tree.cancel() }
            let flat = try FileWatcher.shared.subscribe([.directory(ctx + "/sub")], batching: fast)
            defer { flat.cancel() }
            let mixed = try FileWatcher.shared.subscribe(
                [.file(ctx + "/keep.txt"), .tree(ctx + "/sub")],
                batching: fast
            )
            defer { mixed.cancel() }

            try write(ctx + "/new.log", "ignored by the first")
            try write(ctx + "/keep.txt", "2")
            try write(ctx + "/sub/s.txt", "s")
            try mkdirs(ctx + "/sub/deep")
            try write(ctx + "/sub/deep/d.txt", "d")

            let all = gather(tree)
            #expect(paths(all) == ["keep.txt", "sub/s.txt", "sub/deep", "sub/deep/d.txt"])
            #expect(all.first { $0.path == "sub/deep" }?.isDirectory == true)
            #expect(all.first { $0.path == "keep.txt" }?.kinds.contains(.closedAfterWrite) == true)
            // Only the entries of sub/, not below it.
            #expect(paths(gather(flat)) == ["s.txt", "deep"])
            let both = gather(mixed)
            #expect(paths(both, root: 0) == [""])  // the file root itself
            #expect(paths(both, root: 1) == ["s.txt", "deep", "deep/d.txt"])
            // Each keeps its own filter: the first still ignores logs, the others have none.
            try write(ctx + "/sub/x.log", "x")
            #expect(paths(gather(tree)).isEmpty)
            #expect(paths(gather(flat)) == ["x.log"])
        }
    }

    @Test func renamesArePairedAndANewDirectoryReportsWhatIsInIt() throws {
        try withTemporaryDirectory { dir in
            let ctx = dir + "/ctx"
            try mkdirs(ctx)
            try write(ctx + "/a.txt", "a")
            try withWatcher([.tree(ctx)]) { watcher in
                #expect(rename(ctx + "/a.txt", ctx + "/b.txt") == 0)
                let renamed = gather(watcher)
                #expect(renamed.first { $0.path == "b.txt" }?.renamedFrom == "a.txt")
                #expect(renamed.first { $0.path == "b.txt" }?.kinds == .movedTo)
                #expect(renamed.first { $0.path == "a.txt" }?.kinds == .movedFrom)
                // Moved in from outside the root: no pair, and everything in it is reported.
                try mkdirs(dir + "/outside/deep")
                try write(dir + "/outside/deep/f", "f")
                #expect(rename(dir + "/outside", ctx + "/in") == 0)
                let moved = gather(watcher)
                #expect(paths(moved) == ["in", "in/deep", "in/deep/f"])
                #expect(moved.first { $0.path == "in" }?.renamedFrom == nil)
                // An editor's safe save (vim): the batch has every name it touched, coalesced.
                try write(ctx + "/4913", "")
                unlink(ctx + "/4913")
                #expect(rename(ctx + "/b.txt", ctx + "/b.txt~") == 0)
                try write(ctx + "/b.txt", "new")
                unlink(ctx + "/b.txt~")
                let saved = gather(watcher)
                #expect(saved.filter { $0.path == "b.txt" }.count == 1)
                #expect(
                    saved.first { $0.path == "b.txt" }?.kinds.isSuperset(of: [.movedFrom, .created, .closedAfterWrite])
                        == true
                )
                #expect(paths(saved) == ["4913", "b.txt", "b.txt~"])
            }
        }
    }

    @Test func aDirectoryRootsRemovalIsReportedAndItIsWatchedAgainWhenItComesBack() throws {
        try withTemporaryDirectory { dir in
            let inbox = dir + "/inbox"
            try mkdirs(inbox)
            try withWatcher([.directory(inbox)]) { watcher in
                try write(inbox + "/commit.1", "x\n")
                try write(dir + "/elsewhere", "y\n")
                #expect(rename(dir + "/elsewhere", inbox + "/commit.2") == 0)
                let changes = gather(watcher)
                #expect(changes.first { $0.path == "commit.1" }?.kinds.contains(.closedAfterWrite) == true)
                #expect(changes.first { $0.path == "commit.2" }?.kinds == .movedTo)
                try FileManager.default.removeItem(atPath: inbox)
                watcher.drain()
                let batch = try #require(nextBatch(watcher))
                #expect(batch.changes.contains { $0.path.isEmpty && $0.kinds.contains(.deleted) })
                #expect(batch.rescan[0] == .rootRemoved)
                #expect(watcher.drain()[0].unknown)
                try mkdirs(inbox)
                #expect(!watcher.drain()[0].unknown)
                #expect(nextBatch(watcher)?.rescan[0] == .watchedAgain)
                try write(inbox + "/commit.3", "z\n")
                #expect(paths(gather(watcher)) == ["commit.3"])
            }
        }
    }

    /// Timing with generous margins (the suite runs beside builds on two cores); the figures
    /// themselves are measured by bench/watch-latency.
    @Test func aSingleWriteIsDeliveredAQuietPeriodAfterIt() throws {
        try withTemporaryDirectory { dir in
            let quiet = Duration.milliseconds(100)
            let watcher = try FileWatcher.shared.subscribe(
                [.tree(dir)],
                batching: WatchBatching(quiet: quiet, maximumDelay: .seconds(5))
            )
            defer { watcher.cancel() }
            let written = ContinuousClock.now
            try write(dir + "/f", "x")
            let batch = try #require(nextBatch(watcher))
            let waited = ContinuousClock.now - written
            #expect(paths(batch.changes) == ["f"])
            #expect(waited >= quiet)
            #expect(waited < quiet + .milliseconds(400), "delivered \(waited) after the write")
        }
    }

    @Test func aSteadyStreamIsDeliveredNoLaterThanTheMaximumDelay() throws {
        try withTemporaryDirectory { dir in
            let maximum = Duration.milliseconds(300)
            let watcher = try FileWatcher.shared.subscribe(
                [.tree(dir)],
                batching: WatchBatching(quiet: .milliseconds(100), maximumDelay: maximum)
            )
            defer { watcher.cancel() }
            // A write every 20 ms for 1 s, to five files in turn: the quiet period never passes.
            let done = DispatchSemaphore(value: 0)
            let writer = Thread {
                for index in 0..<50 {
                    let fd = open(dir + "/f\(index % 5)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                    if fd >= 0 {
                        _ = Foundation.write(fd, "\(index)", 2)
                        close(fd)
                    }
                    usleep(20_000)
                }
                done.signal()
            }
            let started = ContinuousClock.now
            writer.start()
            var batches: [(delivered: ContinuousClock.Instant, batch: WatchBatch)] = []
            while ContinuousClock.now < started + .seconds(10) {
                guard case .batch(let batch) = watcher.next(until: .now + .milliseconds(700)) else { break }
                batches.append((ContinuousClock.now, batch))
            }
            done.wait()
            let streamEnd = started + .seconds(1)
            // Several batches came while the stream went on, each at most `maximum` after its
            // first event (plus scheduling slack), each path once per batch.
            #expect(batches.filter { $0.delivered < streamEnd }.count >= 2, "\(batches.count) batches")
            for (delivered, batch) in batches {
                #expect(
                    delivered - batch.firstEvent < maximum + .milliseconds(250),
                    "late by \(delivered - batch.firstEvent)"
                )
                #expect(batch.changes.count == Set(batch.changes.map(\.path)).count)
                #expect(batch.changes.count <= 5)
            }
            #expect(Set(batches.flatMap { $0.batch.changes.map(\.path) }) == ["f0", "f1", "f2", "f3", "f4"])
        }
    }

    @Test func subscribingAndCancellingAtRuntimeIsSafe() throws {
        try withTemporaryDirectory { dir in
            try mkdirs(dir + "/a")
            try mkdirs(dir + "/b")
            let steady = try FileWatcher.shared.subscribe([.tree(dir + "/a")], batching: fast)
            defer { steady.cancel() }
            let failures = Lines()
            // Four threads subscribe, see their own write, and cancel, 25 times each, while
            // `steady` keeps hearing about a/; some of them watch a/ too (shared watches).
            DispatchQueue.concurrentPerform(iterations: 4) { thread in
                for round in 0..<25 {
                    do {
                        let roots: [WatchRoot] = [.tree(dir + "/b"), .directory(dir + "/a")]
                        let subscription = try FileWatcher.shared.subscribe(
                            round % 2 == 0 ? roots : [roots[0]],
                            batching: fast
                        )
                        let name = "t\(thread)-\(round)"
                        try write(dir + "/b/" + name, "x")
                        try write(dir + "/a/" + name, "x")
                        if !paths(gather(subscription)).contains(name) { failures.append("\(name) not reported") }
                        subscription.cancel()
                        if case .cancelled = subscription.next(until: .now + .seconds(1)) {
                        } else {
                            failures.append("\(name): a cancelled subscription delivered")
                        }
                    } catch {
                        failures.append("\(error)")
                    }
                }
            }
            #expect(failures.all.isEmpty)
            #expect(FileWatcher.inotifyDescriptors().count == 1)
            // The steady subscriber heard of every file in a/ and nothing else.
            let heard = paths(gather(steady))
            #expect(heard.count == 100)
            #expect(heard.allSatisfy { $0.hasPrefix("t") })
            try write(dir + "/a/last", "x")
            #expect(paths(gather(steady)) == ["last"])
            // Only a/ (and the private directory) is still watched.
            #expect(FileWatcher.shared.watchedDirectoryCount == 2)
        }
    }
}

// MARK: - Latency (printed, not asserted: bench/watch-latency runs it)

extension WatcherTests {
    /// Event → delivery latency of one write at a time, for the inbox's batching and with no
    /// quiet period at all. `SLIPWAY_WATCH_LATENCY_WRITES=N` for more samples.
    @Test func latencyMeasurements() throws {
        try withTemporaryDirectory { dir in
            let writes = Int(ProcessInfo.processInfo.environment["SLIPWAY_WATCH_LATENCY_WRITES"] ?? "") ?? 50
            for (label, batching) in [
                ("quiet 0 ms", WatchBatching(quiet: .zero, maximumDelay: .zero)),
                ("quiet 2 ms, max 20 ms (the inbox)", AgentDaemon.inboxBatching),
            ] {
                let watcher = try FileWatcher.shared.subscribe([.directory(dir)], batching: batching)
                defer { watcher.cancel() }
                var samples: [Double] = []
                for index in 0..<writes {
                    let start = DispatchTime.now().uptimeNanoseconds
                    let fd = open(dir + "/f\(index)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                    guard fd >= 0 else { continue }
                    _ = Foundation.write(fd, "x\n", 2)
                    close(fd)
                    var seen = false
                    while !seen, let batch = nextBatch(watcher) {
                        seen = batch.changes.contains { $0.path == "f\(index)" && $0.kinds.contains(.closedAfterWrite) }
                    }
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000)
                }
                samples.sort()
                guard !samples.isEmpty else { continue }
                let p50 = samples[samples.count / 2]
                let p95 = samples[min(samples.count - 1, samples.count * 95 / 100)]
                print(
                    "watch-latency: \(label): write+close → batch p50 \(String(format: "%.3f", p50)) ms, p95 \(String(format: "%.3f", p95)) ms, max \(String(format: "%.3f", samples.last ?? 0)) ms (\(samples.count) writes)"
                )
            }
        }
    }
}
