import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// MARK: - Fixtures

/// One row of the `.dockerignore` table: with `patterns`, is `path` left out of the context?
struct IgnoreCase: CustomTestStringConvertible, Sendable {
    var patterns: [String]
    var path: String
    var excluded: Bool
    var testDescription: String { "\(patterns) \(path) → \(excluded ? "excluded" : "kept")" }

    init(_ patterns: [String], _ path: String, _ excluded: Bool) {
        self.patterns = patterns
        self.path = path
        self.excluded = excluded
    }
}

// Rows marked "moby" come from moby/patternmatcher's patternmatcher_test.go (TestMatches and
// TestMatch, evaluated with MatchesOrParentMatches); "docs" from Docker's .dockerignore docs.
let ignoreCases: [IgnoreCase] = [
    // moby: `**`
    .init(["**"], "file", true),
    .init(["**/"], "file", true),
    .init(["**"], "dir/file", true),
    .init(["**/**"], "dir/file", true),
    .init(["dir/**"], "dir/file", true),
    .init(["dir/**"], "dir/dir2/file", true),
    .init(["**/dir"], "dir", true),
    .init(["**/dir"], "dir/file", true),
    .init(["**/dir2/*"], "dir/dir2/file", true),
    .init(["**/dir2/**"], "dir/dir2/dir3/file", true),
    .init(["**file"], "file", true),
    .init(["**file"], "dir/dir/file", true),
    .init(["**/file*"], "dir/dir/file.txt", true),
    .init(["**/file*txt"], "dir/dir/file.txt", true),
    .init(["**/**/*.txt"], "dir/dir/file.txt", true),
    .init(["**/**/*.txt2"], "dir/dir/file.txt", false),
    .init(["**/*.txt"], "file.txt", true),
    .init(["a**/*.txt"], "a/file.txt", true),
    .init(["a**/*.txt"], "a/dir/dir/file.txt", true),
    .init(["a/*.txt"], "a/dir/file.txt", false),
    .init(["a/*.txt"], "a/file.txt", true),
    .init(["a/*.txt**"], "a/file.txt", true),
    .init(["**/foo/bar"], "foo/bar", true),
    .init(["**/foo/bar"], "dir/dir2/foo/bar", true),
    .init(["abc/**"], "abc", false),
    .init(["abc/**"], "abc/def/ghi", true),
    .init(["**/.foo"], ".foo", true),
    .init(["**/.foo"], "bar.foo", false),
    // moby: classes, `?`, characters that are special in regular expressions
    .init(["a[b-d]e"], "ae", false),
    .init(["a[b-d]e"], "ace", true),
    .init(["a[b-d]e"], "aae", false),
    .init(["a[^b-d]e"], "aze", true),
    .init([".*"], ".foo", true),
    .init([".*"], "foo", false),
    .init(["abc.def"], "abcdef", false),
    .init(["abc.def"], "abc.def", true),
    .init(["abc?def"], "abcZdef", true),
    .init(["abc?def"], "abcdef", false),
    .init(["a(b)c/def"], "a(b)c/def", true),
    .init(["a(b)c/def"], "a(b)c/xyz", false),
    .init(["a.|)$(}+{bc"], "a.|)$(}+{bc", true),
    .init(["dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
    .init(["a\\\\"], "a\\", true),
    .init(["a\\*b"], "a*b", true),
    .init(["a\\*b"], "ab", false),
    .init(["a*"], "ab/c", true),
    .init(["a*/b"], "abc/b", true),
    .init(["a*/b"], "a/c/b", false),
    .init(["a*b*c*d*e*/f"], "axbxcxdxexxx/f", true),
    .init(["a*b*c*d*e*/f"], "axbxcxdxe/xxx/f", false),
    .init(["a*b?c*x"], "abxbbxdbxebxczzx", true),
    .init(["a*b?c*x"], "abxbbxdbxebxczzy", false),
    .init(["a?b"], "a☺b", true),
    .init(["a???b"], "a☺b", false),
    .init(["a[^a]b"], "a☺b", true),
    .init(["[a-ζ]*"], "α", true),
    .init(["*[a-ζ]"], "A", false),
    .init(["a?b"], "a/b", false),
    .init(["a*b"], "a/b", false),
    .init(["[\\]a]"], "]", true),
    .init(["[x\\-]"], "-", true),
    .init(["[x\\-]"], "z", false),
    .init(["*x"], "xxx", true),
    // moby: several patterns
    .init(["**", "!util/docker/web"], "util/docker/web/foo", false),
    .init(["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", true),
    .init(["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", false),
    .init(["docs", "!docs/README.md"], "docs/README.md", false),
    .init(["docs/", "!docs/README.md"], "docs/README.md", false),
    .init(["docs/*", "!docs/README.md"], "docs/README.md", false),
    .init(["docs", "!docs/README.md"], "docs/other.md", true),
    .init(["!fileutils.go", "*.go"], "fileutils.go", true),
    .init(["*.go", "!fileutils.go"], "fileutils.go", false),
    // docs
    .init(["**/*.go"], "main.go", true),
    .init(["**/*.go"], "pkg/x/main.go", true),
    .init(["**/*.go"], "pkg/x/main.go.txt", false),
    .init(["*.go", "!important.go"], "important.go", false),
    .init(["*.go", "!important.go"], "other.go", true),
    .init(["*/temp*"], "somedir/temporary.txt", true),
    .init(["*/temp*"], "somedir/sub/temp", false),
    .init(["*/*/temp*"], "somedir/subdir/temporary.txt", true),
    .init(["temp?"], "tempa", true),
    .init(["temp?"], "temp", false),
    .init(["*.md", "!README.md"], "README.md", false),
    .init(["*.md", "!README.md"], "CHANGES.md", true),
    .init(["*.md", "!README.md"], "docs/guide.md", false),
    .init(["*.md", "!README*.md", "README-secret.md"], "README-secret.md", true),
    .init(["*.md", "!README*.md", "README-secret.md"], "README-public.md", false),
    // leading `/`, trailing `/`, cleaning, `**` in the middle, escapes, white space
    .init(["/foo"], "foo", true),
    .init(["/foo"], "bar/foo", false),
    .init(["foo/"], "foo/bar.txt", true),
    .init(["foo/"], "foo", true),
    .init(["foo//bar/"], "foo/bar/baz", true),
    .init(["./foo/../bar"], "bar", true),
    .init(["./foo/../bar"], "foo", false),
    .init(["."], "foo", false),
    .init(["..", "../foo"], "foo", false),
    .init(["a/**/b"], "a/b", true),
    .init(["a/**/b"], "a/x/y/b", true),
    .init(["a/**/b"], "a/x/b/c", true),
    .init(["a/**/b"], "a/xb", false),
    .init(["[a-c]"], "b", true),
    .init(["[a-c]"], "d", false),
    .init(["\\*"], "*", true),
    .init(["\\*"], "x", false),
    .init(["  foo  "], "foo", true),
    .init(["*", "! foo"], "foo", false),
    .init(["*"], "a/b", true),
    .init(["**/node_modules"], "web/node_modules/x/y.js", true),
    .init([], "anything", false),
    .init(["# not a comment here"], "# not a comment here", true),
]

/// Every pattern here is one Docker rejects.
let badPatterns: [String] = ["[", "a[", "[^", "[^bc", "[]a]", "[-x]", "[x-]", "[a-b-c]", "\\", "[z-a]", "!", "!  "]

/// Writes `text` to `path`, creating parent directories.
private func writeFile(_ text: String, to path: String, mode: Int = 0o644) throws {
    let directory = (path as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
    else { throw TestSupportError("cannot create \(path)") }
}

private func makeDirectory(_ path: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
}

private func makeSymlink(_ path: String, to target: String) throws {
    try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
}

/// Sets mtime (and atime) of `path` to `seconds` since the epoch, without following links.
private func setTimes(_ path: String, seconds: Int) throws {
    var times = [
        timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0),
    ]
    guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
        throw TestSupportError("utimensat \(path): errno \(errno)")
    }
}

private func nowNanoseconds() -> Int64 {
    Int64(Date().timeIntervalSince1970 * 1_000_000_000)
}

/// A small context: files at two depths, an empty directory, symbolic links, an executable,
/// and excluded files.
private func makeContext(_ root: String) throws {
    try writeFile("FROM scratch\nCOPY . /\n", to: "\(root)/Dockerfile")
    try writeFile("node_modules\n*.log\n", to: "\(root)/.dockerignore")
    try writeFile("package main\n", to: "\(root)/main.go")
    try writeFile("lib\n", to: "\(root)/pkg/lib/lib.go")
    try writeFile("#!/bin/sh\necho hi\n", to: "\(root)/run.sh", mode: 0o755)
    try writeFile("ignored\n", to: "\(root)/node_modules/x/index.js")
    try writeFile("noise\n", to: "\(root)/debug.log")
    try makeDirectory("\(root)/empty")
    try makeSymlink("\(root)/link", to: "main.go")
}

private func snapshot(
    _ root: String,
    index: StatIndex = StatIndex(),
    indexTime: Int64? = nil
) throws -> (
    snapshot: ContextSnapshot, index: StatIndex
) {
    let (matcher, _) = try IgnoreMatcher.forContext(contextDir: root, dockerfileRelativeToContext: "Dockerfile")
    return try ContextDigester().snapshot(contextDir: root, matcher: matcher, index: index, indexTime: indexTime)
}

/// A change to a context and whether it must change the digest.
enum Mutation: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case touchEveryFile, moveCheckout, editIncludedFile, editExcludedFile, addExcludedFile, chmodExecutable,
        renameFile, addEmptyFile, addEmptyDirectory, retargetSymlink, chmodGroupWrite

    var changesDigest: Bool {
        switch self {
        case .touchEveryFile, .moveCheckout, .editExcludedFile, .addExcludedFile: return false
        default: return true
        }
    }

    var testDescription: String { rawValue }

    /// Applies the change to the context at `root`; returns the context to digest afterwards.
    func apply(to root: String, scratch: String) throws -> String {
        switch self {
        case .touchEveryFile:
            let files = try FileManager.default.subpathsOfDirectory(atPath: root)
            for file in files { try setTimes("\(root)/\(file)", seconds: 1_600_000_000) }
            return root
        case .moveCheckout:
            let moved = "\(scratch)/elsewhere/deeper/ctx"
            try makeDirectory("\(scratch)/elsewhere/deeper")
            let result = try sh(["cp", "-a", root, moved], cwd: scratch)
            guard result.status == 0 else { throw TestSupportError("cp: \(result.stderr)") }
            return moved
        case .editIncludedFile:
            try writeFile("package mainX", to: "\(root)/main.go")  // one byte replaced, same size
            return root
        case .editExcludedFile:
            try writeFile("changed\n", to: "\(root)/node_modules/x/index.js")
            try writeFile("more noise\n", to: "\(root)/debug.log")
            return root
        case .addExcludedFile:
            try writeFile("x", to: "\(root)/node_modules/new.js")
            try writeFile("x", to: "\(root)/trace.log")
            return root
        case .chmodExecutable:
            chmod("\(root)/main.go", 0o755)
            return root
        case .chmodGroupWrite:
            chmod("\(root)/main.go", 0o664)
            return root
        case .renameFile:
            try FileManager.default.moveItem(atPath: "\(root)/main.go", toPath: "\(root)/main2.go")
            try FileManager.default.removeItem(atPath: "\(root)/link")
            try makeSymlink("\(root)/link", to: "main.go")
            return root
        case .addEmptyFile:
            try writeFile("", to: "\(root)/pkg/empty.txt")
            return root
        case .addEmptyDirectory:
            try makeDirectory("\(root)/pkg/new")
            return root
        case .retargetSymlink:
            try FileManager.default.removeItem(atPath: "\(root)/link")
            try makeSymlink("\(root)/link", to: "run.sh")
            return root
        }
    }
}

@Suite struct ContextTests {
    // MARK: .dockerignore matching

    @Test(arguments: ignoreCases)
    func dockerignoreMatching(_ row: IgnoreCase) throws {
        let matcher = try IgnoreMatcher(patterns: row.patterns)
        #expect(matcher.isExcluded(row.path, isDirectory: false) == row.excluded)
        // The walker's incremental evaluation must agree with the whole-path answer.
        #expect(incremental(matcher, row.path) == row.excluded)
    }

    /// Evaluates `path` the way the walker does: directory by directory, with parent state.
    private func incremental(_ matcher: IgnoreMatcher, _ path: String) -> Bool {
        let components = path.split(separator: "/").map(String.init)
        var state: IgnoreMatcher.DirectoryState?
        var prefix = ""
        for (depth, component) in components.enumerated() {
            prefix = prefix.isEmpty ? component : prefix + "/" + component
            var bytes = prefix
            if depth == components.count - 1 {
                return bytes.withUTF8 { matcher.isExcluded(child: $0, slashes: depth, parent: state) }
            }
            state = bytes.withUTF8 { matcher.state(ofDirectory: $0, slashes: depth, parent: state) }
        }
        return false
    }

    @Test func pathsAreCleanedBeforeMatching() throws {
        let matcher = try IgnoreMatcher(patterns: ["foo", "!foo/keep"])
        #expect(matcher.isExcluded("./foo", isDirectory: true))
        #expect(matcher.isExcluded("foo/", isDirectory: true))
        #expect(matcher.isExcluded("bar/../foo/x", isDirectory: false))
        #expect(!matcher.isExcluded("foo//keep", isDirectory: false))
        #expect(!matcher.isExcluded(".", isDirectory: true))
        #expect(!matcher.isExcluded("", isDirectory: true))
        #expect(!matcher.isExcluded(".foo", isDirectory: false))
        #expect(!matcher.isExcluded("..foo", isDirectory: false))
    }

    @Test func dockerfileWithPatternCharactersIsReincludedByName() throws {
        try withTemporaryDirectory { root in
            try writeFile("*\n", to: "\(root)/.dockerignore")
            let (matcher, _) = try IgnoreMatcher.forContext(
                contextDir: root,
                dockerfileRelativeToContext: "app[1].Dockerfile"
            )
            #expect(!matcher.isExcluded("app[1].Dockerfile", isDirectory: false))
            #expect(matcher.isExcluded("app1.Dockerfile", isDirectory: false))
        }
    }

    @Test(arguments: badPatterns)
    func badPatternsAreRejected(_ pattern: String) throws {
        let error = #expect(throws: ContextError.self) { try IgnoreMatcher(patterns: ["ok", pattern]) }
        guard case .badIgnorePattern(nil, 2, let text, let reason)? = error else {
            Issue.record("expected badIgnorePattern at 2, got \(String(describing: error))")
            return
        }
        #expect(text == pattern)
        #expect(!reason.isEmpty)
    }

    @Test func patternsAreCleanedAsDockerDoes() throws {
        let matcher = try IgnoreMatcher(patterns: ["  /foo/ ", "!./a//b/../c", "#x", "", "   "])
        #expect(matcher.patterns == ["foo", "!a/c", "#x"])
        #expect(matcher.hasExclusions)
        #expect(try !IgnoreMatcher(patterns: ["a"]).hasExclusions)
    }

    @Test func mayIncludeBelowOnlyWhenAnExceptionCouldReachIn() throws {
        let plain = try IgnoreMatcher(patterns: ["vendor", "build"])
        #expect(!plain.mayIncludeBelow("vendor"))

        let literal = try IgnoreMatcher(patterns: ["vendor", "!vendor/keep/x.txt"])
        #expect(literal.mayIncludeBelow("vendor"))
        #expect(literal.mayIncludeBelow("vendor/keep"))
        #expect(!literal.mayIncludeBelow("vendor/drop"))
        #expect(!literal.mayIncludeBelow("vendorx"))

        let wildcard = try IgnoreMatcher(patterns: ["vendor", "!vendor/*/keep.txt"])
        #expect(wildcard.mayIncludeBelow("vendor"))
        #expect(wildcard.mayIncludeBelow("vendor/anything"))
        #expect(!wildcard.mayIncludeBelow("vendor/a/b"))

        let anywhere = try IgnoreMatcher(patterns: ["*", "!**/keep"])
        #expect(anywhere.mayIncludeBelow("deep/er/dir"))

        let topLevelOnly = try IgnoreMatcher(patterns: ["docs", "!*.md"])
        #expect(!topLevelOnly.mayIncludeBelow("docs"))

        let prefix = try IgnoreMatcher(patterns: ["out", "!out/keep/**"])
        #expect(prefix.mayIncludeBelow("out"))
        #expect(prefix.mayIncludeBelow("out/keep/a"))
        #expect(!prefix.mayIncludeBelow("out/other"))
    }

    // MARK: DevSpace's ignore-file lookup

    @Test func lookupPrefersDevspaceDockerignore() throws {
        try withTemporaryDirectory { root in
            try writeFile("secret\n", to: "\(root)/devspace.dockerignore")
            try writeFile("fromDockerfileIgnore\n", to: "\(root)/docker/app.Dockerfile.dockerignore")
            try writeFile("fromDockerignore\n", to: "\(root)/.dockerignore")
            let (matcher, file) = try IgnoreMatcher.forContext(
                contextDir: root,
                dockerfileRelativeToContext: "docker/app.Dockerfile"
            )
            #expect(file == "\(root)/devspace.dockerignore")
            #expect(matcher.isExcluded("secret", isDirectory: false))
            #expect(matcher.isExcluded(".dockerignore", isDirectory: false))
            #expect(!matcher.isExcluded("fromDockerfileIgnore", isDirectory: false))
            #expect(!matcher.isExcluded("fromDockerignore", isDirectory: false))
            #expect(!matcher.isExcluded("devspace.dockerignore", isDirectory: false))
            #expect(matcher.isExcluded(".devspace/cache.yaml", isDirectory: false))

            try FileManager.default.removeItem(atPath: "\(root)/devspace.dockerignore")
            let (second, secondFile) = try IgnoreMatcher.forContext(
                contextDir: root,
                dockerfileRelativeToContext: "docker/app.Dockerfile"
            )
            #expect(secondFile == "\(root)/docker/app.Dockerfile.dockerignore")
            #expect(second.isExcluded("fromDockerfileIgnore", isDirectory: false))
            #expect(!second.isExcluded("fromDockerignore", isDirectory: false))
            #expect(!second.isExcluded(".dockerignore", isDirectory: false))

            // Another Dockerfile has no ignore file of its own: .dockerignore applies.
            let (third, thirdFile) = try IgnoreMatcher.forContext(
                contextDir: root,
                dockerfileRelativeToContext: "Dockerfile"
            )
            #expect(thirdFile == "\(root)/.dockerignore")
            #expect(third.isExcluded("fromDockerignore", isDirectory: false))

            try FileManager.default.removeItem(atPath: "\(root)/.dockerignore")
            let (none, noFile) = try IgnoreMatcher.forContext(contextDir: root, dockerfileRelativeToContext: nil)
            #expect(noFile == nil)
            #expect(none.patterns == [".devspace"])
            #expect(none.isExcluded(".devspace", isDirectory: true))
            #expect(!none.isExcluded("anything", isDirectory: false))
        }
    }

    @Test func lookupReincludesIgnoreFileAndDockerfile() throws {
        try withTemporaryDirectory { root in
            try writeFile("\u{FEFF}# comment\n*\r\n  \n!src\n.devspace-not\n", to: "\(root)/.dockerignore")
            let (matcher, _) = try IgnoreMatcher.forContext(
                contextDir: root,
                dockerfileRelativeToContext: "./build/Dockerfile"
            )
            #expect(
                matcher.patterns == ["*", "!src", ".devspace-not", "!.dockerignore", "!build/Dockerfile", ".devspace"]
            )
            #expect(!matcher.isExcluded(".dockerignore", isDirectory: false))
            #expect(!matcher.isExcluded("build/Dockerfile", isDirectory: false))
            #expect(matcher.isExcluded("build/other", isDirectory: false))
            #expect(!matcher.isExcluded("src/main.go", isDirectory: false))
            #expect(matcher.isExcluded("README.md", isDirectory: false))

            // A Dockerfile outside the context is not re-included (it is not in the context).
            let (outside, _) = try IgnoreMatcher.forContext(
                contextDir: root,
                dockerfileRelativeToContext: "../Dockerfile"
            )
            #expect(outside.patterns == ["*", "!src", ".devspace-not", "!.dockerignore", ".devspace"])
        }
    }

    @Test func badPatternInFileNamesFileAndLine() throws {
        try withTemporaryDirectory { root in
            try writeFile("# header\nok\n\nsrc/[a-\n", to: "\(root)/.dockerignore")
            let error = #expect(throws: ContextError.self) {
                try IgnoreMatcher.forContext(contextDir: root, dockerfileRelativeToContext: "Dockerfile")
            }
            let expected = ContextError.badIgnorePattern(
                file: "\(root)/.dockerignore",
                line: 4,
                pattern: "src/[a-",
                reason: "'[' without a matching ']'"
            )
            #expect(error == expected)
            #expect(error?.description.hasPrefix("\(root)/.dockerignore:4: invalid pattern 'src/[a-'") == true)
        }
    }

    // MARK: Walker

    @Test func walkerListsFilesDirectoriesAndSymlinksInByteOrder() throws {
        try withTemporaryDirectory { root in
            try writeFile("x", to: "\(root)/a.txt")
            try writeFile("bb", to: "\(root)/a/b")
            try writeFile("a-b", to: "\(root)/a-b")
            try makeDirectory("\(root)/empty")
            try writeFile("#!/bin/sh\n", to: "\(root)/exec.sh", mode: 0o755)
            try makeSymlink("\(root)/link-file", to: "a.txt")
            try makeSymlink("\(root)/link-dir", to: "a")
            try makeSymlink("\(root)/dangling", to: "does/not/exist")
            try writeFile("keep", to: "\(root)/vendor/keep/x.txt")
            try writeFile("drop", to: "\(root)/vendor/drop.txt")
            try writeFile("deep", to: "\(root)/node_modules/pkg/index.js")

            let matcher = try IgnoreMatcher(patterns: ["vendor", "!vendor/keep", "node_modules"])
            let entries = try ContextWalker.walk(contextDir: root, matcher: matcher)
            #expect(
                entries.map(\.path) == [
                    "a", "a-b", "a.txt", "a/b", "dangling", "empty", "exec.sh", "link-dir", "link-file",
                    "vendor/keep", "vendor/keep/x.txt",
                ]
            )
            let byPath = Dictionary(uniqueKeysWithValues: entries.map { ($0.path, $0) })
            #expect(byPath["a"]?.kind == .directory)
            #expect(byPath["empty"]?.kind == .directory)
            #expect(byPath["a/b"]?.kind == .file)
            #expect(byPath["a/b"]?.size == 2)
            #expect(byPath["link-file"]?.kind == .symlink)
            #expect(byPath["link-file"]?.symlinkTarget == "a.txt")
            #expect(byPath["link-dir"]?.symlinkTarget == "a")
            #expect(byPath["dangling"]?.kind == .symlink)
            #expect(byPath["dangling"]?.symlinkTarget == "does/not/exist")
            #expect(byPath["exec.sh"]?.isExecutable == true)
            #expect(byPath["exec.sh"]?.mode == 0o755)
            #expect(byPath["a.txt"]?.isExecutable == false)
            #expect(byPath["a.txt"]?.symlinkTarget == nil)
            #expect(byPath["a.txt"]?.inode != 0)
            #expect((byPath["a.txt"]?.mtimeNanoseconds ?? 0) > 0)

            // Without a matcher everything is listed, in the same order.
            let all = try ContextWalker.walk(contextDir: root)
            #expect(all.count == 16)
            #expect(all.map(\.path) == all.map(\.path).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        }
    }

    @Test func walkerReportsMissingContexts() throws {
        try withTemporaryDirectory { root in
            #expect(throws: ContextError.contextNotFound(path: "\(root)/missing")) {
                try ContextWalker.walk(contextDir: "\(root)/missing")
            }
            try writeFile("x", to: "\(root)/file")
            #expect(throws: ContextError.notADirectory(path: "\(root)/file")) {
                try ContextWalker.walk(contextDir: "\(root)/file")
            }
        }
    }

    @Test func unreadableFileIsAnErrorNamingIt() throws {
        // Root reads everything: nothing to test there.
        guard getuid() != 0 else { return }
        try withTemporaryDirectory { root in
            try writeFile("secret", to: "\(root)/secret.txt", mode: 0o000)
            let error = #expect(throws: ContextError.self) {
                try ContextDigester().snapshot(contextDir: root, matcher: IgnoreMatcher())
            }
            #expect(error == .unreadable(path: "\(root)/secret.txt", reason: "Permission denied"))
        }
    }

    @Test func nonUTF8NamesAreHashedByTheirBytes() throws {
        try withTemporaryDirectory { root in
            for name: [UInt8] in [[0x66, 0xFF], [0x66, 0xFE]] {
                let path = Array(root.utf8) + [UInt8(ascii: "/")] + name + [0]
                let fd = path.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) }
                }
                #expect(fd >= 0)
                close(fd)
            }
            let (snapshot, _) = try ContextDigester().snapshot(contextDir: root, matcher: IgnoreMatcher())
            #expect(snapshot.fileCount == 2)
            #expect(snapshot.hashedFiles == 2)
        }
    }

    // MARK: Digest

    @Test func digestIsStableAndIgnoresExcludedFiles() throws {
        try withTemporaryDirectory { root in
            try makeContext(root)
            let first = try snapshot(root).snapshot
            let second = try snapshot(root).snapshot
            #expect(first.digest == second.digest)
            #expect(first.digest.count == 64)
            #expect(
                first.entries.map(\.path) == [
                    ".dockerignore", "Dockerfile", "empty", "link", "main.go", "pkg", "pkg/lib", "pkg/lib/lib.go",
                    "run.sh",
                ]
            )
            #expect(first.fileCount == 5)
            #expect(first.totalBytes == 22 + 19 + 13 + 4 + 18)
        }
    }

    @Test func fileDigestIsSHA256OfContent() throws {
        try withTemporaryDirectory { root in
            try writeFile("abc", to: "\(root)/f")
            let (snapshot, _) = try ContextDigester().snapshot(contextDir: root, matcher: IgnoreMatcher())
            #expect(
                snapshot.entries.first?.contentDigest?.hex
                    == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            )
        }
    }

    @Test(arguments: Mutation.allCases)
    func digestAfter(_ mutation: Mutation) throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeContext(root)
            let before = try snapshot(root).snapshot.digest
            let changed = try mutation.apply(to: root, scratch: scratch)
            let after = try snapshot(changed).snapshot.digest
            #expect((before != after) == mutation.changesDigest, "digest \(before) → \(after)")
        }
    }

    /// The index keeps the digest of the context it was taken from, and a walk that finds that
    /// same context takes it from there. Here the kept digest is replaced by a marker: the
    /// marker comes back exactly when the context is the one the index was taken from, and
    /// after every change that makes another context the walk's own digest does.
    @Test(arguments: Mutation.allCases)
    func theIndexsDigestIsUsedOnlyForItsOwnContext(_ mutation: Mutation) throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeContext(root)
            // Old times, so that any change below gives a different stat.
            for file in try FileManager.default.subpathsOfDirectory(atPath: root) {
                try setTimes("\(root)/\(file)", seconds: 1_500_000_000)
            }
            let later = nowNanoseconds() + 5_000_000_000
            let first = try snapshot(root, indexTime: later)
            let summary = try #require(first.index.summary)
            #expect(summary.contextDigest.hex == first.snapshot.digest)
            let marker = try #require(ContentDigest(hex: String(repeating: "ab", count: 32)))
            var forged = first.index
            forged.summary = StatIndex.Summary(contextDigest: marker, others: summary.others)

            let again = try snapshot(root, index: forged, indexTime: later + 1)
            #expect(again.snapshot.digest == marker.hex, "an unchanged context takes the index's digest")
            #expect(again.snapshot.hashedFiles == 0)

            let changed = try mutation.apply(to: root, scratch: scratch)
            let cold = try snapshot(changed).snapshot.digest
            let after = try snapshot(changed, index: forged, indexTime: later + 2).snapshot.digest
            // The marker only ever comes back for the context the index was taken from (a stat
            // change of a file alone, as `touch`, makes the walk read it and digest itself).
            let same = cold == first.snapshot.digest && changed == root
            #expect(after == cold || (same && after == marker.hex), "after \(mutation): \(after), cold \(cold)")
            if [.editExcludedFile, .addExcludedFile].contains(mutation) {
                #expect(after == marker.hex, "nothing the walk sees changed: the index's digest")
            }
            if !mutation.changesDigest && changed == root {
                #expect(same)
            }
        }
    }

    @Test func indexSummarySurvivesSaveAndLoad() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeContext(root)
            let first = try snapshot(root, indexTime: nowNanoseconds() + 5_000_000_000)
            let path = "\(scratch)/context.idx"
            try first.index.save(to: path)
            let loaded = StatIndex.load(from: path)
            #expect(loaded == first.index)
            #expect(loaded.summary?.contextDigest.hex == first.snapshot.digest)
            var without = first.index
            without.summary = nil
            try without.save(to: path)
            #expect(StatIndex.load(from: path) == without)
        }
    }

    @Test func digestEncodingIsDocumented() throws {
        // One file, one directory, one link: the digest is SHA-256 of exactly these bytes.
        try withTemporaryDirectory { root in
            try writeFile("abc", to: "\(root)/f")
            chmod("\(root)/f", 0o644)
            try makeDirectory("\(root)/d")
            chmod("\(root)/d", 0o755)
            try makeSymlink("\(root)/l", to: "f")
            let (snapshot, _) = try ContextDigester().snapshot(contextDir: root, matcher: IgnoreMatcher())
            // One chunk: its entries' encodings, hashed; then the chunk digests after the header.
            var chunk = [UInt8(ascii: "d")] + Array("d".utf8) + [0] + [0, 0, 0x01, 0xED]
            chunk += [UInt8(ascii: "f")] + Array("f".utf8) + [0] + [0, 0, 0x01, 0xA4]
            chunk += ContentDigest(hex: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")!.bytes
            chunk += [UInt8(ascii: "l")] + Array("l".utf8) + [0] + [0, 0, 0x01, 0xFF] + Array("f".utf8) + [0]
            let chunkDigest = try #require(ContentDigest(hex: try sha256Hex(of: chunk, scratch: root)))
            let expected = Array("slipway-context-v2".utf8) + [0] + chunkDigest.bytes
            #expect(try sha256Hex(of: expected, scratch: root) == snapshot.digest)
        }
    }

    // MARK: Stat index

    @Test func unchangedFilesAreNotReadAgain() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeContext(root)
            // The index is written "later" than every file's mtime and ctime by more than 1 s.
            let later = nowNanoseconds() + 5_000_000_000
            let first = try snapshot(root, indexTime: later)
            #expect(first.snapshot.hashedFiles == 5)
            #expect(first.index.count == 5)

            let indexPath = "\(scratch)/context.idx"
            try first.index.save(to: indexPath)
            let loaded = StatIndex.load(from: indexPath)
            #expect(loaded.count == 5)
            #expect(loaded.timestampNanoseconds == later)
            #expect(loaded.records == first.index.records)

            let second = try snapshot(root, index: loaded, indexTime: later + 1)
            #expect(second.snapshot.hashedFiles == 0)
            #expect(second.snapshot.digest == first.snapshot.digest)

            // One file changes (same size, so only the stat tells): exactly that one is read.
            try writeFile("package mainX", to: "\(root)/main.go")
            let third = try snapshot(root, index: second.index, indexTime: nowNanoseconds() + 5_000_000_000)
            #expect(third.snapshot.hashedFiles == 1)
            #expect(third.snapshot.digest != first.snapshot.digest)
        }
    }

    @Test func racyFilesAreReadAgain() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeContext(root)
            let indexTime = nowNanoseconds() + 5_000_000_000
            // This file's mtime lies within the granularity of the index's time: racy.
            try setTimes("\(root)/main.go", seconds: Int(indexTime / 1_000_000_000))
            let first = try snapshot(root, indexTime: indexTime)
            let second = try snapshot(root, index: first.index, indexTime: indexTime + 10_000_000_000)
            #expect(second.snapshot.hashedFiles == 1)
            #expect(second.snapshot.digest == first.snapshot.digest)

            // With the wall clock, files just written are racy for the next run: all are read.
            let fresh = "\(scratch)/fresh"
            try makeContext(fresh)
            let warm = try snapshot(fresh)
            let again = try snapshot(fresh, index: warm.index)
            #expect(again.snapshot.hashedFiles == 5)
        }
    }

    @Test func corruptIndexFilesLoadEmpty() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeContext(root)
            let first = try snapshot(root, indexTime: nowNanoseconds() + 5_000_000_000)
            let path = "\(scratch)/context.idx"
            try first.index.save(to: path)
            let good = try Data(contentsOf: URL(fileURLWithPath: path))

            var variants: [String: Data] = [
                "truncated": good.prefix(good.count / 2),
                "header only": good.prefix(24),
                "empty": Data(),
                "garbage": Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }),
            ]
            var flipped = good
            flipped[40] ^= 0x01
            variants["one bit flipped"] = flipped
            var version = good
            version[8] = 2
            variants["the previous version"] = version
            for (name, bytes) in variants {
                try bytes.write(to: URL(fileURLWithPath: path))
                let loaded = StatIndex.load(from: path)
                #expect(loaded.count == 0, "\(name)")
                let run = try snapshot(root, index: loaded)
                #expect(run.snapshot.hashedFiles == 5, "\(name)")
                #expect(run.snapshot.digest == first.snapshot.digest, "\(name)")
            }
            #expect(StatIndex.load(from: "\(scratch)/missing.idx").count == 0)
            #expect(StatIndex.load(from: scratch).count == 0)
        }
    }

    @Test func indexLookupAndMerge() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeContext(root)
            let time = nowNanoseconds() + 5_000_000_000
            let all = try snapshot(root, indexTime: time)
            #expect(all.index.paths == [".dockerignore", "Dockerfile", "main.go", "pkg/lib/lib.go", "run.sh"])
            let main = try #require(all.index["main.go"])
            #expect(main.size == 13)
            #expect(main.contentDigest == all.snapshot.entries.first { $0.path == "main.go" }?.contentDigest)
            #expect(all.index["missing"] == nil)

            // A walk with other patterns over the same context, taken earlier: merging keeps every
            // path once, the newer records, and the earlier time.
            let goOnly = try IgnoreMatcher(patterns: ["*", "!*.go"])
            let partial = try ContextDigester().snapshot(contextDir: root, matcher: goOnly, indexTime: time - 10)
            #expect(partial.index.paths == ["main.go"])
            var merged = all.index
            merged.merge(partial.index)
            #expect(merged.paths == all.index.paths)
            #expect(merged.timestampNanoseconds == time - 10)
            var reversed = partial.index
            reversed.merge(all.index)
            // The same records either way; the directories' listings are those of the walk
            // merged last (they hold only for its ignore rules).
            #expect(reversed.records == merged.records)
            #expect(reversed.timestampNanoseconds == merged.timestampNanoseconds)
            #expect(merged.directories == partial.index.directories)
            #expect(reversed.directories == all.index.directories)
            #expect(all.index.directories != nil && partial.index.directories != all.index.directories)

            // The dictionary view round-trips.
            var copy = StatIndex()
            copy.timestampNanoseconds = all.index.timestampNanoseconds
            copy.records = all.index.records
            // (Records set from outside are of no known context: no summary.)
            #expect(copy.summary == nil)
            copy.summary = all.index.summary
            copy.directories = all.index.directories
            #expect(copy == all.index)
        }
    }

    @Test func indexWriteFailureIsReported() throws {
        try withTemporaryDirectory { scratch in
            let error = #expect(throws: ContextError.self) {
                try StatIndex().save(to: "\(scratch)/no/such/dir/context.idx")
            }
            guard case .indexWriteFailed(let path, let reason)? = error else {
                Issue.record("expected indexWriteFailed, got \(String(describing: error))")
                return
            }
            #expect(path == "\(scratch)/no/such/dir/context.idx")
            #expect(reason.contains("No such file or directory"))
            // No temporary file is left behind next to a successful save either.
            try StatIndex().save(to: "\(scratch)/context.idx")
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch) == ["context.idx"])
        }
    }

    /// A tree whose directories several threads list at once: the result must not depend on
    /// how many threads walk it or in which order they finish.
    @Test(arguments: [1, 2, 4, 8])
    func parallelWalksListTheSameEntriesInOrder(threads: Int) throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            for top in ["a", "a.b", "a-b", "b", "vendor", "z"] {
                for sub in 0..<6 {
                    try writeFile("\(top)\(sub)", to: "\(root)/\(top)/s\(sub)/deep/f.txt")
                    try writeFile("x", to: "\(root)/\(top)/s\(sub).txt")
                    try writeFile("log", to: "\(root)/\(top)/s\(sub)/debug.log")
                }
            }
            try writeFile("keep", to: "\(root)/vendor/s2/keep.txt")
            try makeSymlink("\(root)/a/link", to: "../b")
            try makeDirectory("\(root)/empty")
            let matcher = try IgnoreMatcher(patterns: ["**/*.log", "vendor", "!vendor/s2/keep.txt"])
            let root1 = try ContextWalker.openContext(root)
            defer { close(root1) }
            let single = try ContextWalker.walk(rootFD: root1, contextDir: root, matcher: matcher, threads: 1).entries
            let parallel = try ContextWalker.walk(rootFD: root1, contextDir: root, matcher: matcher, threads: threads)
                .entries
            #expect(parallel == single)
            #expect(single.map(\.path) == single.map(\.path).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            #expect(single.contains { $0.path == "vendor/s2/keep.txt" })
            #expect(!single.contains { $0.path.hasSuffix(".log") || $0.path == "vendor" || $0.path == "vendor/s1.txt" })
            #expect(single.first { $0.path == "a/link" }?.kind == .symlink)
            // 5 top directories, each with 6 dirs, 6 files, 6 "deep" dirs and 6 files below
            // them; vendor's one re-included file (not its directories); the link; `empty`.
            #expect(single.count == 5 * 25 + 1 + 1 + 1)
        }
    }

    /// A directory large enough for its stats to be shared by the walk's threads (a flat
    /// directory of 5,000 files, with directories, a link and an excluded file) lists what one
    /// thread lists.
    @Test(arguments: [2, 3, 4])
    func aFlatDirectoryIsStatedByEveryThreadAndListsTheSame(threads: Int) throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeDirectory(root)
            for i in 0..<5000 { try writeFile("\(i)", to: "\(root)/f\(i).txt") }
            for i in 0..<5 { try writeFile("d\(i)", to: "\(root)/f\(i)00/inner.txt") }
            try writeFile("log", to: "\(root)/debug.log")
            try makeSymlink("\(root)/f4999.link", to: "f4999.txt")
            let matcher = try IgnoreMatcher(patterns: ["*.log"])
            #expect(5000 + 5 + 1 >= ContextWalker.parallelStatThreshold)
            let fd = try ContextWalker.openContext(root)
            defer { close(fd) }
            let single = try ContextWalker.walk(rootFD: fd, contextDir: root, matcher: matcher, threads: 1).entries
            let parallel = try ContextWalker.walk(rootFD: fd, contextDir: root, matcher: matcher, threads: threads)
                .entries
            let same = parallel == single
            let difference = zip(parallel, single).first { $0 != $1 }.map { "\($0.0.path) / \($0.1.path)" }
            #expect(same, "\(parallel.count) entries against \(single.count); first difference: \(difference ?? "-")")
            #expect(single.count == 5000 + 5 * 2 + 1)
            #expect(single.map(\.path) == single.map(\.path).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            #expect(single.first { $0.path == "f4999.link" }?.symlinkTarget == "f4999.txt")
            #expect(!single.contains { $0.path == "debug.log" })

            // The files are hashed, and looked up in the stat index, on those threads too.
            let later = nowNanoseconds() + 5_000_000_000
            let first = try ContextDigester().snapshot(contextDir: root, matcher: matcher, indexTime: later)
            #expect(first.snapshot.hashedFiles == 5005)
            #expect(first.snapshot.entries.map(\.path) == single.map(\.path))
            #expect(first.snapshot.entries.filter { $0.kind == .file }.allSatisfy { $0.contentDigest != nil })
            let again = try ContextDigester().snapshot(
                contextDir: root,
                matcher: matcher,
                index: first.index,
                indexTime: later + 1
            )
            #expect(again.snapshot.hashedFiles == 0)
            #expect(again.snapshot.digest == first.snapshot.digest)
            try writeFile("changed", to: "\(root)/f2500.txt")
            let changed = try ContextDigester().snapshot(
                contextDir: root,
                matcher: matcher,
                index: first.index,
                indexTime: nowNanoseconds() + 5_000_000_000
            )
            #expect(changed.snapshot.hashedFiles == 1)
            let cold = try ContextDigester().snapshot(contextDir: root, matcher: matcher).snapshot
            #expect(changed.snapshot.digest == cold.digest)
            #expect(changed.snapshot.digest != first.snapshot.digest)

            // Two chunks (5,011 entries): only the changed file's chunk is hashed again. With
            // the other chunk's kept digest forged, the result shows the forgery.
            let position = try #require(first.snapshot.entries.firstIndex { $0.path == "f2500.txt" })
            let other = 1 - position / ContextDigester.chunkEntries
            var forged = first.index
            let kept = try #require(forged.summary)
            #expect(kept.chunks.count == 2)
            forged.summary?.chunks[other] = .zero
            let partial = try ContextDigester().snapshot(
                contextDir: root,
                matcher: matcher,
                index: forged,
                indexTime: nowNanoseconds() + 5_000_000_000
            )
            #expect(partial.snapshot.hashedFiles == 1)
            #expect(partial.snapshot.digest != cold.digest, "the other chunk came from the index")
            var expectedChunks = try #require(changed.index.summary?.chunks)
            expectedChunks[other] = .zero
            #expect(partial.snapshot.digest == ContextDigester.combine(expectedChunks).hex)
        }
    }

    /// Walking twice from the same open directory lists it twice (a `dup`ed descriptor would
    /// share the offset, and the second walk would see an empty directory).
    @Test func secondWalkFromTheSameDescriptorListsEverything() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeContext(root)
            let fd = try ContextWalker.openContext(root)
            defer { close(fd) }
            let first = try ContextWalker.walk(rootFD: fd, contextDir: root, matcher: nil).entries
            let second = try ContextWalker.walk(rootFD: fd, contextDir: root, matcher: nil).entries
            #expect(first.count >= 8)
            #expect(second == first)
        }
    }

    /// A no-op run returns the index it was given: nothing to save, and its older time stays.
    @Test func unchangedContextKeepsItsIndex() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            try makeContext(root)
            let later = nowNanoseconds() + 5_000_000_000
            let first = try snapshot(root, indexTime: later)
            let second = try snapshot(root, index: first.index, indexTime: later + 1_000_000)
            #expect(second.snapshot.hashedFiles == 0)
            #expect(second.index == first.index)
            #expect(second.index.timestampNanoseconds == later)

            // A removed file is a different set of files: a new index without it.
            try FileManager.default.removeItem(atPath: "\(root)/run.sh")
            let third = try snapshot(root, index: second.index, indexTime: later + 2_000_000)
            #expect(third.snapshot.hashedFiles == 0)
            #expect(third.index.paths == [".dockerignore", "Dockerfile", "main.go", "pkg/lib/lib.go"])
            #expect(third.index.timestampNanoseconds == later + 2_000_000)
            #expect(third.snapshot.digest != second.snapshot.digest)
        }
    }

    @Test func twentyThousandFiles() throws {
        try withTemporaryDirectory { scratch in
            let root = "\(scratch)/ctx"
            for directory in 0..<200 {
                let dir = "\(root)/dir\(directory)"
                try makeDirectory(dir)
                for file in 0..<100 {
                    let path = "\(dir)/file\(file).txt"
                    let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
                    let text = "content of \(directory)/\(file)\n"
                    _ = text.withCString { write(fd, $0, strlen($0)) }
                    close(fd)
                }
            }
            let matcher = try IgnoreMatcher(patterns: ["**/*.log", "tmp", "!tmp/keep"])
            let digester = ContextDigester()
            let later = nowNanoseconds() + 5_000_000_000

            let coldStart = ContinuousClock.now
            let cold = try digester.snapshot(contextDir: root, matcher: matcher, indexTime: later)
            let coldTime = ContinuousClock.now - coldStart

            let indexPath = "\(scratch)/context.idx"
            let saveStart = ContinuousClock.now
            try cold.index.save(to: indexPath)
            let saveTime = ContinuousClock.now - saveStart
            let loadStart = ContinuousClock.now
            let loaded = StatIndex.load(from: indexPath)
            let loadTime = ContinuousClock.now - loadStart

            let warmStart = ContinuousClock.now
            let warm = try digester.snapshot(contextDir: root, matcher: matcher, index: loaded, indexTime: later + 1)
            let warmTime = ContinuousClock.now - warmStart

            let walkStart = ContinuousClock.now
            _ = try ContextWalker.walk(contextDir: root, matcher: matcher)
            let walkTime = ContinuousClock.now - walkStart

            print(
                "20,000 files in 200 directories: cold \(coldTime), warm no-op \(warmTime) "
                    + "(walk alone \(walkTime)); index save \(saveTime), load \(loadTime)"
            )
            #expect(cold.snapshot.fileCount == 20_000)
            #expect(cold.snapshot.hashedFiles == 20_000)
            #expect(loaded.count == 20_000)
            #expect(warm.snapshot.hashedFiles == 0)
            #expect(warm.snapshot.digest == cold.snapshot.digest)
        }
    }
}

/// SHA-256 of `bytes` as `sha256sum` computes it (an independent implementation).
private func sha256Hex(of bytes: [UInt8], scratch: String) throws -> String {
    let input = "\(scratch)/.sha256-input"
    try Data(bytes).write(to: URL(fileURLWithPath: input))
    defer { try? FileManager.default.removeItem(atPath: input) }
    let result = try sh(["sha256sum", input], cwd: scratch)
    guard result.status == 0 else { throw TestSupportError("sha256sum: \(result.stderr)") }
    return String(result.stdout.prefix(64))
}

/// The stat index is written again only when a walk hashed enough to be worth the write: a few
/// changed files are hashed again on the next run instead (the digest is right either way).
@Suite struct StatIndexSavingTests {
    @Test func aFewChangedFilesLeaveTheIndexAndManySaveIt() throws {
        try withTemporaryDirectory { dir in
            let context = dir + "/ctx"
            try FileManager.default.createDirectory(atPath: context, withIntermediateDirectories: true)
            for i in 0..<2000 {
                try "file \(i)\n".write(toFile: "\(context)/f\(i)", atomically: false, encoding: .utf8)
            }
            let matcher = try IgnoreMatcher(patterns: [])
            func digest() throws -> String {
                var cache = ContextCache(configDirectory: dir)
                let d = try cache.snapshot(context, matcher: matcher, what: "ctx", displayPath: "").digest
                cache.saveIndexes { _ in }
                return d
            }
            func cold() throws -> String {
                try ContextDigester().snapshot(contextDir: context, matcher: matcher).snapshot.digest
            }
            let index = ContextCache(configDirectory: dir).indexPath(for: context)
            _ = try digest()
            #expect(IndexIdentity.of(index) != nil, "a new index is saved")
            usleep(1_100_000)  // past the racy window
            _ = try digest()
            let settled = try #require(IndexIdentity.of(index))  // the racy records hashed again and saved
            #expect(ContextCache.worthSaving(hashedFiles: 1, hashedBytes: 10, indexed: 2000) == false)
            #expect(ContextCache.worthSaving(hashedFiles: 20, hashedBytes: 10, indexed: 2000) == true)

            try "changed\n".write(toFile: context + "/f7", atomically: false, encoding: .utf8)
            #expect(try digest() == (try cold()))
            #expect(IndexIdentity.of(index) == settled, "one changed file: the index is not written again")
            #expect(try digest() == (try cold()), "and the next run hashes it again")
            #expect(IndexIdentity.of(index) == settled, "still within the racy window: not saved")

            // Once the change is older than the racy window, the run that hashes it saves it,
            // and the runs after it hash nothing.
            usleep(1_100_000)
            #expect(try digest() == (try cold()))
            let recorded = try #require(IndexIdentity.of(index))
            #expect(recorded != settled, "a settled change is recorded")
            var cache = ContextCache(configDirectory: dir)
            let after = try cache.snapshot(context, matcher: matcher, what: "ctx", displayPath: "")
            #expect(after.hashedFiles == 0)
            #expect(after.digest == (try cold()))

            // 300 files changed just now: their records would never be trusted (too close to
            // the walk's time), so the index is neither copied nor saved.
            for i in 0..<300 { try "more \(i)\n".write(toFile: "\(context)/f\(i)", atomically: false, encoding: .utf8) }
            #expect(try digest() == (try cold()))
            #expect(IndexIdentity.of(index) == recorded, "300 racy files: nothing worth recording")
            var racy = ContextCache(configDirectory: dir)
            let racyRun = try racy.snapshot(context, matcher: matcher, what: "ctx", displayPath: "")
            #expect(racyRun.hashedFiles == 300 && !racyRun.hashedFilesRecorded)

            // Settled, with one more changed now: many files hashed, not all settled, is worth
            // saving (the settled ones are trusted from then on).
            usleep(1_100_000)
            try "last\n".write(toFile: context + "/f1999", atomically: false, encoding: .utf8)
            #expect(try digest() == (try cold()))
            #expect(IndexIdentity.of(index) != recorded, "300 settled files and a racy one: the index is saved")
            var next = ContextCache(configDirectory: dir)
            #expect(try next.snapshot(context, matcher: matcher, what: "ctx", displayPath: "").hashedFiles == 1)
        }
    }
}
