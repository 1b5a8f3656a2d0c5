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
    /// `core.hooksPath` is a directory of the work tree that git does not ignore: slipway's
    /// hooks would be committed. `tracked`: the files of it the repository tracks.
    case trackedHooksPath(hooksPath: String, directory: String, setIn: String?, tracked: [String])
    /// `core.hooksPath` is outside the repository: other repositories may run hooks from there.
    case sharedHooksPath(hooksPath: String, directory: String, setIn: String?)

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
        case .trackedHooksPath(let hooksPath, let directory, let setIn, let tracked):
            let setting = "core.hooksPath is \(hooksPath)\(setIn.map { " (set in \($0))" } ?? "")"
            let own =
                "give this clone a hooks directory of its own (`git config core.hooksPath .git/hooks`, with copies of "
                + "the hooks it needs: slipway runs each one first) and install again"
            if tracked.isEmpty {
                return
                    "\(setting): \(directory) is in the work tree and git does not ignore it, so slipway's hooks written there "
                    + "would show in `git status` and be committed by `git add -A`. Nothing was installed. Have git ignore "
                    + "slipway's files there (as husky's .husky/_ ignores its own) and install again, install there anyway "
                    + "with `slipway hooks install --force`, or \(own)"
            }
            let files = tracked.prefix(6).joined(separator: ", ") + (tracked.count > 6 ? ", …" : "")
            return
                "\(setting): \(directory) is a directory this repository tracks (\(files)), so slipway's hooks written there "
                + "would be committed by `git add` or `git commit -a` and reach everyone who clones it (a tracked hook "
                + "there would be replaced by slipway's). Nothing was installed. Install there anyway with "
                + "`slipway hooks install --force` (and keep slipway's files out of your commits), or \(own)"
        case .sharedHooksPath(let hooksPath, let directory, let setIn):
            return
                "core.hooksPath is \(hooksPath)\(setIn.map { " (set in \($0))" } ?? ""): \(directory) is outside this "
                + "repository, so other repositories may run their hooks from it too, and would run slipway's. Nothing was "
                + "installed. Install there anyway with `slipway hooks install --force`, or give this repository a hooks "
                + "directory of its own (`git config core.hooksPath .git/hooks`, with copies of the hooks it needs from "
                + "\(directory): slipway runs each one first) and install again"
        }
    }
}
