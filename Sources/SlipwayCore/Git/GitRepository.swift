internal import CGit2
internal import Foundation

/// A git repository opened with libgit2, answering the questions slipway asks about it: HEAD,
/// abbreviated ids, `git describe`, status of a path, and tree ids at HEAD.
///
/// Every answer is copied out of libgit2 before the call returns. The class is deliberately
/// not `Sendable`: libgit2 allows one thread at a time per `git_repository`, so keep an
/// instance inside one task or actor and send the values it returns (``GitHead``,
/// ``GitFacts``, strings) instead.
public final class GitRepository {
    /// The `git_repository`, owned by this object and freed in `deinit`.
    let handle: OpaquePointer

    /// The top of the work tree, without a trailing slash; `nil` for a bare repository.
    public let workdir: String?
    /// The git directory of this work tree (for a linked worktree `.git/worktrees/<name>`
    /// of the main repository), without a trailing slash.
    public let gitDir: String
    /// The directory shared by all worktrees (objects, refs, config). Equals ``gitDir`` for
    /// the main work tree and for bare repositories.
    public let commonDir: String

    /// libgit2 must be initialised once per process before any other call. A static `let`
    /// runs the initialiser exactly once, thread-safely; libgit2 is never shut down.
    private static let libraryInitialization: Int32 = git_libgit2_init()

    private init(handle: OpaquePointer) {
        self.handle = handle
        // git_repository_path and _commondir are never NULL for an open repository;
        // _workdir is NULL exactly when the repository is bare.
        gitDir = Self.trimmingTrailingSlashes(git_repository_path(handle).map { String(cString: $0) } ?? "")
        commonDir = Self.trimmingTrailingSlashes(
            git_repository_commondir(handle).map { String(cString: $0) } ?? gitDir
        )
        workdir = git_repository_workdir(handle).map { Self.trimmingTrailingSlashes(String(cString: $0)) }
    }

    deinit {
        git_repository_free(handle)
    }

    /// Opens the repository that contains `path`: a work tree directory at any depth, a
    /// linked worktree, a git directory, or a file inside one of them.
    ///
    /// Searches upwards like `git rev-parse` does (stopping at file-system boundaries), and
    /// throws ``GitError/notARepository(path:)`` when no repository contains `path`.
    public static func discover(from path: String) throws(GitError) -> GitRepository {
        try GitError.check(libraryInitialization, "git_libgit2_init")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .directoryNotFound(path: path)
        }
        let start = isDirectory.boolValue ? path : URL(fileURLWithPath: path).deletingLastPathComponent().path
        var repository: OpaquePointer?
        let code = git_repository_open_ext(&repository, start, 0, nil)
        if code == GIT_ENOTFOUND.rawValue {
            GitError.clear()
            throw .notARepository(path: path)
        }
        if code == GIT_EOWNER.rawValue {
            throw .unsafeRepository(path: path, message: GitError.lastMessage())
        }
        try GitError.check(code, "git_repository_open_ext(\(start))")
        guard let repository else {
            throw .libgit2(operation: "git_repository_open_ext(\(start))", code: -1, message: "no repository returned")
        }
        return GitRepository(handle: repository)
    }

    /// The git common directory of the repository containing the directory `path`, found the
    /// way git's discovery does in the plain cases — a `.git` directory holding `HEAD`, or a
    /// `.git` file (`gitdir: …`) of a linked worktree, whose `commondir` names the shared one —
    /// upwards from `path` without crossing a file-system boundary, symbolic links resolved as
    /// libgit2 resolves them. `.none` when no `.git` is found up to the boundary; `.unsure`
    /// when anything is unusual: the caller then asks ``discover(from:)``. Cheap (a few `stat`s and reads): it does not initialise libgit2,
    /// whose start-up reads the system's CA bundle (~14 ms here), for a question this small.
    public static func commonDirWithoutLibgit2(from path: String) -> CommonDirLookup {
        guard let start = realpath(path, nil) else { return .unsure }
        var directory = String(cString: start)
        free(start)
        var info = stat()
        guard stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return .unsure }
        let device = info.st_dev
        while true {
            let dotGit = directory == "/" ? "/.git" : directory + "/.git"
            var entry = stat()
            if lstat(dotGit, &entry) == 0 {
                switch entry.st_mode & S_IFMT {
                case S_IFDIR:
                    guard access(dotGit + "/HEAD", F_OK) == 0, access(dotGit + "/commondir", F_OK) != 0 else {
                        return .unsure
                    }
                    return resolved(dotGit).map(CommonDirLookup.found) ?? .unsure
                case S_IFREG:
                    guard let text = try? String(contentsOfFile: dotGit, encoding: .utf8),
                        text.hasPrefix("gitdir: ")
                    else { return .unsure }
                    var gitDir = text.dropFirst("gitdir: ".count).trimmingCharacters(in: .newlines)
                    if !gitDir.hasPrefix("/") { gitDir = directory + "/" + gitDir }
                    guard access(gitDir + "/HEAD", F_OK) == 0 else { return .unsure }
                    guard let common = try? String(contentsOfFile: gitDir + "/commondir", encoding: .utf8) else {
                        return resolved(gitDir).map(CommonDirLookup.found) ?? .unsure
                    }
                    let named = common.trimmingCharacters(in: .newlines)
                    return resolved(named.hasPrefix("/") ? named : gitDir + "/" + named).map(CommonDirLookup.found)
                        ?? .unsure
                default:
                    return .unsure
                }
            }
            guard directory != "/" else { return .none }
            let parent = (directory as NSString).deletingLastPathComponent
            var up = stat()
            guard stat(parent, &up) == 0 else { return .unsure }
            guard up.st_dev == device else { return .none }
            directory = parent.isEmpty ? "/" : parent
        }
    }

    /// What ``commonDirWithoutLibgit2(from:)`` found.
    public enum CommonDirLookup: Sendable, Equatable {
        case found(String)
        /// No repository contains the path.
        case none
        /// Something git's discovery handles and this does not: ask libgit2.
        case unsure
    }

    private static func resolved(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return trimmingTrailingSlashes(String(cString: real))
    }

    // MARK: HEAD

    /// Where HEAD points: a branch (with its commit), a detached commit, or an unborn branch
    /// in a repository without commits.
    public func head() throws(GitError) -> GitHead {
        try withReference("HEAD") { (head) throws(GitError) -> GitHead in
            guard git_reference_type(head) == GIT_REFERENCE_SYMBOLIC else {
                guard let commit = GitObjectID(git_reference_target(head)) else {
                    throw .libgit2(operation: "git_reference_target(HEAD)", code: -1, message: "HEAD has no target")
                }
                return .detached(commit: commit.hex)
            }
            guard let target = git_reference_symbolic_target(head).map({ String(cString: $0) }) else {
                throw .libgit2(
                    operation: "git_reference_symbolic_target(HEAD)",
                    code: -1,
                    message: "HEAD has no target"
                )
            }
            let branch = target.hasPrefix("refs/heads/") ? String(target.dropFirst("refs/heads/".count)) : target
            var id = git_oid()
            let code = git_reference_name_to_id(&id, handle, target)
            if code == GIT_ENOTFOUND.rawValue {
                GitError.clear()
                return .unborn(branch: branch)
            }
            try GitError.check(code, "git_reference_name_to_id(\(target))")
            return .branch(name: branch, commit: GitObjectID(id).hex)
        }
    }

    // MARK: Objects

    /// The shortest unambiguous abbreviation of the object `full`, as `git rev-parse --short`
    /// prints it: `core.abbrev` characters, or by default ("auto") at least 7 and more in
    /// repositories with many packed objects, lengthened while another object shares it.
    public func shortID(_ full: String) throws(GitError) -> String {
        guard let id = GitObjectID(hex: full) else { throw .invalidObjectID(full) }
        return try abbreviation(of: id)
    }

    /// The summary of a commit, as `git log -1 --format=%s` prints it: the first paragraph of
    /// the message, its lines joined by single spaces.
    public func summary(of commit: String) throws(GitError) -> String {
        guard let id = GitObjectID(hex: commit) else { throw .invalidObjectID(commit) }
        return try withCommit(id) { commit in
            // The raw message is never NULL for a parsed commit; an empty one has no subject.
            guard let raw = git_commit_message_raw(commit) else { return "" }
            let bytes = UnsafeRawBufferPointer(start: raw, count: strlen(raw))
            return Self.subject(of: bytes)
        }
    }

    /// The id of the tree (or blob, or submodule commit) at `path` in the HEAD commit, as
    /// `git rev-parse HEAD:<path>` prints it.
    ///
    /// `path` is relative to the top of the work tree, or absolute inside it; `""` and `"."`
    /// name the root tree. Answers `nil` when HEAD has no commit yet or the path does not
    /// exist at HEAD.
    public func treeID(path: String) throws(GitError) -> String? {
        let relative = try workTreeRelativePath(path)
        guard let commit = try head().commit, let commitID = GitObjectID(hex: commit) else { return nil }
        return try withCommit(commitID) { (commit) throws(GitError) -> String? in
            var tree: OpaquePointer?
            try GitError.check(git_commit_tree(&tree, commit), "git_commit_tree(\(commitID))")
            defer { git_tree_free(tree) }
            guard let tree else { return nil }
            if relative.isEmpty {
                return GitObjectID(git_tree_id(tree))?.hex
            }
            var entry: OpaquePointer?
            let code = git_tree_entry_bypath(&entry, tree, relative)
            if code == GIT_ENOTFOUND.rawValue {
                GitError.clear()
                return nil
            }
            try GitError.check(code, "git_tree_entry_bypath(\(relative))")
            defer { git_tree_entry_free(entry) }
            return GitObjectID(git_tree_entry_id(entry))?.hex
        }
    }

    // MARK: Helpers for the Git/ extensions

    /// Runs `body` with the reference `name` (not resolved); frees it afterwards.
    func withReference<T>(
        _ name: String,
        _ body: (OpaquePointer) throws(GitError) -> T
    ) throws(GitError) -> T {
        var reference: OpaquePointer?
        try GitError.check(git_reference_lookup(&reference, handle, name), "git_reference_lookup(\(name))")
        defer { git_reference_free(reference) }
        guard let reference else {
            throw .libgit2(operation: "git_reference_lookup(\(name))", code: -1, message: "no reference returned")
        }
        return try body(reference)
    }

    /// Runs `body` with the commit `id`; frees it afterwards. Throws
    /// ``GitError/objectNotFound(id:)`` when there is no such commit.
    func withCommit<T>(_ id: GitObjectID, _ body: (OpaquePointer) throws(GitError) -> T) throws(GitError) -> T {
        guard let commit = try lookupCommit(id) else { throw .objectNotFound(id: id.hex) }
        defer { git_commit_free(commit) }
        return try body(commit)
    }

    /// The commit `id` (to be freed by the caller), or `nil` when it does not exist.
    func lookupCommit(_ id: GitObjectID) throws(GitError) -> OpaquePointer? {
        var commit: OpaquePointer?
        var raw = id.raw
        let code = git_commit_lookup(&commit, handle, &raw)
        if code == GIT_ENOTFOUND.rawValue {
            GitError.clear()
            return nil
        }
        try GitError.check(code, "git_commit_lookup(\(id))")
        return commit
    }

    /// `path` made relative to the top of the work tree (no `.`, `..`, empty or trailing
    /// components; `""` for the top itself). Absolute paths must lie inside the work tree.
    func workTreeRelativePath(_ path: String) throws(GitError) -> String {
        var components: [Substring]
        if path.hasPrefix("/") {
            guard let workdir else { throw .bareRepository(gitDir: gitDir) }
            if let inside = Self.components(of: path, under: workdir) {
                components = inside
            } else if let resolvedPath = Self.resolvingSymlinks(path),
                let resolvedWorkdir = Self.resolvingSymlinks(workdir),
                let inside = Self.components(of: resolvedPath, under: resolvedWorkdir)
            {
                components = inside
            } else {
                throw .pathOutsideWorkTree(path: path, workTree: workdir)
            }
        } else {
            components = path.split(separator: "/", omittingEmptySubsequences: true)
        }
        var normalized: [Substring] = []
        for component in components {
            switch component {
            case ".": continue
            case "..":
                guard normalized.popLast() != nil else {
                    throw .pathOutsideWorkTree(path: path, workTree: workdir ?? gitDir)
                }
            default: normalized.append(component)
            }
        }
        return normalized.joined(separator: "/")
    }

    // MARK: Pure helpers

    static func trimmingTrailingSlashes(_ path: String) -> String {
        var path = Substring(path)
        while path.count > 1, path.hasSuffix("/") { path = path.dropLast() }
        return String(path)
    }

    /// The components of absolute `path` below absolute `base`, both normalised lexically;
    /// `nil` when `path` is not `base` or below it.
    private static func components(of path: String, under base: String) -> [Substring]? {
        let path = lexicallyNormalized(path)
        let base = lexicallyNormalized(base)
        guard path.starts(with: base) else { return nil }
        return Array(path.dropFirst(base.count))
    }

    private static func lexicallyNormalized(_ absolutePath: String) -> [Substring] {
        var result: [Substring] = []
        for component in absolutePath.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": _ = result.popLast()
            default: result.append(component)
            }
        }
        return result
    }

    /// `path` with symbolic links resolved in its longest existing prefix (the rest may not
    /// exist, such as a deleted file); `nil` when nothing of it exists.
    private static func resolvingSymlinks(_ path: String) -> String? {
        var existing = lexicallyNormalized(path)
        var missing: [Substring] = []
        while true {
            let candidate = "/" + existing.joined(separator: "/")
            if let resolved = realpath(candidate, nil) {
                defer { free(resolved) }
                let prefix = String(cString: resolved)
                return missing.isEmpty ? prefix : trimmingTrailingSlashes(prefix) + "/" + missing.joined(separator: "/")
            }
            guard let last = existing.popLast() else { return nil }
            missing.insert(last, at: 0)
        }
    }

    /// git's `format_subject()`: skip blank lines, then join the lines of the first paragraph
    /// with single spaces, each line without its trailing whitespace.
    static func subject(of message: UnsafeRawBufferPointer) -> String {
        // git's isspace(): tab, line feed, carriage return and space (not \v or \f).
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d }
        var result: [UInt8] = []
        var started = false
        var index = message.startIndex
        while index < message.endIndex {
            var end = index
            while end < message.endIndex, message[end] != 0x0a { end += 1 }
            let next = end < message.endIndex ? end + 1 : end
            var trimmedEnd = end
            while trimmedEnd > index, isSpace(message[trimmedEnd - 1]) { trimmedEnd -= 1 }
            if trimmedEnd == index {
                // A blank line: skipped before the subject, the end of it after.
                if started { break }
            } else {
                if started { result.append(0x20) }
                result.append(contentsOf: message[index..<trimmedEnd])
                started = true
            }
            index = next
        }
        return String(decoding: result, as: UTF8.self)
    }
}

@available(*, unavailable, message: "a libgit2 repository must stay in one task or actor; send the values it returns")
extension GitRepository: Sendable {}
