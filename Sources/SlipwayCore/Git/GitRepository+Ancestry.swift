internal import CGit2

extension GitRepository {
    /// Whether commit `descendant` has commit `ancestor` in its history (`git merge-base
    /// --is-ancestor ancestor descendant`, except that a commit is not its own descendant).
    /// Throws for an id that is not a full commit id or names no commit here.
    public func isDescendant(_ descendant: String, of ancestor: String) throws(GitError) -> Bool {
        guard let child = GitObjectID(hex: descendant) else { throw .invalidObjectID(descendant) }
        guard let parent = GitObjectID(hex: ancestor) else { throw .invalidObjectID(ancestor) }
        for id in [child, parent] {
            guard let commit = try lookupCommit(id) else { throw .objectNotFound(id: id.hex) }
            git_commit_free(commit)
        }
        var a = child.raw
        var b = parent.raw
        let code = git_graph_descendant_of(handle, &a, &b)
        try GitError.check(code, "git_graph_descendant_of(\(descendant), \(ancestor))")
        return code == 1
    }
}
