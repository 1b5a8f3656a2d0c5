internal import CGit2
internal import Foundation

// git's find_unique_abbrev(): the shared abbreviation of `rev-parse --short` and `describe`.
//
// libgit2's git_object_short_id() starts from a fixed length (core.abbrev, default 7) and
// cannot start from git's "auto" length, which grows with the number of packed objects (12
// characters in a repository the size of Linux); so the length is computed here and
// lengthened with git_odb_exists_prefix(), the same probe git_object_short_id() uses.
extension GitRepository {
    /// The shortest prefix of `id`, at least ``minimumAbbreviationLength()`` long, that no
    /// other object in the repository shares.
    func abbreviation(of id: GitObjectID) throws(GitError) -> String {
        let hex = id.hex
        let minimum = try minimumAbbreviationLength()
        guard minimum < hex.count else { return hex }
        var odb: OpaquePointer?
        try GitError.check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }
        var raw = id.raw
        guard git_odb_exists(odb, &raw) == 1 else { throw .objectNotFound(id: hex) }
        var length = minimum
        while length < hex.count {
            var found = git_oid()
            let code = git_odb_exists_prefix(&found, odb, &raw, length)
            if code == GIT_EAMBIGUOUS.rawValue {
                GitError.clear()
                length += 1
                continue
            }
            try GitError.check(code, "git_odb_exists_prefix(\(hex.prefix(length)))")
            break
        }
        return String(hex.prefix(length))
    }

    /// Where git starts abbreviating: `core.abbrev` when set to a length (or to false, which
    /// means the full id), otherwise git's "auto" length for the packed object count.
    func minimumAbbreviationLength() throws(GitError) -> Int {
        let fullLength = Int(GIT_OID_HEXSZ)
        if let configured = try configString("core.abbrev") {
            let value = configured.trimmingCharacters(in: .whitespaces).lowercased()
            if ["false", "no", "off", ""].contains(value) { return fullLength }
            // git rejects other values (and so does every git command then); use "auto".
            if let length = Int(value), (4...fullLength).contains(length) { return length }
        }
        return Self.automaticAbbreviationLength(
            packedObjects: Self.packedObjectCount(objectsDirectory: commonDir + "/objects")
        )
    }

    /// git's "auto" abbreviation: hexadecimal digits for about sqrt(objects) ids, at least 7.
    static func automaticAbbreviationLength(packedObjects count: Int) -> Int {
        // msb(count) + 1 bits of objects; a collision is expected at half of them; 4 bits a digit.
        let mostSignificantBit = count > 0 ? Int.bitWidth - count.leadingZeroBitCount - 1 : 0
        let bits = mostSignificantBit + 1
        return max(7, (bits + 1) / 2)
    }

    /// The objects in all packs of `objectsDirectory` and its alternates, read from the pack
    /// index headers like git's approximate object count (loose objects do not count).
    static func packedObjectCount(objectsDirectory: String, depth: Int = 0) -> Int {
        var total = 0
        let packDirectory = objectsDirectory + "/pack"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: packDirectory)) ?? []
        for file in files where file.hasSuffix(".idx") {
            let base = packDirectory + "/" + file.dropLast(".idx".count)
            guard FileManager.default.fileExists(atPath: base + ".pack") else { continue }
            total += packIndexObjectCount(path: base + ".idx") ?? 0
        }
        // git follows alternates up to five levels deep.
        guard depth < 5,
            let alternates = try? String(contentsOfFile: objectsDirectory + "/info/alternates", encoding: .utf8)
        else { return total }
        for line in alternates.split(separator: "\n") {
            let entry = line.trimmingCharacters(in: .whitespaces)
            guard !entry.isEmpty, !entry.hasPrefix("#") else { continue }
            let directory = entry.hasPrefix("/") ? entry : objectsDirectory + "/" + entry
            total += packedObjectCount(objectsDirectory: directory, depth: depth + 1)
        }
        return total
    }

    /// The object count of a pack index: the last fan-out entry (version 2 indexes start
    /// with an 8-byte header, version 1 indexes with the fan-out table).
    private static func packIndexObjectCount(path: String) -> Int? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        guard let data = try? file.read(upToCount: 8 + 256 * 4), data.count >= 256 * 4 else { return nil }
        let bytes = [UInt8](data)
        func bigEndian32(at offset: Int) -> Int? {
            guard offset + 4 <= bytes.count else { return nil }
            return bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
        }
        let isVersion2 = bytes.starts(with: [0xff, 0x74, 0x4f, 0x63])
        return bigEndian32(at: (isVersion2 ? 8 : 0) + 255 * 4)
    }

    /// The value of a configuration variable as libgit2 sees the repository's configuration
    /// (system, global, repository); `nil` when it is not set.
    func configString(_ name: String) throws(GitError) -> String? {
        var config: OpaquePointer?
        try GitError.check(git_repository_config_snapshot(&config, handle), "git_repository_config_snapshot")
        defer { git_config_free(config) }
        var value: UnsafePointer<CChar>?
        let code = git_config_get_string(&value, config, name)
        if code == GIT_ENOTFOUND.rawValue {
            GitError.clear()
            return nil
        }
        try GitError.check(code, "git_config_get_string(\(name))")
        return value.map { String(cString: $0) }
    }
}
