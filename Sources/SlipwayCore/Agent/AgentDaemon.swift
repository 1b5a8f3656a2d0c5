internal import CLinux
internal import Foundation

/// The background agent of one repository (`slipway agent run`).
///
/// Threads, all blocking (no timers while idle):
/// - the caller's thread waits for SIGTERM / SIGINT / SIGHUP (or a `stop` request) and stops;
/// - the inbox thread reads the hooks' files when the process's one watcher (`FileWatcher`)
///   reports them and turns them into jobs;
/// - the worker runs one job at a time as a child process (`slipway run-pipeline`) in a
///   process group of its own, its output going to the log;
/// - the push watcher exists only while a push job awaits confirmation: it notices when the
///   `git push` is over and asks the remote (`git ls-remote`) when no remote-tracking update
///   confirmed it;
/// - the socket thread serves every client of the same user in one `poll()` loop
///   (`AgentServer`: idle timeout, connection limits; no thread per client).
///
/// Every change of the queue is a journal record, written and synced before it is applied.
///
/// `@unchecked Sendable`: `queue`, `stopping`, `current` and `stopRequest` are read and
/// written with `cond` locked; `server`, `inbox` and the socket descriptors are set once in
/// `run()` before the threads that use them start; the rest is immutable or thread-safe itself
/// (`journal` under `cond`, `log`, `warmth`).
public final class AgentDaemon: @unchecked Sendable {
    public let paths: AgentPaths
    /// The slipway binary jobs run.
    let executable: String
    /// The environment jobs get (git's per-repository variables removed).
    let environment: [String: String]
    let journal: Journal
    let log: AgentLog
    let cond = NSCondition()
    var queue = JobQueue()
    var stopping = false
    var current: (id: Int, pid: pid_t)?
    var server: AgentServer?
    /// The inbox directory on the process's one ``FileWatcher``.
    var inbox: WatchSubscription?
    let startedAt = Date().timeIntervalSince1970
    /// Keeps the build contexts of one worktree warm for the jobs (inotify).
    let warmth: AgentWarmth
    /// The dev sessions of `slipway dev` (set once in `init`).
    private(set) var dev: AgentDevSessions?

    public init(paths: AgentPaths, executable: String, environment: [String: String], echo: Bool) {
        self.paths = paths
        self.executable = executable
        self.environment = Self.sanitized(environment)
        self.journal = Journal(path: paths.journal)
        let log = AgentLog(path: paths.log, echo: echo)
        self.log = log
        self.warmth = AgentWarmth(environment: Self.sanitized(environment), note: { log.write($0) })
        self.dev = AgentDevSessions(daemon: self)
    }

    /// `environment` without git's per-repository variables, which git exports into hooks and
    /// which would point every later git call at that hook's repository and index (as
    /// pre-commit's `no_git_env` does: SSH, askpass and global config variables stay).
    public static func sanitized(_ environment: [String: String]) -> [String: String] {
        let keep: Set<String> = [
            "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "GIT_ASKPASS", "GIT_TERMINAL_PROMPT", "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_NOSYSTEM", "GIT_EXEC_PATH", "GIT_HTTP_PROXY_AUTHMETHOD", "GIT_SSL_NO_VERIFY",
        ]
        return environment.filter { !$0.key.hasPrefix("GIT_") || keep.contains($0.key) }
    }

    public func note(_ line: String) { log.write(line) }

    // MARK: Running

    /// Runs the agent until it is asked to stop. Throws when another agent runs for the
    /// repository or the state directory cannot be used.
    public func run() throws(AgentError) {
        try paths.prepare()
        let lockFD = open(paths.lock, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else {
            throw AgentError.stateFile(path: paths.lock, action: "open", reason: "\(String(cString: strerror(errno)))")
        }
        defer { close(lockFD) }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            let pid = (try? String(contentsOfFile: paths.pidFile, encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines
            )
            throw AgentError.alreadyRunning(repository: paths.commonDir, pid: pid)
        }
        // Signals become stop requests (handled on a dispatch queue, whatever thread they hit).
        var sources: [DispatchSourceSignal] = []
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT"), (SIGHUP, "SIGHUP")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in requestStop(name) }
            source.resume()
            sources.append(source)
        }
        defer { for source in sources { source.cancel() } }
        signal(SIGPIPE, SIG_IGN)
        _ = chdir("/")  // never hold a worktree that may be deleted

        if case .failure(let failure) = AtomicFile.write(Array("\(getpid())\n".utf8), to: paths.pidFile, mode: 0o600) {
            throw AgentError.stateFile(path: paths.pidFile, action: "write", reason: "\(failure.message)")
        }
        defer { unlink(paths.pidFile) }
        log.write("agent \(getpid()) starting for \(paths.commonDir)")
        try recover()
        sweepTemporaryFiles()
        try listen()
        defer {
            unlink(paths.socket)
        }
        try watchInbox()
        // Before the socket answers: a `slipway dev` that started this agent finds the
        // sessions it resumes.
        dev?.resume()

        let threads: [@Sendable () -> Void] = [
            { [self] in server?.run() }, { [self] in inboxLoop() }, { [self] in workerLoop() },
            { [self] in pushLoop() },
        ]
        for body in threads {
            let thread = Thread(block: body)
            thread.stackSize = 1 << 20
            thread.start()
        }
        log.write("agent \(getpid()) ready: socket \(paths.socket)")
        // The main worktree's contexts are kept warm from the start.
        if paths.commonDir.hasSuffix("/.git") { warmth.watch(String(paths.commonDir.dropLast(5))) }

        cond.lock()
        while stopRequest == nil { cond.wait() }
        let reason = stopRequest ?? ""
        cond.unlock()
        stop(reason: reason)
    }

    /// Replays the journal; jobs that were running when the last agent died are queued again
    /// (their leftover processes stopped first), then the journal is compacted when large.
    func recover() throws(AgentError) {
        let records = journal.read()
        cond.lock()
        defer { cond.unlock() }
        queue = JobQueue(replaying: records)
        for entry in queue.running {
            guard case .running(let pid, let start, _) = entry.state else { continue }
            if pid > 0, ChildProcess.isAlive(pid, start: start) {
                log.write("job \(entry.job.id): stopping its process group \(pid), left over from the agent that died")
                Self.stopGroup(pid)
            }
            log.write(
                "job \(entry.job.id) (\(entry.job.summary)) was interrupted when the agent stopped: running it again"
            )
            try commit([JournalRecord(.requeued, id: entry.job.id)])
        }
        if journal.size > 256 << 10 {
            try journal.rewrite(queue.compacted())
            log.write("journal compacted")
        }
        try commit([JournalRecord(.agentStarted, pid: getpid())])
    }

    /// Stops process group `pgid` (SIGTERM, then SIGKILL after 5 s) and waits until none of
    /// its processes runs (at most 2 s more), so that nothing of it writes a file afterwards.
    static func stopGroup(_ pgid: Int32) {
        func gone() -> Bool { !ChildProcess.groupIsRunning(pgid) }
        kill(-pgid, SIGTERM)
        for _ in 0..<50 where !gone() { usleep(100_000) }
        if !gone() { kill(-pgid, SIGKILL) }
        for _ in 0..<200 where !gone() { usleep(10_000) }
    }

    /// Removes the temporary files and directories that dead processes left (TempFiles): in the
    /// state directory, in `$TMPDIR` (and `/tmp`) the watchers' and pipelines' directories, and
    /// in the `.devspace/` of the worktrees the agent knows. Also the per-job files of jobs that
    /// are not open and failure notices that were never published (hidden names in `failed/`).
    func sweepTemporaryFiles() {
        var removed = TempFiles.sweep(paths.directory, recursive: true, skipping: ["checkouts"])
        for tmp in Set([TempFiles.temporaryDirectory, "/tmp"]) { removed += TempFiles.sweep(tmp, directories: true) }
        cond.lock()
        let open = Set(queue.entries.values.filter { $0.state.isOpen }.map { String($0.job.id) })
        var worktrees = Set(queue.entries.values.map(\.job.worktree))
        cond.unlock()
        if paths.commonDir.hasSuffix("/.git") { worktrees.insert(String(paths.commonDir.dropLast(5))) }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: paths.checkouts)) ?? [] {
            worktrees.insert(paths.checkouts + "/" + name)
        }
        for worktree in worktrees.sorted() {
            removed += TempFiles.sweep(worktree + "/.devspace")
            removed += TempFiles.sweep(worktree + "/.devspace/slipway", recursive: true)
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: paths.jobs)) ?? [] {
            let id = name.split(separator: ".").first.map(String.init) ?? name
            if !open.contains(id), unlink(paths.jobs + "/" + name) == 0 { removed.append(paths.jobs + "/" + name) }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: paths.failed)) ?? [] where name.hasPrefix(".")
        {
            if unlink(paths.failed + "/" + name) == 0 { removed.append(paths.failed + "/" + name) }
        }
        if !removed.isEmpty {
            let shown = removed.prefix(5).joined(separator: ", ") + (removed.count > 5 ? ", …" : "")
            log.write("removed \(removed.count) temporary files left by processes that died: \(shown)")
        }
    }

    /// Writes `records` to the journal, then applies them. Call with `cond` locked.
    func commit(_ records: [JournalRecord]) throws(AgentError) {
        try journal.append(records)
        for record in records {
            queue.apply(record)
            switch record.kind {
            case .accepted:
                if let job = record.job {
                    log.write(
                        "job \(job.id) accepted: \(job.summary)"
                            + (job.push != nil ? ", waiting for the push to finish" : "")
                    )
                }
            case .confirmed: log.write("job \(record.id ?? 0): the push was confirmed; queued")
            case .superseded:
                log.write(
                    "job \(record.id ?? 0) superseded by job \(record.by ?? 0)"
                        + (record.reason.map { ": \($0)" } ?? "")
                )
            case .dropped: log.write("job \(record.id ?? 0) dropped: \(record.reason ?? "")")
            case .started, .finished, .requeued, .agentStarted: break
            }
            // A job that will not run (again) no longer needs the environment it came with.
            if [.superseded, .dropped, .finished].contains(record.kind), let id = record.id {
                unlink(paths.jobEnvironment(id))
            }
        }
        cond.broadcast()
        server?.wake()  // waiters learn of their job's end
    }

    var stopRequest: String?
    /// Inbox failures already logged (under `inboxFailuresLock`: the push watcher scans too).
    var inboxFailures: Set<String> = []
    let inboxFailuresLock = NSLock()

    var isStopping: Bool {
        cond.lock()
        defer { cond.unlock() }
        return stopping
    }

    /// Where job `id` stands (nil: no such job).
    func state(of id: Int) -> JobState? {
        cond.lock()
        defer { cond.unlock() }
        return queue.entries[id]?.state
    }

    /// Asks the agent to stop (from a signal, a `stop` request, or a deleted repository).
    func requestStop(_ reason: String) {
        cond.lock()
        if stopRequest == nil { stopRequest = reason }
        cond.broadcast()
        cond.unlock()
    }

    func stop(reason: String) {
        cond.lock()
        stopping = true
        let running = current
        cond.broadcast()
        cond.unlock()
        log.write(
            "agent \(getpid()) stopping (\(reason))"
                + (running.map { "; job \($0.id) is interrupted and resumes when the agent starts again" } ?? "")
        )
        if let running {
            kill(-running.pid, SIGTERM)
            for _ in 0..<50 where ChildProcess.isAlive(running.pid, start: nil) { usleep(100_000) }
            if ChildProcess.isAlive(running.pid, start: nil) { kill(-running.pid, SIGKILL) }
        }
        // Dev sessions end their syncs; their containers and records stay for the next agent.
        dev?.shutdown(5)
        // Waiters hear that their job did not finish; every connection is closed.
        server?.waitUntilDone(2)
        warmth.stop()
        inbox?.cancel()
        log.write("agent \(getpid()) stopped")
    }

    // MARK: Socket

    func listen() throws(AgentError) {
        let path = paths.socket
        unlink(path)  // a stale socket: the lock says no agent owns it
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AgentError.socket("socket(): \(String(cString: strerror(errno)))") }
        guard var address = paths.socketAddress() else {
            close(fd)
            throw AgentError.socket("\(path): too long for a unix socket")
        }
        // Created with mode 0600 from the start (no window in which others could connect).
        let old = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        umask(old)
        // A long backlog: a flood of connections queues in the kernel, not in the agent.
        guard bound == 0, Glibc.listen(fd, 512) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw AgentError.socket("cannot listen on \(path): \(message)")
        }
        chmod(path, 0o600)
        let wake = eventfd(0, O_NONBLOCK | O_CLOEXEC)  // EFD_NONBLOCK | EFD_CLOEXEC
        guard wake >= 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw AgentError.socket("eventfd(): \(message)")
        }
        server = AgentServer(daemon: self, listenFD: fd, wakeFD: wake)
    }

    func status() -> AgentStatus {
        cond.lock()
        var status = AgentStatus(queue: queue, repository: paths.commonDir, pid: getpid(), startedAt: startedAt)
        cond.unlock()
        status.dev = dev?.views(queue: status.running.count + status.queued.count)
        return status
    }

    /// Accepts a job submitted over the socket (queued at once, also a push: the caller says
    /// the push happened).
    func submit(_ s: AgentRequest.SubmittedJob) throws(AgentError) -> Int {
        guard ["commit", "push", "gate"].contains(s.pipeline) else {
            throw AgentError.invalidJob("pipeline \"\(s.pipeline)\": the agent runs commit, push and gate jobs")
        }
        guard s.commit.count == 40, s.commit.allSatisfy(\.isHexDigit) else {
            throw AgentError.invalidJob("commit \"\(s.commit)\": expected a full 40-digit commit id")
        }
        guard s.ref == "HEAD" || s.ref.hasPrefix("refs/heads/"), s.worktree.hasPrefix("/") else {
            throw AgentError.invalidJob("a job needs ref HEAD or refs/heads/<branch> and an absolute worktree path")
        }
        let job = AgentJob(
            pipeline: s.pipeline,
            ref: s.ref,
            commit: s.commit.lowercased(),
            worktree: s.worktree,
            acceptedAt: Date().timeIntervalSince1970,
            source: "socket",
            environment: s.environment?.names
        )
        cond.lock()
        defer { cond.unlock() }
        let records = queue.accept(job, at: job.acceptedAt)
        if let captured = s.environment, let id = records.first?.id {
            if case .failure(let failure) = writeEnvironment(captured, id: id) {
                throw AgentError.stateFile(path: paths.jobEnvironment(id), action: "write", reason: failure.message)
            }
        }
        try commit(records)
        return records[0].id ?? 0
    }

    // MARK: Inbox

    /// How the inbox's events are batched: a hook writes one file and closes it, so a batch is
    /// due almost at once; a burst of hooks (a rebase) is read in one go.
    static let inboxBatching = WatchBatching(quiet: .milliseconds(2), maximumDelay: .milliseconds(20))

    /// Subscribes to the inbox directory (not recursive) on the process's one watcher.
    func watchInbox() throws(AgentError) {
        do {
            inbox = try FileWatcher.shared.subscribe(
                [.directory(paths.inbox)],
                batching: Self.inboxBatching,
                requireRoots: true,
                notes: { [log] in log.write("inbox: " + $0) }
            )
        } catch {
            throw AgentError.stateDirectory("cannot watch \(paths.inbox): \(error)")
        }
    }

    /// Reads the inbox on the watcher's batches: files closed after writing or renamed into
    /// it; the whole inbox after an overflow. A file that cannot be read or recorded for a
    /// reason that passes (no descriptors or memory left, a full disk for the journal) stays in
    /// the inbox, and the whole inbox is read again after a short delay (0.1 s, doubling up to
    /// 2 s) until it succeeds: an event is never skipped until a restart. The inbox directory's
    /// removal (the repository was deleted) stops the agent.
    func inboxLoop() {
        guard let inbox else { return }
        var delay = 0.1
        var retryAt: ContinuousClock.Instant? = scanInbox() ? nil : .now + .seconds(delay)
        while true {
            let delivery = inbox.next(until: retryAt)
            if isStopping { return }
            var complete = true
            switch delivery {
            case .cancelled: return
            case .timedOut: break
            case .batch(let batch):
                let gone = batch.changes.contains {
                    $0.path.isEmpty && !$0.kinds.isDisjoint(with: [.deleted, .movedFrom])
                }
                if gone || batch.rescan.values.contains(.rootRemoved) {
                    log.write("\(paths.inbox) was removed (the repository was deleted?): stopping")
                    requestStop("the repository's state directory was removed")
                    return
                }
                if !batch.rescan.isEmpty {
                    complete = scanInbox()
                } else {
                    for change in batch.changes
                    where !change.isDirectory && !change.kinds.isDisjoint(with: [.closedAfterWrite, .movedTo]) {
                        complete = processInboxFile(change.path) && complete
                    }
                }
            }
            if let at = retryAt, ContinuousClock.now >= at {
                retryAt = nil
                complete = scanInbox() && complete
                if complete {
                    delay = 0.1
                } else {
                    delay = min(delay * 2, 2)
                }
            }
            if !complete && retryAt == nil { retryAt = .now + .seconds(delay) }
        }
    }

    /// Reads every file in the inbox, oldest first (at start, after an overflow or a failure,
    /// before a push decision); false when something must be read again later.
    @discardableResult
    func scanInbox() -> Bool {
        guard let dir = opendir(paths.inbox) else {
            let code = errno
            if code == ENOENT { return true }
            noteInboxFailure(
                "",
                "cannot list \(paths.inbox): \(String(cString: strerror(code)))",
                transient: Self.isTransient(code)
            )
            return !Self.isTransient(code)
        }
        var found: [(time: Int, name: String)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard !name.hasPrefix(".") else { continue }
            var st = stat()
            let time =
                fstatat(dirfd(dir), name, &st, 0) == 0 ? st.st_mtim.tv_sec * 1_000_000_000 + st.st_mtim.tv_nsec : 0
            found.append((time, name))
        }
        closedir(dir)
        // In the order the hooks wrote them: a late file of an older commit is then read after
        // the newer commit's only when it really came later (and is dropped then, see
        // `processInboxFile`).
        var complete = true
        for (_, name) in found.sorted(by: { ($0.time, $0.name) < ($1.time, $1.name) }) {
            complete = processInboxFile(name) && complete
        }
        return complete
    }

    /// Errors that pass by themselves: the read is tried again later.
    static func isTransient(_ code: Int32) -> Bool {
        [EMFILE, ENFILE, EINTR, ENOMEM, EAGAIN, ENOBUFS, ENOSPC, EDQUOT, EIO].contains(code)
    }

    /// Logs a failure to take an inbox file once (until it succeeds or another failure comes).
    func noteInboxFailure(_ name: String, _ message: String, transient: Bool) {
        let key = name + "\u{0}" + message
        guard inboxFailuresLock.withLock({ inboxFailures.insert(key).inserted }) else { return }
        log.write("inbox: " + message + (transient ? "; trying again shortly" : ""))
    }

    /// Reads inbox file `name` and records what it means; false when the file could not be
    /// taken for a reason that passes (it stays, and is read again).
    @discardableResult
    func processInboxFile(_ name: String) -> Bool {
        guard !name.isEmpty, !name.hasPrefix("."), !name.contains("/") else { return true }
        let path = paths.inbox + "/" + name
        let data: [UInt8]
        switch Self.readFile(path) {
        case .success(let bytes): data = bytes
        case .failure(let failure):
            let code = failure.code
            if code == ENOENT { return true }  // taken already, or removed by its hook (a full disk)
            noteInboxFailure(
                name,
                "cannot read \(name): \(String(cString: strerror(code)))",
                transient: Self.isTransient(code)
            )
            return !Self.isTransient(code)
        }
        guard data.last == UInt8(ascii: "\n") else {
            // Still being written (the hook creates the file, then appends; its close event
            // comes later), or torn by a crash.
            var st = stat()
            if stat(path, &st) == 0, Double(st.st_mtim.tv_sec) < Date().timeIntervalSince1970 - 60 {
                log.write("inbox: \(name) is incomplete and a minute old; removed")
                unlink(path)
            }
            return true
        }
        let (events, errors) = InboxEvent.parse(String(decoding: data, as: UTF8.self))
        for error in errors { log.write("inbox: \(name): \(error)") }
        var hints: [String] = []
        cond.lock()
        if queue.hasSource(name) {
            cond.unlock()
            unlink(path)
            return true
        }
        var records: [JournalRecord] = []
        var preview = queue
        let now = Date().timeIntervalSince1970
        var repository: GitRepository?
        // The hook's environment for the file's jobs (names in the journal, values in jobs/<id>.env).
        let captured = InboxEvent.capturedEnvironment(events)
        for (index, event) in events.enumerated() {
            var new: [JournalRecord] = []
            switch event {
            case .commit(let commit, let ref, let worktree):
                let job = AgentJob(
                    pipeline: "commit",
                    ref: ref,
                    commit: commit.lowercased(),
                    worktree: worktree,
                    acceptedAt: now,
                    source: events.count == 1 ? name : "\(name)#\(index)",
                    environment: captured?.names
                )
                // A late event (read after a newer commit of the branch was accepted: a file
                // that could not be read at first, a restart) must not overtake that commit.
                let newer = preview.newerAccepted(than: job) { commit, ancestor in
                    if repository == nil { repository = try? GitRepository.discover(from: paths.commonDir) }
                    return (try? repository?.isDescendant(commit, of: ancestor)) == true
                }
                new = newer.map { preview.acceptLate(job, newer: $0, at: now) } ?? preview.accept(job, at: now)
            case .prePush(let pid, let remote, let url, let localRef, let localOID, let remoteRef, _, let worktree):
                // A push job is about the branch the remote now has (`git push origin HEAD`
                // and `git push origin a:b` name another local ref).
                guard localRef.hasPrefix("refs/heads/") || localRef == "HEAD", remoteRef.hasPrefix("refs/heads/") else {
                    continue
                }
                let target = AgentJob.PushTarget(
                    remote: remote,
                    url: url,
                    remoteRef: remoteRef,
                    gitPID: pid,
                    gitStart: ChildProcess.startTime(of: pid)
                )
                let job = AgentJob(
                    pipeline: "push",
                    ref: remoteRef,
                    commit: localOID.lowercased(),
                    worktree: worktree,
                    acceptedAt: now,
                    source: "\(name)#\(index)",
                    push: target,
                    environment: captured?.names
                )
                new = preview.accept(job, at: now)
            case .tracking(_, let newOID, let ref, _):
                for entry in preview.awaiting {
                    guard let push = entry.job.push, entry.job.commit == newOID.lowercased() else { continue }
                    let prefix = "refs/remotes/\(push.remote)/"
                    if ref.hasPrefix(prefix), "refs/heads/" + ref.dropFirst(prefix.count) == push.remoteRef {
                        new += preview.confirm(entry.job.id, at: now)
                    }
                }
            case .checkout(_, _, let worktree), .refresh(_, let worktree):
                hints.append(worktree)
            case .environment:
                break
            }
            for record in new { preview.apply(record) }
            records += new
        }
        var taken = true
        do throws(AgentError) {
            if let captured {
                for record in records where record.kind == .accepted {
                    guard let id = record.id else { continue }
                    if case .failure(let failure) = writeEnvironment(captured, id: id) {
                        throw AgentError.stateFile(
                            path: paths.jobEnvironment(id),
                            action: "write",
                            reason: failure.message
                        )
                    }
                }
            }
            try commit(records)
            unlink(path)
            inboxFailuresLock.withLock { inboxFailures.removeAll() }
        } catch {
            noteInboxFailure(
                name,
                "\(name): cannot record it (\(error.message)); it stays in the inbox",
                transient: true
            )
            taken = false
        }
        cond.unlock()
        // A checkout or merge there: keep that worktree warm.
        for worktree in Set(hints) { warmth.watch(worktree) }
        return taken
    }

    // MARK: Job environments

    /// Writes the environment job `id` was submitted with (mode 0600, temp file + rename).
    func writeEnvironment(_ captured: CapturedEnvironment, id: Int) -> Result<Void, AtomicFile.Failure> {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(captured) else {
            return .failure(AtomicFile.Failure(message: "cannot encode the job's environment"))
        }
        return AtomicFile.write(Array(data), to: paths.jobEnvironment(id), mode: 0o600)
    }

    /// The environment job `id` was submitted with, when it was and its file is readable.
    func readEnvironment(_ id: Int) -> CapturedEnvironment? {
        guard let data = FileManager.default.contents(atPath: paths.jobEnvironment(id)) else { return nil }
        return try? JSONDecoder().decode(CapturedEnvironment.self, from: data)
    }

    /// Adds the names a job's config read (`file`, written by its pipeline) to the names the
    /// hooks pass on (``AgentPaths/environmentNames``), at most ``JobEnvironment/maxNames``.
    func recordEnvironmentNames(from file: String) {
        let new = JobEnvironment.readNames(file)
        unlink(file)
        guard !new.isEmpty else { return }
        let known = JobEnvironment.readNames(paths.environmentNames)
        let added = new.filter {
            !known.contains($0) && !JobEnvironment.alwaysCaptured.contains($0)
                && !$0.hasPrefix(JobEnvironment.capturedPrefix)
        }
        guard !added.isEmpty else { return }
        let all = Array((known + added).prefix(JobEnvironment.maxNames))
        if case .failure(let failure) = AtomicFile.write(
            Array(all.map { $0 + "\n" }.joined().utf8),
            to: paths.environmentNames,
            mode: 0o600
        ) {
            log.write("cannot record the environment names the config reads: \(failure.message)")
        } else {
            log.write(
                "the config reads the environment variables \(added.joined(separator: ", ")): the hooks pass them on"
            )
        }
    }

    /// The whole content of `path`, or `errno`.
    static func readFile(_ path: String) -> Result<[UInt8], Errno> {
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { return .failure(Errno(code: errno)) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n == 0 { return .success(bytes) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(code: errno))
            }
            bytes += chunk[..<n]
            if bytes.count > 1 << 20 { return .success(bytes) }  // no hook writes that much
        }
    }

    // MARK: Push confirmation

    func pushLoop() {
        while true {
            cond.lock()
            while !stopping && queue.awaiting.isEmpty { cond.wait() }
            if stopping {
                cond.unlock()
                return
            }
            let awaiting = queue.awaiting
            cond.unlock()
            let over = awaiting.filter { e in
                e.job.push.map { !ChildProcess.isAlive($0.gitPID, start: $0.gitStart) } ?? true
            }
            if !over.isEmpty {
                // The hooks of a finished push wrote their files before git exited.
                scanInbox()
                for entry in over { decidePush(entry.job) }
            }
            usleep(100_000)
        }
    }

    /// The `git push` of `job` is over and no remote-tracking update confirmed it: ask the
    /// remote whether its ref is now the pushed commit.
    func decidePush(_ job: AgentJob) {
        cond.lock()
        let still = queue.entries[job.id]?.state == .awaitingPush
        cond.unlock()
        guard still, let push = job.push else { return }
        var verdict: String?
        if let git = findExecutable("git", path: environment["PATH"]) {
            var env = environment
            env["SLIPWAY"] = "0"
            env["GIT_TERMINAL_PROMPT"] = "0"
            let directory = FileManager.default.fileExists(atPath: job.worktree) ? job.worktree : paths.commonDir
            let answer = try? ChildProcess.run(
                git,
                ["-C", directory, "ls-remote", "--", push.url, push.remoteRef],
                environment: env,
                timeout: 30
            )
            if let answer, answer.status == 0 {
                let oid =
                    answer.output.split(separator: "\n").first?.split(separator: "\t").first.map(String.init) ?? ""
                verdict =
                    oid.lowercased() == job.commit
                    ? nil
                    : "the push did not update \(push.remoteRef) on \(push.remote) (it is \(oid.isEmpty ? "missing" : String(oid.prefix(7))) there, not \(job.commit.prefix(7))); nothing deployed"
            } else {
                verdict =
                    "the push to \(push.remote) could not be confirmed (git ls-remote: \(answer.map { $0.output.split(separator: "\n").last.map(String.init) ?? "status \($0.status)" } ?? "did not run")); nothing deployed"
            }
        } else {
            verdict = "git is not on PATH, so the push could not be confirmed; nothing deployed"
        }
        cond.lock()
        defer { cond.unlock() }
        guard queue.entries[job.id]?.state == .awaitingPush else { return }
        let now = Date().timeIntervalSince1970
        do {
            if let verdict {
                try commit([JournalRecord(.dropped, at: now, id: job.id, reason: verdict)])
            } else {
                log.write(
                    "job \(job.id): \(push.remoteRef) on \(push.remote) is \(job.commit.prefix(7)): the push succeeded"
                )
                try commit(queue.confirm(job.id, at: now))
            }
        } catch {
            log.write("job \(job.id): \(error.message)")
        }
    }
}

/// An `errno` value as an error.
struct Errno: Error {
    var code: Int32
}
