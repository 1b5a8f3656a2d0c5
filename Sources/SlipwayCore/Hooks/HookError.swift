/// A failure installing, removing or inspecting slipway's git hooks.
public enum HookError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `path` is not inside a git repository.
    case notARepository(path: String)
    /// git itself failed (not installed, or an unexpected answer).
    case gitFailed(arguments: [String], status: Int32, message: String)
    /// A foreign hook is in the way and the place it would be moved to is taken.
    case chainedExists(hook: String, chained: String)
    /// A file operation failed.
    case io(path: String, operation: String, reason: String)
    /// The binary to bake into the hooks does not exist or cannot be run.
    case binaryNotFound(path: String)

    public var description: String {
        switch self {
        case .notARepository(let path):
            return "\(path): not a git repository (run inside the project's repository)"
        case .gitFailed(let arguments, let status, let message):
            let tail = message.split(separator: "\n").suffix(3).joined(separator: "\n")
            return "git \(arguments.joined(separator: " ")) exited with status \(status)"
                + (tail.isEmpty ? "" : ": \(tail)") + "; is git (2.36 or newer) installed and the repository readable?"
        case .chainedExists(let hook, let chained):
            return
                "\(hook) is not slipway's hook, and \(chained) (where slipway keeps an earlier hook to run it first) "
                + "already exists; merge the two into \(hook) or remove \(chained), then run `slipway hooks install` again"
        case .io(let path, let operation, let reason):
            return "\(path): cannot \(operation): \(reason); check the directory's permissions and free space"
        case .binaryNotFound(let path):
            return "\(path): no such executable; pass --bin with the path of the slipway binary the hooks should run"
        }
    }
}
