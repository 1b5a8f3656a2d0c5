/// The initial sync's decision for one path, from what each side holds now and what the
/// records say was synced last time. A pure function: ``SyncSession`` gathers the entries
/// (and the hashes this asks for) and carries the actions out.
///
/// **Without a record** (a first sync, or a path never synced) DevSpace's strategies apply as
/// DevSpace applies them: a file only one side has is copied to the other (`mirrorLocal`
/// deletes what only the container has, `mirrorRemote` what only the local side has); a file
/// both sides have, with different contents, goes the strategy's way (`preferNewest`: the
/// newer mtime; `keepAll`: left).
///
/// **With a record** (a restart, a reconnect) the side that changed since wins: a file
/// deleted locally while the sync was down is deleted in the container (it was synced, so it
/// is the sync's to delete), a file the container changed is fetched. Two things never
/// happen, whatever the strategy: a local file is never deleted because the container lacks
/// it (a re-created container is not authoritative; only `mirrorRemote` deletes locally), and
/// a file changed on both sides loses neither version: the strategy's side keeps the name on
/// both sides, the other version is kept locally as a conflict copy (`keepAll` leaves both).
/// The mirror strategies still make their side win when only the other side changed.
struct InitialSyncPlanner: Sendable {
    enum Side: Sendable, Equatable {
        case local
        case remote
    }

    enum Action: Sendable, Equatable {
        /// Neither side holds it: forget the record.
        case nothing
        /// Both sides hold the same: record it.
        case same
        case upload
        case download
        case removeRemote
        case removeLocal
        /// The same content, the local mode wins.
        case chmodRemote
        /// The same content, the container's mode wins.
        case chmodLocal
        /// Both sides changed: `winner` keeps the name on both sides, the other version
        /// becomes a local conflict copy.
        case conflict(winner: Side)
        /// Left as it is on each side.
        case keep(reason: String)
        /// Not synced (a file facing a directory).
        case refuse(reason: String)
    }

    var strategy: InitialSyncStrategy
    var compareBy: InitialSyncCompareBy
    /// After a pause (the local root was emptied or gone): files missing locally that were
    /// synced are fetched back rather than deleted in the container.
    var restoring = false

    /// The side the strategy favours for two versions (nil: neither, `keepAll`).
    func favoured(local: LocalEntry?, remote: SyncEntry?) -> Side? {
        switch strategy {
        case .mirrorLocal, .preferLocal, .disabled: return .local
        case .mirrorRemote, .preferRemote: return .remote
        case .keepAll: return nil
        case .preferNewest:
            guard let local, let remote else { return remote == nil ? .local : .remote }
            return local.mtime >= remote.mtimeNanoseconds ? .local : .remote
        }
    }

    /// Whether the two entries hold the same thing, when that can be told without hashes:
    /// nil means "compare the files' hashes".
    func sameWithoutHashes(_ local: LocalEntry, _ remote: SyncEntry) -> Bool? {
        guard local.kind == remote.kind else { return false }
        switch local.kind {
        case .directory: return true
        case .symlink: return local.target == remote.linkTarget
        case .file:
            if local.size != remote.size { return false }
            if compareBy == .size || local.mtime == remote.mtimeNanoseconds { return true }
            return nil
        }
    }

    /// The decision for one path: `local`, `remote` and `record` as they are, and `same`
    /// whether both sides hold the same content (meaningful only when both exist).
    func decide(local: LocalEntry?, remote: SyncEntry?, record: SyncRecord?, same: Bool) -> Action {
        guard local != nil || remote != nil else { return .nothing }
        if let local, let remote, same {
            guard local.kind == .file, local.mode != remote.mode else { return .same }
            return modeWinner(local: local, remote: remote, record: record) == .local ? .chmodRemote : .chmodLocal
        }
        if let local, let remote, local.kind != remote.kind, local.kind == .directory || remote.kind == .directory {
            return .refuse(
                reason:
                    "the local side has a \(Self.noun(local.kind)) where the container has a \(Self.noun(remote.kind)); left as is"
            )
        }
        guard let record else { return decideWithoutRecord(local: local, remote: remote) }

        let localChanged = local.map { !record.matchesLocalContent($0) || $0.mode != record.mode } ?? true
        let remoteChanged = remote.map { !record.matchesRemote($0) } ?? true
        switch (localChanged, remoteChanged) {
        case (true, false):
            if strategy == .mirrorRemote, let remote { return remote.kind == .directory ? .same : .download }
            if strategy == .mirrorRemote { return .removeLocal }
            if local == nil { return restoring ? .download : .removeRemote }
            return .upload
        case (false, true):
            if strategy == .mirrorLocal { return .upload }
            if remote == nil { return strategy == .mirrorRemote ? .removeLocal : .upload }
            return .download
        case (false, false):
            // The records say equal, the entries say otherwise (a mode): the local side wins.
            return local == nil ? .nothing : .upload
        case (true, true):
            if strategy == .keepAll { return .keep(reason: "changed on both sides since the last sync (keepAll)") }
            if local == nil {
                // Deleted here, changed there: a deletion on the favoured side wins, as a
                // checkout's deletions must not come back; preferNewest keeps the change.
                return favoured(local: nil, remote: remote) == .remote || strategy == .preferNewest || restoring
                    ? .download : .conflict(winner: .local)
            }
            if remote == nil {
                return favoured(local: local, remote: nil) == .remote && strategy != .preferNewest
                    ? .conflict(winner: .remote) : .upload
            }
            return .conflict(winner: favoured(local: local, remote: remote) ?? .local)
        }
    }

    private func decideWithoutRecord(local: LocalEntry?, remote: SyncEntry?) -> Action {
        switch (local, remote) {
        case (.some, nil): return strategy == .mirrorRemote ? .removeLocal : .upload
        case (nil, .some): return strategy == .mirrorLocal ? .removeRemote : .download
        case (.some(let local), .some(let remote)):
            switch strategy {
            case .keepAll: return .keep(reason: "differs (keepAll)")
            case .preferNewest:
                if local.mtime == remote.mtimeNanoseconds { return .keep(reason: "differs, with the same mtime") }
                return local.mtime > remote.mtimeNanoseconds ? .upload : .download
            default: return favoured(local: local, remote: remote) == .remote ? .download : .upload
            }
        case (nil, nil): return .nothing
        }
    }

    /// Which side's mode wins for two files of the same content.
    private func modeWinner(local: LocalEntry, remote: SyncEntry, record: SyncRecord?) -> Side {
        if let record {
            if local.mode != record.mode { return .local }
            if remote.mode != record.mode { return .remote }
        }
        return favoured(local: local, remote: remote) ?? .local
    }

    static func noun(_ kind: SyncEntry.Kind) -> String {
        switch kind {
        case .file: "file"
        case .directory: "directory"
        case .symlink: "symlink"
        }
    }
}
