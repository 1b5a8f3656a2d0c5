/// DevSpace's in-memory Dockerfile rewrite for `entrypoint`, `cmd` and
/// `appendDockerfileInstructions` (`pkg/devspace/build/builder/helper: RewriteDockerfile`).
///
/// Appended instructions come first, then `ENTRYPOINT`, then `CMD`; with a `target` they go to
/// the end of that stage (before the next `FROM`), otherwise to the end of the file.
public enum DockerfileRewriter {
    public struct Failure: Error, Sendable, Equatable {
        public var message: String
    }

    /// The rewritten Dockerfile, or nil when the image needs no rewrite.
    public static func rewrite(
        _ dockerfile: String,
        target: String?,
        entrypoint: [String]?,
        cmd: [String]?,
        append: [String]
    ) throws(Failure) -> String? {
        guard entrypoint != nil || cmd != nil || !append.isEmpty else { return nil }
        var added: [String] = append
        if let entrypoint { added.append("ENTRYPOINT " + jsonArray(entrypoint)) }
        if let cmd { added.append("CMD " + jsonArray(cmd)) }

        var lines = dockerfile.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard let target, !target.isEmpty else {
            return (lines + added).joined(separator: "\n") + "\n"
        }
        let stages = stageStarts(lines)
        guard let i = stages.firstIndex(where: { $0.name?.lowercased() == target.lowercased() }) else {
            throw Failure(message: "the Dockerfile has no stage named \"\(target)\" (FROM … AS \(target))")
        }
        let end = i + 1 < stages.count ? stages[i + 1].line : lines.count
        lines.insert(contentsOf: added, at: end)
        return lines.joined(separator: "\n") + "\n"
    }

    /// Why `target` names no stage of `dockerfile` (`FROM … AS name`, compared as Docker
    /// does, ignoring case); nil when it does, or when there is no target.
    public static func targetProblem(_ dockerfile: String, target: String?, named display: String) -> String? {
        guard let target, !target.isEmpty else { return nil }
        let lines = dockerfile.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let names = stageStarts(lines).compactMap(\.name)
        guard !names.contains(where: { $0.lowercased() == target.lowercased() }) else { return nil }
        let known = names.isEmpty ? "it names no stages" : "its stages: \(names.joined(separator: ", "))"
        return
            "\(display) has no stage named \"\(target)\" (FROM … AS \(target)); \(known) — name one of them or add the stage"
    }

    /// `["a","b"]` with JSON string escapes, as Docker's exec form wants.
    static func jsonArray(_ items: [String]) -> String {
        "[" + items.map(jsonString).joined(separator: ",") + "]"
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// Lines that start a stage (`FROM image [AS name]`), skipping continuation lines.
    static func stageStarts(_ lines: [String]) -> [(line: Int, name: String?)] {
        var out: [(Int, String?)] = []
        var continued = false
        for (i, raw) in lines.enumerated() {
            let line = raw.trimmingSpaces()
            defer { continued = line.hasSuffix("\\") }
            if continued || line.hasPrefix("#") { continue }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let first = words.first, first.uppercased() == "FROM" else { continue }
            var name: String?
            if let asIndex = words.firstIndex(where: { $0.uppercased() == "AS" }), asIndex + 1 < words.count {
                name = words[asIndex + 1]
            }
            out.append((i, name))
        }
        return out
    }
}
