#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A failure reading a build context, its ignore file or its stat index.
public enum ContextError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The context directory does not exist.
    case contextNotFound(path: String)
    /// The context path exists but is not a directory.
    case notADirectory(path: String)
    /// A file or directory inside the context (or an ignore file) could not be read;
    /// `reason` is the system's text for the errno (`Permission denied`).
    case unreadable(path: String, reason: String)
    /// A `.dockerignore` pattern Docker would refuse. `file` is the ignore file's path (nil for
    /// patterns given in code), `line` its 1-based line (for patterns given in code: the
    /// 1-based position in the list).
    case badIgnorePattern(file: String?, line: Int, pattern: String, reason: String)
    /// The stat index could not be written (the previous index, if any, is left as it was).
    case indexWriteFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .contextNotFound(let path):
            return "\(path): build context does not exist"
        case .notADirectory(let path):
            return "\(path): build context is not a directory"
        case .unreadable(let path, let reason):
            return "\(path): cannot read: \(reason); fix its permissions or exclude it in .dockerignore"
        case .badIgnorePattern(let file, let line, let pattern, let reason):
            if let file {
                return "\(file):\(line): invalid pattern '\(pattern)': \(reason)"
            }
            return "ignore pattern \(line) '\(pattern)': \(reason)"
        case .indexWriteFailed(let path, let reason):
            return "\(path): cannot write the stat index: \(reason)"
        }
    }
}

extension ContextError {
    /// The system's text for `code`, read at once (strerror's buffer may be reused).
    static func errnoText(_ code: Int32) -> String {
        // strerror never returns NULL for glibc or Darwin; the Optional covers other libcs.
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}
