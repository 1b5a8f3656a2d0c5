extension SyncSession {
    /// Sends one batch of local changes: each changed path is compared with its record (an
    /// editor's safe save is then one changed file, an echo of a download no change at all),
    /// renames the watcher paired are sent as renames, and every overwrite or removal carries
    /// what the container must still hold.
    func handleLocal(_ batch: LocalBatch) async throws(SyncRemoteError) {
        let handedOver = ContinuousClock.now
        tree.beginBatch()
        let root = tree.rootState(filter: filter)
        guard root.exists else {
            pause(.rootMissing(tree.root))
            return
        }
        if paused != nil {
            guard !root.empty else { return }
            paused = nil
            emit(.resumed)
            publish { $0.phase = .watching }
            planner.restoring = true
            defer { planner.restoring = false }
            try await initialSync()
            return
        }

        var report = SyncBatchReport(kind: batch.rescan == nil ? .upload : .rescan)
        report.waitedForGit = batch.waitedForGit
        var dirty: [String] = []
        var seen = Set<String>()
        func add(_ path: String) {
            if seen.insert(path).inserted { dirty.append(path) }
        }
        var renames: [(from: String, to: String)] = []
        var removals = false
        var scanned: [String: LocalEntry]?
        if let reason = batch.rescan {
            emit(.rescan(reason: "\(reason); the local tree is compared with what was synced"))
            let scan = tree.scan(filter: filter)
            watchedDirectories = scan.watchedDirectories
            scanned = scan.entries
            for path in scan.entries.keys.sorted() { add(path) }
            for path in state.records.keys.sorted() { add(path) }
            removals = true
            pruneConflicts()
        }
        for change in batch.changes where !change.path.isEmpty {
            if let from = change.renamedFrom {
                renames.append((from, change.path))
                add(from)
            }
            add(change.path)
            if !change.kinds.isDisjoint(with: [.deleted, .movedFrom]) {
                removals = true
                if change.isDirectory {
                    let prefix = change.path + "/"
                    for path in state.records.keys.sorted() where path.hasPrefix(prefix) { add(path) }
                }
            }
        }
        if removals && root.empty {
            let synced = recordedFiles
            if synced > 0 {
                pause(.rootEmpty(tree.root, syncedFiles: synced))
                return
            }
        }

        // Conflict copies are never sent; removing one clears its conflict.
        var copiesGone = false
        dirty.removeAll { path in
            guard filter.isConflictCopy(path) else { return false }
            if tree.entry(path) == nil, state.conflicts.contains(where: { $0.copy == path }) {
                state.conflicts.removeAll { $0.copy == path }
                copiesGone = true
            }
            return true
        }
        if copiesGone {
            markDirty()
            publishConflicts()
        }

        func localEntry(_ path: String) -> LocalEntry? {
            if let scanned { return scanned[path] }
            return tree.parentIsInside(path) ? tree.entry(path) : nil
        }

        // Renames first: the container renames what it has, nothing is sent again.
        var handled = Set<String>()
        var renameItems: [Item] = []
        var parentsMade = Set<String>()
        for (from, to) in renames {
            guard !handled.contains(from), !handled.contains(to), let record = state.records[from],
                localEntry(from) == nil, let local = localEntry(to), local.kind == record.kind,
                record.matchesLocalContent(local),
                filter.uploadExclusion(to, isDirectory: local.kind == .directory) == nil
            else { continue }
            if let existing = state.records[to], existing.kind != .file || local.kind != .file { continue }
            renameItems += missingParents(of: to, made: &parentsMade, report: &report)
            renameItems.append(
                Item(operation: .rename(from: from, to: to), purpose: .rename(from: from, to: to, local: local))
            )
            handled.insert(from)
            handled.insert(to)
        }
        if !renameItems.isEmpty {
            let applied = try await applyRemote(renameItems, report: &report)
            for failed in applied.failedRenames {
                handled.remove(failed.from)
                handled.remove(failed.to)
            }
        }

        var creates: [Item] = []
        var removeItems: [Item] = []
        var directoryRemovals: [String] = []
        for path in dirty where !handled.contains(path) {
            let local = localEntry(path)
            let record = state.records[path]
            guard let local else {
                guard let record else {
                    decide(path, .upload, .unchanged, into: &report)
                    continue
                }
                if record.kind == .directory {
                    directoryRemovals.append(path)
                } else {
                    removeItems.append(
                        Item(
                            operation: .remove(path: path, expect: record.remoteExpectation),
                            purpose: .remove(path: path, decide: true)
                        )
                    )
                }
                continue
            }
            if filter.uploadExclusion(path, isDirectory: local.kind == .directory) != nil { continue }
            if let record, record.matchesLocal(local) {
                decide(path, .upload, .unchanged, into: &report)
                continue
            }
            if let record, record.kind != local.kind {
                // A file became a directory or the reverse: the old one goes first.
                if record.kind == .directory {
                    directoryRemovals.append(path)
                } else {
                    removeItems.append(
                        Item(
                            operation: .remove(path: path, expect: record.remoteExpectation),
                            purpose: .remove(path: path, decide: false)
                        )
                    )
                }
            }
            switch local.kind {
            case .file:
                if let record, record.kind == .file, record.size == local.size {
                    if record.localMtime == local.mtime {
                        // Only the mode (or the inode: a copy in place) changed.
                        if record.mode != local.mode {
                            creates.append(
                                Item(
                                    operation: .chmod(path: path, mode: local.mode),
                                    purpose: .chmod(path: path, local: local)
                                )
                            )
                        } else {
                            recordSynced(
                                path,
                                local: local,
                                remoteMtime: record.remoteMtime,
                                remoteSize: record.remoteSize,
                                sha256: record.sha256
                            )
                            decide(path, .upload, .unchanged, into: &report)
                        }
                        continue
                    }
                    if let sha = record.sha256, tree.hash(path) == sha, record.mode == local.mode {
                        // Touched, same content: nothing to send.
                        recordSynced(
                            path,
                            local: local,
                            remoteMtime: record.remoteMtime,
                            remoteSize: record.remoteSize,
                            sha256: sha
                        )
                        decide(path, .upload, .unchanged, into: &report)
                        continue
                    }
                }
                creates += missingParents(of: path, made: &parentsMade, report: &report)
                let expect: SyncExpectation =
                    record.map { $0.kind == .directory ? .absent : $0.remoteExpectation } ?? .absent
                creates.append(
                    Item(
                        operation: .write(
                            path: path,
                            source: tree.absolute(path),
                            mode: local.mode,
                            mtimeNanoseconds: local.mtime,
                            expect: expect
                        ),
                        purpose: .write(path: path, local: local, expectedRemote: expect, sha256: nil)
                    )
                )
            case .directory:
                if record?.kind == .directory {
                    decide(path, .upload, .unchanged, into: &report)
                    continue
                }
                creates += missingParents(of: path, made: &parentsMade, report: &report)
                if parentsMade.insert(path).inserted {
                    creates.append(
                        Item(operation: .mkdir(path: path, mode: local.mode), purpose: .mkdir(path: path, local: local))
                    )
                }
            case .symlink:
                creates += missingParents(of: path, made: &parentsMade, report: &report)
                if let item = createItem(path, local, over: nil, report: &report) { creates.append(item) }
            }
        }

        if !directoryRemovals.isEmpty {
            removeItems += try await removeDirectories(directoryRemovals, report: &report)
        }
        let ordered =
            creates.sorted { lhs, rhs in
                let (l, r) = (Self.order(lhs.operation), Self.order(rhs.operation))
                return l != r ? l < r : (l == 0 ? Self.path(lhs.operation) < Self.path(rhs.operation) : false)
            } + removeItems.sorted { Self.path($0.operation).count > Self.path($1.operation).count }
        // Removals that make room for a new kind go before everything else.
        let replacing = ordered.filter { if case .remove(_, false) = $0.purpose { true } else { false } }
        let rest = ordered.filter { if case .remove(_, false) = $0.purpose { false } else { true } }
        let applied = try await applyRemote(replacing + rest, report: &report)
        if !applied.failedRenames.isEmpty {
            // Renames the container could not make: the new names whole, the old ones removed.
            var again = batch
            again.rescan = nil
            again.changes = []
            for failed in applied.failedRenames {
                let wasDirectory = state.records[failed.from]?.kind == .directory
                again.changes.append(PathChange(root: 0, path: failed.from, kinds: .deleted, isDirectory: wasDirectory))
                again.changes.append(PathChange(root: 0, path: failed.to, kinds: .created, isDirectory: false))
                if tree.entry(failed.to)?.kind == .directory {
                    for (path, entry) in tree.scan(filter: filter, below: failed.to).entries.sorted(by: {
                        $0.key < $1.key
                    }) {
                        again.changes.append(
                            PathChange(root: 0, path: path, kinds: .created, isDirectory: entry.kind == .directory)
                        )
                    }
                }
            }
            try await handleLocal(again)
        }
        report.latency = .now - batch.firstEvent
        report.applying = .now - handedOver
        if report.changes > 0 || batch.rescan != nil { finish(report) } else { saveState() }
    }

    /// `mkdir` operations for the directories above `path` the records do not hold.
    func missingParents(of path: String, made: inout Set<String>, report: inout SyncBatchReport) -> [Item] {
        var items: [Item] = []
        var parent = ""
        for component in path.split(separator: "/").dropLast() {
            parent = parent.isEmpty ? String(component) : parent + "/" + component
            if state.records[parent]?.kind == .directory || made.contains(parent) { continue }
            guard let local = tree.entry(parent), local.kind == .directory else { continue }
            made.insert(parent)
            items.append(
                Item(operation: .mkdir(path: parent, mode: local.mode), purpose: .mkdir(path: parent, local: local))
            )
        }
        return items
    }

    /// The removals for directories deleted locally. The container's side is looked at first:
    /// a directory holding only what this sync put there (unchanged) is removed whole; one
    /// holding anything else (the container's own files, excluded ones) keeps those, and only
    /// the synced entries below it go.
    func removeDirectories(
        _ directories: [String],
        report: inout SyncBatchReport
    ) async throws(SyncRemoteError)
        -> [Item]
    {
        let tops = directories.sorted().reduce(into: [String]()) { tops, path in
            if !tops.contains(where: { path.hasPrefix($0 + "/") }) { tops.append(path) }
        }
        let entries = try await remote.entries(tops, recursive: true, hashing: [])
        var items: [Item] = []
        for top in tops {
            let prefix = top + "/"
            let below = entries.filter { $0.path.hasPrefix(prefix) }
            guard entries.contains(where: { $0.path == top && $0.kind == .directory }) else {
                forget(top)
                decide(top, .upload, .deleted, into: &report)
                continue
            }
            let foreign = below.filter { entry in
                guard let record = state.records[entry.path] else { return true }
                return !record.matchesRemote(entry)
            }
            if foreign.isEmpty {
                items.append(
                    Item(operation: .remove(path: top, expect: .anything), purpose: .remove(path: top, decide: true))
                )
                continue
            }
            let keep = Set(foreign.map(\.path))
            // Directories above anything kept stay; everything else synced goes.
            var keptDirectories = Set<String>([top])
            for path in keep {
                var parent = path
                while let slash = parent.lastIndex(of: "/") {
                    parent = String(parent[..<slash])
                    if !keptDirectories.insert(parent).inserted { break }
                }
            }
            var removedDirectories: [String] = []
            for entry in below.sorted(by: { $0.path < $1.path }) where !keep.contains(entry.path) {
                if keptDirectories.contains(entry.path) { continue }
                if removedDirectories.contains(where: { entry.path.hasPrefix($0 + "/") }) { continue }
                guard let record = state.records[entry.path] else { continue }
                if entry.kind == .directory { removedDirectories.append(entry.path) }
                items.append(
                    Item(
                        operation: .remove(
                            path: entry.path,
                            expect: entry.kind == .directory ? .anything : record.remoteExpectation
                        ),
                        purpose: .remove(path: entry.path, decide: true)
                    )
                )
            }
            state.records[top] = nil
            markDirty()
            decide(
                top,
                .upload,
                .kept(
                    reason:
                        "deleted locally, but the container's copy holds \(keep.count) entr\(keep.count == 1 ? "y" : "ies") this sync did not put there (or that changed there); those stay"
                ),
                into: &report
            )
        }
        return items
    }
}
