internal import Foundation

/// DevSpace's `profiles`: selected with `-p`, or activated by `activation` rules; each applies
/// `replace` (top-level sections swapped), `merge` (JSON merge patch) and `patches`
/// (add / replace / remove at a path), parents first.
struct ProfileApplier {
    let file: String
    let root: Node

    struct Failure: Error {
        var mark: Mark
        var path: String
        var message: String
    }

    /// The profiles to apply, in order: each selected profile preceded by its parents.
    func selection(explicit: [String], activated: (Node) async -> Bool) async throws(Failure) -> [Node] {
        let profiles = root["profiles"]?.items ?? []
        var byName: [String: Node] = [:]
        for p in profiles { if let n = p["name"]?.scalar { byName[n] = p } }
        var names = explicit
        for p in profiles where p["activation"] != nil {
            guard let n = p["name"]?.scalar, !names.contains(n) else { continue }
            if await activated(p) { names.append(n) }
        }
        var out: [Node] = []
        var seen: Set<String> = []
        func add(_ name: String, mark: Mark, path: String, chain: [String]) throws(Failure) {
            guard let p = byName[name] else {
                let known = byName.keys.sorted().joined(separator: ", ")
                throw Failure(
                    mark: mark,
                    path: path,
                    message: "no profile named \"\(name)\""
                        + (known.isEmpty ? "; the config has no profiles" : " (known: \(known))")
                )
            }
            guard !chain.contains(name) else {
                throw Failure(
                    mark: p.mark,
                    path: "profiles",
                    message: "profile \"\(name)\" is its own parent: \((chain + [name]).joined(separator: " -> "))"
                )
            }
            var parents: [(String, Mark, String)] = []
            if let parent = p["parent"], let n = parent.scalar, !n.isEmpty {
                parents.append((n, parent.mark, "profiles[\(name)].parent"))
            }
            for (i, item) in (p["parents"]?.items ?? []).enumerated() {
                let node = item["profile"] ?? item
                if let n = node.scalar { parents.append((n, node.mark, "profiles[\(name)].parents[\(i)]")) }
            }
            for (parent, mark, path) in parents { try add(parent, mark: mark, path: path, chain: chain + [name]) }
            if !seen.contains(name) {
                seen.insert(name)
                out.append(p)
            }
        }
        let profilesMark = root.keyNode("profiles")?.mark ?? .start
        for n in names { try add(n, mark: profilesMark, path: "profiles", chain: []) }
        return out
    }

    /// Applies one profile to the config tree.
    static func apply(_ profile: Node, to config: Node) throws(Failure) -> Node {
        var config = config
        let name = profile["name"]?.scalar ?? "?"
        if let replace = profile["replace"], let pairs = replace.pairs {
            for p in pairs {
                guard let k = p.key.scalar else { continue }
                config[k] = p.value
            }
        }
        if let merge = profile["merge"], merge.isMapping {
            config = mergePatch(config, merge)
        }
        for (i, patch) in (profile["patches"]?.items ?? []).enumerated() {
            let where_ = "profiles[\(name)].patches[\(i)]"
            guard let op = patch["op"]?.scalar, !op.isEmpty else {
                throw Failure(mark: patch.mark, path: where_, message: "op is missing (add, replace or remove)")
            }
            guard let path = patch["path"]?.scalar, !path.isEmpty else {
                throw Failure(mark: patch.mark, path: where_, message: "path is missing")
            }
            let segments = parsePath(path)
            let pointer = path.hasPrefix("/")
            let pathMark = patch["path"]?.mark ?? patch.mark
            if segments.isEmpty || segments.contains(.key("")) {
                throw Failure(
                    mark: pathMark,
                    path: where_ + ".path",
                    message: "\(path) does not name a key below the top of the config"
                )
            }
            switch op {
            case "add", "replace":
                guard let value = patch["value"] else {
                    throw Failure(mark: patch.mark, path: where_, message: "\(op) needs a value")
                }
                if op == "add", let existing = get(config, segments[...]) {
                    // DevSpace: `add` onto a map adds the value's keys into it; onto a plain
                    // value it is an error (use replace).
                    if existing.scalar != nil {
                        throw Failure(
                            mark: pathMark,
                            path: where_ + ".path",
                            message: "\(path) already holds a value; use op: replace to change it"
                        )
                    }
                    if existing.isMapping, let newPairs = value.pairs {
                        var merged = existing
                        for p in newPairs { if let k = p.key.scalar { merged[k] = p.value } }
                        guard let updated = set(config, segments[...], value: merged, op: "replace") else {
                            throw Failure(mark: pathMark, path: where_ + ".path", message: "\(path) cannot be patched")
                        }
                        config = updated
                        continue
                    }
                }
                // DevSpace turns a `replace` of a missing dotted path into an `add`.
                var updated = set(config, segments[...], value: value, op: op)
                if updated == nil, op == "replace", !pointer {
                    updated = set(config, segments[...], value: value, op: "add")
                }
                guard let updated else {
                    throw Failure(
                        mark: patch["path"]?.mark ?? patch.mark,
                        path: where_ + ".path",
                        message:
                            "\(path) does not exist in the config, so it cannot be \(op == "add" ? "added to" : "replaced")"
                    )
                }
                config = updated
            case "remove":
                guard let updated = remove(config, segments[...]) else {
                    // DevSpace skips a dotted-path remove of something that is not there.
                    if !pointer { continue }
                    throw Failure(
                        mark: patch["path"]?.mark ?? patch.mark,
                        path: where_ + ".path",
                        message: "\(path) does not exist in the config, so it cannot be removed"
                    )
                }
                config = updated
            default:
                throw Failure(
                    mark: patch["op"]?.mark ?? patch.mark,
                    path: where_ + ".op",
                    message: "unknown op \"\(op)\"; use add, replace or remove"
                )
            }
        }
        return config
    }

    /// RFC 7386 merge: maps merge key by key, null deletes, anything else replaces.
    static func mergePatch(_ target: Node, _ patch: Node) -> Node {
        guard let patchPairs = patch.pairs else { return patch }
        var result = target.isMapping ? target : Node(.mapping([]), mark: patch.mark)
        for p in patchPairs {
            guard let k = p.key.scalar else { continue }
            if p.value.isNull {
                result[k] = nil
            } else if let existing = result[k], p.value.isMapping {
                result[k] = mergePatch(existing, p.value)
            } else {
                result[k] = p.value.isMapping ? mergePatch(Node(.mapping([]), mark: p.value.mark), p.value) : p.value
            }
        }
        return result
    }

    enum Segment: Equatable {
        case key(String)
        case index(Int)
        case append
        case match(String, String)
    }

    /// `images.app.tags[0]`, `deployments[name=web]`, or a JSON pointer `/images/app/tags/0`.
    static func parsePath(_ path: String) -> [Segment] {
        var raw: [String] = []
        if path.hasPrefix("/") {
            raw = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
                $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            }
        } else {
            var current = ""
            var inBracket = false
            for ch in path {
                switch ch {
                case "." where !inBracket:
                    if !current.isEmpty { raw.append(current) }
                    current = ""
                case "[":
                    if !current.isEmpty { raw.append(current) }
                    current = ""
                    inBracket = true
                case "]":
                    raw.append(current.trimmingCharacters(in: CharacterSet(charactersIn: "\"'")))
                    current = ""
                    inBracket = false
                default:
                    current.append(ch)
                }
            }
            if !current.isEmpty { raw.append(current) }
        }
        return raw.map { s in
            if s == "-" { return .append }
            if let i = Int(s) { return .index(i) }
            if let eq = s.firstIndex(of: "=") {
                return .match(
                    String(s[..<eq]),
                    String(s[s.index(after: eq)...]).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
                )
            }
            return .key(s)
        }
    }

    private static func get(_ node: Node, _ path: ArraySlice<Segment>) -> Node? {
        guard let head = path.first else { return node }
        switch (head, node.kind) {
        case (.key(let k), .mapping): return node[k].flatMap { get($0, path.dropFirst()) }
        case (.index(let i), .sequence(let items)):
            return i >= 0 && i < items.count ? get(items[i], path.dropFirst()) : nil
        case (.match(let k, let v), .sequence(let items)):
            return items.first(where: { $0[k]?.scalar == v }).flatMap { get($0, path.dropFirst()) }
        default: return nil
        }
    }

    private static func set(_ node: Node, _ path: ArraySlice<Segment>, value: Node, op: String) -> Node? {
        guard let head = path.first else { return value }
        let rest = path.dropFirst()
        var node = node
        switch (head, node.kind) {
        case (.key(let k), .mapping):
            if let child = node[k] {
                if rest.isEmpty, op == "add", child.isSequence {
                    // DevSpace: `add` to a list without `/-` appends.
                    var items = child.items ?? []
                    items.append(value)
                    node[k] = Node(.sequence(items), mark: child.mark)
                    return node
                }
                guard let updated = set(child, rest, value: value, op: op) else { return nil }
                node[k] = updated
            } else {
                guard op == "add", rest.isEmpty else { return nil }
                node[k] = value
            }
            return node
        case (.index(let i), .sequence(var items)):
            if rest.isEmpty && op == "add" {
                guard i >= 0 && i <= items.count else { return nil }
                items.insert(value, at: i)
            } else {
                guard i >= 0 && i < items.count, let updated = set(items[i], rest, value: value, op: op) else {
                    return nil
                }
                items[i] = updated
            }
            node.kind = .sequence(items)
            return node
        case (.append, .sequence(var items)):
            guard rest.isEmpty, op == "add" else { return nil }
            items.append(value)
            node.kind = .sequence(items)
            return node
        case (.match(let k, let v), .sequence(var items)):
            guard let i = items.firstIndex(where: { $0[k]?.scalar == v }),
                let updated = set(items[i], rest, value: value, op: op)
            else { return nil }
            items[i] = updated
            node.kind = .sequence(items)
            return node
        default:
            return nil
        }
    }

    private static func remove(_ node: Node, _ path: ArraySlice<Segment>) -> Node? {
        guard let head = path.first else { return nil }
        let rest = path.dropFirst()
        var node = node
        switch (head, node.kind) {
        case (.key(let k), .mapping):
            guard let child = node[k] else { return nil }
            if rest.isEmpty {
                node[k] = nil
            } else {
                guard let updated = remove(child, rest) else { return nil }
                node[k] = updated
            }
            return node
        case (.index, .sequence(var items)), (.match, .sequence(var items)):
            let found: Int?
            switch head {
            case .index(let i): found = i >= 0 && i < items.count ? i : nil
            case .match(let k, let v): found = items.firstIndex(where: { $0[k]?.scalar == v })
            default: found = nil
            }
            guard let i = found else { return nil }
            if rest.isEmpty {
                items.remove(at: i)
            } else {
                guard let updated = remove(items[i], rest) else { return nil }
                items[i] = updated
            }
            node.kind = .sequence(items)
            return node
        default:
            return nil
        }
    }
}
