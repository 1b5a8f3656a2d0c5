#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// What slipway knew about each file of a context the last time it hashed it: path → size,
/// mtime, ctime, inode, mode and content SHA-256. A file whose stat still matches is not read
/// again.
///
/// **Racy clean.** A file can change twice within one tick of the filesystem's clock and keep
/// its size, so an unchanged stat proves nothing about a file modified at about the time it
/// was hashed. The index therefore records ``timestampNanoseconds``, the wall-clock time read
/// *before* the walk whose stats it holds began (earlier than git's "time the index was
/// written", hence safer: a change after a stat always happens after that time). A record is
/// trusted only if its mtime and its ctime are both strictly older than that time minus the
/// timestamp granularity; anything newer is "racy" and is hashed again on the next run. The
/// default granularity is 1 s (``ContextDigester/defaultTimestampGranularityNanoseconds``):
/// safe for every filesystem in use (ext4, xfs and btrfs stamp with the kernel's coarse clock,
/// a few ms; FAT has 2 s for mtime but is not a place for build contexts; NFS servers may
/// lag), at the cost of re-reading files changed in the last second before a run.
///
/// **The context's digest.** The index also keeps the digest of the whole context as it was
/// when its records were taken (``summary``), with a digest of the context's other entries
/// (directories, links, special files: what the records do not hold). A walk whose files all
/// came from the records, with no file more or less and the same other entries, is that same
/// context: its digest is taken from the index instead of hashing the walk's 20,000 entries
/// again (1.6 ms at 20,000 files).
///
/// **The directories' listings.** Version 4 also keeps what the walk read of each directory
/// (``directories``), so the next walk does not read an unchanged directory again; see
/// ``DirectoryTable`` for why that is safe.
///
/// **File format, version 4** (integers little-endian):
/// ```
/// header   8 bytes  magic "SLWSTIDX"
///          u32      version (4; a version 3 file, which ends after its records, is still read)
///          u32      number of records
///          i64      timestampNanoseconds (since the Unix epoch)
///          u32      1 when a summary follows, else 0 (its bytes are then zero)
///          u32      the number of chunk digests after the fixed header (n)
///          32 bytes the context's digest (SHA-256)
///          32 bytes SHA-256 of the other entries' part of it
///          n × 32   the digests of the context's chunks, in order
/// record   u32      path length, then the path's bytes (relative to the context, no NUL)
///          i64      size
///          i64      mtime, ns since the epoch
///          i64      ctime, ns since the epoch
///          u64      inode
///          u32      mode (st_mode & 0o7777)
///          32 bytes SHA-256 of the content
/// listings          ``DirectoryTable``'s encoding (a count of 0 when there is none)
/// trailer  u64      ``checksum(_:)`` of every byte before it
/// ```
/// The trailer only catches damage (the file is written by rename, so a torn write is not
/// possible): a 64-bit hash reads 1.9 MB in a fraction of a millisecond, where SHA-256 took
/// about one.
/// Records are in strictly ascending byte order of their paths (the walk's order). A missing,
/// truncated, corrupted, unsorted or foreign file loads as an empty index.
public struct StatIndex: Sendable, Equatable {
    /// One file's stat and content digest.
    public struct Record: Sendable, Hashable {
        public var size: Int64
        public var mtimeNanoseconds: Int64
        public var ctimeNanoseconds: Int64
        public var inode: UInt64
        public var mode: UInt32
        public var contentDigest: ContentDigest

        public init(
            size: Int64,
            mtimeNanoseconds: Int64,
            ctimeNanoseconds: Int64,
            inode: UInt64,
            mode: UInt32,
            contentDigest: ContentDigest
        ) {
            self.size = size
            self.mtimeNanoseconds = mtimeNanoseconds
            self.ctimeNanoseconds = ctimeNanoseconds
            self.inode = inode
            self.mode = mode
            self.contentDigest = contentDigest
        }

        init(_ entry: ContextEntry, digest: ContentDigest) {
            self.init(
                size: entry.size,
                mtimeNanoseconds: entry.mtimeNanoseconds,
                ctimeNanoseconds: entry.ctimeNanoseconds,
                inode: entry.inode,
                mode: entry.mode,
                contentDigest: digest
            )
        }

        /// Whether `entry`'s stat is the one recorded.
        func matches(_ entry: ContextEntry) -> Bool {
            size == entry.size && mtimeNanoseconds == entry.mtimeNanoseconds
                && ctimeNanoseconds == entry.ctimeNanoseconds && inode == entry.inode && mode == entry.mode
        }
    }

    static let magic: [UInt8] = Array("SLWSTIDX".utf8)
    static let version: UInt32 = 4
    static let headerSize = 24 + 8 + 32 + 32
    static let recordFixedSize = 8 + 8 + 8 + 8 + 4 + 32
    static let trailerSize = 8

    /// The digest of the context these records were taken from, and of its entries that are
    /// not regular files (see ``ContextDigester/tally(_:)``).
    public struct Summary: Sendable, Hashable {
        public var contextDigest: ContentDigest
        public var others: ContentDigest
        /// The digests of the context's chunks (``ContextDigester/chunkEntries`` entries each).
        public var chunks: [ContentDigest] = []
    }
    /// Larger files are not indexes slipway wrote (10 million files of 100 bytes).
    static let maximumFileSize = 1 << 30

    // The records in the file's encoding (see above), end to end, sorted by the bytes of their
    // paths, and where each starts: loading copies the file's records in one piece and builds
    // no value per record (the lookups read the fields in place); the digester looks records
    // up by merging with the walk's output (also in path byte order).
    private var recordBytes: [UInt8]
    private var recordStarts: [Int32]

    /// Wall-clock time, in ns since the Unix epoch, at which the walk these records come from
    /// began. Records not strictly older than this minus the granularity are re-hashed.
    public var timestampNanoseconds: Int64

    /// The context these records are all of, when known; any index made from another set of
    /// records has none until a walk sets it.
    public var summary: Summary?

    /// The listings of the context's directories, for the next walk (see ``DirectoryTable``).
    var directories: DirectoryTable?

    /// An empty index: every file is hashed.
    public init() {
        recordBytes = []
        recordStarts = []
        timestampNanoseconds = 0
        summary = nil
        directories = nil
    }

    public var count: Int { recordStarts.count }

    /// The paths of the records, in byte order.
    public var paths: [String] {
        recordBytes.withUnsafeBufferPointer { bytes in
            (0..<count).map { String(decoding: path($0, in: bytes), as: UTF8.self) }
        }
    }

    /// Records by path, as a dictionary: for inspection and tests, not for hot paths (it builds
    /// a string per record; the digester merges by path order instead). Setting it replaces
    /// every record and keeps ``timestampNanoseconds``.
    public var records: [String: Record] {
        get {
            var result: [String: Record] = [:]
            result.reserveCapacity(count)
            recordBytes.withUnsafeBufferPointer { bytes in
                for position in 0..<count {
                    result[String(decoding: path(position, in: bytes), as: UTF8.self)] = record(position, in: bytes)
                }
            }
            return result
        }
        set {
            let sorted = newValue.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            var builder = Builder(capacity: sorted.count)
            for (path, record) in sorted {
                var path = path
                path.withUTF8 { builder.append(path: $0, record) }
            }
            let timestamp = timestampNanoseconds
            self = builder.build(timestampNanoseconds: timestamp)
        }
    }

    /// Adds the records of `other` (a walk of the same context, perhaps with other ignore
    /// patterns), replacing those with the same paths, in one pass. The result keeps the
    /// *earlier* of the two times: a record is only as trustworthy as the time of the walk
    /// that took it, and a later time would make a racy record look safe.
    public mutating func merge(_ other: StatIndex) {
        var builder = Builder(capacity: count + other.count)
        recordBytes.withUnsafeBufferPointer { mine in
            other.recordBytes.withUnsafeBufferPointer { theirs in
                var left = 0
                var right = 0
                while left < count || right < other.count {
                    let order: Int
                    if left == count {
                        order = 1
                    } else if right == other.count {
                        order = -1
                    } else {
                        order = compareBytes(path(left, in: mine), other.path(right, in: theirs))
                    }
                    if order < 0 {
                        builder.append(path: path(left, in: mine), record(left, in: mine))
                        left += 1
                    } else {
                        builder.append(path: other.path(right, in: theirs), other.record(right, in: theirs))
                        right += 1
                        if order == 0 { left += 1 }
                    }
                }
            }
        }
        let earlier =
            count == 0
            ? other.timestampNanoseconds
            : other.count == 0 ? timestampNanoseconds : min(timestampNanoseconds, other.timestampNanoseconds)
        let listings = other.directories ?? directories
        self = builder.build(timestampNanoseconds: earlier)
        directories = listings
    }

    /// This index with the records of `files` (regular files with their new content digests)
    /// replaced and the time set to `timestampNanoseconds`; nil when one of them has no record
    /// here (then the caller builds a new index).
    func replacing(_ files: [ContextEntry], timestampNanoseconds: Int64) -> StatIndex? {
        var result = self
        result.summary = nil  // other content: the caller sets the new one
        for file in files {
            guard let position = file.withPathBytes({ position(of: $0) }) else { return nil }
            let at = result.recordBytes.withUnsafeBufferPointer { result.pathRange(position, in: $0).upperBound }
            result.recordBytes.withUnsafeMutableBytes {
                Self.store(Record(file, digest: file.contentDigest ?? .zero), into: $0, at: at)
            }
        }
        result.timestampNanoseconds = timestampNanoseconds
        return result
    }

    /// Whether a record has exactly these path bytes.
    func contains(path: UnsafeBufferPointer<UInt8>) -> Bool { position(of: path) != nil }

    /// The record for `path` (relative to the context), if any.
    public subscript(path: String) -> Record? {
        var path = path
        return path.withUTF8 { key in
            position(of: key).map { position in recordBytes.withUnsafeBufferPointer { record(position, in: $0) } }
        }
    }

    /// The recorded digest of `entry` if the record can be trusted: same size, mtime, ctime,
    /// inode and mode, and not racy (both times strictly older than the index's time minus
    /// `granularityNanoseconds`).
    public func trustedDigest(for entry: ContextEntry, granularityNanoseconds: Int64) -> ContentDigest? {
        guard let position = entry.withPathBytes({ position(of: $0) }) else { return nil }
        return trustedDigest(at: position, for: entry, granularityNanoseconds: granularityNanoseconds)
    }

    /// ``trustedDigest(for:granularityNanoseconds:)`` for successive files of one directory:
    /// `cursor` (start at -1) remembers where the last one was found, and the next is looked
    /// for just after it before the index is searched.
    func trustedDigest(for entry: ContextEntry, granularityNanoseconds: Int64, cursor: inout Int) -> ContentDigest? {
        guard let position = entry.withPathBytes({ position(of: $0, after: &cursor) }) else { return nil }
        return trustedDigest(at: position, for: entry, granularityNanoseconds: granularityNanoseconds)
    }

    func trustedDigest(at position: Int, for entry: ContextEntry, granularityNanoseconds: Int64) -> ContentDigest? {
        let kept = recordBytes.withUnsafeBufferPointer { record(position, in: $0) }
        guard kept.matches(entry),
            Self.isSettled(
                mtime: kept.mtimeNanoseconds,
                ctime: kept.ctimeNanoseconds,
                indexTime: timestampNanoseconds,
                granularityNanoseconds: granularityNanoseconds
            )
        else { return nil }
        return kept.contentDigest
    }

    /// The racy-clean rule: a stat taken by a walk that began at `indexTime` can be trusted
    /// later only if both times are strictly older than `indexTime` minus the granularity.
    static func isSettled(mtime: Int64, ctime: Int64, indexTime: Int64, granularityNanoseconds: Int64) -> Bool {
        let (safeBefore, overflow) = indexTime.subtractingReportingOverflow(granularityNanoseconds)
        return !overflow && mtime < safeBefore && ctime < safeBefore
    }

    /// Where the path of record `position` lies in `bytes` (``recordBytes``); its fixed part
    /// (size, times, inode, mode, digest) follows at the range's end.
    private func pathRange(_ position: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        let start = Int(recordStarts[position])
        let length = Int(
            UInt32(littleEndian: UnsafeRawBufferPointer(bytes).loadUnaligned(fromByteOffset: start, as: UInt32.self))
        )
        return (start + 4)..<(start + 4 + length)
    }

    private func path(_ position: Int, in bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: bytes[pathRange(position, in: bytes)])
    }

    /// Record `position`, read from `bytes` (``recordBytes``).
    private func record(_ position: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Record {
        Self.record(
            at: UnsafeRawBufferPointer(
                rebasing: UnsafeRawBufferPointer(bytes)[pathRange(position, in: bytes).upperBound...]
            )
        )
    }

    /// The record whose fixed part starts at `raw` (which holds at least ``recordFixedSize`` bytes).
    private static func record(at raw: UnsafeRawBufferPointer) -> Record {
        func u64(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        return Record(
            size: Int64(bitPattern: u64(0)),
            mtimeNanoseconds: Int64(bitPattern: u64(8)),
            ctimeNanoseconds: Int64(bitPattern: u64(16)),
            inode: u64(24),
            mode: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 32, as: UInt32.self)),
            contentDigest: ContentDigest(UnsafeRawBufferPointer(rebasing: raw[36...]))
        )
    }

    /// Writes `record`'s fixed part at `offset` of `out`.
    private static func store(_ record: Record, into out: UnsafeMutableRawBufferPointer, at offset: Int) {
        out.storeBytes(of: record.size.littleEndian, toByteOffset: offset, as: Int64.self)
        out.storeBytes(of: record.mtimeNanoseconds.littleEndian, toByteOffset: offset + 8, as: Int64.self)
        out.storeBytes(of: record.ctimeNanoseconds.littleEndian, toByteOffset: offset + 16, as: Int64.self)
        out.storeBytes(of: record.inode.littleEndian, toByteOffset: offset + 24, as: UInt64.self)
        out.storeBytes(of: record.mode.littleEndian, toByteOffset: offset + 32, as: UInt32.self)
        record.contentDigest.withBytes {
            UnsafeMutableRawBufferPointer(rebasing: out[(offset + 36)..<(offset + 68)]).copyMemory(from: $0)
        }
    }

    /// Binary search for the record whose path is `key`.
    private func position(of key: UnsafeBufferPointer<UInt8>) -> Int? {
        recordBytes.withUnsafeBufferPointer { bytes in
            var low = 0
            var high = count
            while low < high {
                let middle = (low + high) / 2
                let order = compareBytes(path(middle, in: bytes), key)
                if order == 0 { return middle }
                if order < 0 { low = middle + 1 } else { high = middle }
            }
            return nil
        }
    }

    /// Finds `key`, which sorts after the path at `cursor` (when `cursor` is not -1): the few
    /// records after `cursor` first, then a binary search. On success `cursor` is the position.
    func position(of key: UnsafeBufferPointer<UInt8>, after cursor: inout Int) -> Int? {
        let found: Int? = recordBytes.withUnsafeBufferPointer { bytes in
            if cursor >= 0 {
                var probe = cursor + 1
                while probe < count && probe <= cursor + 4 {
                    let order = compareBytes(path(probe, in: bytes), key)
                    if order == 0 { return probe }
                    // Every record from `cursor` to here sorts before `key`: it is not here.
                    if order > 0 { return -1 }
                    probe += 1
                }
            }
            return nil
        }
        if let found {
            if found < 0 { return nil }
            cursor = found
            return found
        }
        guard let position = position(of: key) else { return nil }
        cursor = position
        return position
    }

    /// Builds an index from records added in ascending path order.
    struct Builder {
        private var index = StatIndex()

        init(capacity: Int) {
            index.recordStarts.reserveCapacity(capacity)
            index.recordBytes.reserveCapacity(capacity * (4 + StatIndex.recordFixedSize + 32))
        }

        /// Adds a record; `path` must sort after every path added before (else it is dropped:
        /// the index stays sorted, the file is only hashed again next time).
        mutating func append(path: UnsafeBufferPointer<UInt8>, _ record: Record) {
            let size = 4 + path.count + StatIndex.recordFixedSize
            guard !path.isEmpty, path.count < Int(Int32.max) - size - index.recordBytes.count else { return }
            if index.count > 0 {
                let previous = index.recordBytes.withUnsafeBufferPointer { index.path(index.count - 1, in: $0) }
                guard compareBytes(previous, path) < 0 else { return }
            }
            let start = index.recordBytes.count
            index.recordStarts.append(Int32(start))
            appendLittleEndian(UInt32(path.count), to: &index.recordBytes)
            index.recordBytes.append(contentsOf: path)
            index.recordBytes.append(contentsOf: repeatElement(0, count: StatIndex.recordFixedSize))
            index.recordBytes.withUnsafeMutableBytes { StatIndex.store(record, into: $0, at: start + 4 + path.count) }
        }

        func build(timestampNanoseconds: Int64) -> StatIndex {
            var result = index
            result.timestampNanoseconds = timestampNanoseconds
            return result
        }
    }

    // MARK: Loading

    /// Reads the index at `path`. Never fails: a missing, unreadable, truncated, corrupted or
    /// foreign-version file gives an empty index, so the next run hashes every file.
    ///
    /// The file is mapped, checked, and its records copied out in one piece (the mapping is
    /// released before this returns, so a file truncated later cannot fault a lookup).
    public static func load(from path: String) -> StatIndex {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return StatIndex() }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size > 0,
            info.st_size <= maximumFileSize
        else { return StatIndex() }
        let size = Int(info.st_size)
        #if canImport(Glibc)
        let flags = MAP_PRIVATE | MAP_POPULATE
        #else
        let flags = MAP_PRIVATE
        #endif
        guard let mapped = mmap(nil, size, PROT_READ, flags, fd, 0), mapped != MAP_FAILED else {
            return StatIndex()
        }
        defer { munmap(mapped, size) }
        // A file truncated by someone else while mapped would fault on access; slipway writes
        // indexes by rename, so a file it reads is never truncated in place.
        return decode(UnsafeRawBufferPointer(start: mapped, count: size)) ?? StatIndex()
    }

    /// Parses the bytes of an index file; nil if they are not a valid version-3 or 4 index (wrong
    /// magic, version or checksum, truncated, or paths not in strictly ascending order).
    static func decode(_ bytes: [UInt8]) -> StatIndex? {
        bytes.withUnsafeBytes { decode($0) }
    }

    static func decode(_ raw: UnsafeRawBufferPointer) -> StatIndex? {
        guard raw.count >= headerSize + trailerSize, raw.starts(with: magic) else { return nil }
        func u32(_ offset: Int) -> UInt32 {
            UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        }
        func u64(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        func i64(_ offset: Int) -> Int64 { Int64(bitPattern: u64(offset)) }

        // Version 3 (no directory listings) is still read: its records stay good.
        guard u32(8) == version || u32(8) == 3 else { return nil }
        let body = raw.count - trailerSize
        guard checksum(UnsafeRawBufferPointer(rebasing: raw[0..<body])) == u64(body) else { return nil }

        let count = Int(u32(12))
        // Each record takes at least its fixed part and a length: reject absurd counts early.
        let chunkCount = Int(u32(28))
        guard chunkCount <= (body - headerSize) / 32 else { return nil }
        let recordsStart = headerSize + 32 * chunkCount
        guard count <= (body - recordsStart) / (4 + recordFixedSize) else { return nil }
        var index = StatIndex()
        index.recordStarts.reserveCapacity(count)
        guard let base = raw.baseAddress, body < Int(Int32.max) else { return nil }
        var offset = recordsStart
        var previous = 0..<0
        for _ in 0..<count {
            guard body - offset >= 4 else { return nil }
            index.recordStarts.append(Int32(offset - recordsStart))
            let length = Int(u32(offset))
            offset += 4
            guard length > 0, body - offset >= length + recordFixedSize else { return nil }
            // Strictly ascending paths: the lookups' binary search depends on it.
            if index.recordStarts.count > 1 {
                let common = min(previous.count, length)
                let order = memcmp(base + previous.lowerBound, base + offset, common)
                guard order < 0 || (order == 0 && previous.count < length) else { return nil }
            }
            previous = offset..<(offset + length)
            offset += length + recordFixedSize
        }
        // The records in one copy, into pages populated in one call rather than faulted in
        // one by one.
        let records = UnsafeRawBufferPointer(rebasing: raw[recordsStart..<offset])
        index.recordBytes = [UInt8](unsafeUninitializedCapacity: records.count) { buffer, initialized in
            prefault(UnsafeMutableRawBufferPointer(buffer))
            if let target = buffer.baseAddress, let source = records.baseAddress {
                UnsafeMutableRawPointer(target).copyMemory(from: source, byteCount: records.count)
            }
            initialized = records.count
        }
        // Version 3 ends with the records; version 4 has the directory listings after them.
        if u32(8) == 3 {
            guard offset == body else { return nil }
        } else {
            guard body - offset >= DirectoryTable.headerSize,
                let table = DirectoryTable.decode(UnsafeRawBufferPointer(rebasing: raw[offset..<body]))
            else { return nil }
            index.directories = table.count == 0 ? nil : table
        }
        index.timestampNanoseconds = i64(16)
        switch u32(24) {
        case 0: index.summary = nil
        case 1:
            index.summary = Summary(
                contextDigest: ContentDigest(UnsafeRawBufferPointer(rebasing: raw[32..<64])),
                others: ContentDigest(UnsafeRawBufferPointer(rebasing: raw[64..<96])),
                chunks: (0..<chunkCount).map { chunk in
                    ContentDigest(UnsafeRawBufferPointer(rebasing: raw[(headerSize + 32 * chunk)...]))
                }
            )
        default: return nil
        }
        return index
    }

    // MARK: Saving

    /// The bytes of the index file.
    func encoded() -> [UInt8] {
        let size =
            Self.headerSize + 32 * (summary?.chunks.count ?? 0) + recordBytes.count
            + (directories?.encodedSize ?? DirectoryTable.headerSize) + Self.trailerSize
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            let out = UnsafeMutableRawBufferPointer(buffer)
            var offset = 0
            func put<T: FixedWidthInteger>(_ value: T) {
                out.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
                offset += MemoryLayout<T>.size
            }
            func put(_ bytes: UnsafeRawBufferPointer) {
                guard let base = bytes.baseAddress, bytes.count > 0 else { return }
                (out.baseAddress! + offset).copyMemory(from: base, byteCount: bytes.count)  // size ≥ header
                offset += bytes.count
            }
            Self.magic.withUnsafeBytes { put($0) }
            put(Self.version)
            put(UInt32(truncatingIfNeeded: count))
            put(timestampNanoseconds)
            put(UInt32(summary == nil ? 0 : 1))
            put(UInt32(truncatingIfNeeded: summary?.chunks.count ?? 0))
            (summary?.contextDigest ?? .zero).withBytes { put($0) }
            (summary?.others ?? .zero).withBytes { put($0) }
            for chunk in summary?.chunks ?? [] { chunk.withBytes { put($0) } }
            recordBytes.withUnsafeBytes { put($0) }
            if let directories {
                var table: [UInt8] = []
                table.reserveCapacity(directories.encodedSize)
                directories.encode(into: &table)
                table.withUnsafeBytes { put($0) }
            } else {
                put(UInt32(0))
                put(Int64(0))
                ContentDigest.zero.withBytes { put($0) }
            }
            put(Self.checksum(UnsafeRawBufferPointer(rebasing: out[0..<offset])))
            initialized = offset
        }
    }

    /// A 64-bit hash of `bytes` for the trailer (xxHash64's round and avalanche, four lanes):
    /// it catches damage, it is not a defence against someone who can write the file.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
        let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
        let prime3: UInt64 = 0x1656_67B1_9E37_79F9
        @inline(__always) func round(_ lane: UInt64, _ word: UInt64) -> UInt64 {
            let mixed = lane &+ word &* prime2
            return ((mixed << 31) | (mixed >> 33)) &* prime1
        }
        @inline(__always) func word(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        var lanes: (UInt64, UInt64, UInt64, UInt64) = (prime1 &+ prime2, prime2, 0, 0 &- prime1)
        var offset = 0
        while bytes.count - offset >= 32 {
            lanes.0 = round(lanes.0, word(offset))
            lanes.1 = round(lanes.1, word(offset + 8))
            lanes.2 = round(lanes.2, word(offset + 16))
            lanes.3 = round(lanes.3, word(offset + 24))
            offset += 32
        }
        var hash = UInt64(truncatingIfNeeded: bytes.count) &+ prime3
        for lane in [lanes.0, lanes.1, lanes.2, lanes.3] {
            hash = (hash ^ round(0, lane)) &* prime1 &+ prime3
        }
        while bytes.count - offset >= 8 {
            hash = (hash ^ round(0, word(offset))) &* prime1 &+ prime3
            offset += 8
        }
        while offset < bytes.count {
            hash = (hash ^ UInt64(bytes[offset]) &* prime3) &* prime1
            hash = (hash << 11) | (hash >> 53)
            offset += 1
        }
        hash ^= hash >> 33
        hash = hash &* prime2
        hash ^= hash >> 29
        hash = hash &* prime3
        return hash ^ (hash >> 32)
    }

    /// Writes the index to `path` atomically: a temporary file in the same directory, written
    /// and renamed over `path`. The directory must exist. On failure the temporary file is
    /// removed and `path` is left as it was.
    ///
    /// No `fsync`: the index is a cache with a checksum. After a power loss it may be old or
    /// damaged, and a damaged one is ignored (the next run reads the context once). An `fsync`
    /// would cost every run that changed a file 5–30 ms while the disk is busy.
    public func save(to path: String) throws(ContextError) {
        let bytes = encoded()
        let temporary = TempFiles.temporaryPath(for: path)
        func failure(_ step: String, _ code: Int32) -> ContextError {
            .indexWriteFailed(path: path, reason: "\(step): \(ContextError.errnoText(code))")
        }

        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("create \(temporary)", errno) }
        var error: ContextError?
        bytes.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let count = write(fd, raw.baseAddress! + written, raw.count - written)  // non-empty: header
                if count < 0 {
                    if errno == EINTR { continue }
                    error = failure("write", errno)
                    return
                }
                written += count
            }
        }
        if close(fd) != 0 && error == nil { error = failure("close", errno) }
        if error == nil && rename(temporary, path) != 0 { error = failure("rename", errno) }
        if let error {
            unlink(temporary)
            throw error
        }
    }
}

/// memcmp order of two byte strings (a proper prefix sorts first).
@inline(__always)
func compareBytes(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
    let common = min(a.count, b.count)
    if common > 0, let baseA = a.baseAddress, let baseB = b.baseAddress {
        let order = memcmp(baseA, baseB, common)
        if order != 0 { return Int(order) }
    }
    return a.count - b.count
}

@inline(__always)
func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
}
