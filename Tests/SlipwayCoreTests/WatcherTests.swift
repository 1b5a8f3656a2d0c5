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
