extension SyncSession {
    /// Applies changes the container made: `paths` as the remote named them (an empty list:
    /// its queue overflowed, compare everything). Each path is looked up on the remote and
    /// compared with its record: an echo of an upload is no change; a file the local side did
    /// not change since it was synced is fetched (temp file + rename); a file both sides
    /// changed is a conflict (the local version keeps the name on both sides, the container's
    /// is kept as a conflict copy); nothing a remote names is ever written outside the root.
    func handleRemote(_ paths: [String]) async throws(SyncRemoteError) {
        guard paused == nil else { return }
        let started = ContinuousClock.now
        tree.beginBatch()
        var report = SyncBatchReport(kind: .download)
        var entries: [String: SyncEntry] = [:]
        var dirty: [String]
        let rescan = paths.isEmpty
        if rescan {
            emit(.rescan(reason: "the container's change queue overflowed; its tree is compared with what was synced"))
            for entry in try await remote.manifest(hashing: [], hashAll: false) where SyncPath.isValid(entry.path) {
                entries[entry.path] = entry
            }
            dirty = Set(entries.keys).union(state.records.keys).sorted()
        } else {
            var valid: [String] = []
            for path in Set(paths).sorted() {
                guard SyncPath.isValid(path) else {
                    decide(path, .download, .refused(reason: "not a relative path inside the sync root"), into: &report)
                    continue
                }
                if filter.bothExclusion(path, isDirectory: false) != nil { continue }
                valid.append(path)
            }
            guard !valid.isEmpty else {
                if report.changes > 0 { finish(report) }
                return
            }
            for entry in try await remote.entries(valid, recursive: false, hashing: [])
            where SyncPath.isValid(entry.path) {
                entries[entry.path] = entry
            }
            // A directory new to the sync comes with what it holds.
            let fresh = entries.values.filter { $0.kind == .directory && state.records[$0.path]?.kind != .directory }
            if !fresh.isEmpty {
                for entry in try await remote.entries(fresh.map(\.path), recursive: true, hashing: [])
                where SyncPath.isValid(entry.path) {
                    entries[entry.path] = entry
                }
            }
            dirty = Set(valid).union(entries.keys).sorted()
        }

        var modes: [String: UInt32] = [:]
        for (path, entry) in entries where entry.kind == .directory { modes[path] = entry.mode }
        var uploads: [Item] = []
        var decided = Set<String>()
        var localRemovals: [String] = []
        for path in dirty {
            if localRemovals.contains(where: { path.hasPrefix($0 + "/") }) { continue }
            let remote = entries[path]
            let record = state.records[path]
            let isDirectory = (remote?.kind ?? record?.kind) == .directory
            if let rule = filter.downloadExclusion(path, isDirectory: isDirectory) {
                if !rescan && filter.bothExclusion(path, isDirectory: isDirectory) == nil {
                    decide(path, .download, .ignored(rule), into: &report)
                }
                continue
            }
            let local = tree.parentIsInside(path) ? tree.entry(path) : nil
            guard let remote else {
                guard let record else { continue }
                // Removed in the container.
                if record.kind == .directory {
                    localRemovals.append(path)
                    continue
                }
                guard let local else {
                    forget(path)
                    decide(path, .download, .unchanged, into: &report)
                    continue
                }
                if record.matchesLocal(local) {
                    do {
                        if try tree.remove(path, expected: local) {
                            forget(path)
                            decide(path, .download, .deletedLocally, into: &report)
                            continue
                        }
                    } catch {
                        decide(path, .download, .failed(message: error.message), into: &report)
                        continue
                    }
                }
                // Changed locally since: the local version goes back (a change wins over a removal).
                forget(path)
                if let item = uploadItem(path, expect: .absent, report: &report) { uploads.append(item) }
                continue
            }
            if let record, record.matchesRemote(remote) {
                decide(path, .download, .unchanged, into: &report)
                continue
            }
            if let local, record.map({ !$0.matchesLocal(local) }) ?? true {
                // Changed on both sides (or made on both sides).
                if try await sameContent(path, local, remote) {
                    recordSynced(
                        path,
                        local: local,
                        remoteMtime: remote.mtimeNanoseconds,
                        remoteSize: remote.size,
                        sha256: record?.sha256
                    )
                    decide(path, .download, .unchanged, into: &report)
                    continue
                }
                if local.kind == .directory || remote.kind == .directory {
                    decide(
                        path,
                        .download,
                        .refused(
                            reason:
                                "the local side has a \(InitialSyncPlanner.noun(local.kind)) where the container has a \(InitialSyncPlanner.noun(remote.kind)); left as is"
                        ),
                        into: &report
                    )
                    continue
                }
                let copy = remote.kind == .file ? try await keepRemoteVersion(path, remote, report: &report) : nil
                decide(path, .download, .conflict(copy: copy), into: &report)
                decided.insert(path)
                let expect: SyncExpectation =
                    remote.kind == .file
                    ? .file(size: remote.size, mtimeNanoseconds: remote.mtimeNanoseconds) : .anything
                if let item = uploadItem(path, expect: expect, report: &report) { uploads.append(item) }
                continue
            }
            if local == nil, record != nil, remote.kind == .file {
                // Deleted locally, changed in the container: the deletion keeps the name.
                let copy = try await keepRemoteVersion(path, remote, report: &report)
                decide(path, .download, .conflict(copy: copy), into: &report)
                uploads.append(
                    Item(
                        operation: .remove(
                            path: path,
                            expect: .file(size: remote.size, mtimeNanoseconds: remote.mtimeNanoseconds)
                        ),
                        purpose: .remove(path: path, decide: false)
                    )
                )
                continue
            }
            try await fetch(path, remote, expected: local, modes: modes, report: &report)
        }
        for directory in localRemovals {
            removeLocalDirectory(directory, uploads: &uploads, report: &report)
        }
        if !uploads.isEmpty {
            try await applyRemote(uploads, report: &report, alreadyDecided: decided)
        }
        report.latency = .now - started
        report.applying = report.latency
        if report.changes > 0 { finish(report) } else { saveState() }
    }

    /// An upload of the local entry at `path` over what the container holds (`expect`).
    private func uploadItem(_ path: String, expect: SyncExpectation, report: inout SyncBatchReport) -> Item? {
        guard let local = tree.entry(path), case .none = canUpload(path, isDirectory: local.kind == .directory) else {
            return nil
        }
        guard local.kind == .file else { return createItem(path, local, over: nil, report: &report) }
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
    }

    /// Whether the local and remote entries hold the same (hashing both files when their
    /// sizes agree and their times do not).
    private func sameContent(
        _ path: String,
        _ local: LocalEntry,
        _ remote: SyncEntry
    ) async throws(SyncRemoteError)
        -> Bool
    {
        if let answer = planner.sameWithoutHashes(local, remote) { return answer }
        guard let localHash = tree.hash(path) else { return false }
        let answer = try await self.remote.entries([path], recursive: false, hashing: [path])
        return answer.first(where: { $0.path == path })?.sha256 == localHash
    }

    /// A directory the container removed: what this sync put there and that did not change
    /// locally goes, from the deepest; anything else stays (and a changed file is sent back).
    private func removeLocalDirectory(_ directory: String, uploads: inout [Item], report: inout SyncBatchReport) {
        guard let top = tree.entry(directory), top.kind == .directory, tree.parentIsInside(directory) else {
            forget(directory)
            return
        }
        let scan = tree.scan(filter: filter, below: directory)
        var kept = 0
        var parentsMade = Set<String>()
        // The container's directory is gone with everything in it: the records below are read
        // once, then dropped.
        let prefix = directory + "/"
        let records = state.records.filter { $0.key.hasPrefix(prefix) }
        forget(directory)
        for (path, local) in scan.entries.sorted(by: { $0.key.count > $1.key.count }) {
            let record = records[path]
            if local.kind == .directory {
                if !tree.removeDirectory(path) { kept += 1 }
                continue
            }
            if let record, record.matchesLocal(local) {
                do {
                    if try tree.remove(path, expected: local) {
                        decide(path, .download, .deletedLocally, into: &report)
                        continue
                    }
                } catch {
                    decide(path, .download, .failed(message: error.message), into: &report)
                }
            } else {
                // Changed here since it was synced, or never synced: it stays, and goes back
                // (a change wins over a removal).
                if let item = uploadItem(path, expect: .absent, report: &report) {
                    uploads += missingParents(of: path, made: &parentsMade, report: &report)
                    uploads.append(item)
                }
            }
            kept += 1
        }
        if tree.removeDirectory(directory) {
            decide(directory, .download, .deletedLocally, into: &report)
        } else {
            decide(
                directory,
                .download,
                .kept(
                    reason:
                        "removed in the container, but \(kept) local entr\(kept == 1 ? "y" : "ies") in it were not synced or changed since; those stay"
                ),
                into: &report
            )
        }
    }
}
