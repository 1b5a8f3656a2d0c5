internal import CYAML
internal import Foundation

/// Writes ``Node`` trees back to YAML text on libyaml's emitter.
///
/// Block style throughout, keys in their order, two-space indentation. A string that would
/// read back as another type (`"true"`, `"1.0"`, `""`) is quoted; multi-line strings use a
/// literal block.
public struct YAMLEmitter: Sendable {
    public init() {}

    /// Emits one or more documents; documents after the first are separated by `---`.
    public func emit(_ documents: [Node]) throws(YAMLError) -> String {
        let sink = Sink()
        var emitter = yaml_emitter_t()
        guard yaml_emitter_initialize(&emitter) == 1 else {
            throw YAMLError(mark: .start, message: "libyaml could not allocate an emitter")
        }
        defer { yaml_emitter_delete(&emitter) }
        yaml_emitter_set_unicode(&emitter, 1)
        yaml_emitter_set_indent(&emitter, 2)
        yaml_emitter_set_width(&emitter, -1)
        let box = Unmanaged.passUnretained(sink).toOpaque()
        yaml_emitter_set_output(
            &emitter,
            { data, buffer, size in
                guard let data, let buffer else { return 0 }
                let sink = Unmanaged<Sink>.fromOpaque(data).takeUnretainedValue()
                sink.bytes.append(contentsOf: UnsafeBufferPointer(start: buffer, count: size))
                return 1
            },
            box
        )

        var event = yaml_event_t()
        try check(&emitter, yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING), &event)
        for (i, doc) in documents.enumerated() {
            try check(
                &emitter,
                yaml_document_start_event_initialize(&event, nil, nil, nil, i == 0 ? 1 : 0),
                &event
            )
            // Iterative walk: the tree may be as deep as the parser allows.
            var work: [Step] = [.node(doc)]
            while let step = work.popLast() {
                switch step {
                case .end(isMapping: true):
                    try check(&emitter, yaml_mapping_end_event_initialize(&event), &event)
                case .end(isMapping: false):
                    try check(&emitter, yaml_sequence_end_event_initialize(&event), &event)
                case .node(let node):
                    switch node.kind {
                    case .scalar(let value, let style):
                        try emitScalar(&emitter, &event, node: node, value: value, style: style)
                    case .sequence(let items):
                        let flow = items.isEmpty
                        try check(
                            &emitter,
                            yaml_sequence_start_event_initialize(
                                &event,
                                nil,
                                nil,
                                1,
                                flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE
                            ),
                            &event
                        )
                        work.append(.end(isMapping: false))
                        for item in items.reversed() { work.append(.node(item)) }
                    case .mapping(let pairs):
                        let flow = pairs.isEmpty
                        try check(
                            &emitter,
                            yaml_mapping_start_event_initialize(
                                &event,
                                nil,
                                nil,
                                1,
                                flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE
                            ),
                            &event
                        )
                        work.append(.end(isMapping: true))
                        for pair in pairs.reversed() {
                            work.append(.node(pair.value))
                            work.append(.node(pair.key))
                        }
                    }
                }
            }
            try check(&emitter, yaml_document_end_event_initialize(&event, 1), &event)
        }
        try check(&emitter, yaml_stream_end_event_initialize(&event), &event)
        var text = String(decoding: sink.bytes, as: UTF8.self)
        // libyaml ends a lone scalar document with "...": drop that marker.
        if text.hasSuffix("...\n") { text.removeLast(4) }
        return text
    }

    public func emit(_ node: Node) throws(YAMLError) -> String {
        try emit([node])
    }

    private enum Step {
        case node(Node)
        case end(isMapping: Bool)
    }

    private final class Sink {
        var bytes: [UInt8] = []
    }

    private func emitScalar(
        _ emitter: inout yaml_emitter_t,
        _ event: inout yaml_event_t,
        node: Node,
        value: String,
        style: ScalarStyle
    ) throws(YAMLError) {
        let isString = node.resolved == .string
        var cStyle: yaml_scalar_style_t
        if isString && value.utf8.contains(10) {
            cStyle = YAML_LITERAL_SCALAR_STYLE
        } else if isString
            && (ScalarResolver.resolve(value) != .string || style.isQuoted || Self.yaml11Ambiguous(value))
        {
            cStyle = YAML_DOUBLE_QUOTED_SCALAR_STYLE
        } else {
            cStyle = YAML_PLAIN_SCALAR_STYLE
        }
        if node.isNull { cStyle = YAML_PLAIN_SCALAR_STYLE }
        // Quoted-in-source strings that are plain-safe are printed plain again: quoting is
        // kept only where it changes the meaning.
        if cStyle == YAML_DOUBLE_QUOTED_SCALAR_STYLE && ScalarResolver.resolve(value) == .string
            && Self.plainSafe(value) && !Self.yaml11Ambiguous(value)
        {
            cStyle = YAML_PLAIN_SCALAR_STYLE
        }
        let text = node.isNull && value.isEmpty ? "null" : value
        let ok = text.withCString { ptr in
            ptr.withMemoryRebound(to: yaml_char_t.self, capacity: text.utf8.count + 1) { p in
                yaml_scalar_event_initialize(
                    &event,
                    nil,
                    nil,
                    UnsafeMutablePointer(mutating: p),
                    Int32(text.utf8.count),
                    1,
                    1,
                    cStyle
                )
            }
        }
        try check(&emitter, ok, &event)
    }

    /// Strings that YAML 1.1 readers (Helm, kubectl, PyYAML) would take for a boolean or a
    /// number — `yes`, `on`, `n`, `12:30`, `0755` — although YAML 1.2 reads them as strings.
    static func yaml11Ambiguous(_ s: String) -> Bool {
        if s.utf8.count <= 3 {
            switch s.lowercased() {
            case "y", "yes", "n", "no", "on", "off": return true
            default: break
            }
        }
        // YAML 1.1's sexagesimal numbers `[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?` (`22:22`,
        // `12:30:00`) and octals `[-+]?0[0-7_]+` (`0755`).
        var u = Array(s.utf8)[...]
        if let f = u.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { u = u.dropFirst() }
        func digit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
        guard let lead = u.first, digit(lead) else { return false }
        if lead == 48 {
            return u.count > 1 && u.dropFirst().allSatisfy { ($0 >= 48 && $0 <= 55) || $0 == 95 }
        }
        var parts = u.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard parts.count >= 2 else { return false }
        guard parts[0].allSatisfy({ digit($0) || $0 == 95 }) else { return false }
        var last = parts.removeLast()
        if let dot = last.firstIndex(of: UInt8(ascii: ".")) {
            guard last[last.index(after: dot)...].allSatisfy({ digit($0) || $0 == 95 }) else { return false }
            last = last[..<dot]
        }
        func sixty(_ p: ArraySlice<UInt8>) -> Bool {
            (p.count == 1 && digit(p[p.startIndex]))
                || (p.count == 2 && p[p.startIndex] >= 48 && p[p.startIndex] <= 53 && digit(p[p.startIndex + 1]))
        }
        return parts.dropFirst().allSatisfy(sixty) && sixty(last)
    }

    /// Strings that read back as the same string when written plain.
    static func plainSafe(_ s: String) -> Bool {
        guard let first = s.first, let last = s.last else { return false }
        if first == " " || last == " " { return false }
        if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
            // "-x" and ":x" are fine when not followed by a space; keep it simple and quote.
            return false
        }
        if s.contains(": ") || s.contains(" #") || s.hasSuffix(":") { return false }
        return s.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }
    }

    private func check(
        _ emitter: inout yaml_emitter_t,
        _ initOK: Int32,
        _ event: inout yaml_event_t
    )
        throws(YAMLError)
    {
        guard initOK == 1 else { throw YAMLError(mark: .start, message: "libyaml could not create an event") }
        guard yaml_emitter_emit(&emitter, &event) == 1 else {
            let problem = emitter.problem.map { String(cString: $0) } ?? "unknown emitter error"
            throw YAMLError(mark: .start, message: "cannot write YAML: \(problem)")
        }
    }
}

extension YAMLEmitter {
    /// One-line flow form (`{a: 1, b: [x, y]}`), for a map or list spliced into a string.
    public func emitFlow(_ node: Node) throws(YAMLError) -> String {
        switch node.kind {
        case .scalar(let s, _):
            let flowSafe = Self.plainSafe(s) && !s.contains(where: { ",[]{}".contains($0) })
            if node.resolved != .string || (flowSafe && ScalarResolver.resolve(s) == .string) { return s }
            return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                + "\""
        case .sequence(let items):
            var parts: [String] = []
            for item in items { parts.append(try emitFlow(item)) }
            return "[" + parts.joined(separator: ", ") + "]"
        case .mapping(let pairs):
            var parts: [String] = []
            for p in pairs { parts.append("\(try emitFlow(p.key)): \(try emitFlow(p.value))") }
            return "{" + parts.joined(separator: ", ") + "}"
        }
    }
}
