/// The git facts the config loader offers to a configuration (branch, commit, describe), read
/// in one call.
public struct GitFacts: Sendable, Equatable {
    /// The current branch (`git branch --show-current`); `nil` when HEAD is detached.
    public var branch: String?
    /// The full id of the HEAD commit (`git rev-parse HEAD`).
    public var commit: String?
    /// The abbreviated HEAD commit (`git rev-parse --short HEAD`).
    public var shortCommit: String?
    /// `git describe --always`: annotated tags only.
    public var describe: String?
    /// `git describe --tags --always`: lightweight tags too.
    public var describeTags: String?
    /// The HEAD commit's summary line (`git log -1 --format=%s`).
    public var summary: String?

    public init(
        branch: String? = nil,
        commit: String? = nil,
        shortCommit: String? = nil,
        describe: String? = nil,
        describeTags: String? = nil,
        summary: String? = nil
    ) {
        self.branch = branch
        self.commit = commit
        self.shortCommit = shortCommit
        self.describe = describe
        self.describeTags = describeTags
        self.summary = summary
    }

    /// Reads the facts of the repository containing `directory`; `nil` when `directory` is
    /// not inside a git repository (or the repository cannot be opened).
    ///
    /// In a repository without commits only ``branch`` is set. A fact that cannot be read is
    /// left `nil` rather than failing the rest. Cheap: no status walk of the work tree.
    public static func load(from directory: String) -> GitFacts? {
        guard let repository = try? GitRepository.discover(from: directory) else { return nil }
        return GitFacts(repository: repository)
    }

    /// Reads the facts of an open repository, leaving `nil` what cannot be read.
    public init(repository: GitRepository) {
        self.init()
        guard let head = try? repository.head() else { return }
        branch = head.branchName
        guard let commit = head.commit else { return }
        self.commit = commit
        shortCommit = try? repository.shortID(commit)
        describe = try? repository.describe(tags: false)
        describeTags = try? repository.describe(tags: true)
        summary = try? repository.summary(of: commit)
    }
}
