/// The agent's jobs, rebuilt from the journal: every change is a `JournalRecord` that is
/// written to the journal first and then applied here, so replaying the journal after a crash
/// gives exactly the state the agent had.
///
/// Coalescing: when a job is queued, older queued jobs with the same key (pipeline and
/// branch) are superseded by it; a running job is never interrupted, and a resumed job (one
/// that was running when the agent died) is never superseded, so it completes exactly once.
public struct JobQueue: Sendable {
    public struct Entry: Sendable, Equatable {
        public var job: AgentJob
        public var state: JobState
        public var resumed: Bool
        public var acceptedAt: Double

        var isDropped: Bool { if case .dropped = state { true } else { false } }
        var isSuperseded: Bool { if case .superseded = state { true } else { false } }
    }

    public private(set) var entries: [Int: Entry] = [:]
    public private(set) var nextID = 1

    public init() {}

    public init(replaying records: [JournalRecord]) {
        for record in records { apply(record) }
    }

    // MARK: Applying records

    public mutating func apply(_ record: JournalRecord) {
        switch record.kind {
        case .accepted:
            guard let job = record.job else { return }
            entries[job.id] = Entry(
                job: job,
                state: job.push == nil ? .queued : .awaitingPush,
                resumed: record.resumed ?? false,
                acceptedAt: record.at
            )
            nextID = max(nextID, job.id + 1)
        case .confirmed:
            if let id = record.id, entries[id]?.state == .awaitingPush { entries[id]?.state = .queued }
        case .requeued:
            if let id = record.id, entries[id] != nil {
                entries[id]?.state = .queued
                entries[id]?.resumed = true
            }
        case .started:
            if let id = record.id, entries[id] != nil {
                entries[id]?.state = .running(pid: record.pid ?? 0, start: record.start, since: record.at)
            }
        case .finished:
            if let id = record.id, let result = record.result, entries[id] != nil {
                entries[id]?.state = .finished(result)
            }
        case .superseded:
            if let id = record.id, let by = record.by, entries[id] != nil { entries[id]?.state = .superseded(by: by) }
        case .dropped:
            if let id = record.id, entries[id] != nil { entries[id]?.state = .dropped(reason: record.reason ?? "") }
        case .agentStarted:
            break
        }
    }

    // MARK: Decisions (records to write, nothing changed yet)

    /// The records that accept `job` (its id assigned) and supersede what it replaces.
    public func accept(_ job: AgentJob, at time: Double) -> [JournalRecord] {
        var job = job
        job.id = nextID
        var records = [JournalRecord(.accepted, at: time, id: job.id, job: job)]
        if job.push == nil { records += superseding(by: job, at: time) }
        return records
    }

    /// The records that confirm push job `id` and supersede older queued pushes of its branch.
    public func confirm(_ id: Int, at time: Double) -> [JournalRecord] {
        guard let entry = entries[id], entry.state == .awaitingPush else { return [] }
        return [JournalRecord(.confirmed, at: time, id: id)] + superseding(by: entry.job, at: time)
    }

    private func superseding(by job: AgentJob, at time: Double) -> [JournalRecord] {
        entries.values
            .filter {
                $0.state == .queued && !$0.resumed && $0.job.id < job.id && $0.job.coalescingKey == job.coalescingKey
            }
            .sorted { $0.job.id < $1.job.id }
            .map { JournalRecord(.superseded, at: time, id: $0.job.id, by: job.id) }
    }

    /// An accepted job with `job`'s key (pipeline and branch) whose commit descends from
    /// `job`'s commit, when there is one: `job` comes from a late event (a hook's file read after
    /// a newer commit's, say after a restart) and must not be built after that newer commit.
    /// `isDescendant(commit, ancestor)` answers from git; the newest 20 distinct commits of the
    /// key are asked, newest first, jobs that were not superseded themselves before those that were.
    public func newerAccepted(
        than job: AgentJob,
        isDescendant: (_ commit: String, _ ancestor: String) -> Bool
    ) -> Entry? {
        var seen: Set<String> = [job.commit]
        let candidates = entries.values
            .filter { $0.job.coalescingKey == job.coalescingKey && !$0.isDropped }
            .sorted { ($0.isSuperseded ? 1 : 0, -$0.job.id) < ($1.isSuperseded ? 1 : 0, -$1.job.id) }
        for entry in candidates where seen.insert(entry.job.commit).inserted {
            if seen.count > 21 { break }
            if isDescendant(entry.job.commit, job.commit) { return entry }
        }
        return nil
    }

    /// The records that accept `job` as superseded at once by `newer` (see ``newerAccepted``),
    /// with the reason.
    public func acceptLate(_ job: AgentJob, newer: Entry, at time: Double) -> [JournalRecord] {
        var job = job
        job.id = nextID
        var superseded = JournalRecord(.superseded, at: time, id: job.id, by: newer.job.id)
        superseded.reason =
            "a late event: \(job.commit.prefix(7)) is an ancestor of \(newer.job.commit.prefix(7)), which job \(newer.job.id) "
            + "already has; not built, so that an older commit never overtakes a newer one"
        return [JournalRecord(.accepted, at: time, id: job.id, job: job), superseded]
    }

    /// A job from inbox file `name` (its only job, or one of its `name#N`) was accepted
    /// already: the file was read before a crash.
    public func hasSource(_ name: String) -> Bool {
        entries.values.contains { $0.job.source == name || $0.job.source.hasPrefix(name + "#") }
    }

    // MARK: Questions

    /// The job to run next: gate jobs first (a `git push` waits), then resumed ones, then the
    /// oldest queued.
    public var next: AgentJob? {
        let queued = entries.values.filter { $0.state == .queued }
        return queued.min { a, b in
            let ra = (a.job.pipeline == "gate" ? 0 : a.resumed ? 1 : 2, a.job.id)
            let rb = (b.job.pipeline == "gate" ? 0 : b.resumed ? 1 : 2, b.job.id)
            return ra < rb
        }?.job
    }

    public var running: [Entry] {
        entries.values.filter { if case .running = $0.state { true } else { false } }.sorted { $0.job.id < $1.job.id }
    }

    public var queued: [Entry] {
        entries.values.filter { $0.state == .queued }.sorted { $0.job.id < $1.job.id }
    }

    public var awaiting: [Entry] {
        entries.values.filter { $0.state == .awaitingPush }.sorted { $0.job.id < $1.job.id }
    }

    /// The newest finished job per pipeline.
    public var lastResults: [String: (job: AgentJob, result: JobResult)] {
        var out: [String: (job: AgentJob, result: JobResult)] = [:]
        for entry in entries.values.sorted(by: { $0.job.id < $1.job.id }) {
            if case .finished(let result) = entry.state { out[entry.job.pipeline] = (entry.job, result) }
        }
        return out
    }

    /// Dropped jobs (a push that did not happen or could not be confirmed) that came after the
    /// newest finished job of their pipeline, newest last, at most `limit`.
    public func recentlyDropped(limit: Int = 5) -> [Entry] {
        let last = lastResults
        return entries.values.filter { $0.isDropped && $0.job.id > (last[$0.job.pipeline]?.job.id ?? 0) }
            .sorted { $0.job.id < $1.job.id }.suffix(limit)
    }

    /// The records that reproduce this state with only the open jobs and the newest `keep`
    /// closed ones (for rewriting the journal).
    public func compacted(keep: Int = 200) -> [JournalRecord] {
        let sorted = entries.values.sorted { $0.job.id < $1.job.id }
        let closed = sorted.filter { !$0.state.isOpen }.suffix(keep).map(\.job.id)
        let kept = Set(closed).union(sorted.filter { $0.state.isOpen }.map(\.job.id))
        var records: [JournalRecord] = []
        for entry in sorted where kept.contains(entry.job.id) {
            let id = entry.job.id
            var accepted = JournalRecord(.accepted, at: entry.acceptedAt, id: id, job: entry.job)
            if entry.resumed { accepted.resumed = true }
            records.append(accepted)
            switch entry.state {
            case .awaitingPush: break
            case .queued:
                if entry.job.push != nil { records.append(JournalRecord(.confirmed, at: entry.acceptedAt, id: id)) }
            case .running(let pid, let start, let since):
                records.append(JournalRecord(.started, at: since, id: id, pid: pid, start: start))
            case .finished(let result):
                records.append(JournalRecord(.finished, at: result.finishedAt, id: id, result: result))
            case .superseded(let by): records.append(JournalRecord(.superseded, at: entry.acceptedAt, id: id, by: by))
            case .dropped(let reason):
                records.append(JournalRecord(.dropped, at: entry.acceptedAt, id: id, reason: reason))
            }
        }
        return records
    }
}
