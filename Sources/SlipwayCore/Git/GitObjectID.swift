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
        guard utf8.count == Int(GIT_OID_HEXSZ), utf8.allSatisfy({ hexValue($0) != nil }) else { return nil }
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
    var hex: String { withUnsafeBytes(of: raw.id) { hexString($0) } }

    var description: String { hex }

    static func == (lhs: GitObjectID, rhs: GitObjectID) -> Bool {
        withUnsafeBytes(of: lhs.raw.id) { left in withUnsafeBytes(of: rhs.raw.id) { right in left.elementsEqual(right) }
        }
    }

    func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: raw.id) { hasher.combine(bytes: $0) }
    }

}

extension GitObjectID {
    /// Copies the id a libgit2 getter returned; `nil` when the getter returned NULL.
    init?(_ pointer: UnsafePointer<git_oid>?) {
        guard let pointer else { return nil }
        self.init(pointer.pointee)
    }
}
