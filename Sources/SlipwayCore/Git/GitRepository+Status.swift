internal import CGit2

extension GitRepository {
    /// Whether `git status --porcelain -- <path>` would print anything: staged or unstaged
    /// changes to tracked files, or untracked files that are not ignored, at `path` or below it.
    ///
    /// `path` is relative to the top of the work tree, or absolute inside it; `""` and `"."`
    /// mean the whole work tree. It is taken literally, never as a glob pattern.
    public func isDirty(path: String) throws(GitError) -> Bool {
        guard workdir != nil else { throw .bareRepository(gitDir: gitDir) }
        let relative = try workTreeRelativePath(path)
        return try hasChanges(below: relative.isEmpty ? nil : relative, includingUntracked: true)
    }

    /// Whether `git status --porcelain` would print anything for the whole work tree.
    public func isDirty() throws(GitError) -> Bool {
        try isDirty(path: "")
    }

    /// Whether the index or the work tree differs from HEAD (or, without commits, whether
    /// anything is staged or present). `pathspec` is a literal path relative to the work tree.
    func hasChanges(below pathspec: String?, includingUntracked: Bool) throws(GitError) -> Bool {
        var options = git_status_options()
        try GitError.check(
            git_status_options_init(&options, UInt32(GIT_STATUS_OPTIONS_VERSION)),
            "git_status_options_init"
        )
        options.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR
        var flags: UInt32 = 0
        if includingUntracked {
            // Recursing lists each untracked file, so that a pathspec below an untracked
            // directory still matches (git status shows "?? dir/" for it).
            flags |= GIT_STATUS_OPT_INCLUDE_UNTRACKED.rawValue | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS.rawValue
        }
        if pathspec != nil {
            // Literal: a directory matches everything below it, and `[` or `*` are not globs.
            flags |= GIT_STATUS_OPT_DISABLE_PATHSPEC_MATCH.rawValue
        }
        options.flags = flags

        var list: OpaquePointer?
        let code: Int32
        if let pathspec {
            code = pathspec.withCString { path in
                var strings: [UnsafeMutablePointer<CChar>?] = [UnsafeMutablePointer(mutating: path)]
                return strings.withUnsafeMutableBufferPointer { buffer in
                    options.pathspec = git_strarray(strings: buffer.baseAddress, count: 1)
                    return git_status_list_new(&list, handle, &options)
                }
            }
        } else {
            code = git_status_list_new(&list, handle, &options)
        }
        try GitError.check(code, "git_status_list_new")
        defer { git_status_list_free(list) }
        return git_status_list_entrycount(list) > 0
    }
}
