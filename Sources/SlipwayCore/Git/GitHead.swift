/// Where HEAD points in a repository (or linked worktree).
public enum GitHead: Sendable, Equatable {
    /// HEAD names a branch that has no commit yet, as in a repository with no commits.
    case unborn(branch: String)
    /// HEAD is on branch `name` (without `refs/heads/`), at the full commit id `commit`.
    case branch(name: String, commit: String)
    /// HEAD points straight at the full commit id `commit`, on no branch.
    case detached(commit: String)

    /// The full id of the HEAD commit; `nil` while the branch is unborn.
    public var commit: String? {
        switch self {
        case .unborn: return nil
        case .branch(_, let commit), .detached(let commit): return commit
        }
    }

    /// The current branch as `git branch --show-current` prints it; `nil` when detached.
    public var branchName: String? {
        switch self {
        case .unborn(let branch), .branch(let branch, _): return branch
        case .detached: return nil
        }
    }
}
