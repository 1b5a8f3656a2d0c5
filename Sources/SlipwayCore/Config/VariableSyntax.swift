/// DevSpace's `${NAME}` syntax, as `pkg/util/vars` reads it.
///
/// - `${NAME}` is a reference; a value that is exactly one reference takes the variable's
///   typed value (a number stays a number, a map stays a map).
/// - `$!{NAME}` forces the value to a string.
/// - `$${NAME}` escapes: one `$` is dropped and nothing is resolved (`$${A}` → `${A}`).
/// - `${runtime.…}` is resolved later, at use, and kept as written at load time.
public enum VariableSyntax {
    public struct Reference: Sendable, Equatable {
        /// Range in the UTF-8 view of the scanned string.
        public var start: Int
        public var end: Int
        public var dollars: Int
        public var forceString: Bool
        public var name: String

        /// A single `$` is a reference; more are an escape that loses one `$`.
        public var isReference: Bool { dollars == 1 }
    }

    /// Every `$…{…}` in `s`, in order (DevSpace's regex `\$+!?\{[^{}]+\}`).
    public static func references(in s: String) -> [Reference] {
        let bytes = Array(s.utf8)
        var result: [Reference] = []
        var i = 0
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "$") else {
                i += 1
                continue
            }
            let start = i
            var j = i
            while j < bytes.count && bytes[j] == UInt8(ascii: "$") { j += 1 }
            let dollars = j - start
            var force = false
            if j < bytes.count && bytes[j] == UInt8(ascii: "!") {
                force = true
                j += 1
            }
            guard j < bytes.count, bytes[j] == UInt8(ascii: "{") else {
                i = j
                continue
            }
            var k = j + 1
            while k < bytes.count && bytes[k] != UInt8(ascii: "}") && bytes[k] != UInt8(ascii: "{") { k += 1 }
            guard k < bytes.count, bytes[k] == UInt8(ascii: "}"), k > j + 1 else {
                i = j + 1
                continue
            }
            let name = String(decoding: bytes[(j + 1)..<k], as: UTF8.self).trimmingSpaces()
            result.append(Reference(start: start, end: k + 1, dollars: dollars, forceString: force, name: name))
            i = k + 1
        }
        return result
    }

    /// True when `s` holds at least one `${…}` reference that is not an escape.
    public static func containsReference(_ s: String) -> Bool {
        references(in: s).contains(where: \.isReference)
    }

    /// Runtime variables (`runtime.images.app.tag`) are resolved at use, not at load.
    public static func isRuntime(_ name: String) -> Bool {
        name.hasPrefix("runtime.")
    }

    /// A whole-value expression `$(…)`, executed at load time as DevSpace does; nil otherwise.
    public static func expression(in s: String) -> String? {
        let t = s.trimmingSpaces()
        guard t.hasPrefix("$("), t.hasSuffix(")"), t.count > 3 else { return nil }
        return String(t.dropFirst(2).dropLast())
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}

extension VariableSyntax {
    /// A shell snippet written in the config (a `$(…)` expression, a variable's `command`, a
    /// custom build's script) with every `${NAME}` reference turned into an expansion of the
    /// environment variable that `variable` names for it. Values are never spliced into the
    /// text: whatever a value holds (`$(…)`, quotes, `;`), the shell sees it only as the
    /// value of a variable. Inside single quotes, where the shell would not expand, the
    /// quote is closed around a double-quoted expansion (`'a'"${X}"'b'`), so the text reads as
    /// it did when DevSpace spliced the value in. An escape (`$${A}`) loses one `$` and stays
    /// for the shell; a reference `variable` answers nil for (runtime variables) is kept as
    /// written.
    public static func shellText(_ s: String, references refs: [Reference], variable: (Int) -> String?) -> String {
        guard !refs.isEmpty else { return s }
        let bytes = Array(s.utf8)
        enum Quote { case none, single, double, backtick }
        // Command substitutions (`$(`, backquotes) open a new quoting context.
        var contexts: [Quote] = [.none]
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16 * refs.count)
        var next = 0
        var i = 0
        let dollar = UInt8(ascii: "$")
        let open = UInt8(ascii: "(")
        let close = UInt8(ascii: ")")
        let single = UInt8(ascii: "'")
        let double = UInt8(ascii: "\"")
        let backslash = UInt8(ascii: "\\")
        let backquote = UInt8(ascii: "`")
        while i < bytes.count {
            while next < refs.count && refs[next].start < i { next += 1 }
            if next < refs.count && refs[next].start == i {
                let r = refs[next]
                if !r.isReference {
                    out.append(contentsOf: bytes[(r.start + 1)..<r.end])
                } else if let name = variable(next) {
                    let expansion = Array("${\(name)}".utf8)
                    if contexts.last == .single {
                        out += [single, double] + expansion + [double, single]
                    } else {
                        out += expansion
                    }
                } else {
                    out.append(contentsOf: bytes[r.start..<r.end])
                }
                i = r.end
                next += 1
                continue
            }
            let c = bytes[i]
            out.append(c)
            i += 1
            switch contexts.last ?? .none {
            case .single:
                if c == single { contexts.removeLast() }
            case .double:
                if c == backslash, i < bytes.count {
                    out.append(bytes[i])
                    i += 1
                } else if c == double {
                    contexts.removeLast()
                } else if c == dollar, i < bytes.count, bytes[i] == open {
                    out.append(open)
                    i += 1
                    contexts.append(.none)
                } else if c == backquote {
                    contexts.append(.backtick)
                }
            case .none, .backtick:
                if c == backslash, i < bytes.count {
                    out.append(bytes[i])
                    i += 1
                } else if c == single {
                    contexts.append(.single)
                } else if c == double {
                    contexts.append(.double)
                } else if c == dollar, i < bytes.count, bytes[i] == open {
                    out.append(open)
                    i += 1
                    contexts.append(.none)
                } else if c == close, contexts.count > 1, contexts.last == Quote.none {
                    contexts.removeLast()
                } else if c == backquote {
                    if contexts.last == .backtick { contexts.removeLast() } else { contexts.append(.backtick) }
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
