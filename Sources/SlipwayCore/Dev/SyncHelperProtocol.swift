// The frames slipway and slipway-helper exchange (docs/sync-protocol.md): a 9-byte header —
// type, request id, payload length (big-endian) — and the payload. The C side is
// Sources/SlipwayHelper/helper.c; the numbers here must stay equal to its enums.

/// The protocol version both sides speak; the HELLO exchange checks it.
let syncHelperProtocolVersion: UInt32 = 3

/// Frame types.
enum HelperFrameType {
    // Requests (slipway → helper).
    static let hello: UInt8 = 0x01
    static let write: UInt8 = 0x02
    static let data: UInt8 = 0x03
    static let end: UInt8 = 0x04
    static let abort: UInt8 = 0x05
    static let mkdir: UInt8 = 0x06
    static let symlink: UInt8 = 0x07
    static let rename: UInt8 = 0x08
    static let remove: UInt8 = 0x09
    static let chmod: UInt8 = 0x0A
    static let hashPaths: UInt8 = 0x0B
    static let manifest: UInt8 = 0x0C
    static let download: UInt8 = 0x0D
    static let watch: UInt8 = 0x0E
    static let unwatch: UInt8 = 0x0F
    static let entries: UInt8 = 0x10
    static let restart: UInt8 = 0x11
    static let start: UInt8 = 0x12

    // Answers (helper → slipway).
    static let helloAnswer: UInt8 = 0x81
    static let applied: UInt8 = 0x82
    static let conflict: UInt8 = 0x83
    static let failed: UInt8 = 0x84
    static let entry: UInt8 = 0x85
    static let dataAnswer: UInt8 = 0x86
    static let endAnswer: UInt8 = 0x87
    static let changes: UInt8 = 0x88
    static let unknown: UInt8 = 0x89
    static let note: UInt8 = 0x8A
    static let watching: UInt8 = 0x8B
    static let process: UInt8 = 0x8C
    static let fatal: UInt8 = 0xFF
}

/// HELLO's flags.
enum HelperHelloFlags {
    /// Give what the helper makes to the HELLO's uid:gid (only when the helper runs as root).
    static let chown: UInt32 = 1
    /// `fsync` each written file before it is renamed into place.
    static let fsync: UInt32 = 2
    /// Make the root (and its parents) when it does not exist.
    static let createRoot: UInt32 = 4
}

struct HelperFrame: Sendable, Equatable {
    var type: UInt8
    var id: UInt32
    var payload: [UInt8]

    static let headerSize = 9
    /// The largest payload either side accepts.
    static let maximumPayload = 1 << 20
    /// The size of the data pieces slipway sends.
    static let chunkSize = 256 << 10
}

/// Builds a payload (or a whole frame) field by field, big-endian.
struct HelperBytes {
    var bytes: [UInt8] = []

    init(reserving capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u32(_ value: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 24))
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func u64(_ value: UInt64) {
        u32(UInt32(truncatingIfNeeded: value >> 32))
        u32(UInt32(truncatingIfNeeded: value))
    }

    mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }

    mutating func append<C: Collection>(_ more: C) where C.Element == UInt8 { bytes.append(contentsOf: more) }

    mutating func text(_ value: String) { bytes.append(contentsOf: value.utf8) }

    /// A length-prefixed string.
    mutating func sized(_ value: String) {
        u32(UInt32(value.utf8.count))
        text(value)
    }

    mutating func expectation(_ value: SyncExpectation) {
        switch value {
        case .anything:
            u8(0)
            u64(0)
            i64(0)
        case .absent:
            u8(1)
            u64(0)
            i64(0)
        case .file(let size, let mtime):
            u8(2)
            u64(size)
            i64(mtime)
        }
    }

    /// A whole frame: the header, then `payload`.
    static func frame(_ type: UInt8, id: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        var out = HelperBytes(reserving: HelperFrame.headerSize + payload.count)
        out.u8(type)
        out.u32(id)
        out.u32(UInt32(payload.count))
        out.append(payload)
        return out.bytes
    }
}

/// Reads a payload field by field; a short payload sets `bad` instead of trapping.
struct HelperReader {
    let bytes: [UInt8]
    var offset: Int
    var bad = false

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func u8() -> UInt8 {
        guard remaining >= 1 else {
            bad = true
            return 0
        }
        offset += 1
        return bytes[offset - 1]
    }

    mutating func u32() -> UInt32 {
        guard remaining >= 4 else {
            bad = true
            offset = bytes.count
            return 0
        }
        var value: UInt32 = 0
        for index in offset..<(offset + 4) { value = value << 8 | UInt32(bytes[index]) }
        offset += 4
        return value
    }

    mutating func u64() -> UInt64 {
        let high = UInt64(u32())
        return high << 32 | UInt64(u32())
    }

    mutating func i64() -> Int64 { Int64(bitPattern: u64()) }

    mutating func take(_ count: Int) -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else {
            bad = true
            offset = bytes.count
            return []
        }
        offset += count
        return bytes[(offset - count)..<offset]
    }

    mutating func rest() -> ArraySlice<UInt8> { take(remaining) }

    /// An errno and a message (FAILED, NOTE).
    mutating func failure() -> (errno: Int32, message: String) {
        let code = Int32(bitPattern: u32())
        return (code, String(decoding: rest(), as: UTF8.self))
    }

    /// An entry as the helper writes it; nil when it is malformed (`bad`) or its path is not a
    /// valid sync path (`invalidPath` then holds it, for the report).
    mutating func entry(invalidPath: inout String?) -> SyncEntry? {
        let rawKind = u8()
        let size = u64()
        let mtime = i64()
        let mode = u32()
        let uid = u32()
        let gid = u32()
        let hashed = u8()
        let digest = hashed == 1 ? take(32) : []
        let path = take(Int(u32()))
        let link = take(Int(u32()))
        guard !bad, let kind = SyncEntry.Kind(rawValue: rawKind) else {
            bad = true
            return nil
        }
        guard let text = HelperReader.utf8(path), SyncPath.isValid(text) else {
            invalidPath = String(decoding: path, as: UTF8.self)
            return nil
        }
        return SyncEntry(
            path: text,
            kind: kind,
            size: size,
            mtimeNanoseconds: mtime,
            mode: mode & 0o7777,
            uid: uid,
            gid: gid,
            linkTarget: kind == .symlink ? String(decoding: link, as: UTF8.self) : nil,
            sha256: hashed == 1 ? hexString(digest) : nil
        )
    }

    /// `bytes` as a string when they are valid UTF-8.
    static func utf8<C: Collection>(_ bytes: C) -> String? where C.Element == UInt8 {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.utf8.elementsEqual(bytes) ? text : nil
    }
}

/// Cuts the helper's output into frames as it arrives (frames span reads, reads span frames).
struct HelperFrameParser {
    private var buffer: [UInt8] = []
    private var start = 0

    /// Appends received bytes.
    mutating func append(_ bytes: [UInt8]) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame; nil when more bytes are needed. Throws on a frame larger than
    /// the protocol allows (the stream is not the helper's).
    mutating func next() throws(SyncRemoteError) -> HelperFrame? {
        guard buffer.count - start >= HelperFrame.headerSize else { return nil }
        var header = HelperReader(buffer, offset: start)
        let type = header.u8()
        let id = header.u32()
        let length = Int(header.u32())
        guard length <= HelperFrame.maximumPayload + 64 else {
            throw .protocolViolation("a frame of type 0x\(String(type, radix: 16)) announces \(length) bytes")
        }
        guard buffer.count - start >= HelperFrame.headerSize + length else { return nil }
        let payloadStart = start + HelperFrame.headerSize
        let frame = HelperFrame(type: type, id: id, payload: Array(buffer[payloadStart..<(payloadStart + length)]))
        start = payloadStart + length
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        return frame
    }

    /// Bytes received that do not form a whole frame yet.
    var pendingCount: Int { buffer.count - start }
}
