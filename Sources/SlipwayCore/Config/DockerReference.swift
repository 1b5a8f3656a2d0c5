/// Docker's grammar for image names and tags (`distribution/reference`), checked when a config
/// is loaded so that `validate`, `print` and `build` refuse the same values, at their place.
public enum DockerReference {
    /// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    public static func isValidTag(_ tag: String) -> Bool {
        let u = Array(tag.utf8)
        guard let first = u.first, u.count <= 128 else { return false }
        return isWord(first) && u.allSatisfy { isWord($0) || $0 == 46 || $0 == 45 }
    }

    /// A repository without tag or digest: `[HOST[:PORT]/]COMPONENT(/COMPONENT)*`, where a
    /// component is lowercase letters and digits joined by `.`, `_`, `__` or runs of `-`, and
    /// the host (a first part with a `.` or `:`, or `localhost`) is letters, digits, `-` and
    /// `.`, with an optional numeric port. At most 255 characters, as Docker allows.
    public static func isValidRepository(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 255 else { return false }
        var parts = name.split(separator: "/", omittingEmptySubsequences: false).map { Array($0.utf8) }
        // The first part is a registry host only when it has a `.` or `:` or is `localhost`
        // (docker/distribution v2.8, which DevSpace 6 and Docker 20.10 use): `Acme/app` is a
        // Docker Hub repository with capitals, which both refuse.
        if parts.count > 1, let first = parts.first,
            first.contains(UInt8(ascii: ".")) || first.contains(UInt8(ascii: ":")) || first == Array("localhost".utf8)
        {
            guard isHost(first) else { return false }
            parts.removeFirst()
        }
        return parts.allSatisfy(isComponent)
    }

    /// Why `name` is not a valid repository, for a message; nil when it is valid.
    public static func repositoryProblem(_ name: String) -> String? {
        guard !isValidRepository(name) else { return nil }
        if name.contains(where: \.isUppercase) && isValidRepository(name.lowercased()) {
            return
                "invalid reference format: repository name must be lowercase (Docker's rule; DevSpace refuses it too): use \"\(lowercasedPath(name))\""
        }
        if name.contains(" ") { return "an image name cannot contain spaces" }
        return
            "not a valid image name: lowercase letters, digits and '.', '_', '-' between them, '/' between parts, an optional registry host[:port] first (Docker's reference format)"
    }

    /// `name` with its repository path lowercased and a registry host kept as written.
    static func lowercasedPath(_ name: String) -> String {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count > 1, let first = parts.first,
            first.contains(".") || first.contains(":") || first == "localhost"
        else { return name.lowercased() }
        return ([String(first)] + parts.dropFirst().map { $0.lowercased() }).joined(separator: "/")
    }

    static func isWord(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
    }

    static func isComponent(_ c: [UInt8]) -> Bool {
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard let first = c.first, let last = c.last, alnum(first), alnum(last) else { return false }
        var i = 0
        while i < c.count {
            if alnum(c[i]) {
                i += 1
                continue
            }
            // A separator: ".", "_", "__" or one or more "-", always between alphanumerics.
            var j = i
            if c[i] == UInt8(ascii: ".") {
                j += 1
            } else if c[i] == UInt8(ascii: "_") {
                j += 1
                if j < c.count && c[j] == UInt8(ascii: "_") { j += 1 }
            } else if c[i] == UInt8(ascii: "-") {
                while j < c.count && c[j] == UInt8(ascii: "-") { j += 1 }
            } else {
                return false
            }
            guard j < c.count, alnum(c[j]) else { return false }
            i = j
        }
        return true
    }

    static func isHost(_ h: [UInt8]) -> Bool {
        var host = h[...]
        if let colon = h.lastIndex(of: UInt8(ascii: ":")) {
            let port = h[(colon + 1)...]
            guard !port.isEmpty, port.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return false }
            host = h[..<colon]
        }
        guard !host.isEmpty else { return false }
        for label in host.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard let f = label.first, let l = label.last, f != UInt8(ascii: "-"), l != UInt8(ascii: "-") else {
                return false
            }
            guard label.allSatisfy({ isWord($0) && $0 != 95 || $0 == UInt8(ascii: "-") }) else { return false }
        }
        return true
    }
}
