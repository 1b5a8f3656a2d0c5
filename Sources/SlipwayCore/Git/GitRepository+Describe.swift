internal import CGit2
internal import Foundation

// `git describe`, ported from git's builtin/describe.c (git 2.39) onto libgit2's object
// access rather than calling git_describe_commit(), because libgit2 1.5's port differs from
// git where users see it: it orders commits with equal dates differently (so merges made
// within one second can get a different depth or tag), prints a renamed annotated tag
// without the "-0-g<id>" git adds, counts untracked files for --dirty, and follows parents of
// shallow commits that are not there.
extension GitRepository {
    /// The output of `git describe --always` (annotated tags only) or, with `tags`,
    /// `git describe --tags --always`: `v1.0` on a tagged commit, `v1.0-3-gabc1234` after it,
    /// and the abbreviated commit id when no tag is reachable.
    ///
    /// - Parameters:
    ///   - always: Fall back to the abbreviated commit id; without it the answer is `nil`
    ///     where git fails with "No names found" or "No (annotated) tags can describe".
    ///   - dirtySuffix: Appended like `--dirty=<suffix>` when a tracked file differs from
    ///     HEAD in the index or the work tree (untracked files do not count).
    /// - Returns: `nil` when HEAD has no commit yet.
    public func describe(tags: Bool, always: Bool = true, dirtySuffix: String? = nil) throws(GitError) -> String? {
        guard let commit = try head().commit, let start = GitObjectID(hex: commit) else { return nil }
        var describer = Describer(repository: self, tags: tags)
        guard var description = try describer.describe(start, always: always) else { return nil }
        if let dirtySuffix {
            guard workdir != nil else { throw .bareRepository(gitDir: gitDir) }
            if try hasChanges(below: nil, includingUntracked: false) { description += dirtySuffix }
        }
        return description
    }

    /// The commits of a shallow clone whose parents are missing on purpose (git treats them
    /// as root commits).
    func shallowCommits() -> Set<GitObjectID> {
        guard let text = try? String(contentsOfFile: commonDir + "/shallow", encoding: .utf8) else { return [] }
        return Set(text.split(whereSeparator: \.isNewline).compactMap { GitObjectID(hex: String($0)) })
    }
}

/// A tag that can name a commit: git's `struct commit_name`.
private struct TagName {
    /// The ref name below `refs/tags/`.
    var path: String
    /// 2 for an annotated tag, 1 for a lightweight one.
    var priority: Int
    /// What the ref points to: the tag object of an annotated tag, else the commit.
    var target: GitObjectID
    /// The annotated tag object, read when first needed.
    var tag: AnnotatedTag?
}

private struct AnnotatedTag {
    /// The name inside the tag object, which git prints (and which may differ from the ref).
    var name: String
    /// The tagger date; 0 without a tagger, as in git.
    var date: Int64
    /// The object the tag points to.
    var tagged: GitObjectID
}

/// A candidate tag met during the walk: git's `struct possible_tag`.
private struct PossibleTag {
    var name: TagName
    var depth: Int
    var foundOrder: Int
    var flagWithin: UInt32
}

private struct Describer {
    let repository: GitRepository
    let tags: Bool

    /// git describe's default `--candidates`.
    private let maxCandidates = 10
    private let seenFlag: UInt32 = 1

    /// Committer date and parents of the commits walked so far.
    private var commits: [GitObjectID: (date: Int64, parents: [GitObjectID])] = [:]
    private var flags: [GitObjectID: UInt32] = [:]
    private var shallow: Set<GitObjectID> = []

    init(repository: GitRepository, tags: Bool) {
        self.repository = repository
        self.tags = tags
    }

    mutating func describe(_ start: GitObjectID, always: Bool) throws(GitError) -> String? {
        let names = try knownNames()
        if var name = names[start], tags || name.priority == 2 {
            // Exact match. A tag whose ref was renamed prints its inner name plus "-0-g<id>",
            // so that the output still resolves to the commit.
            let (text, misnamed) = try display(&name)
            guard misnamed else { return text }
            return text + "-0-g" + (try repository.abbreviation(of: name.tag?.tagged ?? start))
        }
        guard !names.isEmpty else {
            // git walks the whole history first, but without names nothing can match.
            return always ? try repository.abbreviation(of: start) : nil
        }

        shallow = repository.shallowCommits()
        var list: [(id: GitObjectID, date: Int64)] = []
        flags[start] = seenFlag
        list.append((start, try node(start).date))
        var matches: [PossibleTag] = []
        var annotatedCount = 0
        var seenCommits = 0
        var gaveUpOn: (id: GitObjectID, date: Int64)?

        while !list.isEmpty {
            let current = list.removeFirst()
            seenCommits += 1
            if let name = names[current.id] {
                if !tags && name.priority < 2 {
                    // Lightweight tags only count for git's error message.
                } else if matches.count < maxCandidates {
                    let order = matches.count + 1
                    let match = PossibleTag(
                        name: name,
                        depth: seenCommits - 1,
                        foundOrder: order,
                        flagWithin: 1 << order
                    )
                    matches.append(match)
                    flags[current.id, default: 0] |= match.flagWithin
                    if name.priority == 2 { annotatedCount += 1 }
                } else {
                    gaveUpOn = current
                    break
                }
            }
            let currentFlags = flags[current.id, default: 0]
            for index in matches.indices where currentFlags & matches[index].flagWithin == 0 {
                matches[index].depth += 1
            }
            if annotatedCount > 0 && list.isEmpty { break }
            try enqueueParents(of: current.id, flags: currentFlags, into: &list)
        }

        guard !matches.isEmpty else {
            return always ? try repository.abbreviation(of: start) : nil
        }
        matches.sort { ($0.depth, $0.foundOrder) < ($1.depth, $1.foundOrder) }
        if let gaveUpOn {
            insertByDate(gaveUpOn, into: &list)
        }
        try finishDepthComputation(&list, best: &matches[0])

        var best = matches[0]
        let (text, _) = try display(&best.name)
        return text + "-\(best.depth)-g" + (try repository.abbreviation(of: start))
    }

    /// git's finish_depth_computation(): keep walking until every commit left is reachable
    /// from the best tag, counting those that are not.
    private mutating func finishDepthComputation(
        _ list: inout [(id: GitObjectID, date: Int64)],
        best: inout PossibleTag
    ) throws(GitError) {
        while !list.isEmpty {
            let current = list.removeFirst()
            let currentFlags = flags[current.id, default: 0]
            if currentFlags & best.flagWithin != 0 {
                if list.allSatisfy({ flags[$0.id, default: 0] & best.flagWithin != 0 }) { break }
            } else {
                best.depth += 1
            }
            try enqueueParents(of: current.id, flags: currentFlags, into: &list)
        }
    }

    private mutating func enqueueParents(
        of id: GitObjectID,
        flags currentFlags: UInt32,
        into list: inout [(id: GitObjectID, date: Int64)]
    ) throws(GitError) {
        for parent in try node(id).parents {
            let date = try node(parent).date
            if flags[parent, default: 0] & seenFlag == 0 {
                insertByDate((parent, date), into: &list)
            }
            flags[parent, default: 0] |= currentFlags
        }
    }

    /// git's commit_list_insert_by_date(): newest first, after the commits of the same date.
    private func insertByDate(
        _ entry: (id: GitObjectID, date: Int64),
        into list: inout [(id: GitObjectID, date: Int64)]
    ) {
        let index = list.firstIndex { $0.date < entry.date } ?? list.endIndex
        list.insert(entry, at: index)
    }

    /// The committer date and parents of a commit. Like git, a commit that cannot be read
    /// counts with date 0 and no parents, and shallow commits have no parents.
    private mutating func node(_ id: GitObjectID) throws(GitError) -> (date: Int64, parents: [GitObjectID]) {
        if let known = commits[id] { return known }
        var result: (date: Int64, parents: [GitObjectID]) = (0, [])
        if let commit = try repository.lookupCommit(id) {
            defer { git_commit_free(commit) }
            result.date = Int64(git_commit_time(commit))
            if !shallow.contains(id) {
                let count = git_commit_parentcount(commit)
                result.parents = (0..<count).compactMap { GitObjectID(git_commit_parent_id(commit, $0)) }
            }
        }
        commits[id] = result
        return result
    }

    // MARK: Names

    /// The tags under `refs/tags/`, keyed by the commit (or other object) they peel to: git's
    /// get_name() over refs in name order, keeping per commit the annotated tag over the
    /// lightweight one and, between annotated tags, the newest.
    private func knownNames() throws(GitError) -> [GitObjectID: TagName] {
        var refNames: [String] = []
        var iterator: OpaquePointer?
        try GitError.check(git_reference_iterator_new(&iterator, repository.handle), "git_reference_iterator_new")
        defer { git_reference_iterator_free(iterator) }
        while true {
            var name: UnsafePointer<CChar>?
            let code = git_reference_next_name(&name, iterator)
            if code == GIT_ITEROVER.rawValue {
                GitError.clear()
                break
            }
            try GitError.check(code, "git_reference_next_name")
            if let name, case let refName = String(cString: name), refName.hasPrefix("refs/tags/") {
                refNames.append(refName)
            }
        }
        // git visits refs sorted bytewise; the order decides between lightweight tags on one commit.
        refNames.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }

        var names: [GitObjectID: TagName] = [:]
        for refName in refNames {
            var raw = git_oid()
            guard git_reference_name_to_id(&raw, repository.handle, refName) == 0 else {
                GitError.clear()  // A broken or dangling ref names nothing.
                continue
            }
            let target = GitObjectID(raw)
            let peeled = peeledTag(target)
            add(
                TagName(
                    path: String(refName.dropFirst("refs/tags/".count)),
                    priority: peeled == target ? 1 : 2,
                    target: target
                ),
                peeled: peeled,
                to: &names
            )
        }
        return names
    }

    /// git's replace_name() and add_to_known_names().
    private func add(_ candidate: TagName, peeled: GitObjectID, to names: inout [GitObjectID: TagName]) {
        var candidate = candidate
        if var existing = names[peeled] {
            guard existing.priority <= candidate.priority else { return }
            if existing.priority == 2 && candidate.priority == 2 {
                if existing.tag == nil, let tag = try? annotatedTag(existing.target) {
                    existing.tag = tag
                    names[peeled] = existing
                }
                // An existing tag that cannot be read is replaced; a new one that cannot be
                // read replaces nothing; otherwise the newer tagger date wins.
                if let existingTag = existing.tag {
                    guard let tag = try? annotatedTag(candidate.target), existingTag.date < tag.date else { return }
                    candidate.tag = tag
                }
            } else if existing.priority == candidate.priority {
                return  // The first lightweight tag in name order stays.
            }
        }
        names[peeled] = candidate
    }

    /// The object an annotated tag (or chain of tags) finally points to; `id` itself for
    /// anything that is not a tag or cannot be peeled.
    private func peeledTag(_ id: GitObjectID) -> GitObjectID {
        var object: OpaquePointer?
        var raw = id.raw
        guard git_object_lookup(&object, repository.handle, &raw, GIT_OBJECT_ANY) == 0 else {
            GitError.clear()
            return id
        }
        defer { git_object_free(object) }
        guard git_object_type(object) == GIT_OBJECT_TAG else { return id }
        var peeled: OpaquePointer?
        guard git_object_peel(&peeled, object, GIT_OBJECT_ANY) == 0 else {
            GitError.clear()
            return id
        }
        defer { git_object_free(peeled) }
        return GitObjectID(git_object_id(peeled)) ?? id
    }

    private func annotatedTag(_ id: GitObjectID) throws(GitError) -> AnnotatedTag {
        var tag: OpaquePointer?
        var raw = id.raw
        try GitError.check(git_tag_lookup(&tag, repository.handle, &raw), "git_tag_lookup(\(id))")
        defer { git_tag_free(tag) }
        // A parsed tag always has a name and a target; the tagger is optional.
        let name = git_tag_name(tag).map { String(cString: $0) } ?? ""
        let date = git_tag_tagger(tag).map { Int64($0.pointee.when.time) } ?? 0
        return AnnotatedTag(name: name, date: date, tagged: GitObjectID(git_tag_target_id(tag)) ?? id)
    }

    /// git's append_name(): the name inside an annotated tag, else the ref name; `misnamed`
    /// when the two differ.
    private func display(_ name: inout TagName) throws(GitError) -> (text: String, misnamed: Bool) {
        if name.priority == 2 && name.tag == nil {
            name.tag = try annotatedTag(name.target)
        }
        guard let tag = name.tag else { return (name.path, false) }
        return (tag.name, !tag.name.utf8.elementsEqual(name.path.utf8))
    }
}
