import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// The sync engine's pure parts: exclude rules, the initial sync's decisions, timing values,
/// the state file.
@Suite struct SyncRulesTests {
    // MARK: gitignore rules

    private func rules(_ patterns: String...) throws -> SyncIgnoreRules {
        try SyncIgnoreRules(patterns.enumerated().map { (text: $0.element, origin: "excludePaths[\($0.offset)]") })
    }

    @Test(
        arguments: [
            // pattern, path, is a directory, excluded
            ("node_modules", "node_modules", true, true),
            ("node_modules", "web/node_modules/x/index.js", false, true),
            ("node_modules/", "node_modules", false, false),  // a file of that name: dirs only
            ("node_modules/", "a/node_modules/b", false, true),
            ("/build", "build/out", false, true),
            ("/build", "src/build", true, false),  // anchored
            ("src/gen", "src/gen/a.go", false, true),
            ("src/gen", "lib/src/gen", true, false),  // a slash in the middle anchors (git, not go-gitignore)
            ("*.log", "deep/er/x.log", false, true),
            ("*.log", "x.log.txt", false, false),
            ("doc/*.md", "doc/a.md", false, true),
            ("doc/*.md", "doc/sub/a.md", false, false),
            ("**/tmp", "a/b/tmp", true, true),
            ("a/**/z", "a/z", false, true),
            ("a/**/z", "a/b/c/z", false, true),
            ("logs/**", "logs/x/y", false, true),
            ("file[0-9].txt", "file7.txt", false, true),
            ("file[!0-9].txt", "file7.txt", false, false),
            ("file[!0-9].txt", "fileA.txt", false, true),
            ("\\#notes", "#notes", false, true),
            ("?.c", "a.c", false, true),
            ("?.c", "ab.c", false, false),
        ] as [(String, String, Bool, Bool)]
    )
    func gitignoreSyntax(pattern: String, path: String, isDirectory: Bool, excluded: Bool) throws {
        let rules = try rules(pattern)
        #expect((rules.exclusion(of: path, isDirectory: isDirectory) != nil) == excluded)
    }

    @Test func negationReIncludesButNeverBelowAnExcludedDirectory() throws {
        let rules = try rules("*.log", "!keep.log", "build/", "!build/keep")
        #expect(rules.exclusion(of: "a.log", isDirectory: false) != nil)
        #expect(rules.exclusion(of: "x/keep.log", isDirectory: false) == nil)
        // git: a file below an excluded directory cannot be re-included.
        #expect(rules.exclusion(of: "build/keep", isDirectory: false)?.pattern == "build/")
        let rule = try #require(try self.rules("# comment", "", "  *.tmp  ").exclusion(of: "a.tmp", isDirectory: false))
        #expect(rule.origin == "excludePaths[2]")
        #expect(rule.description == "excludePaths[2]:   *.tmp  ")
    }

    @Test func badPatternsAndMissingFilesNameWhereTheyCameFrom() throws {
        #expect(
            throws: SyncConfigurationError.badPattern(
                origin: "excludePaths[0]",
                pattern: "a[",
                reason: "'[' without a matching ']'"
            )
        ) {
            try rules("a[")
        }
        #expect(throws: SyncConfigurationError.self) { try rules("/") }
        let error = try #require(
            throws: SyncConfigurationError.self,
            performing: {
                try SyncFilter.load(SyncExcludes(excludeFile: "missing.ignore"), baseDirectory: "/nonexistent")
            }
        )
        #expect(error.description == "excludeFile: cannot read /nonexistent/missing.ignore: no such file")
        try withTemporaryDirectory { dir in
            try Data("ok\n# comment\nbad[\n".utf8).write(to: URL(fileURLWithPath: dir + "/x.ignore"))
            let bad = try #require(
                throws: SyncConfigurationError.self,
                performing: { try SyncFilter.load(SyncExcludes(uploadExcludeFile: "x.ignore"), baseDirectory: dir) }
            )
            #expect(bad.description.hasPrefix("\(dir)/x.ignore:3: bad exclude pattern 'bad['"))
        }
    }

    @Test func theFilterAlwaysLeavesOutGitDevspaceTemporaryFilesAndConflictCopies() throws {
        let filter = SyncFilter()
        #expect(filter.bothExclusion(".git", isDirectory: true) != nil)
        #expect(filter.bothExclusion("sub/.git/config", isDirectory: false) != nil)
        #expect(filter.bothExclusion(".devspace/cache.yaml", isDirectory: false) != nil)
        #expect(filter.bothExclusion("a.txt.tmp-123.456-789", isDirectory: false) != nil)
        #expect(filter.bothExclusion("a.txt", isDirectory: false) == nil)
        for editor in ["4913", ".a.swp", "b.swx", "c~", "d___jb_tmp___", "e___jb_old___", ".#f", "#g#"] {
            #expect(filter.uploadExclusion("x/" + editor, isDirectory: false) != nil, "\(editor)")
        }
        #expect(filter.uploadExclusion("a.slipway-conflict-20250101T000000Z", isDirectory: false) != nil)
        #expect(filter.isConflictCopy("d/a.slipway-conflict-20250101T000000Z"))
        // The watch reports conflict copies (their removal clears a conflict), not the rest.
        let watch = filter.uploadWatchFilter
        #expect(!watch.isExcluded("a.slipway-conflict-20250101T000000Z", isDirectory: false))
        #expect(watch.isExcluded(".a.swp", isDirectory: false))
        #expect(watch.isExcluded(".git", isDirectory: true))
    }

    // MARK: The initial sync's decisions

    private let file = LocalEntry(kind: .file, size: 4, mtime: 100, ctime: 100, inode: 1, mode: 0o644, target: nil)
    private func remoteFile(size: UInt64 = 4, mtime: Int64 = 100, mode: UInt32 = 0o644) -> SyncEntry {
        SyncEntry(path: "f", kind: .file, size: size, mtimeNanoseconds: mtime, mode: mode)
    }
    private var record: SyncRecord {
        SyncRecord(kind: .file, size: 4, localMtime: 100, localInode: 1, localCtime: 100, remoteMtime: 100, mode: 0o644)
    }

    @Test func withoutARecordTheStrategiesDecideAsDevSpace() {
        let changedRemote = remoteFile(size: 5, mtime: 50)
        for (strategy, expected) in [
            (InitialSyncStrategy.mirrorLocal, InitialSyncPlanner.Action.upload), (.preferLocal, .upload),
            (.mirrorRemote, .download), (.preferRemote, .download), (.preferNewest, .upload),
            (.keepAll, .keep(reason: "differs (keepAll)")),
        ] {
            let planner = InitialSyncPlanner(strategy: strategy, compareBy: .mtime)
            #expect(
                planner.decide(local: file, remote: changedRemote, record: nil, same: false) == expected,
                "\(strategy)"
            )
        }
        let mirror = InitialSyncPlanner(strategy: .mirrorLocal, compareBy: .mtime)
        #expect(mirror.decide(local: nil, remote: changedRemote, record: nil, same: false) == .removeRemote)
        #expect(mirror.decide(local: file, remote: nil, record: nil, same: false) == .upload)
        let prefer = InitialSyncPlanner(strategy: .preferLocal, compareBy: .mtime)
        #expect(prefer.decide(local: nil, remote: changedRemote, record: nil, same: false) == .download)
        let remoteMirror = InitialSyncPlanner(strategy: .mirrorRemote, compareBy: .mtime)
        #expect(remoteMirror.decide(local: file, remote: nil, record: nil, same: false) == .removeLocal)
    }

    @Test func withARecordTheSideThatChangedWinsAndBothChangedIsAConflict() {
        let planner = InitialSyncPlanner(strategy: .preferLocal, compareBy: .mtime)
        let changedLocal = LocalEntry(kind: .file, size: 9, mtime: 200, ctime: 200, inode: 1, mode: 0o644, target: nil)
        let changedRemote = remoteFile(size: 7, mtime: 300)
        // Only the container changed: fetched, even under preferLocal.
        #expect(planner.decide(local: file, remote: changedRemote, record: record, same: false) == .download)
        // Only the local side changed: sent.
        #expect(planner.decide(local: changedLocal, remote: remoteFile(), record: record, same: false) == .upload)
        // Deleted locally since: deleted there (it was synced).
        #expect(planner.decide(local: nil, remote: remoteFile(), record: record, same: false) == .removeRemote)
        // Gone from the container (a re-created one): never a reason to delete here.
        #expect(planner.decide(local: file, remote: nil, record: record, same: false) == .upload)
        // Both changed: a conflict the local side wins; preferRemote lets the container win.
        #expect(
            planner.decide(local: changedLocal, remote: changedRemote, record: record, same: false)
                == .conflict(winner: .local)
        )
        let remoteWins = InitialSyncPlanner(strategy: .preferRemote, compareBy: .mtime)
        #expect(
            remoteWins.decide(local: changedLocal, remote: changedRemote, record: record, same: false)
                == .conflict(winner: .remote)
        )
        // After a pause, what is missing here comes back rather than being deleted there.
        var restoring = planner
        restoring.restoring = true
        #expect(restoring.decide(local: nil, remote: remoteFile(), record: record, same: false) == .download)
        // The same content with another mode: the side whose mode changed wins.
        let executable = LocalEntry(kind: .file, size: 4, mtime: 100, ctime: 150, inode: 1, mode: 0o755, target: nil)
        #expect(planner.decide(local: executable, remote: remoteFile(), record: record, same: true) == .chmodRemote)
        #expect(planner.decide(local: file, remote: remoteFile(mode: 0o600), record: record, same: true) == .chmodLocal)
        // A file facing a directory is left alone.
        let directory = SyncEntry(path: "f", kind: .directory)
        if case .refuse = planner.decide(local: file, remote: directory, record: nil, same: false) {
        } else {
            Issue.record("a file facing a directory must be refused")
        }
    }

    @Test func sizeAndMtimeDecideSamenessUnlessHashesMustTell() {
        let byMtime = InitialSyncPlanner(strategy: .mirrorLocal, compareBy: .mtime)
        #expect(byMtime.sameWithoutHashes(file, remoteFile()) == true)
        #expect(byMtime.sameWithoutHashes(file, remoteFile(size: 5)) == false)
        #expect(byMtime.sameWithoutHashes(file, remoteFile(mtime: 7)) == nil)
        let bySize = InitialSyncPlanner(strategy: .mirrorLocal, compareBy: .size)
        #expect(bySize.sameWithoutHashes(file, remoteFile(mtime: 7)) == true)
    }

    // MARK: Timing

    /// The engine's batching for the default timing (the values' resolution from flags and
    /// `SLIPWAY_SYNC_*` is `SyncPlanTests`'): a single save's quiet, then the burst's.
    @Test func theDefaultTimingBatchesAsTheIssueSays() {
        let defaults = SyncTiming()
        #expect(
            defaults.quietMilliseconds == 5 && defaults.burstMilliseconds == 150
                && defaults.maximumDelayMilliseconds == 1000 && defaults == .defaults
        )
        let batching = defaults.batching
        #expect(batching.quiet(afterEvents: 3) == .milliseconds(5))
        #expect(batching.quiet(afterEvents: 51) == .milliseconds(150))
    }

    // MARK: State

    @Test func theStateFileRoundTripsAndABrokenOneStartsAfresh() throws {
        try withTemporaryDirectory { dir in
            var state = SyncState()
            state.records["a/b.txt"] = SyncRecord(
                kind: .file,
                size: 3,
                localMtime: 1,
                localInode: 2,
                localCtime: 3,
                remoteMtime: 4,
                mode: 0o640,
                sha256: String(repeating: "a", count: 64)
            )
            state.records["link"] = SyncRecord(
                kind: .symlink,
                size: 1,
                localMtime: 0,
                localInode: 0,
                localCtime: 0,
                remoteMtime: 0,
                mode: 0o777,
                target: "a"
            )
            state.conflicts = [
                SyncConflict(path: "x", copy: "x.slipway-conflict-1", detectedAt: "2025-01-01T00:00:00Z")
            ]
            let path = SyncState.path(
                configDirectory: dir,
                identifier: SyncState.identifier(localRoot: "/src", remote: "c:/app")
            )
            #expect(path.hasPrefix(dir + "/.devspace/slipway/sync-") && path.hasSuffix(".json"))
            #expect(state.save(to: path) == nil)
            let loaded = SyncState.load(from: path)
            #expect(loaded.problem == nil)
            #expect(loaded.state == state)
            // No temporary file left beside it.
            let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/.devspace/slipway")
            #expect(names.count == 1)

            try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
            let broken = SyncState.load(from: path)
            #expect(broken.state == SyncState())
            #expect(broken.problem?.contains("starting afresh") == true)
        }
    }

    @Test func aLargeStateIsWrittenInLinesAndAnOlderFormStartsAfresh() throws {
        try withTemporaryDirectory { dir in
            var state = SyncState()
            for i in 0..<1_234 {
                state.records["d\(i / 100)/f\(i).txt"] = SyncRecord(
                    kind: .file,
                    size: UInt64(i),
                    localMtime: Int64(i),
                    localInode: UInt64(i + 1),
                    localCtime: Int64(i + 2),
                    remoteMtime: Int64(i + 3),
                    mode: 0o644,
                    sha256: i % 2 == 0 ? String(repeating: "b", count: 64) : nil
                )
            }
            let path = dir + "/state.json"
            #expect(state.save(to: path) == nil)
            // A header line, then the entries 500 a line: never one document to decode whole.
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 1 + 3)
            #expect(lines.first?.contains("\"entries\":1234") == true)
            let loaded = SyncState.load(from: path)
            #expect(loaded.problem == nil)
            #expect(loaded.state == state)

            // Version 1 was one JSON document with the entries inside: read as an older form.
            try Data(#"{"version":1,"conflicts":[],"entries":[["a",1,1,1,1,1,1,1,420,null,null]]}"#.utf8)
                .write(to: URL(fileURLWithPath: path))
            let old = SyncState.load(from: path)
            #expect(old.state == SyncState())
            #expect(old.problem == "\(path) has version 1, not 2; starting afresh")
        }
    }
}
