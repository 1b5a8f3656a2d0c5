/// A position in a source file, 1-based.
public struct Mark: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// Where a file offers no better position.
    public static let start = Mark(line: 1, column: 1)

    public var description: String { "\(line):\(column)" }
}

/// How a scalar was written in the source; the emitter keeps quoted strings quoted.
public enum ScalarStyle: Sendable, Hashable {
    case plain, singleQuoted, doubleQuoted, literal, folded

    public var isQuoted: Bool { self != .plain }
}

/// One YAML node: a scalar, a sequence or a mapping, with its tag, style and position.
///
/// Aliases are expanded and merge keys (`<<`) applied while loading, so a tree never holds
/// either; every node is a value.
public struct Node: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case scalar(String, ScalarStyle)
        case sequence([Node])
        case mapping([Pair])
    }

    public struct Pair: Sendable, Hashable {
        public var key: Node
        public var value: Node

        public init(key: Node, value: Node) {
            self.key = key
            self.value = value
        }
    }

    public var kind: Kind
    /// The explicit tag (`!!str`, `!custom`), nil when the node was untagged.
    public var tag: String?
    public var mark: Mark

    public init(_ kind: Kind, tag: String? = nil, mark: Mark = .start) {
        self.kind = kind
        self.tag = tag
        self.mark = mark
    }

    public static func string(_ value: String, mark: Mark = .start) -> Node {
        Node(.scalar(value, .plain), tag: nil, mark: mark).quotedIfNeeded()
    }

    public static func sequence(_ items: [Node], mark: Mark = .start) -> Node {
        Node(.sequence(items), mark: mark)
    }

    public static func mapping(_ pairs: [(String, Node)], mark: Mark = .start) -> Node {
        Node(.mapping(pairs.map { Pair(key: .string($0.0, mark: $0.1.mark), value: $0.1) }), mark: mark)
    }

    public static let null = Node(.scalar("null", .plain))

    /// A plain scalar that would not read back as a string is marked double-quoted.
    func quotedIfNeeded() -> Node {
        guard case .scalar(let s, .plain) = kind, ScalarResolver.resolve(s) != .string else { return self }
        var copy = self
        copy.kind = .scalar(s, .doubleQuoted)
        return copy
    }

    // MARK: Accessors

    public var scalar: String? {
        if case .scalar(let s, _) = kind { return s }
        return nil
    }

    public var items: [Node]? {
        if case .sequence(let items) = kind { return items }
        return nil
    }

    public var pairs: [Pair]? {
        if case .mapping(let pairs) = kind { return pairs }
        return nil
    }

    public var isMapping: Bool { pairs != nil }
    public var isSequence: Bool { items != nil }

    /// The value under `key` in a mapping.
    public subscript(key: String) -> Node? {
        get { pairs?.first(where: { $0.key.scalar == key })?.value }
        set {
            guard case .mapping(var ps) = kind else { return }
            if let i = ps.firstIndex(where: { $0.key.scalar == key }) {
                if let newValue { ps[i].value = newValue } else { ps.remove(at: i) }
            } else if let newValue {
                ps.append(Pair(key: .string(key, mark: newValue.mark), value: newValue))
            }
            kind = .mapping(ps)
        }
    }

    /// The key node (for its position) under `key`.
    public func keyNode(_ key: String) -> Node? {
        pairs?.first(where: { $0.key.scalar == key })?.key
    }

    /// What the scalar means under YAML's core schema, honouring explicit tags and quoting.
    public var resolved: ScalarResolver.Kind? {
        guard case .scalar(let s, let style) = kind else { return nil }
        switch tag {
        case "tag:yaml.org,2002:str": return .string
        case "tag:yaml.org,2002:null": return .null
        case "tag:yaml.org,2002:bool": return ScalarResolver.resolve(s) == .bool ? .bool : .string
        case "tag:yaml.org,2002:int": return .int
        case "tag:yaml.org,2002:float": return .float
        default: break
        }
        if style.isQuoted { return .string }
        return ScalarResolver.resolve(s)
    }

    public var isNull: Bool { resolved == .null }

    /// The kind of node, for messages: "a string", "a list", "a map".
    public var typeDescription: String {
        switch kind {
        case .sequence: return "a list"
        case .mapping: return "a map"
        case .scalar:
            switch resolved ?? .string {
            case .null: return "null"
            case .bool: return "a boolean"
            case .int: return "an integer"
            case .float: return "a number"
            case .string: return "a string"
            }
        }
    }

    /// Number of nodes in this tree; used to bound alias expansion.
    public var weight: Int {
        switch kind {
        case .scalar: return 1
        case .sequence(let items): return items.reduce(1) { $0 + $1.weight }
        case .mapping(let pairs): return pairs.reduce(1) { $0 + $1.key.weight + $1.value.weight }
        }
    }
}

/// YAML 1.2 core-schema resolution of plain scalars (what go-yaml v3, and so DevSpace, does).
public enum ScalarResolver {
    public enum Kind: Sendable, Hashable { case null, bool, int, float, string }

    public static func resolve(_ s: String) -> Kind {
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE", "false", "False", "FALSE": return .bool
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN":
            return .float
        default: break
        }
        guard let first = s.utf8.first,
            first == UInt8(ascii: "-") || first == UInt8(ascii: "+")
                || first == UInt8(ascii: ".") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9"))
        else { return .string }
        if isInt(s) { return .int }
        if isFloat(s) { return .float }
        return .string
    }

    public static func isInt(_ s: String) -> Bool {
        var body = Substring(s)
        if body.hasPrefix("-") || body.hasPrefix("+") { body = body.dropFirst() }
        if body.isEmpty { return false }
        if body.hasPrefix("0x") { return body.count > 2 && body.dropFirst(2).allSatisfy(\.isHexDigit) }
        if body.hasPrefix("0o") { return body.count > 2 && body.dropFirst(2).allSatisfy { ("0"..."7").contains($0) } }
        if body.hasPrefix("0b") { return body.count > 2 && body.dropFirst(2).allSatisfy { $0 == "0" || $0 == "1" } }
        return body.allSatisfy { ($0.isASCII && $0.isNumber) || $0 == "_" } && body.first?.isNumber == true
    }

    public static func isFloat(_ s: String) -> Bool {
        // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
        var chars = Array(s.utf8)[...]
        if let c = chars.first, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") { chars = chars.dropFirst() }
        func digits() -> Int {
            var n = 0
            while let c = chars.first, c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                chars = chars.dropFirst()
                n += 1
            }
            return n
        }
        let intDigits = digits()
        var fracDigits = 0
        var sawDot = false
        if chars.first == UInt8(ascii: ".") {
            sawDot = true
            chars = chars.dropFirst()
            fracDigits = digits()
        }
        if intDigits == 0 && fracDigits == 0 { return false }
        if !sawDot && chars.isEmpty { return false }
        if let c = chars.first, c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            chars = chars.dropFirst()
            if let c = chars.first, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") { chars = chars.dropFirst() }
            if digits() == 0 { return false }
        }
        return chars.isEmpty
    }
}
