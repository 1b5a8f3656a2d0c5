internal import CGit2

/// A failure reading facts from a git repository.
public enum GitError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Neither `path` nor any directory above it belongs to a git repository.
    case notARepository(path: String)
    /// The directory to open a repository from does not exist.
    case directoryNotFound(path: String)
    /// The repository is owned by another user and not trusted through `safe.directory`.
    case unsafeRepository(path: String, message: String)
    /// The operation needs a work tree, but the repository is bare.
    case bareRepository(gitDir: String)
    /// An absolute or `..` path that leads out of the repository's work tree.
    case pathOutsideWorkTree(path: String, workTree: String)
    /// A path the caller requires does not exist in the commit at HEAD (for callers of
    /// ``GitRepository/treeID(path:)``, which itself answers `nil`).
    case pathNotFoundAtHead(path: String)
    /// A string that is not a full object id (40 hexadecimal digits).
    case invalidObjectID(String)
    /// No object with this id exists in the repository (or it is not a commit where one is needed).
    case objectNotFound(id: String)
    /// libgit2 reported a failure; `message` is its `git_error_last()` text for that call.
    case libgit2(operation: String, code: Int32, message: String)

    public var description: String {
        switch self {
        case .notARepository(let path):
            return "\(path) is not inside a git repository; run `git init` there, "
                + "or use --chdir to run slipway in a directory of a git repository"
        case .directoryNotFound(let path):
            return "\(path): no such directory"
        case .unsafeRepository(let path, let message):
            return "the git repository at \(path) is owned by another user (\(message)); if you trust it, "
                + "run `git config --global --add safe.directory <its work tree>`"
        case .bareRepository(let gitDir):
            return "the git repository \(gitDir) is bare: it has no work tree to inspect"
        case .pathOutsideWorkTree(let path, let workTree):
            return "\(path) is outside the repository's work tree \(workTree)"
        case .pathNotFoundAtHead(let path):
            return "\(path) does not exist in the HEAD commit (is it committed?)"
        case .invalidObjectID(let text):
            return "'\(text)' is not a full git object id (40 hexadecimal digits)"
        case .objectNotFound(let id):
            return "object \(id) does not exist in the repository"
        case .libgit2(let operation, let code, let message):
            return "git: \(operation) failed: \(message) (libgit2 error \(code))"
        }
    }
}

extension GitError {
    /// Throws ``libgit2(operation:code:message:)`` for a negative libgit2 return code.
    ///
    /// Must run on the thread of the failing call, right after it: `git_error_last()` is
    /// thread-local and the next libgit2 call may replace it.
    static func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(GitError) {
        guard code < 0 else { return }
        throw .libgit2(operation: operation(), code: code, message: lastMessage())
    }

    /// The message libgit2 recorded for the last failure on this thread.
    static func lastMessage() -> String {
        guard let error = git_error_last(), let message = error.pointee.message else { return "unknown error" }
        return String(cString: message)
    }

    /// Forgets an expected failure (such as `GIT_ENOTFOUND` that answers a question), so that
    /// a later ``check(_:_:)`` cannot report its stale message.
    static func clear() {
        git_error_clear()
    }
}
