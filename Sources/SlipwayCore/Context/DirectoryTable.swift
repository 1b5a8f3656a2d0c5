internal import Crypto

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A child of a directory the walk lists; its name (NUL-terminated) is in the listing's pool.
struct WalkChild: Equatable {
    var start: Int32
    var length: Int32
    /// Whether the child itself is listed (false for an excluded directory entered only
    /// because something below it may be re-included).
    var listed: Bool
    /// Whether the walk enters it.
    var enter: Bool
}

/// One position in a directory's output: a child's own entry, or what lies below it.
struct WalkKey: Equatable {
    var child: Int32
    var below: Bool
}

/// What the walk read of one directory: its children's names (`readdir`), what the ignore
/// rules made of them, and the order the walk visits them in.
struct DirectoryListing: Equatable {
    var pool: [UInt8] = []
    var children: [WalkChild] = []
    var keys: [WalkKey] = []
}

/// A directory's stat as its parent's listing saw it: the key that says whether a kept
/// listing still holds.
struct DirectoryStamp: Equatable {
    var device: UInt64
    var inode: UInt64
    var mtimeNanoseconds: Int64
    var ctimeNanoseconds: Int64
}

/// The listings of a context's directories, kept in the stat index so that the next walk does
/// not read again (`readdir`, ignore rules, sorting) a directory whose stat shows it unchanged:
/// git's untracked cache idea. Every file is still `lstat`'ed; only the listing is kept.
///
/// **Why a kept listing is never stale.** Creating, removing or renaming an entry of a
/// directory sets the directory's mtime and ctime to the current time. A listing is kept with
/// the directory's stamp (device, inode, mtime, ctime) taken *before* it was read, and is used
/// again only when (1) the directory's stamp now is exactly the kept one, (2) that mtime and
/// ctime are strictly older than the start of the walk that read it minus the timestamp
/// granularity (the racy rule of ``StatIndex``: a change at or after the reading would carry a
/// newer time, so it cannot hide behind an equal stamp), and (3) the ignore rules are the
/// ones it was made with (``rulesDigest``). A directory that changed between its stamp and its
/// reading is kept with the old stamp, which no longer matches: it is read again next time.
///
/// **Encoding** (after the stat index's records, index version 4):
/// ```
/// u32 count, i64 timestamp (ns), 32 bytes rules digest, then per directory in path order:
///   u32 path length, path ("" for the context, else "a/b/" with its trailing slash)
///   u64 device, u64 inode, i64 mtime, i64 ctime
///   u32 children, u32 keys, u32 pool length
///   children × u8 flags (1: listed, 2: entered), keys × u32 (child << 1 | below), pool
/// ```
/// The pool holds the children's names in order, each followed by a NUL.
struct DirectoryTable: Sendable, Equatable {
    /// SHA-256 of the ignore rules the listings were made with.
    var rules: ContentDigest
    /// When the walk that read the newest listing began (ns since the Unix epoch); a listing
    /// is only kept when its stamp is settled at that time.
    var timestampNanoseconds: Int64
    /// The records, encoded as above, end to end, in path byte order.
    private(set) var bytes: [UInt8] = []
    /// Where each record starts in `bytes`.
    private(set) var offsets: [Int32] = []

    init(rules: ContentDigest, timestampNanoseconds: Int64) {
        self.rules = rules
        self.timestampNanoseconds = timestampNanoseconds
    }

    var count: Int { offsets.count }

    static let fixedRecordSize = 4 + 8 * 4 + 4 * 3
    static let headerSize = 4 + 8 + 32

    /// The digest the table of a walk with `patterns` must carry.
    static func rulesDigest(_ patterns: [String]) -> ContentDigest {
        var hasher = SHA256()
        hasher.update(data: Array("slipway-ignore-rules\u{0}".utf8))
        for pattern in patterns {
            hasher.update(data: Array(pattern.utf8))
            hasher.update(data: [0])
        }
        return ContentDigest(hasher.finalize())
    }

    // MARK: Reading

    private func u32(_ offset: Int) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    private func u64(_ offset: Int) -> UInt64 {
        bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }

    private func pathRange(_ record: Int) -> Range<Int> {
        let start = Int(offsets[record])
        return (start + 4)..<(start + 4 + Int(u32(start)))
    }

    /// The path of record `record` ("" or "a/b/").
    func path(_ record: Int) -> ArraySlice<UInt8> { bytes[pathRange(record)] }

    /// The record for the directory whose path is `prefix`, if any.
    func record(for prefix: UnsafeBufferPointer<UInt8>) -> Int? {
        bytes.withUnsafeBufferPointer { all in
            var low = 0
            var high = count
            while low < high {
                let middle = (low + high) / 2
                let order = compareBytes(UnsafeBufferPointer(rebasing: all[pathRange(middle)]), prefix)
                if order == 0 { return middle }
                if order < 0 { low = middle + 1 } else { high = middle }
            }
            return nil
        }
    }

    func stamp(_ record: Int) -> DirectoryStamp {
        let at = pathRange(record).upperBound
        return DirectoryStamp(
            device: u64(at),
            inode: u64(at + 8),
            mtimeNanoseconds: Int64(bitPattern: u64(at + 16)),
            ctimeNanoseconds: Int64(bitPattern: u64(at + 24))
        )
    }

    /// The kept listing of record `record` when `now` is the directory's stamp and the kept
    /// one is settled (see the type's documentation); nil when it must be read again.
    func listing(_ record: Int, now: DirectoryStamp, granularityNanoseconds: Int64) -> DirectoryListing? {
        let kept = stamp(record)
        guard kept == now,
            StatIndex.isSettled(
                mtime: kept.mtimeNanoseconds,
                ctime: kept.ctimeNanoseconds,
                indexTime: timestampNanoseconds,
                granularityNanoseconds: granularityNanoseconds
            )
        else { return nil }
        var at = pathRange(record).upperBound + 32
        let childCount = Int(u32(at))
        let keyCount = Int(u32(at + 4))
        let poolLength = Int(u32(at + 8))
        at += 12
        var listing = DirectoryListing()
        listing.children.reserveCapacity(childCount)
        listing.keys.reserveCapacity(keyCount)
        let poolStart = at + childCount + 4 * keyCount
        listing.pool = Array(bytes[poolStart..<(poolStart + poolLength)])
        // Validated when loaded: the pool holds exactly `childCount` names, each NUL-terminated.
        listing.pool.withUnsafeBufferPointer { pool in
            var start = 0
            for child in 0..<childCount {
                var end = start
                while pool[end] != 0 { end += 1 }
                let flags = bytes[at + child]
                listing.children.append(
                    WalkChild(
                        start: Int32(start),
                        length: Int32(end - start),
                        listed: flags & 1 != 0,
                        enter: flags & 2 != 0
                    )
                )
                start = end + 1
            }
        }
        at += childCount
        for key in 0..<keyCount {
            let value = u32(at + 4 * key)
            listing.keys.append(WalkKey(child: Int32(value >> 1), below: value & 1 != 0))
        }
        return listing
    }

    // MARK: Building

    /// Builds a table from records added in ascending path order.
    struct Builder {
        private(set) var table: DirectoryTable

        init(rules: ContentDigest, timestampNanoseconds: Int64) {
            table = DirectoryTable(rules: rules, timestampNanoseconds: timestampNanoseconds)
        }

        private mutating func put<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { table.bytes.append(contentsOf: $0) }
        }

        private mutating func startRecord(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
            if table.count > 0 {
                let previous = table.bytes.withUnsafeBufferPointer {
                    UnsafeBufferPointer(rebasing: $0[table.pathRange(table.count - 1)])
                }
                guard compareBytes(previous, path) < 0 else { return false }
            }
            guard table.bytes.count < Int(Int32.max) / 2 else { return false }
            table.offsets.append(Int32(table.bytes.count))
            put(UInt32(truncatingIfNeeded: path.count))
            table.bytes.append(contentsOf: path)
            return true
        }

        /// Adds a listing read by this walk; `path` must sort after every path added before
        /// (else it is left out: that directory is only read again next time).
        mutating func append(path: UnsafeBufferPointer<UInt8>, stamp: DirectoryStamp, listing: DirectoryListing) {
            guard startRecord(path) else { return }
            put(stamp.device)
            put(stamp.inode)
            put(stamp.mtimeNanoseconds)
            put(stamp.ctimeNanoseconds)
            put(UInt32(truncatingIfNeeded: listing.children.count))
            put(UInt32(truncatingIfNeeded: listing.keys.count))
            put(UInt32(truncatingIfNeeded: listing.pool.count))
            for child in listing.children { table.bytes.append((child.listed ? 1 : 0) | (child.enter ? 2 : 0)) }
            for key in listing.keys { put(UInt32(truncatingIfNeeded: key.child) << 1 | (key.below ? 1 : 0)) }
            table.bytes.append(contentsOf: listing.pool)
        }

        /// Adds record `record` of `other` unchanged (in path order, as ``append(path:stamp:listing:)``).
        mutating func append(record: Int, of other: DirectoryTable) {
            let end = record + 1 < other.count ? Int(other.offsets[record + 1]) : other.bytes.count
            let added = other.bytes.withUnsafeBufferPointer { all in
                startRecord(UnsafeBufferPointer(rebasing: all[other.pathRange(record)]))
            }
            guard added else { return }
            table.bytes.append(contentsOf: other.bytes[other.pathRange(record).upperBound..<end])
        }
    }

    // MARK: Encoding

    /// Appends the table's encoding to `out`.
    func encode(into out: inout [UInt8]) {
        appendLittleEndian(UInt32(truncatingIfNeeded: count), to: &out)
        appendLittleEndian(timestampNanoseconds, to: &out)
        rules.withBytes { out.append(contentsOf: $0) }
        out.append(contentsOf: bytes)
    }

    var encodedSize: Int { Self.headerSize + bytes.count }

    /// Parses an encoded table that must fill `raw` exactly; nil if it is malformed (then the
    /// caller treats the whole index as damaged).
    static func decode(_ raw: UnsafeRawBufferPointer) -> DirectoryTable? {
        guard raw.count >= headerSize, raw.count < Int(Int32.max) else { return nil }
        let count = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        guard count <= (raw.count - headerSize) / fixedRecordSize else { return nil }
        var table = DirectoryTable(
            rules: ContentDigest(UnsafeRawBufferPointer(rebasing: raw[12..<44])),
            timestampNanoseconds: Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: Int64.self))
        )
        let bytes = Array(raw[headerSize...])
        guard let offsets = bytes.withUnsafeBufferPointer({ recordOffsets($0, count: count) }) else { return nil }
        table.bytes = bytes
        table.offsets = offsets
        return table
    }

    /// Where each of the `count` records of `bytes` starts; nil unless they fill `bytes`
    /// exactly, in strictly ascending path order, each well formed: flags of listed and
    /// entered only, keys naming existing children, a pool of exactly one non-empty name per
    /// child, each without "/" and followed by a NUL.
    private static func recordOffsets(_ bytes: UnsafeBufferPointer<UInt8>, count: Int) -> [Int32]? {
        func u32(_ offset: Int) -> Int {
            Int(
                UInt32(
                    littleEndian: UnsafeRawBufferPointer(bytes).loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                )
            )
        }
        let size = bytes.count
        var offsets: [Int32] = []
        offsets.reserveCapacity(count)
        var at = 0
        var previous: Range<Int>?
        for _ in 0..<count {
            guard size - at >= 4 else { return nil }
            let pathLength = u32(at)
            guard size - at - 4 >= pathLength + fixedRecordSize - 4 else { return nil }
            let path = (at + 4)..<(at + 4 + pathLength)
            if let previous,
                compareBytes(UnsafeBufferPointer(rebasing: bytes[previous]), UnsafeBufferPointer(rebasing: bytes[path]))
                    >= 0
            {
                return nil
            }
            previous = path
            var next = path.upperBound + 32
            let children = u32(next)
            let keys = u32(next + 4)
            let pool = u32(next + 8)
            next += 12
            guard size - next >= children, size - next - children >= 4 * keys, size - next - children - 4 * keys >= pool
            else { return nil }
            for child in 0..<children where bytes[next + child] & ~3 != 0 { return nil }
            let keysAt = next + children
            for key in 0..<keys where u32(keysAt + 4 * key) >> 1 >= children { return nil }
            let poolAt = keysAt + 4 * keys
            var names = 0
            var length = 0
            for byte in bytes[poolAt..<(poolAt + pool)] {
                if byte == 0 {
                    guard length > 0 else { return nil }
                    names += 1
                    length = 0
                } else {
                    guard byte != UInt8(ascii: "/") else { return nil }
                    length += 1
                }
            }
            guard names == children, length == 0 else { return nil }
            offsets.append(Int32(at))
            at = poolAt + pool
        }
        return at == size ? offsets : nil
    }
}
