internal import CGit2

/// A SHA-1 object id copied out of libgit2, usable as a dictionary key.
struct GitObjectID: Hashable, CustomStringConvertible {
    var raw: git_oid

    init(_ raw: git_oid) {
        self.raw = raw
    }

    /// Parses a full id: exactly 40 hexadecimal digits, either case.
    init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == Int(GIT_OID_HEXSZ), utf8.allSatisfy({ Self.hexValue($0) != nil }) else { return nil }
        var raw = git_oid()
        let code = utf8.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { git_oid_fromstrn(&raw, $0.baseAddress, $0.count) }
        }
        guard code == 0 else {
            GitError.clear()
            return nil
        }
        self.raw = raw
    }

    /// The 40 lowercase hexadecimal digits, as git prints them.
    var hex: String {
        withUnsafeBytes(of: raw.id) { bytes in
            var text = [UInt8]()
            text.reserveCapacity(bytes.count * 2)
            for byte in bytes {
                text.append(Self.digits[Int(byte >> 4)])
                text.append(Self.digits[Int(byte & 0x0f)])
            }
            return String(decoding: text, as: UTF8.self)
        }
    }

    var description: String { hex }

    static func == (lhs: GitObjectID, rhs: GitObjectID) -> Bool {
        withUnsafeBytes(of: lhs.raw.id) { left in withUnsafeBytes(of: rhs.raw.id) { right in left.elementsEqual(right) }
        }
    }

    func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: raw.id) { hasher.combine(bytes: $0) }
    }

    private static let digits = Array("0123456789abcdef".utf8)

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension GitObjectID {
    /// Copies the id a libgit2 getter returned; `nil` when the getter returned NULL.
    init?(_ pointer: UnsafePointer<git_oid>?) {
        guard let pointer else { return nil }
        self.init(pointer.pointee)
    }
}
