import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// The agent's queue, journal and inbox format as values and files (the running agent is
/// tested end to end in SlipwayCLITests/AgentIntegrationTests).
struct AgentQueueTests {
    static func job(
        _ pipeline: String = "commit",
        branch: String? = "main",
        commit: Int,
        push: Bool = false
    ) -> AgentJob {
        AgentJob(
            pipeline: pipeline,
            ref: branch.map { "refs/heads/" + $0 } ?? "HEAD",
            commit: String(repeating: String(commit % 10), count: 40),
            worktree: "/w",
            acceptedAt: 0,
            source: "commit.\(commit)",
            push: push
                ? AgentJob.PushTarget(
                    remote: "origin",
                    url: "/r.git",
                    remoteRef: "refs/heads/\(branch ?? "x")",
                    gitPID: 1,
                    gitStart: nil
                ) : nil
        )
    }

    /// Accepts through records, as the agent does, and returns the records written.
    @discardableResult
    static func accept(_ job: AgentJob, into queue: inout JobQueue, journal: inout [JournalRecord]) -> Int {
        let records = queue.accept(job, at: 1)
        for r in records { queue.apply(r) }
        journal += records
        return records[0].id!
    }

    @Test func tenQuickCommitsCoalesceIntoTheNewestWhileOneRuns() {
        var queue = JobQueue()
        var journal: [JournalRecord] = []
        let first = Self.accept(Self.job(commit: 0), into: &queue, journal: &journal)
        // The first starts running before the burst.
        let started = JournalRecord(.started, id: first, pid: 42)
        queue.apply(started)
        journal.append(started)
        var ids: [Int] = []
        for n in 1...9 { ids.append(Self.accept(Self.job(commit: n), into: &queue, journal: &journal)) }
        #expect(queue.next?.id == ids.last)
        #expect(queue.queued.map(\.job.id) == [ids.last!])
        for id in ids.dropLast() {
            #expect(queue.entries[id]?.state == .superseded(by: ids[ids.firstIndex(of: id)! + 1]))
        }
        if case .running = queue.entries[first]!.state {
        } else {
            Issue.record("the running job must not be superseded")
        }
        // Replaying the journal gives the same state.
        let replayed = JobQueue(replaying: journal)
        #expect(replayed.entries == queue.entries)
        #expect(replayed.nextID == queue.nextID)
    }

    @Test func otherBranchesAndPipelinesDoNotCancelEachOther() {
        var queue = JobQueue()
        var journal: [JournalRecord] = []
        let a = Self.accept(Self.job(branch: "main", commit: 1), into: &queue, journal: &journal)
        let b = Self.accept(Self.job(branch: "feature", commit: 2), into: &queue, journal: &journal)
        let c = Self.accept(Self.job("push", branch: "main", commit: 3, push: true), into: &queue, journal: &journal)
        let d = Self.accept(Self.job(branch: nil, commit: 4), into: &queue, journal: &journal)
        #expect(queue.queued.map(\.job.id) == [a, b, d])
        #expect(queue.awaiting.map(\.job.id) == [c])
        // Gate jobs never coalesce and run first.
        let g1 = Self.accept(Self.job("gate", commit: 5), into: &queue, journal: &journal)
        let g2 = Self.accept(Self.job("gate", commit: 6), into: &queue, journal: &journal)
        #expect(queue.queued.map(\.job.id) == [a, b, d, g1, g2])
        #expect(queue.next?.id == g1)
    }

    @Test func aConfirmedPushSupersedesAnOlderQueuedPushOfItsBranch() {
        var queue = JobQueue()
        var journal: [JournalRecord] = []
        let p1 = Self.accept(Self.job("push", commit: 1, push: true), into: &queue, journal: &journal)
        for r in queue.confirm(p1, at: 2) { queue.apply(r) }
        let p2 = Self.accept(Self.job("push", commit: 2, push: true), into: &queue, journal: &journal)
        #expect(queue.entries[p1]?.state == .queued, "an unconfirmed push replaces nothing")
        let confirm = queue.confirm(p2, at: 3)
        #expect(confirm.map(\.kind) == [.confirmed, .superseded])
        for r in confirm { queue.apply(r) }
        #expect(queue.entries[p1]?.state == .superseded(by: p2))
        #expect(queue.queued.map(\.job.id) == [p2])
    }

    @Test func anInterruptedJobIsRequeuedOnceAndNeverSuperseded() {
        var queue = JobQueue()
        var journal: [JournalRecord] = []
        let a = Self.accept(Self.job(commit: 1), into: &queue, journal: &journal)
        journal.append(JournalRecord(.started, id: a, pid: 99))
        // The agent dies; a new one replays and requeues the running job.
        var next = JobQueue(replaying: journal)
        #expect(next.running.map(\.job.id) == [a])
        next.apply(JournalRecord(.requeued, id: a))
        journal.append(JournalRecord(.requeued, id: a))
        // A newer commit of the same branch does not supersede the resumed job.
        let b = Self.accept(Self.job(commit: 2), into: &next, journal: &journal)
        #expect(next.queued.map(\.job.id) == [a, b])
        #expect(next.next?.id == a)
        // After it finishes, nothing runs it again.
        let done = JournalRecord(
            .finished,
            id: a,
            result: JobResult(ok: true, status: 0, message: "ok", tags: [], startedAt: 0, finishedAt: 1)
        )
        next.apply(done)
        journal.append(done)
        let last = JobQueue(replaying: journal)
        #expect(last.next?.id == b)
        #expect(last.running.isEmpty)
    }

    @Test func compactionKeepsOpenJobsAndTheNewestClosedOnes() {
        var queue = JobQueue()
        var journal: [JournalRecord] = []
        for n in 0..<30 {
            let id = Self.accept(Self.job(branch: "b\(n)", commit: n), into: &queue, journal: &journal)
            if n < 25 {
                let r = JournalRecord(
                    .finished,
                    id: id,
                    result: JobResult(
                        ok: n % 2 == 0,
                        status: 0,
                        message: "m\(n)",
                        tags: [],
                        startedAt: 0,
                        finishedAt: Double(n)
                    )
                )
                queue.apply(r)
            }
        }
        let compacted = JobQueue(replaying: queue.compacted(keep: 5))
        #expect(compacted.queued.map(\.job.id) == queue.queued.map(\.job.id))
        #expect(compacted.entries.count == 10)
        #expect(compacted.nextID == queue.nextID)
        #expect(compacted.lastResults["commit"]?.job.id == 25)
    }

    @Test func theJournalSurvivesATornLastLine() throws {
        try withTemporaryDirectory { dir in
            let journal = Journal(path: dir + "/journal.jsonl")
            let job = Self.job(commit: 1)
            try journal.append([
                JournalRecord(
                    .accepted,
                    id: 1,
                    job: AgentJob(
                        id: 1,
                        pipeline: "commit",
                        ref: job.ref,
                        commit: job.commit,
                        worktree: "/w",
                        acceptedAt: 0,
                        source: "s"
                    )
                )
            ])
            // A crash in the middle of a write.
            let fd = open(journal.path, O_WRONLY | O_APPEND)
            _ = "{\"kind\":\"finished\",\"id\":1,\"res".withCString { write(fd, $0, strlen($0)) }
            close(fd)
            #expect(journal.read().count == 1)
            try journal.append([JournalRecord(.superseded, id: 1, by: 2)])
            let records = journal.read()
            #expect(records.map(\.kind) == [.accepted, .superseded])
            #expect(JobQueue(replaying: records).entries[1]?.state == .superseded(by: 2))
        }
    }

    @Test func theLogRotatesAtItsLimitAndKeepsTwoOldFiles() throws {
        try withTemporaryDirectory { dir in
            let log = AgentLog(path: dir + "/agent.log", echo: false)
            let line = String(repeating: "x", count: 1000)
            for n in 0..<(3 * AgentLog.limit / 1000 + 50) { log.write("\(n) \(line)") }
            var sizes: [Int] = []
            for name in ["agent.log", "agent.log.1", "agent.log.2"] {
                var st = stat()
                #expect(stat(dir + "/" + name, &st) == 0, "\(name) exists")
                sizes.append(Int(st.st_size))
            }
            #expect(sizes.allSatisfy { $0 <= AgentLog.limit })
            #expect(!FileManager.default.fileExists(atPath: dir + "/agent.log.3"))
            let newest = try String(contentsOfFile: dir + "/agent.log", encoding: .utf8)
            #expect(newest.contains(" \(3 * AgentLog.limit / 1000 + 49) x"))
        }
    }

    @Test func inboxLinesParseAndRejectWhatIsMalformed() {
        let oid = String(repeating: "a", count: 40)
        let text =
            [
                "v1\tcommit\t\(oid)\trefs/heads/$(touch x)\t/work/a b",
                "v1\tprepush\t123\torigin\t/srv/r.git\trefs/heads/main\t\(oid)\trefs/heads/main\t\(String(repeating: "0", count: 40))\t/w",
                "v1\ttracking\t\(String(repeating: "0", count: 40))\t\(oid)\trefs/remotes/origin/main\t/w",
                "v1\tcheckout\t\(oid)\t1\t/w",
                "v1\trefresh\tpost-merge\t/w",
                "v1\tcommit\tnot-an-oid\tHEAD\t/w",
                "v2\tsomething",
            ].joined(separator: "\n") + "\n"
        let (events, errors) = InboxEvent.parse(text)
        #expect(events.count == 5)
        #expect(events.first == .commit(commit: oid, ref: "refs/heads/$(touch x)", worktree: "/work/a b"))
        #expect(errors.count == 2)
        // No error quotes the line: it may hold an environment variable's value.
        #expect(!errors.joined().contains("something"))
    }

    /// The hook's `env` lines: a value (escaped), or a name that was not set; names that are
    /// not plain upper-case environment names are refused.
    @Test func environmentLinesCarryTheHooksVariables() {
        let text =
            [
                "v1\tenv\tKUBECONFIG\t/k c/$(x)", "v1\tenv\tDOCKER_HOST", "v1\tenv\tDEVSPACE_X\ta\\tb\\\\c\\nd",
                "v1\tenv\tDEVSPACE_EMPTY\t", "v1\tenv\tlower\tv", "v1\tenv\tPATH\t/evil", "v1\tenv\tGIT_DIR\t/x",
                "v1\tenv\tA-B\tv",
            ].joined(separator: "\n") + "\n"
        let (events, errors) = InboxEvent.parse(text)
        #expect(errors.count == 4)
        let captured = InboxEvent.capturedEnvironment(events)
        #expect(
            captured
                == CapturedEnvironment(
                    values: ["KUBECONFIG": "/k c/$(x)", "DEVSPACE_X": "a\tb\\c\nd", "DEVSPACE_EMPTY": ""],
                    unset: ["DOCKER_HOST"]
                )
        )
        #expect(InboxEvent.capturedEnvironment(InboxEvent.parse("v1\trefresh\tpost-merge\t/w\n").events) == nil)
        // Applied to the agent's environment: the hook's view wins, DEVSPACE_* included.
        let applied = captured?.applied(to: [
            "KUBECONFIG": "/agent", "DOCKER_HOST": "tcp://agent", "DEVSPACE_OLD": "x", "PATH": "/bin", "REGISTRY": "r",
        ])
        #expect(
            applied == [
                "KUBECONFIG": "/k c/$(x)", "DEVSPACE_X": "a\tb\\c\nd", "DEVSPACE_EMPTY": "", "PATH": "/bin",
                "REGISTRY": "r",
            ]
        )
        // What `slipway agent submit` passes on from its own environment.
        let submitted = JobEnvironment.capture(
            from: ["KUBECONFIG": "/k", "DEVSPACE_A": "1", "HOME": "/root", "REGISTRY": "reg", "lower": "x"],
            names: ["REGISTRY", "TOKEN", "lower", "PATH"]
        )
        #expect(
            submitted
                == CapturedEnvironment(
                    values: ["KUBECONFIG": "/k", "DEVSPACE_A": "1", "REGISTRY": "reg"],
                    unset: ["DOCKER_CONFIG", "DOCKER_HOST", "TOKEN"]
                )
        )
    }

    @Test func failureLinesAreFoundAndEscapesDropped() {
        #expect(AgentDaemon.plain("\u{1b}[31merror\u{1b}[0m: boom") == "error: boom")
        #expect(AgentDaemon.plain("50%\r100%") == "100%")
        #expect(
            AgentDaemon.errorLine([
                "step 1", "devspace.yaml:3:5: images.app: does not exist", "pipeline commit failed (exit status 1)",
            ])
                == "devspace.yaml:3:5: images.app: does not exist"
        )
        #expect(AgentDaemon.errorLine(["just output"]) == "just output")
        // A build's summary table repeats a failure without its cause: its rows are not the error.
        #expect(
            AgentDaemon.errorLine([
                "build_images: cannot reach the engine: refused", "IMAGE  TAGS  RESULT  WHY  SECONDS",
                "app    v1    failed  no previous build recorded; failed  0.2",
                "pipeline commit failed (exit status 1)",
            ]) == "build_images: cannot reach the engine: refused"
        )
        // A function's failure: its first line is the message, the tool's last lines follow.
        let failure = JobFailure(
            "build:app failed",
            "docker: building app failed (exit status 1):\nStep 1/2 : FROM x\n\nbreaks\n"
                + String(repeating: "y", count: 400)
        )
        #expect(failure.message == "build:app failed: docker: building app failed (exit status 1)")
        #expect(failure.lines == ["Step 1/2 : FROM x", "breaks", String(repeating: "y", count: 300) + "…"])
        #expect(ImageReference.split("127.0.0.1:5000/team/app:v1-2-gabc").name == "127.0.0.1:5000/team/app")
        #expect(ImageReference.split("127.0.0.1:5000/app").tag == nil)
    }

    /// A real repository with commits a → b → c on main and d on a side branch from a.
    static func history(in dir: String) throws -> [String: String] {
        let env = [
            "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@localhost",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost",
        ]
        var ids: [String: String] = [:]
        func run(_ args: [String]) throws -> String {
            let r = try sh(["git"] + args, cwd: dir, env: env)
            #expect(r.status == 0, "git \(args): \(r.stderr)")
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        _ = try run(["init", "-q", "-b", "main"])
        for name in ["a", "b", "c"] {
            _ = try run(["commit", "-q", "--allow-empty", "-m", name])
            ids[name] = try run(["rev-parse", "HEAD"])
        }
        _ = try run(["checkout", "-q", "-b", "side", ids["a"]!])
        _ = try run(["commit", "-q", "--allow-empty", "-m", "d"])
        ids["d"] = try run(["rev-parse", "HEAD"])
        return ids
    }

    @Test func ancestryComesFromTheRepositoryGraph() throws {
        try withTemporaryDirectory { dir in
            let ids = try Self.history(in: dir)
            let repository = try GitRepository.discover(from: dir)
            #expect(try repository.isDescendant(ids["c"]!, of: ids["a"]!))
            #expect(try repository.isDescendant(ids["b"]!, of: ids["a"]!))
            #expect(try !repository.isDescendant(ids["a"]!, of: ids["c"]!))
            #expect(try !repository.isDescendant(ids["a"]!, of: ids["a"]!), "a commit is not its own descendant")
            #expect(try !repository.isDescendant(ids["d"]!, of: ids["b"]!), "another line of history")
            #expect(throws: GitError.objectNotFound(id: String(repeating: "1", count: 40))) {
                try repository.isDescendant(String(repeating: "1", count: 40), of: ids["a"]!)
            }
            #expect(throws: GitError.invalidObjectID("nope")) { try repository.isDescendant("nope", of: ids["a"]!) }
        }
    }

    @Test func aLateEventOfAnOlderCommitIsSupersededByTheNewerJobItsCommitLeadsTo() throws {
        try withTemporaryDirectory { dir in
            let ids = try Self.history(in: dir)
            let repository = try GitRepository.discover(from: dir)
            let descends = { (commit: String, ancestor: String) in
                (try? repository.isDescendant(commit, of: ancestor)) == true
            }
            func job(_ name: String, branch: String = "main") -> AgentJob {
                AgentJob(
                    pipeline: "commit",
                    ref: "refs/heads/" + branch,
                    commit: ids[name]!,
                    worktree: dir,
                    acceptedAt: 0,
                    source: "commit.\(name)"
                )
            }
            var queue = JobQueue()
            var journal: [JournalRecord] = []
            let c = Self.accept(job("c"), into: &queue, journal: &journal)
            queue.apply(
                JournalRecord(
                    .finished,
                    id: c,
                    result: JobResult(ok: true, status: 0, message: "ok", tags: [], startedAt: 0, finishedAt: 1)
                )
            )
            // b arrives after c was built: late.
            let newer = try #require(queue.newerAccepted(than: job("b"), isDescendant: descends))
            #expect(newer.job.id == c)
            let records = queue.acceptLate(job("b"), newer: newer, at: 2)
            #expect(records.map(\.kind) == [.accepted, .superseded])
            #expect(records[1].by == c)
            #expect(
                records[1].reason?.contains(
                    "a late event: \(ids["b"]!.prefix(7)) is an ancestor of \(ids["c"]!.prefix(7))"
                ) == true
            )
            for r in records { queue.apply(r) }
            journal += records
            #expect(JobQueue(replaying: journal).entries[records[0].id!]?.state == .superseded(by: c))
            #expect(queue.next == nil, "nothing left to build")
            // a, later still: superseded by c's job, not by b's (superseded itself).
            #expect(queue.newerAccepted(than: job("a"), isDescendant: descends)?.job.id == c)
            // Not late: a newer commit, another branch's job, a commit of another line of history.
            #expect(queue.newerAccepted(than: job("c"), isDescendant: descends) == nil, "the same commit again")
            #expect(queue.newerAccepted(than: job("a", branch: "other"), isDescendant: descends) == nil)
            #expect(queue.newerAccepted(than: job("d"), isDescendant: descends) == nil)
        }
    }
}
