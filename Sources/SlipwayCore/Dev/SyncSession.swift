internal import Foundation

/// Local changes handed from the watcher's thread to the engine: one batch, possibly several
/// of the watcher's merged while git held its index lock.
struct LocalBatch: Sendable {
    var changes: [PathChange]
    var rescan: RescanReason?
    var firstEvent: ContinuousClock.Instant
    var waitedForGit: Duration?
}

/// The working part of a ``SyncEngine``: the records, the local tree, the current remote, and
/// what each kind of batch does. One task owns it (the engine's `run`), so nothing in it is
/// shared; it reports through `emit` and `publish`.
final class SyncSession {
    let configuration: SyncConfiguration
    var remote: any SyncRemote
    let tree: LocalTree
    var state: SyncState
    var planner: InitialSyncPlanner
    let emit: @Sendable (SyncEvent) -> Void
    let publish: @Sendable (@Sendable (inout SyncStatus) -> Void) -> Void
    var paused: SyncPauseReason?
    /// Directories the last full scan found to watch.
    var watchedDirectories = 1
    private var stateDirty = false
    private var lastSave = ContinuousClock.now - .seconds(10)

    /// The largest number of operations (or bytes of file content) sent in one `apply`.
    static let operationsPerCall = 1000
    static let bytesPerCall: UInt64 = 64 << 20

    init(
        configuration: SyncConfiguration,
        remote: any SyncRemote,
        root: String,
        state: SyncState,
        emit: @escaping @Sendable (SyncEvent) -> Void,
        publish: @escaping @Sendable (@Sendable (inout SyncStatus) -> Void) -> Void
    ) {
        self.configuration = configuration
        self.remote = remote
        self.tree = LocalTree(root: root)
        self.state = state
        self.planner = InitialSyncPlanner(strategy: configuration.initialSync, compareBy: configuration.compareBy)
        self.emit = emit
        self.publish = publish
    }

    var filter: SyncFilter { configuration.filter }

    func canUpload(_ path: String, isDirectory: Bool) -> SyncExclusion?? {
        if configuration.disableUpload { return .some(nil) }
        if let rule = filter.uploadExclusion(path, isDirectory: isDirectory) { return .some(rule) }
        return .none
    }

    func canDownload(_ path: String, isDirectory: Bool) -> SyncExclusion?? {
        if configuration.disableDownload { return .some(nil) }
        if let rule = filter.downloadExclusion(path, isDirectory: isDirectory) { return .some(rule) }
        return .none
    }

    /// How many synced files the records hold.
    var recordedFiles: Int { state.records.values.reduce(0) { $0 + ($1.kind == .file ? 1 : 0) } }

    // MARK: State

    /// Writes the state when it changed and the last write is at least a second old (or
    /// `force`); returns whether something is left to write.
    @discardableResult
    func saveState(force: Bool = false) -> Bool {
        guard stateDirty, let path = configuration.statePath else { return false }
        guard force || ContinuousClock.now - lastSave >= .seconds(1) else { return true }
        if let problem = state.save(to: path) { emit(.note("cannot save the sync state: \(problem)")) }
        stateDirty = false
        lastSave = .now
        return false
    }

    func markDirty() { stateDirty = true }

    func publishConflicts() {
        let conflicts = state.conflicts
        publish { $0.conflicts = conflicts }
    }

    func record(_ path: String, _ record: SyncRecord?) {
        state.records[path] = record
        stateDirty = true
    }

    /// Forgets `path` and every record below it.
    func forget(_ path: String) {
        state.records[path] = nil
        let prefix = path + "/"
        for key in state.records.keys where key.hasPrefix(prefix) { state.records[key] = nil }
        stateDirty = true
    }

    /// Records `local` (just synced) with the remote's size and mtime.
    func recordSynced(
        _ path: String,
        local: LocalEntry,
        remoteMtime: Int64? = nil,
        remoteSize: UInt64? = nil,
        sha256: String? = nil
    ) {
        let size = local.kind == .directory ? 0 : local.size
        record(
            path,
            SyncRecord(
                kind: local.kind,
                size: size,
                remoteSize: remoteSize ?? size,
                localMtime: local.mtime,
                localInode: local.inode,
                localCtime: local.ctime,
                remoteMtime: remoteMtime ?? local.mtime,
                mode: local.mode,
                sha256: sha256,
                target: local.target
            )
        )
    }

    /// Drops conflicts whose copy is gone (the user dealt with it).
    func pruneConflicts() {
        let before = state.conflicts.count
        state.conflicts.removeAll { tree.entry($0.copy) == nil }
        if state.conflicts.count != before {
            stateDirty = true
            publishConflicts()
        }
    }

    // MARK: Decisions and reports

    func decide(
        _ path: String,
        _ direction: SyncDirection,
        _ action: SyncDecision.Action,
        into report: inout SyncBatchReport
    ) {
        switch action {
        case .unchanged: return emit(.decision(SyncDecision(path: path, direction: direction, action: action)))
        case .conflict: report.conflicts += 1
        case .failed: report.failures += 1
        default: break
        }
        report.changes += 1
        let key: String
        switch action {
        case .uploaded: key = "uploaded"
        case .modeChanged: key = "mode"
        case .deleted: key = "deleted"
        case .renamed: key = "renamed"
        case .downloaded: key = "downloaded"
        case .deletedLocally: key = "deleted locally"
        case .conflict: key = "conflicts"
        case .ignored: key = "ignored"
        case .refused: key = "refused"
        case .unchanged: key = "unchanged"
        case .kept: key = "kept"
        case .failed: key = "failed"
        }
        report.counts[key, default: 0] += 1
        emit(.decision(SyncDecision(path: path, direction: direction, action: action)))
    }

    func finish(_ report: SyncBatchReport) {
        let report = report
        publish { status in
            status.lastBatch = report
            if report.kind == .download {
                status.downloadedFiles += report.files
                status.bytesReceived += report.bytes
            } else {
                status.uploadedFiles += report.counts["uploaded", default: 0]
                status.downloadedFiles += report.counts["downloaded", default: 0]
            }
        }
        // What the remote refused or could not read meanwhile (a container's file whose name is not
        // UTF-8, say) is said, never dropped.
        for note in remote.takeNotes() { emit(.note(note)) }
        emit(.batch(report))
        saveState()
    }

    // MARK: Applying on the remote

    /// What an operation sent to the remote is for: how its outcome is recorded.
    enum Purpose {
        case write(path: String, local: LocalEntry, expectedRemote: SyncExpectation, sha256: String?)
        case mkdir(path: String, local: LocalEntry)
        case symlink(path: String, local: LocalEntry)
        case chmod(path: String, local: LocalEntry)
        /// Removes `path` (and, for a directory, everything below it the records hold).
        case remove(path: String, decide: Bool)
        case rename(from: String, to: String, local: LocalEntry)
    }

    struct Item {
        var operation: SyncOperation
        var purpose: Purpose
    }

    /// What an ``applyRemote(_:report:)`` call learnt beyond the report.
    struct Applied {
        /// Renames the remote could not make: the caller sends `to` whole and removes `from`.
        var failedRenames: [(from: String, to: String)] = []
        /// Writes sent again over the container's version (decided as conflicts already).
        var retried: Set<String> = []
    }

    /// Sends `items` in calls of bounded size and records their outcomes. Writes the container
    /// changed meanwhile become conflicts: its version is kept locally (when downloads are on)
    /// and the write is sent again over it.
    @discardableResult
    func applyRemote(
        _ items: [Item],
        report: inout SyncBatchReport,
        alreadyDecided: Set<String> = []
    ) async throws(SyncRemoteError) -> Applied {
        var applied = Applied()
        applied.retried = alreadyDecided
        var round = items
        var attempt = 0
        while !round.isEmpty {
            attempt += 1
            var next: [Item] = []
            var start = 0
            while start < round.count {
                var end = start
                var bytes: UInt64 = 0
                while end < round.count && end - start < Self.operationsPerCall {
                    if case .write(_, let local, _, _) = round[end].purpose { bytes += local.size }
                    end += 1
                    if bytes >= Self.bytesPerCall { break }
                }
                let chunk = Array(round[start..<end])
                let outcomes = try await remote.apply(chunk.map(\.operation))
                guard outcomes.count == chunk.count else {
                    throw .protocolViolation("\(outcomes.count) outcomes for \(chunk.count) operations")
                }
                for (item, outcome) in zip(chunk, outcomes) {
                    if let retry = try await settle(item, outcome, attempt: attempt, report: &report, applied: &applied)
                    {
                        next.append(retry)
                    }
                }
                start = end
            }
            round = next
        }
        return applied
    }

    /// Records one outcome; returns the operation to send again after a conflict.
    private func settle(
        _ item: Item,
        _ outcome: SyncOutcome,
        attempt: Int,
        report: inout SyncBatchReport,
        applied: inout Applied
    ) async throws(SyncRemoteError) -> Item? {
        switch (item.purpose, outcome) {
        case (.write(let path, let local, let expected, let sha), .applied(let entry)):
            // A file that changed while it was read: the remote holds something else than the
            // local stat says (recorded as such; the local side's next change goes through).
            let sameSize = entry.map { $0.size == local.size } ?? true
            recordSynced(
                path,
                local: local,
                remoteMtime: entry?.mtimeNanoseconds,
                remoteSize: entry?.size,
                sha256: sameSize ? sha : nil
            )
            _ = expected
            report.files += 1
            report.bytes += local.size
            if !applied.retried.contains(path) { decide(path, .upload, .uploaded, into: &report) }
            return nil
        case (.write(let path, let local, _, let sha), .conflict(let current)):
            guard attempt < 4 else {
                decide(path, .upload, .failed(message: "the container keeps changing it; try again"), into: &report)
                return nil
            }
            guard let current else {
                // Removed in the container meanwhile: the local version goes there.
                return Item(
                    operation: .write(
                        path: path,
                        source: tree.absolute(path),
                        mode: local.mode,
                        mtimeNanoseconds: local.mtime,
                        expect: .absent
                    ),
                    purpose: .write(path: path, local: local, expectedRemote: .absent, sha256: sha)
                )
            }
            guard current.kind == .file else {
                decide(
                    path,
                    .upload,
                    .refused(reason: "the container made it a \(InitialSyncPlanner.noun(current.kind)); left as is"),
                    into: &report
                )
                return nil
            }
            let copy = try await keepRemoteVersion(path, current, report: &report)
            applied.retried.insert(path)
            decide(path, .upload, .conflict(copy: copy), into: &report)
            let expect = SyncExpectation.file(size: current.size, mtimeNanoseconds: current.mtimeNanoseconds)
            return Item(
                operation: .write(
                    path: path,
                    source: tree.absolute(path),
                    mode: local.mode,
                    mtimeNanoseconds: local.mtime,
                    expect: expect
                ),
                purpose: .write(path: path, local: local, expectedRemote: expect, sha256: sha)
            )
        case (.mkdir(let path, let local), .applied):
            recordSynced(path, local: local)
            decide(path, .upload, .uploaded, into: &report)
        case (.symlink(let path, let local), .applied):
            recordSynced(path, local: local)
            decide(path, .upload, .uploaded, into: &report)
        case (.chmod(let path, let local), .applied(let entry)):
            if var existing = state.records[path] {
                existing.mode = local.mode
                existing.localCtime = local.ctime
                existing.localInode = local.inode
                if let entry, entry.kind == .file {
                    existing.remoteMtime = entry.mtimeNanoseconds
                    existing.remoteSize = entry.size
                }
                record(path, existing)
            } else {
                recordSynced(path, local: local, remoteMtime: entry?.mtimeNanoseconds, remoteSize: entry?.size)
            }
            decide(path, .upload, .modeChanged, into: &report)
        case (.remove(let path, let shouldDecide), .applied):
            forget(path)
            if shouldDecide { decide(path, .upload, .deleted, into: &report) }
        case (.remove(let path, let shouldDecide), .conflict(let current)):
            // The container changed it since it was synced: its version is kept locally, the
            // local deletion keeps the name (removed on both sides).
            guard attempt < 4, let current else {
                forget(path)
                if shouldDecide { decide(path, .upload, .deleted, into: &report) }
                return nil
            }
            if current.kind == .file {
                let copy = try await keepRemoteVersion(path, current, report: &report)
                decide(path, .upload, .conflict(copy: copy), into: &report)
                return Item(
                    operation: .remove(
                        path: path,
                        expect: .file(size: current.size, mtimeNanoseconds: current.mtimeNanoseconds)
                    ),
                    purpose: .remove(path: path, decide: false)
                )
            }
            return Item(operation: .remove(path: path, expect: .anything), purpose: item.purpose)
        case (.rename(let from, let to, let local), .applied(let entry)):
            moveRecords(from: from, to: to)
            if var moved = state.records[to] {
                moved.localCtime = local.ctime
                moved.localInode = local.inode
                if let entry, entry.kind == .file { moved.remoteMtime = entry.mtimeNanoseconds }
                record(to, moved)
            }
            decide(to, .upload, .renamed(from: from), into: &report)
        case (.rename(let from, let to, _), _):
            // Not renamed there (the container moved it meanwhile): the new name is sent whole,
            // the old one removed as any deletion.
            applied.failedRenames.append((from, to))
        case (_, .failed(_, let message)):
            decide(pathOf(item.purpose), .upload, .failed(message: message), into: &report)
        case (_, .conflict):
            decide(pathOf(item.purpose), .upload, .failed(message: "the container changed it meanwhile"), into: &report)
        }
        return nil
    }

    /// `a`, `a/b` for `a/b/c`.
    static func ancestors(of path: String) -> [String] {
        var result: [String] = []
        var current = ""
        for component in path.split(separator: "/").dropLast() {
            current = current.isEmpty ? String(component) : current + "/" + component
            result.append(current)
        }
        return result
    }

    private func pathOf(_ purpose: Purpose) -> String {
        switch purpose {
        case .write(let path, _, _, _), .mkdir(let path, _), .symlink(let path, _), .chmod(let path, _),
            .remove(let path, _):
            path
        case .rename(_, let to, _): to
        }
    }

    func moveRecords(from: String, to: String) {
        var moved: [String: SyncRecord] = [:]
        let prefix = from + "/"
        for (key, value) in state.records where key == from || key.hasPrefix(prefix) {
            moved[to + key.dropFirst(from.count)] = value
            state.records[key] = nil
        }
        forget(to)
        for (key, value) in moved { state.records[key] = value }
        stateDirty = true
    }

    /// Downloads the container's version of `path` (`current`) as a conflict copy beside the
    /// local file and lists the conflict; nil when downloads are off or it failed (said).
    func keepRemoteVersion(
        _ path: String,
        _ current: SyncEntry,
        report: inout SyncBatchReport
    )
        async throws(SyncRemoteError) -> String?
    {
        if case .some = canDownload(path, isDirectory: false) { return nil }
        let copy = tree.conflictCopyName(for: path, at: Date())
        do {
            try tree.makeParents(of: copy)
        } catch {
            emit(.note("cannot keep the container's version of \(path): \(error.message)"))
            return nil
        }
        guard tree.parentIsInside(copy) else { return nil }
        let temporary = tree.temporaryPath(for: copy)
        let got: SyncEntry
        do {
            got = try await remote.download(path, to: temporary)
        } catch .disconnected(let reason) {
            unlink(temporary)
            throw .disconnected(reason)
        } catch {
            unlink(temporary)
            emit(.note("cannot keep the container's version of \(path): \(error)"))
            return nil
        }
        guard got.kind == .file else {
            unlink(temporary)
            return nil
        }
        do {
            guard
                try tree.install(temporary, at: copy, mode: got.mode, mtime: got.mtimeNanoseconds, expected: nil) != nil
            else {
                unlink(temporary)
                return nil
            }
        } catch {
            unlink(temporary)
            emit(.note("cannot keep the container's version of \(path): \(error.message)"))
            return nil
        }
        report.bytes += got.size
        state.conflicts.append(SyncConflict(path: path, copy: copy, detectedAt: LocalTree.isoStamp(Date())))
        stateDirty = true
        publishConflicts()
        return copy
    }

    // MARK: Applying locally

    enum DownloadResult {
        /// Installed; the local entry now there.
        case installed(LocalEntry, SyncEntry)
        /// The local side changed meanwhile: the container's version is the conflict copy.
        case localChanged(copy: String?, SyncEntry)
        /// The remote path is no longer a file (or no longer there).
        case remoteChanged
        case failed(String)
    }

    /// Fetches the remote file `path` into a temporary file beside it and renames it into
    /// place if the local entry is still `expected` (nil: nothing there).
    func download(
        _ path: String,
        expected: LocalEntry?,
        remoteModes: [String: UInt32]
    ) async throws(SyncRemoteError)
        -> DownloadResult
    {
        do {
            try tree.makeParents(of: path, modes: remoteModes)
        } catch {
            return .failed(error.message)
        }
        guard tree.parentIsInside(path) else {
            return .failed("a directory above it is a symlink; nothing is written through one")
        }
        let temporary = tree.temporaryPath(for: path)
        let got: SyncEntry
        do {
            got = try await remote.download(path, to: temporary)
        } catch .disconnected(let reason) {
            unlink(temporary)
            throw .disconnected(reason)
        } catch {
            unlink(temporary)
            return .remoteChanged
        }
        guard got.kind == .file else {
            unlink(temporary)
            return .remoteChanged
        }
        do {
            if let installed = try tree.install(
                temporary,
                at: path,
                mode: got.mode,
                mtime: got.mtimeNanoseconds,
                expected: expected
            ) {
                return .installed(installed, got)
            }
        } catch {
            unlink(temporary)
            return .failed(error.message)
        }
        // Changed locally meanwhile: the temporary file becomes the conflict copy.
        let copy = tree.conflictCopyName(for: path, at: Date())
        if rename(temporary, tree.absolute(copy)) != 0 {
            unlink(temporary)
            return .localChanged(copy: nil, got)
        }
        state.conflicts.append(SyncConflict(path: path, copy: copy, detectedAt: LocalTree.isoStamp(Date())))
        stateDirty = true
        publishConflicts()
        return .localChanged(copy: copy, got)
    }

    /// Makes a local directory for the remote directory `entry`.
    func makeLocalDirectory(
        _ path: String,
        _ entry: SyncEntry,
        remoteModes: [String: UInt32]
    ) -> Result<LocalEntry, LocalTree.WriteFailure> {
        do {
            try tree.makeParents(of: path, modes: remoteModes)
            guard tree.parentIsInside(path) else {
                return .failure(LocalTree.WriteFailure(message: "a directory above it is a symlink"))
            }
            guard let made = try tree.makeDirectory(path, mode: entry.mode) else {
                return .failure(LocalTree.WriteFailure(message: "it vanished"))
            }
            return .success(made)
        } catch {
            return .failure(error)
        }
    }
}
