internal import CYAML

/// A YAML syntax or structure problem, with the position libyaml (or the tree builder) reports.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var mark: Mark
    public var message: String

    public init(mark: Mark, message: String) {
        self.mark = mark
        self.message = message
    }

    public var description: String { "\(mark): \(message)" }
}

/// Loads YAML text into ``Node`` trees on libyaml's event parser.
///
/// The tree is built with an explicit stack, never by recursion, so nesting is bounded by
/// ``maxDepth`` and cannot overflow the stack. Aliases are expanded (bounded by
/// ``maxNodes``), merge keys (`<<`) are applied and duplicate keys are rejected.
public struct YAMLParser: Sendable {
    /// Deepest nesting accepted. DevSpace's parser stops at 10,000; slipway stops earlier so
    /// that every later walk of the tree stays far from the stack limit, also on small
    /// thread stacks. No real configuration comes near.
    public var maxDepth = 1_000
    /// Largest tree, counting every node produced by alias expansion ("billion laughs").
    public var maxNodes = 1_000_000

    public init() {}

    /// Parses every document in `bytes`.
    public func parseAll(_ bytes: [UInt8]) throws(YAMLError) -> [Node] {
        try parseDocuments(bytes).map(\.root)
    }

    /// Parses every document in `bytes`, with the position where each starts (its `---`, when
    /// it has one). A leading UTF-8 byte-order mark is skipped, as YAML allows.
    public func parseDocuments(_ bytes: [UInt8]) throws(YAMLError) -> [(start: Mark, root: Node)] {
        var builder = Builder(maxDepth: maxDepth, maxNodes: maxNodes)
        let body = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes.dropFirst(3)) : bytes
        try builder.run(body)
        return Array(zip(builder.documentMarks, builder.documents))
    }

    /// Parses `text`, expecting at most one document; nil for an empty stream.
    public func parse(_ text: String) throws(YAMLError) -> Node? {
        let docs = try parseAll(Array(text.utf8))
        if docs.count > 1 {
            throw YAMLError(mark: .start, message: "expected one YAML document, found \(docs.count)")
        }
        return docs.first
    }
}

private struct Builder {
    let maxDepth: Int
    let maxNodes: Int
    var documents: [Node] = []
    var documentMarks: [Mark] = []
    var anchors: [String: Node] = [:]
    var totalNodes = 0

    /// One open collection. Frames are mutated in place on the stack (never popped and pushed
    /// back), so appending to a collection never copies it: loading stays linear in the size
    /// of the file.
    struct Frame {
        var isMapping: Bool
        var items: [Node] = []
        var pairs: [Node.Pair] = []
        /// The key whose value is being read (mappings only).
        var key: Node?
        /// Where each key was first defined, to reject duplicates without a scan.
        var keyMarks: [String: Mark] = [:]
        var mark: Mark
        var tag: String?
        var anchor: String?
    }

    var stack: [Frame] = []

    init(maxDepth: Int, maxNodes: Int) {
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
    }

    mutating func run(_ bytes: [UInt8]) throws(YAMLError) {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLError(mark: .start, message: "libyaml could not allocate a parser")
        }
        defer { yaml_parser_delete(&parser) }
        // libyaml reads its input lazily through this pointer: the buffer must outlive the
        // parser, so the parser works inside the closure that owns it.
        var result: Result<Void, YAMLError> = .success(())
        bytes.withUnsafeBufferPointer { buf in
            let base = buf.baseAddress ?? UnsafePointer<UInt8>(bitPattern: 1)
            guard let base else { return }
            yaml_parser_set_input_string(&parser, base, buf.count)
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            do throws(YAMLError) {
                try loop(&parser, bytes: bytes)
            } catch {
                result = .failure(error)
            }
        }
        try result.get()
    }

    private mutating func loop(_ parser: inout yaml_parser_t, bytes: [UInt8]) throws(YAMLError) {
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else {
                throw Self.parserError(parser, bytes: bytes)
            }
            defer { yaml_event_delete(&event) }
            let mark = Mark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return
            case YAML_DOCUMENT_START_EVENT:
                anchors = [:]
                documentMarks.append(mark)
            case YAML_DOCUMENT_END_EVENT, YAML_STREAM_START_EVENT, YAML_NO_EVENT:
                break
            case YAML_ALIAS_EVENT:
                let name = Self.string(event.data.alias.anchor) ?? ""
                guard let node = anchors[name] else {
                    if stack.contains(where: { $0.anchor == name }) {
                        throw YAMLError(
                            mark: mark,
                            message:
                                "alias *\(name) points into the node its anchor &\(name) is still defining; a config cannot contain itself"
                        )
                    }
                    throw YAMLError(
                        mark: mark,
                        message: "unknown alias *\(name): define the anchor &\(name) before using it"
                    )
                }
                totalNodes += node.weight
                if totalNodes > maxNodes {
                    throw YAMLError(
                        mark: mark,
                        message: "aliases expand to more than \(maxNodes) nodes; the document is too large to load"
                    )
                }
                var copy = node
                copy.mark = mark
                try add(copy, mark: mark)
            case YAML_SCALAR_EVENT:
                let s = event.data.scalar
                let value = Self.string(s.value, length: s.length) ?? ""
                let style: ScalarStyle
                switch s.style {
                case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
                case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
                case YAML_LITERAL_SCALAR_STYLE: style = .literal
                case YAML_FOLDED_SCALAR_STYLE: style = .folded
                default: style = .plain
                }
                let tag = Self.expandTag(Self.string(s.tag))
                let node = Node(.scalar(value, style), tag: tag, mark: mark)
                totalNodes += 1
                if let anchor = Self.string(s.anchor) { anchors[anchor] = node }
                try add(node, mark: mark)
            case YAML_SEQUENCE_START_EVENT:
                try push(mark)
                stack.append(
                    Frame(
                        isMapping: false,
                        mark: mark,
                        tag: Self.expandTag(Self.string(event.data.sequence_start.tag)),
                        anchor: Self.string(event.data.sequence_start.anchor)
                    )
                )
            case YAML_MAPPING_START_EVENT:
                try push(mark)
                stack.append(
                    Frame(
                        isMapping: true,
                        mark: mark,
                        tag: Self.expandTag(Self.string(event.data.mapping_start.tag)),
                        anchor: Self.string(event.data.mapping_start.anchor)
                    )
                )
            case YAML_SEQUENCE_END_EVENT:
                guard let frame = stack.popLast(), !frame.isMapping else {
                    throw YAMLError(mark: mark, message: "unbalanced sequence end")
                }
                let node = Node(.sequence(frame.items), tag: frame.tag, mark: frame.mark)
                totalNodes += 1
                if let anchor = frame.anchor { anchors[anchor] = node }
                try add(node, mark: frame.mark)
            case YAML_MAPPING_END_EVENT:
                guard let frame = stack.popLast(), frame.isMapping else {
                    throw YAMLError(mark: mark, message: "unbalanced mapping end")
                }
                let node = Node(.mapping(try Self.applyMerges(frame.pairs)), tag: frame.tag, mark: frame.mark)
                totalNodes += 1
                if let anchor = frame.anchor { anchors[anchor] = node }
                try add(node, mark: frame.mark)
            default:
                break
            }
        }
    }

    private func push(_ mark: Mark) throws(YAMLError) {
        if stack.count >= maxDepth {
            throw YAMLError(
                mark: mark,
                message: "nesting deeper than \(maxDepth) levels; slipway stops there to keep loading safe"
            )
        }
    }

    private mutating func add(_ node: Node, mark: Mark) throws(YAMLError) {
        let top = stack.count - 1
        guard top >= 0 else {
            documents.append(node)
            return
        }
        guard stack[top].isMapping else {
            stack[top].items.append(node)
            return
        }
        guard let key = stack[top].key else {
            guard let name = node.scalar else {
                throw YAMLError(
                    mark: node.mark,
                    message: "a map key must be a plain value, not \(node.typeDescription)"
                )
            }
            if !Self.isMergeKey(node) {
                if let first = stack[top].keyMarks[name] {
                    throw YAMLError(
                        mark: node.mark,
                        message: "duplicate key \"\(name)\" (first defined at \(first)); remove one of them"
                    )
                }
                stack[top].keyMarks[name] = node.mark
            }
            stack[top].key = node
            return
        }
        stack[top].pairs.append(Node.Pair(key: key, value: node))
        stack[top].key = nil
    }

    static func isMergeKey(_ key: Node) -> Bool {
        if case .scalar("<<", .plain) = key.kind { return key.tag == nil || key.tag == "tag:yaml.org,2002:merge" }
        return false
    }

    /// Applies `<<` entries: explicit keys win over merged ones; among merged maps the first wins.
    static func applyMerges(_ pairs: [Node.Pair]) throws(YAMLError) -> [Node.Pair] {
        guard pairs.contains(where: { isMergeKey($0.key) }) else { return pairs }
        var result: [Node.Pair] = []
        var seen = Set<String>()
        for pair in pairs where !isMergeKey(pair.key) {
            result.append(pair)
            if let k = pair.key.scalar { seen.insert(k) }
        }
        for pair in pairs where isMergeKey(pair.key) {
            let sources: [Node]
            switch pair.value.kind {
            case .mapping: sources = [pair.value]
            case .sequence(let items): sources = items
            case .scalar:
                throw YAMLError(
                    mark: pair.value.mark,
                    message: "the merge key << needs a map or a list of maps, found \(pair.value.typeDescription)"
                )
            }
            for source in sources {
                guard let sourcePairs = source.pairs else {
                    throw YAMLError(
                        mark: source.mark,
                        message: "the merge key << needs a map or a list of maps, found \(source.typeDescription)"
                    )
                }
                for p in sourcePairs {
                    guard let k = p.key.scalar, !seen.contains(k) else { continue }
                    seen.insert(k)
                    result.append(p)
                }
            }
        }
        return result
    }

    static func string(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let p else { return nil }
        return String(cString: p)
    }

    static func string(_ p: UnsafeMutablePointer<yaml_char_t>?, length: Int) -> String? {
        guard let p else { return nil }
        return String(decoding: UnsafeBufferPointer(start: p, count: length), as: UTF8.self)
    }

    static func expandTag(_ tag: String?) -> String? {
        guard let tag, !tag.isEmpty, tag != "!" else { return nil }
        if tag.hasPrefix("!!") { return "tag:yaml.org,2002:" + tag.dropFirst(2) }
        return tag
    }

    static func parserError(_ parser: yaml_parser_t, bytes: [UInt8]) -> YAMLError {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown YAML error"
        let context = parser.context.map { String(cString: $0) }
        let problemMark = Mark(line: Int(parser.problem_mark.line) + 1, column: Int(parser.problem_mark.column) + 1)
        if parser.error == YAML_READER_ERROR {
            // Reader errors carry a byte offset, not a line: count the lines up to it.
            let offset = min(Int(parser.problem_offset), bytes.count)
            var line = 1
            var lineStart = 0
            for i in 0..<offset where bytes[i] == 0x0A {
                line += 1
                lineStart = i + 1
            }
            return YAMLError(
                mark: Mark(line: line, column: offset - lineStart + 1),
                message: "the file is not valid UTF-8 text (\(problem) at byte \(offset)); is it a binary file?"
            )
        }
        var message = problem
        var mark = problemMark
        let index = Int(parser.problem_mark.index)
        if index >= 0, index < bytes.count {
            let byte = bytes[index]
            if byte == 0x09 {
                message += " (a tab character: YAML indents with spaces only)"
            } else if byte > 0x20 && byte < 0x7F {
                message += " (found '\(Character(UnicodeScalar(byte)))')"
            }
        } else if index >= bytes.count {
            message += " (at the end of the file)"
        }
        if let context {
            let contextMark = Mark(line: Int(parser.context_mark.line) + 1, column: Int(parser.context_mark.column) + 1)
            // An unclosed quote or bracket is best shown where it opens; the problem point
            // (often the end of the file) goes into the message.
            if (context.contains("quoted scalar") || context.contains("flow")) && contextMark.line != problemMark.line {
                mark = contextMark
                message = "\(context) that starts here: \(message) at \(problemMark)"
            } else {
                message = "\(context): \(message)"
            }
        }
        return YAMLError(mark: mark, message: message)
    }
}
