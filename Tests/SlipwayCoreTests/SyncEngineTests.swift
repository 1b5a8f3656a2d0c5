import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// The sync engine against a real remote tree (`LocalDirectoryRemote`: a directory of this
// machine, watched with the shared inotify watcher), with real files and real git. Nested in
// `WatcherTests`, whose `.serialized` trait keeps these away from the other users of the
// process-wide watcher (a forced overflow reaches every subscriber).
extension WatcherTests {
    @Suite struct SyncEngineTests {
        @Test func theInitialSyncMirrorsTheLocalTreeAndThenBothSidesFollow() async throws {
            try await withTemporaryDirectory { dir in
                let (local, remote) = try syncTrees(dir)
                try putFile(local + "/a.txt", "alpha")
                try putFile(local + "/src/main.swift", "print(1)\n", mode: 0o755)
                symlink("src/main.swift", local + "/link")
                try putFile(remote + "/stale.txt", "only in the container")
                let sync = RunningSync(
                    testConfiguration(local, dir: dir),
                    remote: try LocalDirectoryRemote(root: remote)
                )
                await sync.started()
                #expect(treeSnapshot(remote) == treeSnapshot(local))
                let initial = try #require(sync.log.batches().first)
                #expect(initial.kind == .initial)
                #expect(initial.files == 2)

                // Upload: create, modify, mode, nested directory, delete.
                try putFile(local + "/b.txt", "beta")
                try putFile(local + "/a.txt", "alpha 2")
                chmod(local + "/b.txt", 0o600)
                try putFile(local + "/deep/er/c.txt", "gamma")
                unlink(local + "/src/main.swift")
                await waitUntil("the container to follow") { treeSnapshot(remote) == treeSnapshot(local) }

                // Download: a file the container makes comes back.
                try putFile(remote + "/made-there.txt", "from the container", mode: 0o640)
                await waitUntil("the download") { readText(local + "/made-there.txt") == "from the container" }
                #expect(treeSnapshot(remote) == treeSnapshot(local))
                #expect(await sync.stop() == nil)
            }
        }
    }
}

extension WatcherTests.SyncEngineTests {
    // MARK: Initial sync

    /// Local: only-local, both (local version), same. Remote: only-remote, both (remote version), same.
    private func strategyTrees(_ dir: String) throws -> (local: String, remote: String) {
        let (local, remote) = try syncTrees(dir)
        try putFile(local + "/only-local", "L")
        try putFile(remote + "/only-remote", "R")
        try putFile(local + "/both", "local version")
        try putFile(remote + "/both", "remote version!")
        setMtime(local + "/both", seconds: 2_000_000_000)
        setMtime(remote + "/both", seconds: 1_900_000_000)
        try putFile(local + "/same", "same")
        try putFile(remote + "/same", "same")
        return (local, remote)
    }

    @Test(
        arguments: [
            // strategy, local afterwards, remote afterwards (nil: absent)
            (
                InitialSyncStrategy.mirrorLocal, ["only-local": "L", "both": "local version"],
                ["only-remote": nil, "both": "local version", "only-local": "L"]
            ),
            (
                .mirrorRemote, ["only-local": nil, "both": "remote version!", "only-remote": "R"],
                ["only-remote": "R", "both": "remote version!"]
            ),
            (
                .preferLocal, ["only-remote": "R", "both": "local version"],
                ["only-local": "L", "both": "local version"]
            ),
            (
                .preferRemote, ["only-remote": "R", "both": "remote version!"],
                ["only-local": "L", "both": "remote version!"]
            ),
            (
                .preferNewest, ["only-remote": "R", "both": "local version"],
                ["only-local": "L", "both": "local version"]
            ),
            (.keepAll, ["only-remote": "R", "both": "local version"], ["only-local": "L", "both": "remote version!"]),
            (
                .disabled, ["only-remote": nil, "both": "local version"],
                ["only-local": nil, "both": "remote version!"]
            ),
        ] as [(InitialSyncStrategy, [String: String?], [String: String?])]
    )
    func eachStrategyDoesWhatDevSpaceDoes(
        strategy: InitialSyncStrategy,
        localAfter: [String: String?],
        remoteAfter: [String: String?]
    ) async throws {
        try await withTemporaryDirectory { dir in
            let (local, remote) = try strategyTrees(dir)
            let log = try await syncOnce(
                testConfiguration(local, dir: dir, strategy: strategy),
                remote: LocalDirectoryRemote(root: remote)
            )
            for (name, expected) in localAfter { #expect(readText(local + "/" + name) == expected, "local \(name)") }
            for (name, expected) in remoteAfter { #expect(readText(remote + "/" + name) == expected, "remote \(name)") }
            #expect(readText(local + "/same") == "same" && readText(remote + "/same") == "same")
            // Nothing the container had was lost without a strategy saying so.
            if strategy == .keepAll {
                #expect(log.decisions.contains { $0.path == "both" && $0.action == .kept(reason: "differs (keepAll)") })
            }
        }
    }

    @Test func compareBySizeTakesEqualSizesAsEqual() async throws {
        try await withTemporaryDirectory { dir in
            let (local, remote) = try syncTrees(dir)
            try putFile(local + "/f", "aaaa")
            try putFile(remote + "/f", "bbbb")
            setMtime(remote + "/f", seconds: 1_000_000_000)
            var configuration = testConfiguration(local, dir: dir, strategy: .preferLocal)
            configuration.compareBy = .size
            let log = try await syncOnce(configuration, remote: LocalDirectoryRemote(root: remote))
            #expect(readText(remote + "/f") == "bbbb")
            #expect(log.batches().first?.files == 0)
            // By mtime (the default) they differ: the local version goes.
            configuration.compareBy = .mtime
            configuration.statePath = dir + "/state/other.json"
            _ = try await syncOnce(configuration, remote: LocalDirectoryRemote(root: remote))
            #expect(readText(remote + "/f") == "aaaa")
        }
    }

    @Test func aRestartWithNothingChangedSendsNoContent() async throws {
        try await withTemporaryDirectory { dir in
            let (local, remote) = try syncTrees(dir)
            for index in 0..<300 {
                try putFile(local + "/d\(index % 7)/f\(index).txt", String(repeating: "x", count: index))
            }
            let configuration = testConfiguration(local, dir: dir)
            let first = try await syncOnce(configuration, remote: LocalDirectoryRemote(root: remote))
            #expect(first.batches().first?.files == 300)  // f0.txt is empty: a file all the same
            #expect(FileManager.default.fileExists(atPath: dir + "/state/sync.json"))

            let started = ContinuousClock.now
            let second = try await syncOnce(configuration, remote: LocalDirectoryRemote(root: remote))
            let elapsed = ContinuousClock.now - started
            let report = try #require(second.batches().first)
            #expect(report.files == 0 && report.bytes == 0 && report.changes == 0, "\(report)")
            #expect(elapsed < .seconds(2))

            // New mtimes, same contents (a checkout there and back): compared by hash, not sent.
            for index in 0..<300 { setMtime(local + "/d\(index % 7)/f\(index).txt", seconds: 1_800_000_000) }
            let third = try await syncOnce(configuration, remote: LocalDirectoryRemote(root: remote))
            let touched = try #require(third.batches().first)
            #expect(touched.bytes == 0 && touched.files == 0, "\(touched)")
            // And the hashes are remembered: the next restart reads nothing again.
            let fourth = try await syncOnce(configuration, remote: LocalDirectoryRemote(root: remote))
            #expect(fourth.batches().first?.bytes == 0)
            #expect(treeSnapshot(local) == treeSnapshot(remote).filter { $0.key != "" })
        }
    }

    // MARK: Upload

    @Test func safeSavesAreOneChangeOfTheRealFile() async throws {
        try await withTemporaryDirectory { dir in
            let (local, remote) = try syncTrees(dir)
            try putFile(local + "/notes.txt", "one")
            try putFile(local + "/App.kt", "class A")
            try putFile(local + "/plain.md", "plain")
            let sync = RunningSync(testConfiguration(local, dir: dir), remote: try LocalDirectoryRemote(root: remote))
            await sync.started()

            // vim: probe 4913, backup by rename, write the file anew, drop the backup; its swap file.
            var mark = sync.log.count
            try putFile(local + "/.notes.txt.swp", "swap")
            try putFile(local + "/4913", "")
            unlink(local + "/4913")
            rename(local + "/notes.txt", local + "/notes.txt~")
            try putFile(local + "/notes.txt", "two")
            unlink(local + "/notes.txt~")
            await waitUntil("vim's save") { readText(remote + "/notes.txt") == "two" }
            try await Task.sleep(for: .milliseconds(50))
            #expect(sync.log.changes(since: mark).map(\.path) == ["notes.txt"], "\(sync.log.changes(since: mark))")
            #expect(sync.log.changes(since: mark).first?.action == .uploaded)

            // JetBrains: write a temp, move the file to ___jb_old___, the temp into place, drop the old.
            mark = sync.log.count
            try putFile(local + "/App.kt___jb_tmp___", "class B")
            rename(local + "/App.kt", local + "/App.kt___jb_old___")
            rename(local + "/App.kt___jb_tmp___", local + "/App.kt")
            unlink(local + "/App.kt___jb_old___")
            await waitUntil("JetBrains' save") { readText(remote + "/App.kt") == "class B" }
            try await Task.sleep(for: .milliseconds(50))
            #expect(sync.log.changes(since: mark).map(\.action) == [.uploaded], "\(sync.log.changes(since: mark))")

            // Any editor: a temporary name renamed over the file.
            mark = sync.log.count
            try putFile(local + "/.plain.md.new", "plain 2")
            rename(local + "/.plain.md.new", local + "/plain.md")
            await waitUntil("a temp-and-rename save") { readText(remote + "/plain.md") == "plain 2" }
            try await Task.sleep(for: .milliseconds(50))
            #expect(sync.log.changes(since: mark).map(\.path) == ["plain.md"], "\(sync.log.changes(since: mark))")

            #expect(treeSnapshot(remote) == treeSnapshot(local).filter { !$0.key.hasSuffix(".swp") })
            #expect(await sync.stop() == nil)
        }
    }

    @Test func renamesAreSentAsRenames() async throws {
        try await withTemporaryDirectory { dir in
            let (local, remote) = try syncTrees(dir)
            try putFile(local + "/old.txt", String(repeating: "content ", count: 1000))
            try putFile(local + "/dir/inner/x.txt", "x")
            let sync = RunningSync(testConfiguration(local, dir: dir), remote: try LocalDirectoryRemote(root: remote))
            await sync.started()
            var before = stat()
            lstat(remote + "/old.txt", &before)

            var mark = sync.log.count
            rename(local + "/old.txt", local + "/new.txt")
            await waitUntil("the rename") { FileManager.default.fileExists(atPath: remote + "/new.txt") }
            var after = stat()
            lstat(remote + "/new.txt", &after)
            #expect(after.st_ino == before.st_ino, "renamed in the container, not sent again")
            #expect(!FileManager.default.fileExists(atPath: remote + "/old.txt"))
            #expect(sync.log.changes(since: mark).map(\.action) == [.renamed(from: "old.txt")])

            mark = sync.log.count
            rename(local + "/dir", local + "/moved")
            await waitUntil("the directory's rename") { readText(remote + "/moved/inner/x.txt") == "x" }
            try await Task.sleep(for: .milliseconds(50))
            #expect(
                sync.log.changes(since: mark).map(\.action) == [.renamed(from: "dir")],
                "\(sync.log.changes(since: mark))"
            )
            #expect(sync.log.batches(since: mark).allSatisfy { $0.files == 0 })
            #expect(treeSnapshot(remote) == treeSnapshot(local))
            #expect(await sync.stop() == nil)
        }
    }
}

extension WatcherTests.SyncEngineTests {
    // MARK: git

    @Test func aFiveThousandFileCheckoutIsOneBatch() async throws {
        try await withTemporaryDirectory { dir in
            let (local, remote) = try syncTrees(dir)
            func git(_ args: String...) throws {
                let result = try sh(["git"] + args, cwd: local)
                try #require(result.status == 0, "git \(args.joined(separator: " ")): \(result.stderr)")
            }
            try git("init", "-q", "-b", "one")
            // Two branches of 5,000 files each, made by fast-import (no work tree written).
            var stream = ""
            for branch in ["one", "two"] {
                stream +=
                    "commit refs/heads/\(branch)\ncommitter t <t@example.com> 1700000000 +0000\ndata 3\n\(branch)\n"
                for index in 0..<5000 {
                    let content = "\(branch) \(index)\n"
                    stream += "M 644 inline src/m\(index % 50)/f\(index).txt\ndata \(content.utf8.count)\n\(content)\n"
                }
            }
            try putFile(dir + "/import", stream)
            let imported = try sh(["sh", "-c", "git fast-import --quiet < \"$1\"", "sh", dir + "/import"], cwd: local)
            try #require(imported.status == 0, "\(imported.stderr)")
            try git("checkout", "-q", "-f", "one")

            let sync = RunningSync(testConfiguration(local, dir: dir), remote: try LocalDirectoryRemote(root: remote))
            await sync.started()
            #expect(readText(remote + "/src/m7/f7.txt") == "one 7\n")
            #expect(!FileManager.default.fileExists(atPath: remote + "/.git"))

            let mark = sync.log.count
            let gitStarted = ContinuousClock.now
            try git("checkout", "-q", "two")
            let gitDone = ContinuousClock.now
            await waitUntil("the checkout to arrive", timeout: .seconds(30)) {
                sync.log.batches(since: mark).contains { $0.kind != .download }
            }
            let converged = ContinuousClock.now - gitDone
            try await Task.sleep(for: .milliseconds(300))
            let batches = sync.log.batches(since: mark).filter { $0.kind != .download }
            #expect(batches.count == 1, "\(batches)")
            let batch = try #require(batches.first)
            #expect(batch.files == 5000)
            let overflowed = batch.kind == .rescan
            if !overflowed {
                #expect(batch.waitedForGit != nil)
                let waited = sync.log.since(mark).contains(.waitingForGit)
                #expect(waited)
            }
            // The engine's own share: git's release seen, the quiet period, the hand-over. The
            // rest is the remote creating 5,000 files (about 0.6 ms per new inode on this disk).
            let engineDelay = converged - batch.applying
            #expect(engineDelay < .seconds(1), "\(engineDelay)")
            print(
                "5,000-file checkout: git took \(gitDone - gitStarted); converged \(converged) after git finished"
                    + " (waiting \(engineDelay), applying \(batch.applying)), 1 batch\(overflowed ? " (after an overflow)" : "")"
            )
            #expect(treeSnapshot(remote) == treeSnapshot(local) { $0 == ".git" })
            #expect(await sync.stop() == nil)
        }
    }

    @Test func aLinkedWorktreesLockIsFound() throws {
        try withTemporaryDirectory { dir in
            try makeDirs(dir + "/main")
            #expect(try sh(["git", "init", "-q", "-b", "main"], cwd: dir + "/main").status == 0)
            #expect(
                try sh(
                    ["git", "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"],
                    cwd: dir + "/main"
                ).status == 0
            )
            #expect(
                try sh(["git", "worktree", "add", "-q", dir + "/linked", "-b", "side"], cwd: dir + "/main").status == 0
            )
            let expected = try sh(
                ["git", "rev-parse", "--path-format=absolute", "--git-path", "index.lock"],
                cwd: dir + "/linked"
            )
            let found = try #require(LocalPump.gitDirectory(of: dir + "/linked"))
            #expect(found + "/index.lock" == expected.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(LocalPump.gitDirectory(of: dir) == nil)
        }
    }

    // MARK: Conflicts

    @Test func aFileChangedOnBothSidesWhileStoppedKeepsBothVersions() async throws {
        try await withTemporaryDirectory { dir in
            let (local, remote) = try syncTrees(dir)
            try putFile(local + "/shared.txt", "base")
            try putFile(local + "/gone-here.txt", "base")
            let configuration = testConfiguration(local, dir: dir, strategy: .preferLocal)
            _ = try await syncOnce(configuration, remote: LocalDirectoryRemote(root: remote))
            try putFile(local + "/shared.txt", "local edit")
            try putFile(remote + "/shared.txt", "container edit")
            unlink(local + "/gone-here.txt")
            try putFile(remote + "/gone-here.txt", "container kept writing")

            let sync = RunningSync(configuration, remote: try LocalDirectoryRemote(root: remote))
            await sync.started()
            #expect(readText(local + "/shared.txt") == "local edit")
            #expect(readText(remote + "/shared.txt") == "local edit")
            let conflicts = sync.engine.status.conflicts
            #expect(Set(conflicts.map(\.path)) == ["shared.txt", "gone-here.txt"])
            let copy = try #require(conflicts.first { $0.path == "shared.txt" }?.copy)
            #expect(copy.hasPrefix("shared.txt.slipway-conflict-"))
            #expect(readText(local + "/" + copy) == "container edit")
            // The deletion kept the name on both sides; the container's version is kept here.
            #expect(!FileManager.default.fileExists(atPath: remote + "/gone-here.txt"))
            let goneCopy = try #require(conflicts.first { $0.path == "gone-here.txt" }?.copy)
            #expect(readText(local + "/" + goneCopy) == "container kept writing")
            // Copies are never uploaded.
            #expect(!FileManager.default.fileExists(atPath: remote + "/" + copy))

            // Listed until the copy is removed.
            unlink(local + "/" + copy)
            await waitUntil("the conflict to clear") { sync.engine.status.conflicts.map(\.path) == ["gone-here.txt"] }
            #expect(await sync.stop() == nil)
            // And remembered across restarts.
            let again = RunningSync(configuration, remote: try LocalDirectoryRemote(root: remote))
            await again.started()
            #expect(again.engine.status.conflicts.map(\.path) == ["gone-here.txt"])
            #expect(await again.stop() == nil)
        }
    }

    @Test func aContainerChangeRacingALocalSaveIsAConflictNotALoss() async throws {
        try await withTemporaryDirectory { dir in
            let (local, remote) = try syncTrees(dir)
            try putFile(local + "/race.txt", "base")
            // The local save waits 600 ms in the batcher; the container's change is seen first.
            let slow = SyncTiming(quietMilliseconds: 600, burstMilliseconds: 600, maximumDelayMilliseconds: 600)
            let sync = RunningSync(
                testConfiguration(local, dir: dir, timing: slow),
                remote: try LocalDirectoryRemote(root: remote)
            )
            await sync.started()
            try putFile(local + "/race.txt", "local save")
            try putFile(remote + "/race.txt", "container write")
            await waitUntil("the conflict") { !sync.engine.status.conflicts.isEmpty }
            let copy = try #require(sync.engine.status.conflicts.first?.copy)
            #expect(readText(local + "/" + copy) == "container write")
            await waitUntil("the local version on both sides") { readText(remote + "/race.txt") == "local save" }
            #expect(readText(local + "/race.txt") == "local save")
            #expect(sync.log.decisions.contains { $0.path == "race.txt" && $0.action == .conflict(copy: copy) })
            #expect(await sync.stop() == nil)
        }
    }

    @Test func anUploadOverAChangedContainerFileIsCaughtByItsExpectation() async throws {
        try await withTemporaryDirectory { dir in
            let (local, remote) = try syncTrees(dir)
            try putFile(local + "/x.txt", "base")
            // The container's changes reach the engine only after 3 s: the upload goes first.
            let remoteTree = try LocalDirectoryRemote(
                root: remote,
                changeBatching: WatchBatching(quiet: .seconds(3), maximumDelay: .seconds(3))
            )
            let sync = RunningSync(testConfiguration(local, dir: dir), remote: remoteTree)
            await sync.started()
            try putFile(remote + "/x.txt", "container write")
            try putFile(local + "/x.txt", "local save")
            await waitUntil("the conflict") { !sync.engine.status.conflicts.isEmpty }
            let copy = try #require(sync.engine.status.conflicts.first?.copy)
            #expect(readText(local + "/" + copy) == "container write")
            #expect(readText(remote + "/x.txt") == "local save")
            #expect(await sync.stop() == nil)
        }
    }
}
