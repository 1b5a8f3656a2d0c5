internal import Foundation

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Where a ``TarWriter`` sends its bytes, as it produces them (a request body, a file).
public protocol TarSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// A tar archive that cannot be written as asked.
public enum TarError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A name no archive entry may have: empty, absolute, with a `..` component or a NUL byte.
    case invalidName(String, reason: String)
    /// A file (or its directory entry, or a link) could not be read from disk.
    case unreadable(path: String, reason: String)
    /// A file of a kind a tar for a container does not carry (a socket, a FIFO, a device).
    case unsupportedType(path: String, kind: String)
    /// An owner or a size outside what any tar can record (negative).
    case invalidValue(name: String, field: String, value: Int64)
    /// An entry after ``TarWriter/finish()``.
    case alreadyFinished

    public var description: String {
        switch self {
        case .invalidName(let name, let reason):
            return
                "\"\(name)\" cannot be a name in a tar archive: \(reason); use a relative path below the target directory"
        case .unreadable(let path, let reason):
            return "cannot read \(path) to archive it: \(reason); check that it exists and is readable"
        case .unsupportedType(let path, let kind):
            return "\(path) is a \(kind), which is not copied into containers; leave it out (e.g. with .dockerignore)"
        case .invalidValue(let name, let field, let value):
            return "\(name): \(field) \(value) cannot be recorded in a tar archive (it must be 0 or more)"
        case .alreadyFinished:
            return
                "the tar archive was already finished; an entry cannot follow its end (a bug in slipway: please report it)"
        }
    }
}

/// The metadata of one archive entry.
public struct TarAttributes: Sendable, Equatable {
    /// Permission bits with setuid, setgid and sticky (`0o7777`); other bits are ignored.
    public var mode: UInt32
    /// Numeric owner; no user or group names are written, so the reader uses these numbers.
    public var uid: Int
    public var gid: Int
    /// Seconds since the epoch (negative is allowed: PAX records it).
    public var modificationTime: Int64

    public init(mode: UInt32, uid: Int = 0, gid: Int = 0, modificationTime: Int64 = 0) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.modificationTime = modificationTime
    }
}

/// Whether a file read from disk was the same from start to end.
public enum TarFileOutcome: Sendable, Equatable {
    case complete
    /// The file changed size or was written while it was read: its entry holds the announced
    /// number of bytes (padded with zeros if it shrank), which may mix old and new content.
    /// The caller should send it again.
    case changedWhileRead
}

/// Writes a tar archive (POSIX ustar, with PAX extended headers where ustar falls short) to a
/// ``TarSink`` as entries are appended: regular files streamed from disk through one reused
/// buffer, directories and symbolic links; all permission bits, numeric owner, modification
/// time.
///
/// A name longer than 100 bytes is split into ustar's prefix and name when it can be, and
/// otherwise (and when it is not ASCII) goes into a PAX `path` record; so do link targets over
/// 100 bytes (`linkpath`), sizes and times over 11 octal digits (`size`, `mtime`, also negative
/// times) and owners over 7 (`uid`, `gid`). Go's `archive/tar`, which the Docker engine reads
/// archives with, reads all of these; so do GNU tar and busybox tar.
public final class TarWriter {
    public let sink: any TarSink
    /// Bytes handed to the sink so far.
    public private(set) var bytesWritten = 0
    private var finished = false
    /// The read buffer for files, allocated on first use and reused.
    private var readBuffer: [UInt8] = []

    static let blockSize = 512
    static let readBufferSize = 256 * 1024
    private static let zeros = [UInt8](repeating: 0, count: 2 * blockSize)

    public init(sink: any TarSink) {
        self.sink = sink
    }

    // MARK: Entries

    /// A directory entry (`name` with or without a trailing `/`).
    public func appendDirectory(_ name: String, _ attributes: TarAttributes) throws {
        let checked = try Self.check(name)
        try writeHeader(
            name: checked.hasSuffix("/") ? checked : checked + "/",
            type: UInt8(ascii: "5"),
            size: 0,
            attributes: attributes,
            linkTarget: ""
        )
    }

    /// A symbolic link to `target` (written as given: relative or absolute).
    public func appendSymlink(_ name: String, target: String, _ attributes: TarAttributes) throws {
        let checked = try Self.check(name)
        guard !target.utf8.contains(0) else {
            throw TarError.invalidName(target, reason: "a link target has a NUL byte")
        }
        try writeHeader(name: checked, type: UInt8(ascii: "2"), size: 0, attributes: attributes, linkTarget: target)
    }

    /// A regular file with `contents`.
    public func appendFile(_ name: String, _ attributes: TarAttributes, contents: [UInt8]) throws {
        let checked = try Self.check(name)
        try writeHeader(
            name: checked,
            type: UInt8(ascii: "0"),
            size: Int64(contents.count),
            attributes: attributes,
            linkTarget: ""
        )
        try contents.withUnsafeBytes { try emit($0) }
        try pad(Int64(contents.count))
    }

    /// A regular file of `size` bytes read from `descriptor` (from its current offset), in
    /// pieces of at most 256 KiB. A file that ends early is padded with zeros; the outcome then
    /// says it changed.
    @discardableResult
    public func appendFile(
        _ name: String,
        _ attributes: TarAttributes,
        size: Int64,
        descriptor: Int32
    ) throws
        -> TarFileOutcome
    {
        let checked = try Self.check(name)
        guard size >= 0 else { throw TarError.invalidValue(name: name, field: "size", value: size) }
        try writeHeader(name: checked, type: UInt8(ascii: "0"), size: size, attributes: attributes, linkTarget: "")
        if readBuffer.isEmpty { readBuffer = [UInt8](repeating: 0, count: Self.readBufferSize) }
        var left = size
        var outcome = TarFileOutcome.complete
        while left > 0 {
            let wanted = Int(min(left, Int64(readBuffer.count)))
            let n = readBuffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, wanted) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TarError.unreadable(path: name, reason: String(cString: strerror(errno)))
            }
            if n == 0 {
                // Shrunk while read: keep the archive well formed; the caller sends it again.
                outcome = .changedWhileRead
                while left > 0 {
                    let count = Int(min(left, Int64(Self.zeros.count)))
                    try Self.zeros.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                    left -= Int64(count)
                }
                break
            }
            try readBuffer.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            left -= Int64(n)
        }
        try pad(size)
        return outcome
    }

    /// The file, directory or symbolic link at `path` on disk as the entry `name`, with its
    /// mode, owner (or `owner` instead) and modification time. A symbolic link is archived as a
    /// link, never followed.
    @discardableResult
    public func append(
        fromDisk path: String,
        as name: String,
        owner: (uid: Int, gid: Int)? = nil
    ) throws
        -> TarFileOutcome
    {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            throw TarError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        func attributes(_ info: stat) -> TarAttributes {
            TarAttributes(
                mode: UInt32(info.st_mode) & 0o7777,
                uid: owner?.uid ?? Int(info.st_uid),
                gid: owner?.gid ?? Int(info.st_gid),
                modificationTime: Int64(Self.modificationTime(info))
            )
        }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            try appendDirectory(name, attributes(info))
            return .complete
        case S_IFLNK:
            try appendSymlink(name, target: try Self.linkTarget(path, size: Int(info.st_size)), attributes(info))
            return .complete
        case S_IFREG:
            let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)
            guard fd >= 0 else { throw TarError.unreadable(path: path, reason: String(cString: strerror(errno))) }
            defer { close(fd) }
            var opened = stat()
            guard fstat(fd, &opened) == 0 else {
                throw TarError.unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            guard opened.st_mode & S_IFMT == S_IFREG else {
                throw TarError.unreadable(
                    path: path,
                    reason: "it was replaced by something that is not a file while read"
                )
            }
            var outcome = try appendFile(name, attributes(opened), size: Int64(opened.st_size), descriptor: fd)
            var after = stat()
            if fstat(fd, &after) != 0 || after.st_size != opened.st_size
                || Self.modificationTime(after) != Self.modificationTime(opened)
                || Self.changeTime(after) != Self.changeTime(opened)
            {
                outcome = .changedWhileRead
            }
            return outcome
        case S_IFIFO: throw TarError.unsupportedType(path: path, kind: "FIFO")
        case S_IFSOCK: throw TarError.unsupportedType(path: path, kind: "socket")
        case S_IFCHR: throw TarError.unsupportedType(path: path, kind: "character device")
        case S_IFBLK: throw TarError.unsupportedType(path: path, kind: "block device")
        default: throw TarError.unsupportedType(path: path, kind: "file of unknown type")
        }
    }

    /// Writes the end of the archive: two zero blocks.
    public func finish() throws {
        guard !finished else { return }
        try Self.zeros.withUnsafeBytes { try emit($0) }
        finished = true
    }

    // MARK: Headers

    private func writeHeader(
        name: String,
        type: UInt8,
        size: Int64,
        attributes: TarAttributes,
        linkTarget: String
    )
        throws
    {
        guard !finished else { throw TarError.alreadyFinished }
        guard attributes.uid >= 0 else {
            throw TarError.invalidValue(name: name, field: "uid", value: Int64(attributes.uid))
        }
        guard attributes.gid >= 0 else {
            throw TarError.invalidValue(name: name, field: "gid", value: Int64(attributes.gid))
        }
        var records: [(String, String)] = []
        let nameBytes = Array(name.utf8)
        var ustarName = nameBytes
        var prefix: [UInt8] = []
        if nameBytes.count > 100 || !Self.isASCII(nameBytes) {
            if let (head, tail) = Self.splitUSTAR(nameBytes) {
                (prefix, ustarName) = (head, tail)
            } else {
                records.append(("path", name))
                ustarName = Self.asciiTruncated(nameBytes, to: 100)
            }
        }
        var linkBytes = Array(linkTarget.utf8)
        if linkBytes.count > 100 || !Self.isASCII(linkBytes) {
            records.append(("linkpath", linkTarget))
            linkBytes = Self.asciiTruncated(linkBytes, to: 100)
        }
        let maxEleven: Int64 = 0o77777777777
        let maxSeven = 0o7777777
        var sizeField = size
        if size > maxEleven {
            records.append(("size", String(size)))
            sizeField = 0
        }
        var uid = attributes.uid
        if uid > maxSeven {
            records.append(("uid", String(uid)))
            uid = 0
        }
        var gid = attributes.gid
        if gid > maxSeven {
            records.append(("gid", String(gid)))
            gid = 0
        }
        var mtime = attributes.modificationTime
        if mtime < 0 || mtime > maxEleven {
            records.append(("mtime", String(mtime)))
            mtime = 0
        }

        if !records.isEmpty {
            let body = Array(records.map { Self.paxRecord($0.0, $0.1) }.joined().utf8)
            let base = name.split(separator: "/").last.map(String.init) ?? "entry"
            let paxName = Self.asciiTruncated(Array(("PaxHeaders.0/" + base).utf8), to: 100)
            let header = Self.header(
                name: paxName,
                prefix: [],
                type: UInt8(ascii: "x"),
                size: Int64(body.count),
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
                link: []
            )
            try header.withUnsafeBytes { try emit($0) }
            try body.withUnsafeBytes { try emit($0) }
            try pad(Int64(body.count))
        }
        let header = Self.header(
            name: ustarName,
            prefix: prefix,
            type: type,
            size: sizeField,
            mode: attributes.mode & 0o7777,
            uid: uid,
            gid: gid,
            mtime: mtime,
            link: linkBytes
        )
        try header.withUnsafeBytes { try emit($0) }
    }

    /// One 512-byte ustar header block.
    static func header(
        name: [UInt8],
        prefix: [UInt8],
        type: UInt8,
        size: Int64,
        mode: UInt32,
        uid: Int,
        gid: Int,
        mtime: Int64,
        link: [UInt8]
    ) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: blockSize)
        func put(_ bytes: [UInt8], at offset: Int, width: Int) {
            for (i, byte) in bytes.prefix(width).enumerated() { block[offset + i] = byte }
        }
        func octal(_ value: Int64, at offset: Int, width: Int) {
            // width - 1 digits and a NUL.
            let digits = String(value, radix: 8)
            let padded = String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
            put(Array(padded.utf8), at: offset, width: width - 1)
        }
        put(name, at: 0, width: 100)
        octal(Int64(mode), at: 100, width: 8)
        octal(Int64(uid), at: 108, width: 8)
        octal(Int64(gid), at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(mtime, at: 136, width: 12)
        block[156] = type
        put(link, at: 157, width: 100)
        put(Array("ustar\u{0}00".utf8), at: 257, width: 8)
        put(prefix, at: 345, width: 155)
        // The checksum is computed with its own field as eight spaces.
        for i in 148..<156 { block[i] = 0x20 }
        let sum = block.reduce(0) { $0 + Int64($1) }
        let digits = String(sum, radix: 8)
        put(Array((String(repeating: "0", count: max(0, 6 - digits.count)) + digits).utf8), at: 148, width: 6)
        block[154] = 0
        block[155] = 0x20
        return block
    }

    /// `"%d key=value\n"`, where the number counts the whole record, itself included.
    static func paxRecord(_ key: String, _ value: String) -> String {
        let rest = " \(key)=\(value)\n".utf8.count
        var length = rest + String(rest).count
        if String(length).count != String(rest).count { length = rest + String(length).count }
        return "\(length) \(key)=\(value)\n"
    }

    /// ustar's prefix (≤ 155 bytes) and name (≤ 100) split at a `/`, as Go's archive/tar does;
    /// nil when the name cannot be split so (or is not ASCII).
    static func splitUSTAR(_ name: [UInt8]) -> ([UInt8], [UInt8])? {
        guard name.count > 100, isASCII(name) else { return nil }
        var length = name.count
        if length > 156 {
            length = 156
        } else if name[length - 1] == UInt8(ascii: "/") {
            length -= 1
        }
        guard let slash = name[..<length].lastIndex(of: UInt8(ascii: "/")) else { return nil }
        let nameLength = name.count - slash - 1
        guard slash > 0, nameLength > 0, nameLength <= 100, slash <= 155 else { return nil }
        return (Array(name[..<slash]), Array(name[(slash + 1)...]))
    }

    static func isASCII(_ bytes: [UInt8]) -> Bool { bytes.allSatisfy { $0 < 0x80 } }

    /// The ustar field's stand-in when PAX carries the real value.
    static func asciiTruncated(_ bytes: [UInt8], to width: Int) -> [UInt8] {
        Array(bytes.map { $0 < 0x80 ? $0 : UInt8(ascii: "_") }.prefix(width))
    }

    // MARK: Output

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        try sink.write(bytes)
        bytesWritten += bytes.count
    }

    /// Zeros up to the next block boundary after `size` bytes of data.
    private func pad(_ size: Int64) throws {
        let remainder = Int(size % Int64(Self.blockSize))
        guard remainder != 0 else { return }
        try Self.zeros.withUnsafeBytes {
            try emit(UnsafeRawBufferPointer(rebasing: $0[..<(Self.blockSize - remainder)]))
        }
    }

    // MARK: Names and files

    /// `name` if an entry may carry it.
    static func check(_ name: String) throws -> String {
        guard !name.isEmpty else { throw TarError.invalidName(name, reason: "it is empty") }
        guard !name.utf8.contains(0) else { throw TarError.invalidName(name, reason: "it has a NUL byte") }
        guard !name.hasPrefix("/") else { throw TarError.invalidName(name, reason: "it is absolute") }
        guard !name.split(separator: "/").contains("..") else {
            throw TarError.invalidName(name, reason: "it has a .. component")
        }
        return name
    }

    static func linkTarget(_ path: String, size: Int) throws -> String {
        var capacity = max(size + 1, 256)
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            let n = readlink(path, &buffer, capacity)
            guard n >= 0 else { throw TarError.unreadable(path: path, reason: String(cString: strerror(errno))) }
            if n < capacity { return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
            capacity *= 2
        }
    }

    static func modificationTime(_ info: stat) -> Int {
        #if canImport(Darwin)
        return info.st_mtimespec.tv_sec
        #else
        return info.st_mtim.tv_sec
        #endif
    }

    static func changeTime(_ info: stat) -> (Int, Int) {
        #if canImport(Darwin)
        return (info.st_ctimespec.tv_sec, info.st_ctimespec.tv_nsec)
        #else
        return (info.st_ctim.tv_sec, info.st_ctim.tv_nsec)
        #endif
    }
}

extension DockerBodyWriter {
    /// A tar archive written into this body.
    public func tar() -> TarWriter { TarWriter(sink: self) }
}
