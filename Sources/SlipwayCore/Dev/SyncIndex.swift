internal import Foundation

/// What one path was when it was last synced: the two sides then held the same thing. A side
/// whose stat no longer matches its half of the record has changed since; a path with a
/// record is one this sync put (or found) on both sides, and only such paths are ever
/// deleted because the other side deleted them.
struct SyncRecord: Sendable, Equatable {
    var kind: SyncEntry.Kind
    /// The local file's size.
    var size: UInt64
    /// The remote file's size: the same, unless the file changed while it was being copied
    /// (the next change of the side that was still writing then goes through).
    var remoteSize: UInt64
    /// The local file's mtime, inode and ctime after it was synced.
    var localMtime: Int64
    var localInode: UInt64
    var localCtime: Int64
    /// The remote file's mtime after it was synced (equal to `localMtime` unless the initial
    /// sync found equal contents with different times).
    var remoteMtime: Int64
    /// Permission bits (files and directories).
    var mode: UInt32
    /// SHA-256 of the content, when it was computed (never needed to send a file).
    var sha256: String?
    /// A symlink's target.
    var target: String?

    init(
        kind: SyncEntry.Kind,
        size: UInt64,
        remoteSize: UInt64? = nil,
        localMtime: Int64,
        localInode: UInt64,
        localCtime: Int64,
        remoteMtime: Int64,
        mode: UInt32,
        sha256: String? = nil,
        target: String? = nil
    ) {
        self.kind = kind
        self.size = size
        self.remoteSize = remoteSize ?? size
        self.localMtime = localMtime
        self.localInode = localInode
        self.localCtime = localCtime
        self.remoteMtime = remoteMtime
        self.mode = mode
        self.sha256 = sha256
        self.target = target
    }

    /// Whether the local entry is still what was synced (a file: size, mtime, inode, ctime
    /// and mode; a symlink: its target; a directory: being one).
    func matchesLocal(_ local: LocalEntry) -> Bool {
        guard local.kind == kind else { return false }
        switch kind {
        case .file:
            return local.size == size && local.mtime == localMtime && local.inode == localInode
                && local.ctime == localCtime && local.mode == mode
        case .symlink: return local.target == target
        case .directory: return true
        }
    }

    /// Whether the local file has the content that was synced, judged by size and mtime only
    /// (a rename changes its ctime, a copy its inode).
    func matchesLocalContent(_ local: LocalEntry) -> Bool {
        guard local.kind == kind else { return false }
        switch kind {
        case .file: return local.size == size && local.mtime == localMtime
        case .symlink: return local.target == target
        case .directory: return true
        }
    }

    /// Whether the remote entry is still what was synced.
    func matchesRemote(_ remote: SyncEntry) -> Bool {
        guard remote.kind == kind else { return false }
        switch kind {
        case .file:
            return remote.size == remoteSize && remote.mtimeNanoseconds == remoteMtime && remote.mode == mode
        case .symlink: return remote.linkTarget == target
        case .directory: return true
        }
    }

    /// What the remote must still hold to be overwritten or removed as this record's.
    var remoteExpectation: SyncExpectation {
        kind == .file ? .file(size: remoteSize, mtimeNanoseconds: remoteMtime) : .anything
    }
}

/// A conflict this sync resolved by keeping the container's version beside the local one.
public struct SyncConflict: Sendable, Equatable, Codable {
    /// The path both sides changed (the local version kept this name on both sides).
    public var path: String
    /// The copy of the container's version (relative to the local root); the conflict is
    /// listed until this file is removed.
    public var copy: String
    /// When it was found, UTC (`2025-01-31T12:00:00Z`).
    public var detectedAt: String

    public init(path: String, copy: String, detectedAt: String) {
        self.path = path
        self.copy = copy
        self.detectedAt = detectedAt
    }
}

/// The state a sync keeps between runs: the records of what was synced and the open
/// conflicts. Written as JSON, atomically (temp file + rename), after the initial sync,
/// after batches (at most once a second) and when the sync stops.
struct SyncState: Sendable, Equatable {
    /// 2: JSON lines (1 was one JSON document).
    static let version = 2

    var records: [String: SyncRecord] = [:]
    var conflicts: [SyncConflict] = []

    /// `<config dir>/.devspace/slipway/sync-<identifier>.json`.
    static func path(configDirectory: String, identifier: String) -> String {
        joinPath(configDirectory, ".devspace/slipway/sync-\(identifier).json")
    }

    /// A short stable identifier for a sync between `localRoot` and a remote described by
    /// `remote` (a container's name and its path): 16 hex digits of SHA-256.
    static func identifier(localRoot: String, remote: String) -> String {
        String(sha256Hex(localRoot + "\u{0}" + remote).prefix(16))
    }

    /// The state saved at `path`; an empty state when there is none or it cannot be read
    /// (then `problem` says why: the sync starts as a first sync, which loses nothing).
    static func load(from path: String) -> (state: SyncState, problem: String?) {
        guard let data = FileManager.default.contents(atPath: path) else { return (SyncState(), nil) }
        do {
            // Line by line: decoding the whole file at once holds a map of every value of
            // every entry (16 MB for 20,000 files, the largest part of a restart's memory).
            var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)[...]
            guard let first = lines.popFirst() else { throw StateFileError.empty }
            let decoder = JSONDecoder()
            let header = try decoder.decode(StateFile.Header.self, from: first)
            guard header.version == version else {
                return (SyncState(), "\(path) has version \(header.version), not \(version); starting afresh")
            }
            var state = SyncState()
            state.conflicts = header.conflicts
            // A hint only: a damaged header must not make it allocate without bound.
            state.records.reserveCapacity(min(max(header.entries, 0), data.count / 8))
            for line in lines {
                for entry in try decoder.decode([StateFile.Entry].self, from: line) {
                    state.records[entry.path] = entry.record
                }
            }
            return (state, nil)
        } catch {
            return (SyncState(), "\(path) cannot be read (\(error)); starting afresh")
        }
    }

    /// Writes the state to `path` (its directory made if needed) with a temp file and a rename.
    func save(to path: String) -> String? {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            return "cannot create \(directory): \(error.localizedDescription)"
        }
        let keys = records.keys.sorted()
        var bytes: [UInt8] = []
        do {
            let encoder = JSONEncoder()
            let header = StateFile.Header(version: Self.version, conflicts: conflicts, entries: keys.count)
            bytes.append(contentsOf: try encoder.encode(header))
            for start in stride(from: 0, to: keys.count, by: StateFile.entriesPerLine) {
                let line = keys[start..<min(start + StateFile.entriesPerLine, keys.count)].compactMap { key in
                    records[key].map { StateFile.Entry(path: key, record: $0) }
                }
                bytes.append(UInt8(ascii: "\n"))
                bytes.append(contentsOf: try encoder.encode(line))
            }
            bytes.append(UInt8(ascii: "\n"))
        } catch {
            return "cannot encode the sync state: \(error)"
        }
        switch AtomicFile.write(bytes, to: path, mode: 0o644) {
        case .success: return nil
        case .failure(let failure): return failure.message
        }
    }
}

private enum StateFileError: Error, CustomStringConvertible {
    case empty
    var description: String { "the file is empty" }
}

/// The file's form: JSON lines. The first is the header (`{"conflicts":[…],"entries":20000,
/// "version":2}`); each next one a JSON array of up to ``entriesPerLine`` entries, each entry an
/// array (not an object, to keep a 20,000-file state small), in path order. Lines are decoded
/// one at a time, so that reading a large state never holds all of it decoded at once.
private enum StateFile {
    static let entriesPerLine = 500

    struct Header: Codable {
        var version: Int
        var conflicts: [SyncConflict]
        /// How many entries the lines below hold (to size the records).
        var entries: Int

        init(version: Int, conflicts: [SyncConflict], entries: Int) {
            self.version = version
            self.conflicts = conflicts
            self.entries = entries
        }

        /// Reads the version of any earlier form too (version 1 kept its entries here, as an
        /// array), so that an old file is said to be one.
        init(from decoder: any Decoder) throws {
            let values = try decoder.container(keyedBy: CodingKeys.self)
            version = try values.decode(Int.self, forKey: .version)
            conflicts = (try? values.decode([SyncConflict].self, forKey: .conflicts)) ?? []
            entries = (try? values.decode(Int.self, forKey: .entries)) ?? 0
        }
    }

    struct Entry: Codable {
        var path: String
        var record: SyncRecord

        init(path: String, record: SyncRecord) {
            self.path = path
            self.record = record
        }

        // [path, kind, size, remoteSize, localMtime, localInode, localCtime, remoteMtime, mode, sha256|null,
        //  target|null]
        init(from decoder: any Decoder) throws {
            var values = try decoder.unkeyedContainer()
            path = try values.decode(String.self)
            let kindCode = try values.decode(UInt8.self)
            guard let kind = SyncEntry.Kind(rawValue: kindCode) else {
                throw DecodingError.dataCorruptedError(in: values, debugDescription: "unknown kind \(kindCode)")
            }
            record = SyncRecord(
                kind: kind,
                size: try values.decode(UInt64.self),
                remoteSize: try values.decode(UInt64.self),
                localMtime: try values.decode(Int64.self),
                localInode: try values.decode(UInt64.self),
                localCtime: try values.decode(Int64.self),
                remoteMtime: try values.decode(Int64.self),
                mode: try values.decode(UInt32.self),
                sha256: try values.decodeIfPresent(String.self),
                target: try values.decodeIfPresent(String.self)
            )
        }

        func encode(to encoder: any Encoder) throws {
            var values = encoder.unkeyedContainer()
            try values.encode(path)
            try values.encode(record.kind.rawValue)
            try values.encode(record.size)
            try values.encode(record.remoteSize)
            try values.encode(record.localMtime)
            try values.encode(record.localInode)
            try values.encode(record.localCtime)
            try values.encode(record.remoteMtime)
            try values.encode(record.mode)
            if let sha = record.sha256 { try values.encode(sha) } else { try values.encodeNil() }
            if let target = record.target { try values.encode(target) } else { try values.encodeNil() }
        }
    }
}
