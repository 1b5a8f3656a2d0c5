// A sync's excludes: DevSpace's `excludePaths` / `excludeFile` (both ways), `uploadExclude…`
// and `downloadExclude…`, read with gitignore's syntax, plus what is always left out.

/// The exclude fields of one sync, as written (DevSpace's `sync[]`).
public struct SyncExcludes: Sendable, Equatable {
    /// Both directions (`excludePaths`).
    public var excludePaths: [String]
    /// A file of patterns for both directions (`excludeFile`), relative to the base directory.
    public var excludeFile: String?
    public var uploadExcludePaths: [String]
    public var uploadExcludeFile: String?
    public var downloadExcludePaths: [String]
    public var downloadExcludeFile: String?

    public init(
        excludePaths: [String] = [],
        excludeFile: String? = nil,
        uploadExcludePaths: [String] = [],
        uploadExcludeFile: String? = nil,
        downloadExcludePaths: [String] = [],
        downloadExcludeFile: String? = nil
    ) {
        self.excludePaths = excludePaths
        self.excludeFile = excludeFile
        self.uploadExcludePaths = uploadExcludePaths
        self.uploadExcludeFile = uploadExcludeFile
        self.downloadExcludePaths = downloadExcludePaths
        self.downloadExcludeFile = downloadExcludeFile
    }
}

/// The rule that left a path out, for the decision a caller prints.
public struct SyncExclusion: Sendable, Equatable, CustomStringConvertible {
    /// The pattern as written.
    public var pattern: String
    /// Where it was written: `excludePaths[1]`, `FILE:LINE`, or a built-in rule's name.
    public var origin: String

    public var description: String { "\(origin): \(pattern)" }
}

/// Patterns read as gitignore(5) reads them:
/// - blank lines and lines starting with `#` are skipped; `\#` and `\!` start a pattern with
///   that character; spaces at either end are trimmed (as DevSpace trims them);
/// - `!` re-includes what an earlier pattern excluded, except below an excluded directory (git
///   never looks inside one, and neither does the sync: an excluded directory is not watched);
/// - a trailing `/` matches directories only;
/// - a pattern with a `/` at its start or in its middle is anchored at the sync's root;
///   otherwise it matches a name at any depth;
/// - `*` and `?` do not match `/`; `[a-z]`, `[!a-z]` (or `[^a-z]`) are classes; `**/` is any
///   number of directories, `/**` everything inside.
///
/// DevSpace matches with go-gitignore, which (unlike git) also lets `a/b` match at any depth;
/// slipway anchors it, as git does (docs/sync.md).
public struct SyncIgnoreRules: Sendable {
    struct Rule: Sendable {
        var exclusion: SyncExclusion
        var negated: Bool
        var directoryOnly: Bool
        /// A pattern without a `/`: it is matched against the last component only.
        var basenameOnly: Bool
        var pattern: CompiledPattern
        /// Bytes every match contains (the pattern's longest literal run), checked first.
        var needle: [UInt8]
    }

    let rules: [Rule]

    public init() { rules = [] }

    /// Compiles `lines` (each with its origin); a pattern that cannot be read throws
    /// ``SyncConfigurationError/badPattern(origin:pattern:reason:)``.
    public init(_ lines: [(text: String, origin: String)]) throws(SyncConfigurationError) {
        var rules: [Rule] = []
        for line in lines {
            if let rule = try Self.compile(line.text, origin: line.origin) { rules.append(rule) }
        }
        self.rules = rules
    }

    var isEmpty: Bool { rules.isEmpty }

    static func compile(_ line: String, origin: String) throws(SyncConfigurationError) -> Rule? {
        var text = trimSpace(line)
        if text.isEmpty || text.hasPrefix("#") { return nil }
        var negated = false
        if text.hasPrefix("!") {
            negated = true
            text.removeFirst()
        } else if text.hasPrefix("\\!") || text.hasPrefix("\\#") {
            text.removeFirst()
        }
        var directoryOnly = false
        while text.hasSuffix("/") {
            directoryOnly = true
            text.removeLast()
        }
        if text.isEmpty {
            throw .badPattern(origin: origin, pattern: line, reason: "it matches nothing (write a name or a path)")
        }
        let anchored = text.contains("/")
        if text.hasPrefix("/") { text.removeFirst() }
        // gitignore's `[!…]` is the `[^…]` of the matcher below.
        text = text.replacing("[!", with: "[^")
        do {
            let pattern = try CompiledPattern(text)
            return Rule(
                exclusion: SyncExclusion(pattern: line, origin: origin),
                negated: negated,
                directoryOnly: directoryOnly,
                basenameOnly: !anchored,
                pattern: pattern,
                needle: Self.longestLiteral(text)
            )
        } catch {
            throw .badPattern(origin: origin, pattern: line, reason: error.reason)
        }
    }

    /// The longest run of literal bytes in a pattern (empty when under two bytes).
    static func longestLiteral(_ pattern: String) -> [UInt8] {
        var best: [UInt8] = []
        var run: [UInt8] = []
        var bytes = Array(pattern.utf8)[...]
        func end() {
            if run.count > best.count { best = run }
            run = []
        }
        while let byte = bytes.popFirst() {
            switch byte {
            case UInt8(ascii: "*"), UInt8(ascii: "?"):
                end()
            case UInt8(ascii: "["):
                end()
                while let inner = bytes.popFirst(), inner != UInt8(ascii: "]") {
                    if inner == UInt8(ascii: "\\") { _ = bytes.popFirst() }
                }
            case UInt8(ascii: "\\"):
                if let next = bytes.popFirst() { run.append(next) }
            default:
                run.append(byte)
            }
        }
        end()
        return best.count >= 2 ? best : []
    }

    /// The rule that excludes `path` (relative, `/`-separated): the path itself, or one of its
    /// parent directories; nil when it is included.
    public func exclusion(of path: String, isDirectory: Bool) -> SyncExclusion? {
        guard !rules.isEmpty, !path.isEmpty else { return nil }
        var path = path
        return path.withUTF8 { all -> SyncExclusion? in
            var slashes = 0
            var start = 0
            for index in all.indices where all[index] == UInt8(ascii: "/") {
                let prefix = UnsafeBufferPointer(rebasing: all[..<index])
                let name = UnsafeBufferPointer(rebasing: all[start..<index])
                if let rule = decidingRule(prefix, name: name, slashes: slashes, isDirectory: true), !rule.negated {
                    return rule.exclusion
                }
                slashes += 1
                start = index + 1
            }
            let name = UnsafeBufferPointer(rebasing: all[start...])
            guard let rule = decidingRule(all, name: name, slashes: slashes, isDirectory: isDirectory), !rule.negated
            else { return nil }
            return rule.exclusion
        }
    }

    /// The rule that excludes `path` itself, its parent directories taken as included (a walk
    /// that never enters excluded directories).
    func ownExclusion(of path: String, isDirectory: Bool) -> SyncExclusion? {
        guard !rules.isEmpty, !path.isEmpty else { return nil }
        var path = path
        return path.withUTF8 { bytes in
            var slashes = 0
            var start = 0
            for index in bytes.indices where bytes[index] == UInt8(ascii: "/") {
                slashes += 1
                start = index + 1
            }
            let name = UnsafeBufferPointer(rebasing: bytes[start...])
            guard let rule = decidingRule(bytes, name: name, slashes: slashes, isDirectory: isDirectory), !rule.negated
            else { return nil }
            return rule.exclusion
        }
    }

    /// The last rule that matches the path itself (`name`: its last component).
    private func decidingRule(
        _ path: UnsafeBufferPointer<UInt8>,
        name: UnsafeBufferPointer<UInt8>,
        slashes: Int,
        isDirectory: Bool
    ) -> Rule? {
        for rule in rules.reversed() where (!rule.directoryOnly || isDirectory) {
            let subject = rule.basenameOnly ? name : path
            if !rule.needle.isEmpty && !Self.contains(subject, rule.needle) { continue }
            if rule.pattern.matches(subject, slashes: rule.basenameOnly ? 0 : slashes) { return rule }
        }
        return nil
    }

    static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count, let first = needle.first else { return needle.isEmpty }
        var index = 0
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == first {
                var offset = 1
                while offset < needle.count && haystack[index + offset] == needle[offset] { offset += 1 }
                if offset == needle.count { return true }
            }
            index += 1
        }
        return false
    }
}

/// What a sync leaves out, per direction.
///
/// Always left out, whatever the config says: `.git/` and `.devspace/` (both ways), slipway's
/// own temporary files (`NAME.tmp-PID.START-RANDOM`), and conflict copies
/// (`NAME.slipway-conflict-TIME`: kept locally, never uploaded). Editors' temporary files
/// (vim's `4913`, swap files and `*~` backups, JetBrains' `___jb_tmp___` / `___jb_old___`,
/// Emacs' `.#*` and `#*#`) are never uploaded: a safe save through them counts as one change
/// of the real file.
public struct SyncFilter: Sendable {
    let always: SyncIgnoreRules
    let both: SyncIgnoreRules
    let editors: SyncIgnoreRules
    let conflicts: SyncIgnoreRules
    let upload: SyncIgnoreRules
    let download: SyncIgnoreRules

    /// The suffix of a conflict copy's name (then the UTC time).
    public static let conflictMarker = ".slipway-conflict-"

    static let alwaysRules: [(text: String, origin: String)] = [
        (".git/", "always excluded"), (".devspace/", "always excluded"),
        ("*.tmp-[0-9]*.[0-9]*-[0-9]*", "slipway's temporary file"),
    ]
    static let editorRules: [(text: String, origin: String)] = [
        ("4913", "editor's temporary file (vim)"), ("*.sw[a-px]", "editor's temporary file (vim)"),
        ("*~", "editor's backup file"), ("*___jb_tmp___", "editor's temporary file (JetBrains)"),
        ("*___jb_old___", "editor's temporary file (JetBrains)"), (".#*", "editor's lock file (Emacs)"),
        ("\\#*#", "editor's auto-save file (Emacs)"),
    ]
    static let conflictRules: [(text: String, origin: String)] = [
        ("*" + conflictMarker + "*", "conflict copy (kept locally, never uploaded)")
    ]

    /// Only the rules that are always there.
    public init() {
        self.init(both: SyncIgnoreRules(), upload: SyncIgnoreRules(), download: SyncIgnoreRules())
    }

    init(both: SyncIgnoreRules, upload: SyncIgnoreRules, download: SyncIgnoreRules) {
        // The built-in patterns are valid; an empty set would only mean fewer exclusions.
        always = (try? SyncIgnoreRules(Self.alwaysRules)) ?? SyncIgnoreRules()
        editors = (try? SyncIgnoreRules(Self.editorRules)) ?? SyncIgnoreRules()
        conflicts = (try? SyncIgnoreRules(Self.conflictRules)) ?? SyncIgnoreRules()
        self.both = both
        self.upload = upload
        self.download = download
    }

    /// Reads the patterns and files of `excludes`; files are relative to `baseDirectory` (the
    /// config's directory) unless absolute. Each pattern's origin names its field and index,
    /// or its file and line.
    public static func load(
        _ excludes: SyncExcludes,
        baseDirectory: String
    ) throws(SyncConfigurationError) -> SyncFilter {
        func lines(
            _ paths: [String],
            _ field: String,
            file: String?,
            fileField: String
        ) throws(SyncConfigurationError)
            -> [(text: String, origin: String)]
        {
            var lines = paths.enumerated().map { (text: $0.element, origin: "\(field)[\($0.offset)]") }
            if let file {
                let path = file.hasPrefix("/") ? file : joinPath(baseDirectory, file)
                let read: [(text: String, line: Int)]?
                do {
                    read = try IgnoreMatcher.readIgnoreFile(path)
                } catch {
                    throw .unreadableExcludeFile(field: fileField, path: path, reason: error.description)
                }
                guard let read else {
                    throw .unreadableExcludeFile(field: fileField, path: path, reason: "no such file")
                }
                lines += read.map { (text: $0.text, origin: "\(path):\($0.line)") }
            }
            return lines
        }
        let both = try SyncIgnoreRules(
            lines(excludes.excludePaths, "excludePaths", file: excludes.excludeFile, fileField: "excludeFile")
        )
        let upload = try SyncIgnoreRules(
            lines(
                excludes.uploadExcludePaths,
                "uploadExcludePaths",
                file: excludes.uploadExcludeFile,
                fileField: "uploadExcludeFile"
            )
        )
        let download = try SyncIgnoreRules(
            lines(
                excludes.downloadExcludePaths,
                "downloadExcludePaths",
                file: excludes.downloadExcludeFile,
                fileField: "downloadExcludeFile"
            )
        )
        return SyncFilter(both: both, upload: upload, download: download)
    }

    /// Why `path` is not synced in either direction (`.git`, `excludePaths`…), or nil.
    public func bothExclusion(_ path: String, isDirectory: Bool) -> SyncExclusion? {
        always.exclusion(of: path, isDirectory: isDirectory) ?? both.exclusion(of: path, isDirectory: isDirectory)
    }

    /// Why `path` is not uploaded (nor deleted in the container), or nil.
    public func uploadExclusion(_ path: String, isDirectory: Bool) -> SyncExclusion? {
        bothExclusion(path, isDirectory: isDirectory)
            ?? editors.exclusion(of: path, isDirectory: isDirectory)
            ?? conflicts.exclusion(of: path, isDirectory: isDirectory)
            ?? upload.exclusion(of: path, isDirectory: isDirectory)
    }

    /// Why `path` is not downloaded (nor deleted locally), or nil.
    public func downloadExclusion(_ path: String, isDirectory: Bool) -> SyncExclusion? {
        bothExclusion(path, isDirectory: isDirectory)
            ?? editors.exclusion(of: path, isDirectory: isDirectory)
            ?? conflicts.exclusion(of: path, isDirectory: isDirectory)
            ?? download.exclusion(of: path, isDirectory: isDirectory)
    }

    /// Whether `path` is a conflict copy this sync made (by its name).
    public func isConflictCopy(_ path: String) -> Bool {
        conflicts.exclusion(of: path, isDirectory: false) != nil
    }

    /// ``bothExclusion(_:isDirectory:)`` for a walk that never enters excluded directories.
    func bothOwnExclusion(_ path: String, isDirectory: Bool) -> SyncExclusion? {
        always.ownExclusion(of: path, isDirectory: isDirectory) ?? both.ownExclusion(of: path, isDirectory: isDirectory)
    }

    /// ``uploadExclusion(_:isDirectory:)`` for a walk that never enters excluded directories.
    func uploadOwnExclusion(_ path: String, isDirectory: Bool) -> SyncExclusion? {
        bothOwnExclusion(path, isDirectory: isDirectory)
            ?? editors.ownExclusion(of: path, isDirectory: isDirectory)
            ?? conflicts.ownExclusion(of: path, isDirectory: isDirectory)
            ?? upload.ownExclusion(of: path, isDirectory: isDirectory)
    }

    /// The local watch's filter: what is not uploaded is not reported (and excluded
    /// directories are not watched), except conflict copies, whose removal clears a conflict.
    var uploadWatchFilter: UploadWatchFilter { UploadWatchFilter(filter: self) }
}

/// ``SyncFilter`` as the watcher asks it (see ``SyncFilter/uploadWatchFilter``).
struct UploadWatchFilter: WatchFilter {
    let filter: SyncFilter

    func isExcluded(_ relativePath: String, isDirectory: Bool) -> Bool {
        if filter.bothExclusion(relativePath, isDirectory: isDirectory) != nil { return true }
        if filter.editors.exclusion(of: relativePath, isDirectory: isDirectory) != nil { return true }
        if filter.upload.exclusion(of: relativePath, isDirectory: isDirectory) != nil { return true }
        return false
    }

    /// gitignore never re-includes below an excluded directory.
    func mayIncludeBelow(_ relativePath: String) -> Bool { false }
}
