/// The `SLIPWAY_JOB_*` variables slipway's own pipelines (`commit`, `push`, `gate`) read: set
/// by the agent for its jobs, and filled in from HEAD when such a pipeline runs by hand.
public enum JobEnvironment {
    /// The variables of a job of `pipeline` at `commit` for `ref` in `worktree`.
    public static func variables(
        id: Int,
        pipeline: String,
        commit: String,
        ref: String,
        worktree: String,
        branch: String?,
        describe: String?
    ) -> [String: String] {
        var env = [
            "SLIPWAY_JOB_ID": String(id), "SLIPWAY_JOB_PIPELINE": pipeline, "SLIPWAY_JOB_COMMIT": commit,
            "SLIPWAY_JOB_REF": ref, "SLIPWAY_JOB_WORKTREE": worktree,
        ]
        if let branch {
            env["SLIPWAY_JOB_BRANCH"] = branch
            env["SLIPWAY_JOB_BRANCH_TAG"] = BranchTag.tag(for: branch)
        }
        if let describe { env["SLIPWAY_JOB_DESCRIBE"] = describe }
        return env
    }

    /// `environment` with `SLIPWAY_JOB_DESCRIBE`, `…_BRANCH` and `…_BRANCH_TAG` filled in from
    /// the HEAD of the repository holding `directory` where they are unset (only for slipway's
    /// own pipelines: `git describe` walks history).
    public static func completed(_ environment: [String: String], directory: String) -> [String: String] {
        var environment = environment
        guard environment["SLIPWAY_JOB_DESCRIBE"] == nil || environment["SLIPWAY_JOB_BRANCH_TAG"] == nil,
            let repository = try? GitRepository.discover(from: directory)
        else { return environment }
        if environment["SLIPWAY_JOB_DESCRIBE"] == nil, let describe = try? repository.describe(tags: false) {
            environment["SLIPWAY_JOB_DESCRIBE"] = BranchTag.tag(for: describe)
        }
        if environment["SLIPWAY_JOB_BRANCH"] == nil, let branch = try? repository.head().branchName {
            environment["SLIPWAY_JOB_BRANCH"] = branch
            environment["SLIPWAY_JOB_BRANCH_TAG"] = BranchTag.tag(for: branch)
        }
        return environment
    }
}
