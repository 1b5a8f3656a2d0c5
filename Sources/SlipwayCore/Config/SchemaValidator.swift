/// Checks a parsed `devspace.yaml` against ``Schema``: unknown keys and values of the wrong
/// type, every one of them, each with its position and dotted path.
///
/// Only structure and types are checked, the way DevSpace's strict go-yaml v3 decoding would
/// reject a file. Semantic rules (image key pattern, required `image`, unique images, enum
/// values) are not. The rules for scalars:
/// - a string field takes any scalar as its text (`tag: 1.0` is the string "1.0");
/// - a bool field takes `true`/`false`, and also the YAML 1.1 words go-yaml v3 still decodes
///   into a Go bool (`yes`, `no`, `on`, `off`, `y`, `n`);
/// - an int field takes integers, and floats without a fractional part (go-yaml truncates
///   any float into an int; a fractional one is reported because truncating loses data);
/// - inside values DevSpace re-decodes through `encoding/json` (the map forms of pipelines,
///   commands and vars), scalars must have exactly the declared type, and keys match
///   ignoring case as `encoding/json` matches them;
/// - null is accepted for every field.
public struct SchemaValidator {
    /// Problems reported at most; a file of 100,000 unknown keys gets the first ones and a
    /// note, not 100,000 lines.
    public static let maxDiagnostics = 1_000

    /// Validates a whole configuration file against ``Schema/config``.
    public static func validate(_ root: Node, file: String) -> [ConfigDiagnostic] {
        validate(root, against: Schema.config, file: file)
    }

    /// Validates `node` against `type`; `path` is the dotted path of `node` itself.
    public static func validate(
        _ node: Node,
        against type: SchemaType,
        file: String,
        path: String = ""
    ) -> [ConfigDiagnostic] {
        var diagnostics: [ConfigDiagnostic] = []
        // An explicit stack keeps the walk off the call stack. It is shallow anyway: `.any`
        // subtrees are never entered and the schema itself is not recursive, so the walk
        // never goes deeper than the schema, whatever the depth of the document.
        // Work is pushed in reverse so that diagnostics come out in document order.
        var stack: [Work] = [.check(node, type, path: path, json: false)]
        var children: [Work] = []
        while let work = stack.popLast() {
            switch work {
            case .unknownKey(let mark, let path, let key, let allowed):
                stack.append(
                    .report(
                        mark,
                        path: path,
                        message: diagnostics.count < maxDiagnostics ? unknownKeyMessage(key, allowed: allowed) : ""
                    )
                )
            case .report(let mark, let path, let message):
                guard diagnostics.count < maxDiagnostics else {
                    diagnostics.append(
                        ConfigDiagnostic(
                            file: file,
                            mark: mark,
                            path: path,
                            message:
                                "more than \(maxDiagnostics) problems; slipway stops checking here (fix the ones above first)"
                        )
                    )
                    return diagnostics
                }
                diagnostics.append(ConfigDiagnostic(file: file, mark: mark, path: path, message: message))
            case .check(let node, let type, let path, let json):
                children.removeAll(keepingCapacity: true)
                check(node, type, path: path, json: json, into: &children)
                stack.append(contentsOf: children.reversed())
            }
        }
        return diagnostics
    }

    private enum Work {
        case check(Node, SchemaType, path: String, json: Bool)
        case report(Mark, path: String, message: String)
        /// An unknown key: its "did you mean" is worked out only if it is reported.
        case unknownKey(Mark, path: String, key: String, allowed: [String])
    }

    /// Checks one node against one type; problems and nested checks go to `out` in order.
    private static func check(_ node: Node, _ type: SchemaType, path: String, json: Bool, into out: inout [Work]) {
        if case .any = type { return }
        if node.isNull { return }
        func report(_ mark: Mark, _ path: String, _ message: String) {
            out.append(.report(mark, path: path, message: message))
        }
        func wrongType(_ expected: SchemaType) {
            report(node.mark, path, "expected \(expected), found \(node.typeDescription)")
        }
        switch type {
        case .any:
            return
        case .string, .bool, .int, .number:
            if !acceptsScalar(node, type, json: json) { wrongType(type) }
        case .list(let element):
            guard let items = node.items else { return wrongType(type) }
            for (index, item) in items.enumerated() {
                out.append(.check(item, element, path: "\(path)[\(index)]", json: json))
            }
        case .map(let value):
            guard let pairs = node.pairs else { return wrongType(type) }
            for pair in pairs {
                guard let key = keyText(pair.key, path: path, into: &out) else { continue }
                out.append(.check(pair.value, value, path: join(path, key), json: json))
            }
        case .object(let object):
            guard let pairs = node.pairs else { return wrongType(type) }
            for key in object.required where !pairs.contains(where: { $0.key.scalar == key }) {
                report(node.mark, join(path, key), "\(key) is required")
            }
            for pair in pairs {
                guard let key = keyText(pair.key, path: path, into: &out) else { continue }
                if let fieldType = object[key] ?? (json ? object.caseInsensitiveField(key) : nil) {
                    out.append(.check(pair.value, fieldType, path: join(path, key), json: json))
                } else {
                    out.append(.unknownKey(pair.key.mark, path: join(path, key), key: key, allowed: object.keys))
                }
            }
        case .oneOf(let alternatives):
            guard let chosen = alternative(for: node, among: alternatives, json: json) else { return wrongType(type) }
            out.append(.check(node, chosen, path: path, json: json))
        case .jsonDecoded(let inner):
            out.append(.check(node, inner, path: path, json: true))
        }
    }

    /// The alternative of a `oneOf` that fits the node's kind (and, for scalars, its value).
    private static func alternative(for node: Node, among alternatives: [SchemaType], json: Bool) -> SchemaType? {
        for candidate in alternatives {
            switch candidate {
            case .any:
                return candidate
            case .string, .bool, .int, .number:
                if node.scalar != nil, acceptsScalar(node, candidate, json: json) { return candidate }
            case .list:
                if node.isSequence { return candidate }
            case .map, .object:
                if node.isMapping { return candidate }
            case .oneOf(let nested):
                // Bounded by the nesting of the schema literal, not by the document.
                if let found = alternative(for: node, among: nested, json: json) { return found }
            case .jsonDecoded(let inner):
                if let found = alternative(for: node, among: [inner], json: true) { return .jsonDecoded(found) }
            }
        }
        return nil
    }

    /// Whether a scalar node can be decoded into a Go scalar of `type`.
    private static func acceptsScalar(_ node: Node, _ type: SchemaType, json: Bool) -> Bool {
        guard let text = node.scalar, let kind = node.resolved else { return false }
        if kind == .null { return true }
        // The validator may run before variables are resolved; DevSpace resolves them first
        // and converts a whole-value reference to the variable's type, so `skipPush: ${SKIP}`
        // or `port: $(echo 5000)` may well become a bool or an integer.
        if type.isVariableTyped, containsVariableReference(text) { return true }
        switch type {
        case .string:
            return !json || kind == .string
        case .bool:
            if kind == .bool { return true }
            // go-yaml v3 decodes these YAML 1.1 words into a typed bool; encoding/json does not.
            return !json && yaml11Booleans.contains(text)
        case .int:
            if kind == .int { return true }
            if kind == .float, let value = Double(String(text.filter { $0 != "_" })) {
                return value.isFinite && value.rounded(.towardZero) == value
            }
            return false
        case .number:
            return kind == .int || kind == .float
        default:
            return false
        }
    }

    private static let yaml11Booleans: Set<String> = [
        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
        "n", "N", "no", "No", "NO", "off", "Off", "OFF",
    ]

    /// `${NAME}`, `$(command)` and the legacy `$!{…}`/`$!(…)` forms.
    static func containsVariableReference(_ text: String) -> Bool {
        text.contains("${") || text.contains("$(") || text.contains("$!{") || text.contains("$!(")
    }

    /// The text of a mapping key; a key that is itself a list or a map is reported.
    private static func keyText(_ key: Node, path: String, into out: inout [Work]) -> String? {
        if let text = key.scalar { return text }
        out.append(.report(key.mark, path: path, message: "expected a string key, found \(key.typeDescription)"))
        return nil
    }

    private static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    // MARK: Suggestions

    /// `unknown key "dockerFile"; did you mean "dockerfile"?`, or the allowed keys when none is close.
    static func unknownKeyMessage(_ key: String, allowed: [String]) -> String {
        let suggestions = closestKeys(to: key, among: allowed)
        if !suggestions.isEmpty {
            return "unknown key \"\(key)\"; did you mean \(joinedWithOr(suggestions.map { "\"\($0)\"" }))?"
        }
        let shown = 8
        var list = allowed.prefix(shown).joined(separator: ", ")
        if allowed.count > shown { list += ", … (\(allowed.count) in all)" }
        return "unknown key \"\(key)\"; allowed keys: \(list)"
    }

    /// The allowed key nearest to `key` ignoring case, if it is close enough to be a typo;
    /// otherwise up to three keys that start with it (`exclude` → `excludePaths`, `excludeFile`).
    static func closestKeys(to key: String, among allowed: [String]) -> [String] {
        let lowered = Array(key.lowercased())
        let limit = lowered.count <= 3 ? 1 : lowered.count <= 6 ? 2 : 3
        var best: (key: String, distance: Int)?
        for candidate in allowed {
            let distance = levenshtein(lowered, Array(candidate.lowercased()), limit: limit)
            if distance <= limit, distance < (best?.distance ?? Int.max) {
                best = (candidate, distance)
            }
        }
        if let best { return [best.key] }
        // A truncated key is too far by edit distance, but still says what was meant.
        guard lowered.count >= 4 else { return [] }
        let prefix = String(lowered)
        return Array(allowed.filter { $0.lowercased().hasPrefix(prefix) }.prefix(3))
    }

    private static func joinedWithOr(_ parts: [String]) -> String {
        guard parts.count > 1 else { return parts.first ?? "" }
        return parts.dropLast().joined(separator: ", ") + " or " + parts[parts.count - 1]
    }

    /// Edit distance, giving up (returning `limit + 1`) once it must exceed `limit`.
    static func levenshtein(_ a: [Character], _ b: [Character], limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var rowMinimum = current[0]
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
                rowMinimum = min(rowMinimum, current[j])
            }
            if rowMinimum > limit { return limit + 1 }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

extension ObjectSchema {
    /// The field `encoding/json` would pick for `key` when no key matches exactly.
    fileprivate func caseInsensitiveField(_ key: String) -> SchemaType? {
        let lowered = key.lowercased()
        return keys.first { $0.lowercased() == lowered }.flatMap { self[$0] }
    }
}

extension SchemaType {
    /// Types a variable reference may turn into once resolved (see `acceptsScalar`).
    fileprivate var isVariableTyped: Bool {
        switch self {
        case .bool, .int, .number: return true
        default: return false
        }
    }
}
