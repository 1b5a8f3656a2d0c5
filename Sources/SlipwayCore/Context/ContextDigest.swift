internal import Crypto

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A SHA-256 digest of a file's content, held inline (no allocation per file).
public struct ContentDigest: Sendable, Hashable, CustomStringConvertible {
    // The digest's 32 bytes in order, as four words in memory order.
    private var w0: UInt64
    private var w1: UInt64
    private var w2: UInt64
    private var w3: UInt64

    /// Reads the first 32 bytes of `raw`, which must hold at least 32.
    init(_ raw: UnsafeRawBufferPointer) {
        w0 = raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        w1 = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        w2 = raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        w3 = raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
    }

    init(_ digest: SHA256.Digest) {
        // A SHA-256 digest has 32 bytes.
        self = digest.withUnsafeBytes { ContentDigest($0) }
    }

    static let zero: ContentDigest = [UInt8](repeating: 0, count: 32).withUnsafeBytes { ContentDigest($0) }

    /// Parses 64 hexadecimal digits.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in 0..<32 {
            guard let high = hexValue(digits[2 * index]), let low = hexValue(digits[2 * index + 1]) else { return nil }
            bytes[index] = high << 4 | low
        }
        self = bytes.withUnsafeBytes { ContentDigest($0) }
    }

    /// The 32 bytes.
    public var bytes: [UInt8] { withBytes { Array($0) } }

    /// 64 lowercase hexadecimal digits.
    public var hex: String { hexString(bytes) }

    public var description: String { hex }

    /// Calls `body` with the 32 bytes, without allocating.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { buffer in
            buffer.storeBytes(of: w0, toByteOffset: 0, as: UInt64.self)
            buffer.storeBytes(of: w1, toByteOffset: 8, as: UInt64.self)
            buffer.storeBytes(of: w2, toByteOffset: 16, as: UInt64.self)
            buffer.storeBytes(of: w3, toByteOffset: 24, as: UInt64.self)
            return body(UnsafeRawBufferPointer(buffer))
        }
    }
}

/// What a build context holds and its digest.
public struct ContextSnapshot: Sendable {
    /// SHA-256 (64 hexadecimal digits) of the context's content; see ``ContextDigester`` for
    /// exactly what it covers.
    public var digest: String
    /// The number of regular files in the context.
    public var fileCount: Int
    /// Their total size in bytes.
    public var totalBytes: Int64
    /// How many files were read and hashed this time (the others came from the stat index).
    public var hashedFiles: Int
    /// Their total size in bytes.
    public var hashedBytes: Int64 = 0
    /// Whether every file hashed this time was last changed before the racy window of this
    /// walk: recorded in the index, none of them would be hashed again by the next walk.
    public var hashedFilesSettled: Bool = false
    /// Whether the index the walk hands back holds the records of the files hashed this time
    /// (not when all of them changed within the racy window: such records are never trusted).
    public var hashedFilesRecorded: Bool = false
    /// Every entry of the context in path byte order; regular files carry their
    /// ``ContextEntry/contentDigest``.
    public var entries: [ContextEntry]
    /// How many directories the walk read (`readdir`), and how many it took from the listings
    /// the stat index kept (see ``DirectoryTable``).
    public var directoriesRead: Int = 0
    public var directoriesKept: Int = 0
    /// Whether the walk read directories whose listings the next walk can keep: the stat index
    /// is worth saving for them.
    public var directoryListingsChanged: Bool = false
}

/// Computes the digest of a build context, reading only the files that changed since the stat
/// index was made.
///
/// **What the digest covers**: the relative path, kind and permission bits of every entry the
/// ignore patterns leave in, the content of regular files and the target of symbolic links
/// (not followed). It does not cover absolute paths, times, inodes, owners or sizes on their own,
/// so moving the checkout or `touch` leaves it unchanged; editing, renaming, adding or removing
/// an entry, or `chmod` changes it. All permission bits count, not only `+x`, because Docker's
/// `COPY` keeps them in the image.
///
/// **Encoding** (version 2): the entries, in byte order of their paths, are taken in chunks of
/// 4,096 (``chunkEntries``; the last one shorter); the digest is SHA-256 over
/// `"slipway-context-v2" 0x00` followed by the 32-byte SHA-256 of each chunk in order, and a
/// chunk's SHA-256 is over its entries' encodings:
/// ```
/// for each entry of the chunk:
///   kind     1 byte: 'f' file, 'd' directory, 'l' symbolic link, 'o' other (FIFO, socket, device)
///   path     the relative path's bytes ("/"-separated, no "./"), then 0x00
///   mode     4 bytes, big-endian: st_mode & 0o7777
///   payload  file: the 32 bytes of SHA-256 of its content
///            symbolic link: the target's bytes, then 0x00
///            directory, other: nothing
/// ```
/// Paths and link targets cannot contain NUL and the kind fixes the payload's shape, so the
/// encoding is unambiguous. The chunks let a walk that changed a few files hash only their
/// chunks again (the stat index keeps the others), and hash a whole context on two threads.
public struct ContextDigester: Sendable {
    /// 1 s: safe on every filesystem (see ``StatIndex`` on racy files).
    public static let defaultTimestampGranularityNanoseconds: Int64 = 1_000_000_000
    static let readBufferSize = 64 * 1024

    /// Files whose mtime or ctime is within this much of the stat index's time are hashed
    /// again even when their stat matches.
    public var timestampGranularityNanoseconds: Int64

    public init(timestampGranularityNanoseconds: Int64 = ContextDigester.defaultTimestampGranularityNanoseconds) {
        self.timestampGranularityNanoseconds = timestampGranularityNanoseconds
    }

    /// Walks `contextDir` with `matcher`, reuses the digests of files whose stat matches `index`
    /// (and are not racy), reads and hashes the others, and returns the snapshot with the index
    /// for the next run (save it with ``StatIndex/save(to:)`` when the caller sees fit).
    ///
    /// - Parameter indexTime: the time (ns since the Unix epoch) the new index records;
    ///   defaults to the wall clock read before the walk begins. Only tests pass a later time,
    ///   to stand for the time that passes between two runs.
    public func snapshot(
        contextDir: String,
        matcher: IgnoreMatcher,
        index: StatIndex = StatIndex(),
        indexTime: Int64? = nil
    ) throws(ContextError) -> (snapshot: ContextSnapshot, index: StatIndex) {
        let started = indexTime ?? Self.wallClockNanoseconds()
        let root = try ContextWalker.openContext(contextDir)
        defer { close(root) }
        let granularity = timestampGranularityNanoseconds
        // Runs on the walk's threads: files are looked up in the index (and, when their stat
        // changed, read and hashed) in parallel, as soon as they are stat'ed.
        // The directories' listings the index keeps hold only for the ignore rules they were
        // made with.
        let rules = DirectoryTable.rulesDigest(matcher.patterns)
        let keptListings = index.directories.flatMap { $0.rules == rules ? $0 : nil }
        let walked = try ContextWalker.walk(
            rootFD: root,
            contextDir: contextDir,
            matcher: matcher,
            listings: keptListings,
            recordListings: true,
            granularityNanoseconds: granularity
        ) { (entry: inout ContextEntry, cursor: inout Int) throws(ContextError) -> ContextWalker.Visit in
            if let digest = index.trustedDigest(for: entry, granularityNanoseconds: granularity, cursor: &cursor) {
                entry.contentDigest = digest
                return .keep
            }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readBufferSize, alignment: 16)
            defer { buffer.deallocate() }
            guard let fresh = try Self.hashFile(root: root, entry: entry, buffer: buffer, contextDir: contextDir) else {
                return .drop  // removed between the walk and its read (an editor's temporary file)
            }
            entry.contentDigest = fresh
            return .hashed
        }

        let tally = Self.tally(walked.entries)
        let fileCount = tally.files
        let totalBytes = tally.bytes
        // The index's digest and chunks hold for this walk when its files are the index's
        // (none more or less) and its other entries are the ones the index was taken with:
        // the entries are then the same paths in the same places, and only the chunks holding
        // a file hashed this time can differ.
        let sameShape =
            fileCount == index.count && index.summary?.others == tally.others
            && (walked.hashed.isEmpty
                || walked.hashed.allSatisfy { walked.entries[$0].withPathBytes { index.contains(path: $0) } })
        let chunks: [ContentDigest]
        let digest: ContentDigest
        if sameShape, let summary = index.summary, walked.hashed.isEmpty {
            chunks = summary.chunks
            digest = summary.contextDigest
        } else {
            chunks = Self.chunkDigests(
                of: walked.entries,
                previous: sameShape ? index.summary?.chunks : nil,
                changed: walked.hashed
            )
            digest = Self.combine(chunks)
        }
        let settled = walked.hashed.map { position in
            StatIndex.isSettled(
                mtime: walked.entries[position].mtimeNanoseconds,
                ctime: walked.entries[position].ctimeNanoseconds,
                indexTime: started,
                granularityNanoseconds: granularity
            )
        }
        var newIndex: StatIndex
        var recorded = !walked.hashed.isEmpty
        if walked.hashed.isEmpty && fileCount == index.count {
            // Every file came from the index and the index holds no other: it is already the
            // index of this walk (and its older time is the safer one for the racy rule).
            newIndex = index
        } else if sameShape && !settled.contains(true) {
            // The same files, and every one hashed this time changed within the racy window:
            // a record of it would never be trusted (its times are too close to this walk's),
            // so the index stays as it was, records and digest, and is not copied (19 MB at
            // 200,000 files). Those files no longer match their old records: the next walk
            // hashes them again, as it would have anyway.
            newIndex = index
            recorded = false
        } else if fileCount == index.count,
            let patched = index.replacing(walked.hashed.map { walked.entries[$0] }, timestampNanoseconds: started)
        {
            // The same files, a few of them changed: their records are replaced in place.
            newIndex = patched
        } else {
            var builder = StatIndex.Builder(capacity: fileCount)
            walked.entries.withUnsafeBufferPointer { entries in
                for position in entries.indices where entries[position].kind == .file {
                    let record = StatIndex.Record(entries[position], digest: entries[position].contentDigest ?? .zero)
                    entries[position].withPathBytes { builder.append(path: $0, record) }
                }
            }
            newIndex = builder.build(timestampNanoseconds: started)
        }
        if recorded || walked.hashed.isEmpty {
            newIndex.summary = StatIndex.Summary(contextDigest: digest, others: tally.others, chunks: chunks)
        }
        let listings = Self.directoryTable(
            walked.directories,
            kept: keptListings,
            rules: rules,
            started: started,
            granularityNanoseconds: granularity
        )
        newIndex.directories = listings.table
        let snapshot = ContextSnapshot(
            digest: digest.hex,
            fileCount: fileCount,
            totalBytes: totalBytes,
            hashedFiles: walked.hashed.count,
            hashedBytes: walked.hashed.reduce(0) { $0 + walked.entries[$1].size },
            hashedFilesSettled: !settled.isEmpty && !settled.contains(false),
            hashedFilesRecorded: recorded,
            entries: walked.entries,
            directoriesRead: listings.read,
            directoriesKept: walked.directories.count - listings.read,
            directoryListingsChanged: listings.changed
        )
        return (snapshot, newIndex)
    }

    /// The listings for the next walk: the kept ones this walk used, and those it read whose
    /// directories were settled when it began (a listing of a directory changed since is of no
    /// use: its stamp cannot be trusted). `changed` when the next walk would read fewer
    /// directories with the new table than with the old one; `read` is how many this one read.
    static func directoryTable(
        _ outcomes: [ContextWalker.DirectoryOutcome],
        kept: DirectoryTable?,
        rules: ContentDigest,
        started: Int64,
        granularityNanoseconds: Int64
    ) -> (table: DirectoryTable?, changed: Bool, read: Int) {
        var read: [(prefix: [UInt8], stamp: DirectoryStamp, listing: DirectoryListing)] = []
        var keptRecords: [Int] = []
        for outcome in outcomes {
            switch outcome {
            case .kept(let record): keptRecords.append(record)
            case .read(let prefix, let stamp, let listing): read.append((prefix, stamp, listing))
            }
        }
        let settled = read.filter {
            StatIndex.isSettled(
                mtime: $0.stamp.mtimeNanoseconds,
                ctime: $0.stamp.ctimeNanoseconds,
                indexTime: started,
                granularityNanoseconds: granularityNanoseconds
            )
        }
        if settled.isEmpty, let kept, keptRecords.count == kept.count {
            return (kept, false, read.count)  // every directory as kept, and no other
        }
        // Both in path order, then merged (a path is either kept or read, never both).
        keptRecords.sort()
        let sortedRead = settled.sorted { $0.prefix.lexicographicallyPrecedes($1.prefix) }
        var builder = DirectoryTable.Builder(rules: rules, timestampNanoseconds: started)
        var next = 0
        for record in keptRecords {
            guard let kept else { break }
            let path = kept.path(record)
            while next < sortedRead.count && sortedRead[next].prefix.lexicographicallyPrecedes(path) {
                sortedRead[next].prefix.withUnsafeBufferPointer {
                    builder.append(path: $0, stamp: sortedRead[next].stamp, listing: sortedRead[next].listing)
                }
                next += 1
            }
            builder.append(record: record, of: kept)
        }
        for item in sortedRead[next...] {
            item.prefix.withUnsafeBufferPointer { builder.append(path: $0, stamp: item.stamp, listing: item.listing) }
        }
        return (builder.table.count == 0 ? nil : builder.table, !settled.isEmpty, read.count)
    }

    /// The number of regular files and their size, and the SHA-256 of the digest's input for
    /// the other entries alone (directories, links, special files, in order): what a
    /// ``StatIndex`` cannot vouch for. Cheap: a context has few of them.
    static func tally(_ entries: [ContextEntry]) -> (others: ContentDigest, files: Int, bytes: Int64) {
        var hasher = SHA256()
        var files = 0
        var bytes: Int64 = 0
        entries.withUnsafeBufferPointer { entries in
            for entry in entries.indices {
                if entries[entry].kind == .file {
                    files += 1
                    bytes += entries[entry].size
                } else {
                    encode(entries[entry]) { hasher.update(bufferPointer: $0) }
                }
            }
        }
        return (ContentDigest(hasher.finalize()), files, bytes)
    }

    /// One entry's part of the digest's input.
    @inline(__always)
    static func encode(_ entry: ContextEntry, _ put: (UnsafeRawBufferPointer) -> Void) {
        withUnsafeBytes(of: entry.kind.rawValue) { put($0) }
        entry.withPathBytes { put(UnsafeRawBufferPointer($0)) }
        withUnsafeBytes(of: UInt8(0)) { put($0) }
        withUnsafeBytes(of: entry.mode.bigEndian) { put($0) }
        switch entry.kind {
        case .file:
            // Every file of a snapshot has a digest; a zero digest would only mark a bug.
            (entry.contentDigest ?? ContentDigest.zero).withBytes { put($0) }
        case .symlink:
            entry.withTargetBytes { put(UnsafeRawBufferPointer($0)) }
            withUnsafeBytes(of: UInt8(0)) { put($0) }
        case .directory, .other:
            break
        }
    }

    /// Entries per chunk of the digest's input (see the encoding on ``ContextDigester``).
    static let chunkEntries = 4096

    /// The digest of the chunk digests, in order.
    static func combine(_ chunks: [ContentDigest]) -> ContentDigest {
        var hasher = SHA256()
        "slipway-context-v2".utf8CString.withUnsafeBytes { hasher.update(bufferPointer: $0) }  // with its NUL
        for chunk in chunks { chunk.withBytes { hasher.update(bufferPointer: $0) } }
        return ContentDigest(hasher.finalize())
    }

    /// The SHA-256 of each run of ``chunkEntries`` entries' encodings. `previous` (the chunks of
    /// a walk with the same entries in the same places) is kept for every chunk that holds
    /// none of the positions in `changed`; the others are hashed, on two threads when there
    /// are several.
    static func chunkDigests(
        of entries: [ContextEntry],
        previous: [ContentDigest]? = nil,
        changed: [Int] = []
    ) -> [ContentDigest] {
        let count = (entries.count + chunkEntries - 1) / chunkEntries
        var chunks = previous?.count == count ? previous! : [ContentDigest](repeating: .zero, count: count)
        let todo =
            previous?.count == count ? Array(Set(changed.map { $0 / chunkEntries })).sorted() : Array(0..<count)
        guard !todo.isEmpty else { return chunks }
        entries.withUnsafeBufferPointer { entries in
            chunks.withUnsafeMutableBufferPointer { out in
                let run = ChunkRun(entries: entries, out: out)
                if todo.count == 1 {
                    run.hash(todo[...])
                    return
                }
                let half = todo.count / 2
                let helper = startThread { [todo] in run.hash(todo[half...]) }
                run.hash(todo[..<half])
                switch helper {
                case .success(let thread): pthread_join(thread, nil)
                case .failure: run.hash(todo[half...])
                }
            }
        }
        return chunks
    }

    /// Hashes chunks of `entries` into `out` (distinct chunks per thread).
    private final class ChunkRun: @unchecked Sendable {
        let entries: UnsafeBufferPointer<ContextEntry>
        let out: UnsafeMutableBufferPointer<ContentDigest>

        init(entries: UnsafeBufferPointer<ContextEntry>, out: UnsafeMutableBufferPointer<ContentDigest>) {
            self.entries = entries
            self.out = out
        }

        func hash(_ chunks: ArraySlice<Int>) {
            let capacity = 64 * 1024
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
            defer { buffer.deallocate() }
            for chunk in chunks {
                var hasher = SHA256()
                var used = 0
                func put(_ bytes: UnsafeRawBufferPointer) {
                    if used + bytes.count > capacity {
                        hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<used]))
                        used = 0
                        if bytes.count > capacity {
                            hasher.update(bufferPointer: bytes)
                            return
                        }
                    }
                    if let base = bytes.baseAddress, bytes.count > 0 {
                        (buffer.baseAddress! + used).copyMemory(from: base, byteCount: bytes.count)  // allocated
                    }
                    used += bytes.count
                }
                let start = chunk * ContextDigester.chunkEntries
                for entry in start..<min(entries.count, start + ContextDigester.chunkEntries) {
                    ContextDigester.encode(entries[entry], put)
                }
                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<used]))
                out[chunk] = ContentDigest(hasher.finalize())
            }
        }
    }

    /// Reads the file at `entry.path` below the directory `root` and hashes it; nil when the
    /// file no longer exists.
    static func hashFile(
        root: Int32,
        entry: ContextEntry,
        buffer: UnsafeMutableRawBufferPointer,
        contextDir: String
    ) throws(ContextError) -> ContentDigest? {
        var fd: Int32 = -1
        var code: Int32 = 0
        repeat {
            // O_NONBLOCK: should the file have become a FIFO since the walk, do not hang on it.
            fd = entry.withPathCString { openat(root, $0, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK) }
            code = fd < 0 ? errno : 0
        } while fd < 0 && code == EINTR
        if fd < 0 {
            if code == ENOENT { return nil }
            throw .unreadable(path: joinPath(contextDir, entry.path), reason: ContextError.errnoText(code))
        }
        defer { close(fd) }
        var hasher = SHA256()
        while true {
            let count = read(fd, buffer.baseAddress, buffer.count)
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .unreadable(path: joinPath(contextDir, entry.path), reason: ContextError.errnoText(code))
            }
            if count == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        return ContentDigest(hasher.finalize())
    }

    static func wallClockNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}

extension ContextEntry {
    /// Calls `body` with the path as a NUL-terminated C string of its exact bytes.
    func withPathCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        if let rawPath {
            return try (rawPath + [0]).withUnsafeBufferPointer { bytes in
                try bytes.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }  // non-empty
            }
        }
        return try path.withCString(body)
    }
}
