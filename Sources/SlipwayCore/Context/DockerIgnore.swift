#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Docker's `.dockerignore` rules, as moby/patternmatcher (`MatchesOrParentMatches`) and
/// BuildKit's `dockerignore.ReadAll` apply them.
///
/// - Each pattern is trimmed, cleaned like Go's `filepath.Clean` (`./a//b/` is `a/b`, `a/../b`
///   is `b`) and loses one leading `/`. `foo/` is therefore the same as `foo`: Docker does not
///   tell directories from files.
/// - `*` is any run of characters except `/`, `?` one character except `/`, `[a-c]` / `[^a-c]`
///   a class (Go's syntax: `^` negates, `\` escapes, no empty class, no leading `-`), `\x` the
///   character `x`. `**` is any number of directories: `**/x` matches `x` at any depth, `a/**`
///   everything below `a`, `a/**/b` `a/b`, `a/x/b`, `a/x/y/b`…
/// - A pattern that matches a directory matches everything below it.
/// - A pattern starting with `!` re-includes what it matches; the last pattern that matches a
///   path (or one of its parent directories) decides.
///
/// Known differences from Docker, all in patterns no one writes on purpose: Docker turns the
/// pattern into a Go regular expression, so `\d` there means a digit where slipway reads `d`,
/// `*` and `?` inside a class (`[*]`) corrupt the class there where slipway reads them
/// literally, and an unescaped `^` outside a class makes Docker's pattern match nothing.
public struct IgnoreMatcher: Sendable {
    struct Rule: Sendable {
        /// The cleaned pattern without its `!`.
        var text: String
        /// A `!` pattern: it re-includes what it matches.
        var isExclusion: Bool
        var pattern: CompiledPattern
    }

    let rules: [Rule]

    /// Whether any pattern starts with `!` (moby's `Exclusions()`).
    public let hasExclusions: Bool

    /// The patterns as Docker reads them after cleaning, `!` included, in order.
    public var patterns: [String] { rules.map { ($0.isExclusion ? "!" : "") + $0.text } }

    /// A matcher that excludes nothing.
    public init() {
        rules = []
        hasExclusions = false
    }

    /// Compiles `patterns` (lines of a `.dockerignore` without comments; blank entries are
    /// skipped). An invalid pattern throws ``ContextError/badIgnorePattern(file:line:pattern:reason:)``
    /// with its 1-based position in the list as `line`.
    public init(patterns: [String]) throws(ContextError) {
        try self.init(sources: patterns.enumerated().map { (text: $0.element, line: $0.offset + 1) }, file: nil)
    }

    init(sources: [(text: String, line: Int)], file: String?) throws(ContextError) {
        var rules: [Rule] = []
        rules.reserveCapacity(sources.count)
        for source in sources {
            var text = trimSpace(source.text)
            if text.isEmpty { continue }
            var isExclusion = false
            if text.utf8.first == UInt8(ascii: "!") {
                isExclusion = true
                text = trimSpace(String(text.unicodeScalars.dropFirst()))
                if text.isEmpty {
                    throw .badIgnorePattern(
                        file: file,
                        line: source.line,
                        pattern: source.text,
                        reason: "'!' alone is not a pattern (write !PATH to re-include PATH)"
                    )
                }
            }
            text = cleanPath(text)
            if text.utf8.count > 1 && text.utf8.first == UInt8(ascii: "/") {
                text = String(text.unicodeScalars.dropFirst())
            }
            let pattern: CompiledPattern
            do {
                pattern = try CompiledPattern(text)
            } catch {
                throw .badIgnorePattern(file: file, line: source.line, pattern: source.text, reason: error.reason)
            }
            rules.append(Rule(text: text, isExclusion: isExclusion, pattern: pattern))
        }
        self.rules = rules
        self.hasExclusions = rules.contains { $0.isExclusion }
    }

    /// Whether Docker leaves `relativePath` (slash-separated, relative to the context) out of
    /// the build context: the last pattern that matches the path or one of its parent
    /// directories decides. The context itself (`.` or an empty path) is never excluded.
    ///
    /// `isDirectory` does not change the answer (Docker's patterns cannot tell a directory
    /// from a file); it is there so that callers state what they ask about.
    public func isExcluded(_ relativePath: String, isDirectory: Bool) -> Bool {
        if rules.isEmpty { return false }
        var path = needsCleaning(relativePath) ? cleanPath(relativePath) : relativePath
        if path == "." || path.isEmpty { return false }
        return path.withUTF8 { bytes in
            var slashes = 0
            for byte in bytes where byte == UInt8(ascii: "/") { slashes += 1 }
            for rule in rules.reversed() where rule.pattern.matchesSelfOrParent(bytes, slashes: slashes) {
                return !rule.isExclusion
            }
            return false
        }
    }

    /// Whether a `!` pattern could re-include something below the directory `dir` (relative
    /// to the context). A walker may skip an excluded directory only when this is false.
    /// The answer errs towards `true`: `!**/keep` makes every directory worth entering.
    public func mayIncludeBelow(_ dir: String) -> Bool {
        guard hasExclusions else { return false }
        var cleaned = needsCleaning(dir) ? cleanPath(dir) : dir
        if cleaned == "." { cleaned = "" }
        return cleaned.withUTF8 { mayIncludeBelow(directory: $0) }
    }

    /// ``mayIncludeBelow(_:)`` for a clean path's bytes (empty for the context itself).
    func mayIncludeBelow(directory: UnsafeBufferPointer<UInt8>) -> Bool {
        guard hasExclusions else { return false }
        var probe = Array(directory)
        if !probe.isEmpty { probe.append(UInt8(ascii: "/")) }
        return probe.withUnsafeBufferPointer { probe in
            rules.contains { $0.isExclusion && $0.pattern.mayMatchBelow(probe) }
        }
    }
}

// MARK: - Incremental evaluation for the walker

extension IgnoreMatcher {
    /// Per pattern: does it match this directory or one of its parents? A child's answer for
    /// pattern `i` is then `flags[i] || pattern i matches the child`, one match per pattern
    /// instead of one per pattern and parent (moby's `MatchesUsingParentResults`, without its
    /// bug: flags are kept for every pattern, not only for those that were evaluated).
    struct DirectoryState: Sendable {
        var flags: [Bool]
    }

    /// Whether the child `path` (with `slashes` slashes) of a directory in `parent` (nil at the
    /// top of the context) is excluded. Evaluates from the last pattern and stops at the first
    /// that matches.
    func isExcluded(child path: UnsafeBufferPointer<UInt8>, slashes: Int, parent: DirectoryState?) -> Bool {
        // Through a buffer pointer: `rules[index].pattern` copied the whole pattern (four
        // arrays retained and released) for every rule and every path the walk lists.
        rules.withUnsafeBufferPointer { rules in
            var index = rules.count
            while index > 0 {
                index -= 1
                if parent?.flags[index] == true || rules[index].pattern.matches(path, slashes: slashes) {
                    return !rules[index].isExclusion
                }
            }
            return false
        }
    }

    /// The state of the directory `path` for its children.
    func state(ofDirectory path: UnsafeBufferPointer<UInt8>, slashes: Int, parent: DirectoryState?) -> DirectoryState {
        var flags = [Bool](repeating: false, count: rules.count)
        for index in rules.indices {
            flags[index] = parent?.flags[index] == true || rules[index].pattern.matches(path, slashes: slashes)
        }
        return DirectoryState(flags: flags)
    }
}

// MARK: - DevSpace's ignore-file lookup

extension IgnoreMatcher {
    /// The excludes DevSpace uses for a context (its `helper.ReadDockerignore`), read from the
    /// first of these files that exists:
    /// 1. `<ctx>/devspace.dockerignore` (`.dockerignore` is then excluded as well),
    /// 2. `<ctx>/<dockerfile>.dockerignore`,
    /// 3. `<ctx>/.dockerignore`.
    ///
    /// Then, as Docker's CLI does: if the ignore file itself is excluded, `!<ignore file>` is
    /// appended; if the Dockerfile lies in the context and is excluded, `!<dockerfile>`; and
    /// `.devspace/` is always excluded. (Unlike Docker, the two names are escaped, so that a
    /// Dockerfile called `app[1].Dockerfile` re-includes itself rather than a pattern.)
    ///
    /// - Parameters:
    ///   - contextDir: the context directory.
    ///   - dockerfileRelativeToContext: the Dockerfile's path relative to the context, or nil.
    ///     A path leading out of the context (`../Dockerfile`) is used only to find
    ///     `<dockerfile>.dockerignore`.
    /// - Returns: the matcher and the path of the ignore file that was read (`contextDir`
    ///   joined with its name), or nil when there is none.
    public static func forContext(
        contextDir: String,
        dockerfileRelativeToContext: String?
    ) throws(ContextError) -> (IgnoreMatcher, ignoreFile: String?) {
        var candidates: [(relative: String, excludeDockerignore: Bool)] = [("devspace.dockerignore", true)]
        var dockerfile: String?
        if let given = dockerfileRelativeToContext, !given.isEmpty {
            candidates.append((given + ".dockerignore", false))
            let cleaned = cleanPath(given)
            if !(cleaned == ".." || cleaned.hasPrefix("../") || cleaned.hasPrefix("/")) { dockerfile = cleaned }
        }
        candidates.append((".dockerignore", false))

        var sources: [(text: String, line: Int)] = []
        var used: (relative: String, absolute: String)?
        for candidate in candidates {
            let absolute =
                candidate.relative.hasPrefix("/") ? candidate.relative : joinPath(contextDir, candidate.relative)
            guard let lines = try readIgnoreFile(absolute) else { continue }
            sources = lines
            if candidate.excludeDockerignore { sources.append((".dockerignore", 0)) }
            used = (candidate.relative, absolute)
            break
        }

        let file = used?.absolute
        var matcher = try IgnoreMatcher(sources: sources, file: file)
        if let used {
            let relative = cleanPath(used.relative)
            let inside = !(relative == ".." || relative.hasPrefix("../") || relative.hasPrefix("/"))
            if inside && matcher.isExcluded(relative, isDirectory: false) {
                sources.append(("!" + escapePattern(relative), 0))
                matcher = try IgnoreMatcher(sources: sources, file: file)
            }
        }
        if let dockerfile, matcher.isExcluded(dockerfile, isDirectory: false) {
            sources.append(("!" + escapePattern(dockerfile), 0))
        }
        sources.append((".devspace/", 0))
        matcher = try IgnoreMatcher(sources: sources, file: file)
        return (matcher, used?.absolute)
    }

    /// The pattern lines of an ignore file as BuildKit's `dockerignore.ReadAll` keeps them (a
    /// UTF-8 BOM stripped, lines starting with `#` dropped, CR before LF dropped), with their
    /// 1-based line numbers; nil when the file does not exist.
    static func readIgnoreFile(_ path: String) throws(ContextError) -> [(text: String, line: Int)]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw .unreadable(path: path, reason: ContextError.errnoText(code))
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: ContextError.errnoText(errno))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }

        var lines: [(text: String, line: Int)] = []
        var number = 0
        for var line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.first == UInt8(ascii: "#") { continue }
            lines.append((String(decoding: line, as: UTF8.self), number))
        }
        return lines
    }
}

// MARK: - Paths

/// `path` as a pattern that matches exactly it: `\` before `*`, `?`, `[`, `]` and `\`.
func escapePattern(_ path: String) -> String {
    var out = ""
    for scalar in path.unicodeScalars {
        if "*?[]\\".unicodeScalars.contains(scalar) { out.unicodeScalars.append("\\") }
        out.unicodeScalars.append(scalar)
    }
    return out
}

/// Go's `strings.TrimSpace`: Unicode white space at both ends.
func trimSpace(_ text: String) -> String {
    let scalars = text.unicodeScalars
    guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
    // `first` exists, so a last non-space scalar exists too.
    let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) ?? first
    return String(scalars[first...last])
}

/// Whether `path` may differ from its `cleanPath` form (a cheap test for the common case;
/// `true` for any `.` or `..` component, even where cleaning would keep it).
func needsCleaning(_ path: String) -> Bool {
    let slash = UInt8(ascii: "/")
    let dot = UInt8(ascii: ".")
    if path.utf8.isEmpty { return true }
    var previousSlash = false
    var dots = 0  // the number of dots in the current component while it has nothing else
    for byte in path.utf8 {
        if byte == slash {
            if previousSlash || dots == 1 || dots == 2 { return true }
            previousSlash = true
            dots = 0
        } else {
            previousSlash = false
            if byte == dot {
                if dots >= 0 { dots += 1 }
            } else {
                dots = -1
            }
        }
    }
    if previousSlash { return path.utf8.count > 1 }
    return dots == 1 || dots == 2
}

/// Go's `filepath.Clean` for slash-separated paths.
func cleanPath(_ path: String) -> String {
    let bytes = Array(path.utf8)
    if bytes.isEmpty { return "." }
    let rooted = bytes[0] == UInt8(ascii: "/")
    var parts: [ArraySlice<UInt8>] = []
    for part in bytes.split(separator: UInt8(ascii: "/")) {
        if part.elementsEqual([UInt8(ascii: ".")]) { continue }
        if part.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
            if let last = parts.last, !last.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                parts.removeLast()
            } else if !rooted {
                parts.append(part)
            }
            continue
        }
        parts.append(part)
    }
    var out: [UInt8] = rooted ? [UInt8(ascii: "/")] : []
    for (index, part) in parts.enumerated() {
        if index > 0 { out.append(UInt8(ascii: "/")) }
        out.append(contentsOf: part)
    }
    if out.isEmpty { return "." }
    return String(decoding: out, as: UTF8.self)
}

func joinPath(_ directory: String, _ name: String) -> String {
    if directory.isEmpty { return name }
    return directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

// MARK: - One compiled pattern

/// A pattern compiled the way moby's `Pattern.compile` classifies it: a plain string compared
/// whole (`exact`), a literal followed by `**` (`prefix`), `**` followed by a literal
/// (`suffix`), or anything else, matched by a small backtracking matcher over the tokens of
/// moby's regular expression.
struct CompiledPattern: Sendable {
    enum Token: Sendable, Equatable {
        /// One byte of a literal.
        case byte(UInt8)
        /// `?`: one character other than `/` (regexp `[^/]`).
        case one
        /// `*`: any characters other than `/` (regexp `[^/]*`).
        case star
        /// `**` at the end: anything except a newline (regexp `.*`).
        case any
        /// `**` before more pattern: nothing, or anything ending in `/` (regexp `(.*/)?`).
        case directories
        /// `[…]`: one character in (or, negated, not in) the ranges.
        case set(ScalarSet)
    }

    struct ScalarSet: Sendable, Equatable {
        var negated: Bool
        var ranges: [ClosedRange<UInt32>]

        func contains(_ scalar: UInt32) -> Bool {
            ranges.contains { $0.contains(scalar) } != negated
        }
    }

    enum Kind: Sendable {
        case exact
        case prefix
        case suffix
        case tokens
    }

    struct SyntaxError: Error {
        var reason: String
    }

    let kind: Kind
    /// What `exact`, `prefix` and `suffix` compare with (empty for `tokens`). A property of its
    /// own rather than the case's payload: binding the payload copied the array (a retain and
    /// a release) for every path the walk matched.
    let literal: [UInt8]
    let tokens: [Token]
    /// Literal bytes every match starts / ends with (quick rejection).
    let literalPrefix: [UInt8]
    let literalSuffix: [UInt8]
    /// The number of `/` in every match, when the pattern fixes it.
    let fixedSlashes: Int?
    let needsBacktracking: Bool

    init(_ pattern: String) throws(SyntaxError) {
        let scalars = Array(pattern.unicodeScalars)
        var tokens: [Token] = []
        enum Detected { case exact, prefix, suffix, regexp }
        var detected = Detected.exact
        var index = 0
        var iteration = 0

        func appendLiteral(_ scalar: Unicode.Scalar) {
            for byte in String(scalar).utf8 { tokens.append(.byte(byte)) }
        }

        while index < scalars.count {
            let ch = scalars[index]
            index += 1
            defer { iteration += 1 }
            switch ch {
            case "*":
                if index < scalars.count && scalars[index] == "*" {
                    index += 1
                    if index < scalars.count && scalars[index] == "/" { index += 1 }
                    if index == scalars.count {
                        if detected == .exact {
                            detected = .prefix
                        } else {
                            tokens.append(.any)
                            detected = .regexp
                        }
                    } else {
                        tokens.append(.directories)
                        detected = .regexp
                    }
                    if iteration == 0 { detected = .suffix }
                } else {
                    tokens.append(.star)
                    detected = .regexp
                }
            case "?":
                tokens.append(.one)
                detected = .regexp
            case "\\":
                guard index < scalars.count else {
                    throw SyntaxError(reason: "'\\' at the end of the pattern escapes nothing")
                }
                appendLiteral(scalars[index])
                index += 1
                detected = .regexp
            case "[":
                tokens.append(.set(try Self.parseSet(scalars, &index)))
                detected = .regexp
            case "]":
                tokens.append(.byte(UInt8(ascii: "]")))
                detected = .regexp
            default:
                appendLiteral(ch)
            }
        }

        let bytes = Array(pattern.utf8)
        switch detected {
        case .exact: (kind, literal) = (.exact, bytes)
        case .prefix: (kind, literal) = (.prefix, Array(bytes.dropLast(2)))
        case .suffix: (kind, literal) = (.suffix, Array(bytes.dropFirst(2)))
        case .regexp: (kind, literal) = (.tokens, [])
        }
        self.tokens = tokens

        var prefix: [UInt8] = []
        for token in tokens {
            guard case .byte(let byte) = token else { break }
            prefix.append(byte)
        }
        var suffix: [UInt8] = []
        for token in tokens.reversed() {
            guard case .byte(let byte) = token else { break }
            suffix.append(byte)
        }
        literalPrefix = prefix
        literalSuffix = suffix.reversed()

        var slashes: Int? = 0
        var backtracking = false
        for token in tokens {
            switch token {
            case .byte(let byte):
                if byte == UInt8(ascii: "/") { slashes? += 1 }
            case .one:
                break
            case .star:
                backtracking = true
            case .any, .directories:
                backtracking = true
                slashes = nil
            case .set(let set):
                if set.contains(UInt32(UInt8(ascii: "/"))) { slashes = nil }
            }
        }
        fixedSlashes = slashes
        needsBacktracking = backtracking
    }

    /// Parses a class after its `[` with Go's `filepath.Match` rules (which Docker uses to
    /// reject bad patterns) and the range check of Go's regexp compiler.
    private static func parseSet(_ scalars: [Unicode.Scalar], _ index: inout Int) throws(SyntaxError) -> ScalarSet {
        let unclosed = SyntaxError(reason: "'[' without a matching ']'")
        func element(_ index: inout Int) throws(SyntaxError) -> UInt32 {
            guard index < scalars.count else { throw unclosed }
            var scalar = scalars[index]
            if scalar == "-" || scalar == "]" {
                throw SyntaxError(
                    reason: "a character class cannot be empty or have '\(scalar)' there; escape it as '\\\(scalar)'"
                )
            }
            if scalar == "\\" {
                index += 1
                guard index < scalars.count else { throw unclosed }
                scalar = scalars[index]
            }
            index += 1
            guard index < scalars.count else { throw unclosed }
            return scalar.value
        }

        var set = ScalarSet(negated: false, ranges: [])
        if index < scalars.count && scalars[index] == "^" {
            set.negated = true
            index += 1
        }
        while true {
            if index < scalars.count && scalars[index] == "]" && !set.ranges.isEmpty {
                index += 1
                return set
            }
            let low = try element(&index)
            var high = low
            if scalars[index] == "-" {
                index += 1
                high = try element(&index)
            }
            guard low <= high else {
                throw SyntaxError(
                    reason: "character class range '\(Unicode.Scalar(low).map(String.init) ?? "?")-"
                        + "\(Unicode.Scalar(high).map(String.init) ?? "?")' is reversed"
                )
            }
            set.ranges.append(low...high)
        }
    }

    // MARK: Matching

    /// Whether the pattern matches the whole of `path`.
    func matches(_ path: UnsafeBufferPointer<UInt8>, slashes: Int) -> Bool {
        switch kind {
        case .exact:
            return path.count == literal.count && bytesEqual(path, at: 0, literal)
        case .prefix:
            return path.count >= literal.count && bytesEqual(path, at: 0, literal)
        case .suffix:
            if path.count >= literal.count && bytesEqual(path, at: path.count - literal.count, literal) {
                return true
            }
            // `**/foo` also matches `foo`.
            return literal.first == UInt8(ascii: "/") && path.count == literal.count - 1
                && path.elementsEqual(literal.dropFirst())
        case .tokens:
            if let fixedSlashes, fixedSlashes != slashes { return false }
            guard path.count >= literalPrefix.count && bytesEqual(path, at: 0, literalPrefix),
                path.count >= literalSuffix.count
                    && bytesEqual(path, at: path.count - literalSuffix.count, literalSuffix)
            else { return false }
            return run(path, prefixOnly: false)
        }
    }

    /// moby's `MatchesOrParentMatches` for one pattern: the path or one of its parent
    /// directories matches.
    func matchesSelfOrParent(_ path: UnsafeBufferPointer<UInt8>, slashes: Int) -> Bool {
        if matches(path, slashes: slashes) { return true }
        var depth = 0
        for end in path.indices where path[end] == UInt8(ascii: "/") {
            if matches(UnsafeBufferPointer(rebasing: path[..<end]), slashes: depth) { return true }
            depth += 1
        }
        return false
    }

    /// Whether some path starting with `probe` (a directory followed by `/`, or empty) could
    /// match. Errs towards `true`.
    func mayMatchBelow(_ probe: UnsafeBufferPointer<UInt8>) -> Bool {
        switch kind {
        case .exact:
            return literal.count > probe.count && literal.starts(with: probe)
        case .prefix:
            return literal.starts(with: probe) || probe.starts(with: literal)
        case .suffix:
            return true
        case .tokens:
            return run(probe, prefixOnly: true)
        }
    }

    /// Backtracking over the tokens with a memo of failed (token, position) pairs at the
    /// repetition tokens, so the work is bounded by tokens × length² rather than exponential.
    /// With `prefixOnly`, reaching the end of `input` at any token counts as success.
    private func run(_ input: UnsafeBufferPointer<UInt8>, prefixOnly: Bool) -> Bool {
        let columns = input.count + 1
        let words = needsBacktracking ? ((tokens.count + 1) * columns + 63) / 64 : 0
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: max(words, 1)) { memo in
            memo.initialize(repeating: 0)
            return step(0, 0, input, prefixOnly, memo, columns)
        }
    }

    private func step(
        _ startToken: Int,
        _ startPosition: Int,
        _ input: UnsafeBufferPointer<UInt8>,
        _ prefixOnly: Bool,
        _ memo: UnsafeMutableBufferPointer<UInt64>,
        _ columns: Int
    ) -> Bool {
        var token = startToken
        var position = startPosition
        let slash = UInt8(ascii: "/")
        let newline = UInt8(ascii: "\n")
        while true {
            if prefixOnly && position == input.count { return true }
            if token == tokens.count { return position == input.count }
            switch tokens[token] {
            case .byte(let byte):
                guard position < input.count && input[position] == byte else { return false }
                position += 1
                token += 1
            case .one:
                guard position < input.count && input[position] != slash else { return false }
                position += decodeScalar(input, position).length
                token += 1
            case .set(let set):
                guard position < input.count else { return false }
                let (scalar, length) = decodeScalar(input, position)
                guard set.contains(scalar) else { return false }
                position += length
                token += 1
            case .star, .any, .directories:
                let bit = token * columns + position
                if memo[bit >> 6] & (1 << UInt64(bit & 63)) != 0 { return false }
                let next = token + 1
                var p = position
                switch tokens[token] {
                case .star:
                    while true {
                        if step(next, p, input, prefixOnly, memo, columns) { return true }
                        if p == input.count || input[p] == slash { break }
                        p += decodeScalar(input, p).length
                    }
                case .any:
                    while true {
                        if step(next, p, input, prefixOnly, memo, columns) { return true }
                        if p == input.count || input[p] == newline { break }
                        p += decodeScalar(input, p).length
                    }
                default:
                    if step(next, p, input, prefixOnly, memo, columns) { return true }
                    while p < input.count && input[p] != newline {
                        if input[p] == slash && step(next, p + 1, input, prefixOnly, memo, columns) { return true }
                        p += decodeScalar(input, p).length
                    }
                    // `.*` may also run to the end of a probe: the `/` may still come.
                    if prefixOnly && p == input.count { return true }
                }
                memo[bit >> 6] |= 1 << UInt64(bit & 63)
                return false
            }
        }
    }
}

/// Whether `bytes[offset..<offset + literal.count]` equals `literal`; the caller checks the bounds.
@inline(__always)
func bytesEqual(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int, _ literal: [UInt8]) -> Bool {
    literal.withUnsafeBufferPointer { literal in
        guard let other = literal.baseAddress, let base = bytes.baseAddress else { return literal.isEmpty }
        return memcmp(base + offset, other, literal.count) == 0
    }
}

/// Decodes one scalar of UTF-8 at `index` as Go does: an invalid byte is U+FFFD of length 1.
@inline(__always)
func decodeScalar(_ bytes: UnsafeBufferPointer<UInt8>, _ index: Int) -> (scalar: UInt32, length: Int) {
    let lead = bytes[index]
    if lead < 0x80 { return (UInt32(lead), 1) }
    func continuation(_ offset: Int) -> UInt32? {
        let at = index + offset
        guard at < bytes.count, bytes[at] & 0xC0 == 0x80 else { return nil }
        return UInt32(bytes[at] & 0x3F)
    }
    switch lead {
    case 0xC2...0xDF:
        if let c1 = continuation(1) { return ((UInt32(lead & 0x1F) << 6) | c1, 2) }
    case 0xE0...0xEF:
        if let c1 = continuation(1), let c2 = continuation(2) {
            let value = (UInt32(lead & 0x0F) << 12) | (c1 << 6) | c2
            if value >= 0x800 && !(0xD800...0xDFFF).contains(value) { return (value, 3) }
        }
    case 0xF0...0xF4:
        if let c1 = continuation(1), let c2 = continuation(2), let c3 = continuation(3) {
            let value = (UInt32(lead & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3
            if (0x10000...0x10FFFF).contains(value) { return (value, 4) }
        }
    default:
        break
    }
    return (0xFFFD, 1)
}
