internal import Foundation

extension SyncSession {
    /// Compares the local tree (a walk) with the remote's manifest and applies the strategy
    /// (``InitialSyncPlanner``). Runs at start, after a reconnect and when a paused sync resumes.
    /// Returns nil when the sync paused instead (the local root is empty or gone).
    @discardableResult
    func initialSync() async throws(SyncRemoteError) -> SyncBatchReport? {
        let started = ContinuousClock.now
        publish { $0.phase = .initialSync }
        tree.beginBatch()
        let root = tree.rootState(filter: filter)
        guard root.exists else {
            pause(.rootMissing(tree.root))
            return nil
        }
        // The remote's manifest is asked for first, so that the container's walk (the helper's)
        // runs while the local tree is walked here, rather than after it. The child task runs
        // on this sync's own thread (its executor preference is inherited; a detached task would
        // need a thread of Swift's cooperative pool, which may all be busy), so this task yields
        // once: the child sends its request and suspends for the answer, which the channel's
        // reader thread collects while the walk below runs.
        let remote = self.remote
        async let fetched: Result<[SyncEntry], SyncRemoteError> = {
            do throws(SyncRemoteError) {
                return .success(try await remote.manifest(hashing: [], hashAll: false))
            } catch {
                return .failure(error)
            }
        }()
        await Task.yield()
        let scan = tree.scan(filter: filter)
        watchedDirectories = scan.watchedDirectories
        for (directory, reason) in scan.unreadable.sorted(by: { $0.key < $1.key }) {
            emit(.note("cannot list \(tree.absolute(directory)): \(reason); its files are not synced"))
        }
        pruneConflicts()
        let synced = recordedFiles
        if scan.entries.isEmpty && synced > 0 {
            pause(.rootEmpty(tree.root, syncedFiles: synced))
            return nil
        }

        var report = SyncBatchReport(kind: .initial)
        let manifest = try await fetched.get()
        var remoteEntries: [String: SyncEntry] = [:]
        remoteEntries.reserveCapacity(manifest.count)
        for entry in manifest {
            guard SyncPath.isValid(entry.path) else {
                decide(
                    entry.path,
                    .download,
                    .refused(reason: "not a relative path inside the sync root"),
                    into: &report
                )
                continue
            }
            if filter.bothExclusion(entry.path, isDirectory: entry.kind == .directory) != nil { continue }
            remoteEntries[entry.path] = entry
        }
        emit(
            .initialSyncStarted(
                strategy: configuration.initialSync,
                local: scan.entries.count,
                remote: remoteEntries.count
            )
        )
        // Records of paths now excluded (a new rule) are forgotten: they are no longer synced.
        for path in state.records.keys where filter.bothExclusion(path, isDirectory: false) != nil {
            forget(path)
        }

        if configuration.initialSync == .disabled {
            // Nothing is compared; what both sides hold is taken as synced, so that later
            // changes of either side go through with their expectations.
            for (path, local) in scan.entries {
                guard let remote = remoteEntries[path], remote.kind == local.kind else { continue }
                if state.records[path] == nil {
                    recordSynced(path, local: local, remoteMtime: remote.mtimeNanoseconds, remoteSize: remote.size)
                }
            }
            report.latency = .now - started
            publish { $0.phase = .watching }
            finish(report)
            return report
        }

        var paths = Set(scan.entries.keys)
        paths.formUnion(remoteEntries.keys)
        paths.formUnion(state.records.keys)
        let ordered = paths.sorted()

        // Sameness, with hashes only for files of equal size whose mtimes differ.
        var same: [String: Bool] = [:]
        var hashed: [String: String] = [:]
        var needHash: [String] = []
        for path in ordered {
            guard let local = scan.entries[path], let remote = remoteEntries[path] else { continue }
            if let answer = planner.sameWithoutHashes(local, remote) {
                same[path] = answer
            } else {
                needHash.append(path)
            }
        }
        if !needHash.isEmpty {
            var localHashes: [String: String] = [:]
            var remoteHashes: [String: String] = [:]
            var ask: [String] = []
            for path in needHash {
                guard let local = scan.entries[path], let remote = remoteEntries[path] else { continue }
                let record = state.records[path]
                if let record, let sha = record.sha256, record.matchesLocal(local) {
                    localHashes[path] = sha
                } else if tree.parentIsInside(path) {
                    localHashes[path] = tree.hash(path)
                }
                if let sha = remote.sha256 {
                    remoteHashes[path] = sha
                } else if let record, let sha = record.sha256, record.matchesRemote(remote) {
                    remoteHashes[path] = sha
                } else {
                    ask.append(path)
                }
            }
            var start = 0
            while start < ask.count {
                let chunk = Array(ask[start..<min(start + Self.operationsPerCall, ask.count)])
                for entry in try await remote.entries(chunk, recursive: false, hashing: Set(chunk)) {
                    if let sha = entry.sha256 { remoteHashes[entry.path] = sha }
                }
                start += chunk.count
            }
            for path in needHash {
                let equal = localHashes[path] != nil && localHashes[path] == remoteHashes[path]
                same[path] = equal
                if equal { hashed[path] = localHashes[path] }
            }
        }

        var plan = InitialPlan()
        for path in ordered {
            let local = scan.entries[path]
            let remote = remoteEntries[path]
            let action = planner.decide(
                local: local,
                remote: remote,
                record: state.records[path],
                same: same[path] ?? false
            )
            gate(path, action, local: local, remote: remote, sha: hashed[path], plan: &plan, report: &report)
        }
        try await carryOut(plan, remoteEntries: remoteEntries, localEntries: scan.entries, report: &report)
        report.latency = .now - started
        report.applying = report.latency
        publish { $0.phase = .watching }
        finish(report)
        saveState(force: true)
        return report
    }

    func pause(_ reason: SyncPauseReason) {
        guard paused != reason else { return }
        paused = reason
        emit(.paused(reason))
        publish { $0.phase = .paused(reason) }
    }

    /// The steps of an initial sync, gathered before any is taken.
    struct InitialPlan {
        var keepLocalAside: [String] = []
        var keepRemoteVersion: [String] = []
        var remoteCreates: [Item] = []
        var remoteRemovals: [String] = []
        var downloads: [String] = []
        var localChmods: [String] = []
        var localRemovals: [String] = []
        /// Paths whose upload-excluded directory was already reported.
        var reportedExcluded: Set<String> = []
    }

    /// Turns the planner's action into steps, checking what the directions and excludes allow.
    private func gate(
        _ path: String,
        _ action: InitialSyncPlanner.Action,
        local: LocalEntry?,
        remote: SyncEntry?,
        sha: String?,
        plan: inout InitialPlan,
        report: inout SyncBatchReport
    ) {
        let isDirectory = local?.kind == .directory || remote?.kind == .directory
        /// Nil when allowed; else whether to report the rule (first time for a directory).
        func blocked(_ check: SyncExclusion??, _ direction: SyncDirection) -> Bool {
            guard case .some(let rule) = check else { return false }
            guard let rule else { return true }  // the direction is disabled: nothing to say
            var parent = path
            while let slash = parent.lastIndex(of: "/") {
                parent = String(parent[..<slash])
                if plan.reportedExcluded.contains(parent) { return true }
            }
            if isDirectory { plan.reportedExcluded.insert(path) }
            decide(path, direction, .ignored(rule), into: &report)
            return true
        }
        switch action {
        case .nothing:
            if state.records[path] != nil { forget(path) }
        case .same:
            guard let local, let remote else { return }
            let record = state.records[path]
            if record == nil || record?.matchesLocal(local) != true || record?.matchesRemote(remote) != true {
                recordSynced(
                    path,
                    local: local,
                    remoteMtime: remote.mtimeNanoseconds,
                    remoteSize: remote.size,
                    sha256: sha ?? record?.sha256
                )
            }
        case .upload:
            guard let local, !blocked(canUpload(path, isDirectory: local.kind == .directory), .upload) else { return }
            if let item = createItem(path, local, over: remote, report: &report) { plan.remoteCreates.append(item) }
        case .download:
            guard let remote, !blocked(canDownload(path, isDirectory: remote.kind == .directory), .download) else {
                return
            }
            plan.downloads.append(path)
        case .removeRemote:
            guard let remote else { return }
            if let rule = filter.downloadExclusion(path, isDirectory: remote.kind == .directory) {
                // What downloads exclude is the container's own: never deleted there.
                _ = blocked(.some(rule), .download)
                return
            }
            let upload = canUpload(path, isDirectory: remote.kind == .directory)
            if case .some(.some) = upload, case .none = canDownload(path, isDirectory: remote.kind == .directory) {
                // Excluded from upload, so never deleted there: it comes here instead (DevSpace's
                // mirrorLocal downloads what its upload excludes cover).
                plan.downloads.append(path)
                return
            }
            guard !blocked(upload, .upload) else { return }
            plan.remoteRemovals.append(path)
        case .removeLocal:
            guard let local else { return }
            if let rule = filter.uploadExclusion(path, isDirectory: local.kind == .directory) {
                // What uploads exclude is the local side's own: never deleted here.
                _ = blocked(.some(rule), .upload)
                return
            }
            let download = canDownload(path, isDirectory: local.kind == .directory)
            if case .some(.some) = download, case .none = canUpload(path, isDirectory: local.kind == .directory) {
                if let item = createItem(path, local, over: nil, report: &report) { plan.remoteCreates.append(item) }
                return
            }
            guard !blocked(download, .download) else { return }
            plan.localRemovals.append(path)
        case .chmodRemote:
            guard let local, !blocked(canUpload(path, isDirectory: false), .upload) else { return }
            plan.remoteCreates.append(
                Item(operation: .chmod(path: path, mode: local.mode), purpose: .chmod(path: path, local: local))
            )
        case .chmodLocal:
            guard !blocked(canDownload(path, isDirectory: false), .download) else { return }
            plan.localChmods.append(path)
        case .conflict(let winner):
            if winner == .local {
                guard !blocked(canUpload(path, isDirectory: isDirectory), .upload) else { return }
                if remote?.kind == .file { plan.keepRemoteVersion.append(path) }
                if let local {
                    if let item = createItem(path, local, over: remote, report: &report) {
                        plan.remoteCreates.append(item)
                    }
                } else {
                    plan.remoteRemovals.append(path)
                }
            } else {
                guard !blocked(canDownload(path, isDirectory: isDirectory), .download) else { return }
                if local?.kind == .file { plan.keepLocalAside.append(path) }
                if remote != nil { plan.downloads.append(path) }
            }
        case .keep(let reason):
            decide(path, .upload, .kept(reason: reason), into: &report)
        case .refuse(let reason):
            decide(path, .upload, .refused(reason: reason), into: &report)
        }
    }

    /// The operation that puts the local entry at `path` in the container (over `remote`).
    func createItem(
        _ path: String,
        _ local: LocalEntry,
        over remote: SyncEntry?,
        report: inout SyncBatchReport
    )
        -> Item?
    {
        guard tree.parentIsInside(path) else {
            decide(path, .upload, .refused(reason: "a directory above it is a symlink"), into: &report)
            return nil
        }
        switch local.kind {
        case .file:
            let expect: SyncExpectation
            switch remote?.kind {
            case nil: expect = .absent
            case .file?: expect = .file(size: remote?.size ?? 0, mtimeNanoseconds: remote?.mtimeNanoseconds ?? 0)
            default: expect = .anything
            }
            return Item(
                operation: .write(
                    path: path,
                    source: tree.absolute(path),
                    mode: local.mode,
                    mtimeNanoseconds: local.mtime,
                    expect: expect
                ),
                purpose: .write(path: path, local: local, expectedRemote: expect, sha256: nil)
            )
        case .directory:
            return Item(operation: .mkdir(path: path, mode: local.mode), purpose: .mkdir(path: path, local: local))
        case .symlink:
            guard let target = local.target, LocalTree.symlinkStaysInside(path: path, target: target) else {
                decide(
                    path,
                    .upload,
                    .refused(reason: "a symlink to \(local.target ?? "?"), outside the sync root"),
                    into: &report
                )
                return nil
            }
            return Item(operation: .symlink(path: path, target: target), purpose: .symlink(path: path, local: local))
        }
    }

    /// Takes the steps of an initial sync: conflict copies first, then the container's side
    /// (directories, files, removals), then the local side.
    private func carryOut(
        _ plan: InitialPlan,
        remoteEntries: [String: SyncEntry],
        localEntries: [String: LocalEntry],
        report: inout SyncBatchReport
    ) async throws(SyncRemoteError) {
        let now = Date()
        for path in plan.keepLocalAside {
            let copy = tree.conflictCopyName(for: path, at: now)
            if rename(tree.absolute(path), tree.absolute(copy)) == 0 {
                state.conflicts.append(SyncConflict(path: path, copy: copy, detectedAt: LocalTree.isoStamp(now)))
                markDirty()
                publishConflicts()
                decide(path, .download, .conflict(copy: copy), into: &report)
            } else {
                decide(path, .download, .failed(message: "cannot keep the local version aside"), into: &report)
            }
        }
        for path in plan.keepRemoteVersion {
            guard let remote = remoteEntries[path] else { continue }
            let copy = try await keepRemoteVersion(path, remote, report: &report)
            decide(path, .upload, .conflict(copy: copy), into: &report)
        }

        // The container's side: directories (parents first), files and links, then removals.
        let creates = plan.remoteCreates.sorted { lhs, rhs in
            let (l, r) = (Self.order(lhs.operation), Self.order(rhs.operation))
            return l != r ? l < r : Self.path(lhs.operation) < Self.path(rhs.operation)
        }
        var removals: [Item] = []
        let removing = Set(plan.remoteRemovals)
        var covered: [String] = []
        for path in plan.remoteRemovals.sorted() {
            if covered.contains(where: { path.hasPrefix($0 + "/") }) {
                decide(path, .upload, .deleted, into: &report)
                continue
            }
            guard let remote = remoteEntries[path] else { continue }
            if remote.kind == .directory {
                let prefix = path + "/"
                let below = remoteEntries.keys.filter { $0.hasPrefix(prefix) }
                if below.allSatisfy({ removing.contains($0) }) {
                    covered.append(path)
                    removals.append(
                        Item(
                            operation: .remove(path: path, expect: .anything),
                            purpose: .remove(path: path, decide: true)
                        )
                    )
                } else {
                    decide(path, .upload, .kept(reason: "it holds entries that are not removed"), into: &report)
                }
                continue
            }
            let expect: SyncExpectation =
                remote.kind == .file ? .file(size: remote.size, mtimeNanoseconds: remote.mtimeNanoseconds) : .anything
            removals.append(
                Item(operation: .remove(path: path, expect: expect), purpose: .remove(path: path, decide: true))
            )
        }
        // Files before the directories that hold them.
        removals.sort { Self.path($0.operation).count > Self.path($1.operation).count }
        try await applyRemote(creates + removals, report: &report)

        // The local side.
        var modes: [String: UInt32] = [:]
        for (path, entry) in remoteEntries where entry.kind == .directory { modes[path] = entry.mode }
        for path in plan.downloads {
            guard let remote = remoteEntries[path] else { continue }
            let expected = tree.entry(path)
            try await fetch(path, remote, expected: expected, modes: modes, report: &report)
        }
        for path in plan.localChmods {
            guard let remote = remoteEntries[path] else { continue }
            do {
                if let changed = try tree.changeMode(path, mode: remote.mode) {
                    recordSynced(
                        path,
                        local: changed,
                        remoteMtime: remote.mtimeNanoseconds,
                        sha256: state.records[path]?.sha256
                    )
                    decide(path, .download, .modeChanged, into: &report)
                }
            } catch {
                decide(path, .download, .failed(message: error.message), into: &report)
            }
        }
        // Files first, then directories from the deepest (a directory still holding something
        // the sync does not remove stays).
        let localRemovals = plan.localRemovals.sorted { $0.count > $1.count }
        for path in localRemovals {
            guard let local = localEntries[path] else { continue }
            if local.kind == .directory {
                if tree.removeDirectory(path) {
                    forget(path)
                    decide(path, .download, .deletedLocally, into: &report)
                } else {
                    decide(path, .download, .kept(reason: "it holds entries that are not removed"), into: &report)
                }
                continue
            }
            do {
                if try tree.remove(path, expected: local) {
                    forget(path)
                    decide(path, .download, .deletedLocally, into: &report)
                } else {
                    decide(path, .download, .kept(reason: "it changed locally meanwhile"), into: &report)
                }
            } catch {
                decide(path, .download, .failed(message: error.message), into: &report)
            }
        }
    }

    /// Brings the remote entry `remote` to `path` locally (a file, a directory, a symlink)
    /// over `expected`, and records it.
    func fetch(
        _ path: String,
        _ remote: SyncEntry,
        expected: LocalEntry?,
        modes: [String: UInt32],
        report: inout SyncBatchReport
    ) async throws(SyncRemoteError) {
        if let blocked = tree.blockedAbove(path) {
            let kind = tree.entry(blocked)?.kind == .symlink ? "a symlink" : "not a directory"
            decide(
                path,
                .download,
                .refused(reason: "\(blocked) is \(kind) here; nothing is written through it"),
                into: &report
            )
            return
        }
        switch remote.kind {
        case .directory:
            switch makeLocalDirectory(path, remote, remoteModes: modes) {
            case .success(let made):
                recordSynced(path, local: made)
                decide(path, .download, .downloaded, into: &report)
            case .failure(let failure):
                decide(path, .download, .failed(message: failure.message), into: &report)
            }
        case .symlink:
            guard let target = remote.linkTarget, LocalTree.symlinkStaysInside(path: path, target: target) else {
                decide(
                    path,
                    .download,
                    .refused(reason: "a symlink to \(remote.linkTarget ?? "?"), outside the sync root"),
                    into: &report
                )
                return
            }
            do {
                try tree.makeParents(of: path, modes: modes)
                guard tree.parentIsInside(path) else {
                    decide(path, .download, .refused(reason: "a directory above it is a symlink"), into: &report)
                    return
                }
                if let made = try tree.makeSymlink(path, target: target, expected: expected) {
                    recordSynced(path, local: made)
                    decide(path, .download, .downloaded, into: &report)
                } else {
                    decide(path, .download, .kept(reason: "it changed locally meanwhile"), into: &report)
                }
            } catch {
                decide(path, .download, .failed(message: error.message), into: &report)
            }
        case .file:
            if let expected, expected.kind == .directory {
                decide(
                    path,
                    .download,
                    .refused(reason: "the local side has a directory where the container has a file; left as is"),
                    into: &report
                )
                return
            }
            switch try await download(path, expected: expected, remoteModes: modes) {
            case .installed(let local, let got):
                recordSynced(
                    path,
                    local: local,
                    remoteMtime: got.mtimeNanoseconds,
                    remoteSize: got.size,
                    sha256: local.size == got.size ? got.sha256 : nil
                )
                report.files += 1
                report.bytes += got.size
                decide(path, .download, .downloaded, into: &report)
            case .localChanged(let copy, let got):
                report.bytes += got.size
                decide(path, .download, .conflict(copy: copy), into: &report)
                // The local version keeps the name on both sides.
                if let local = tree.entry(path), local.kind == .file, case .none = canUpload(path, isDirectory: false) {
                    let expect = SyncExpectation.file(size: got.size, mtimeNanoseconds: got.mtimeNanoseconds)
                    let item = Item(
                        operation: .write(
                            path: path,
                            source: tree.absolute(path),
                            mode: local.mode,
                            mtimeNanoseconds: local.mtime,
                            expect: expect
                        ),
                        purpose: .write(path: path, local: local, expectedRemote: expect, sha256: nil)
                    )
                    try await applyRemote([item], report: &report, alreadyDecided: [path])
                }
            case .remoteChanged:
                decide(
                    path,
                    .download,
                    .failed(message: "it changed in the container meanwhile; it is looked at again"),
                    into: &report
                )
            case .failed(let message):
                decide(path, .download, .failed(message: message), into: &report)
            }
        }
    }

    static func order(_ operation: SyncOperation) -> Int {
        switch operation {
        case .mkdir: 0
        case .rename: 1
        case .write, .symlink, .chmod: 2
        case .remove: 3
        }
    }

    static func path(_ operation: SyncOperation) -> String {
        switch operation {
        case .write(let path, _, _, _, _), .mkdir(let path, _), .symlink(let path, _), .remove(let path, _),
            .chmod(let path, _):
            path
        case .rename(_, let to): to
        }
    }
}
