internal import Foundation

/// What the agent's dev sessions report to the clients that follow them (`devFollow`): the
/// newest items kept in memory, numbered, as the log's lines are (``AgentLog``); the socket's
/// loop takes the items after each follower's number and is woken when items are added.
///
/// `@unchecked Sendable`: everything but `onAppend` (set once) is under `lock`.
final class AgentDevFeed: @unchecked Sendable {
    private let lock = NSLock()
    private var recent: [AgentResponse] = []
    private var firstNumber: UInt64 = 0
    var onAppend: (@Sendable () -> Void)?
    static let kept = 4_000

    func append(_ item: AgentResponse) {
        lock.lock()
        recent.append(item)
        if recent.count > Self.kept * 2 {
            let drop = recent.count - Self.kept
            recent.removeFirst(drop)
            firstNumber += UInt64(drop)
        }
        lock.unlock()
        onAppend?()
    }

    /// The number of the item `count` items before the end.
    func number(last count: Int) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return firstNumber + UInt64(recent.count) - UInt64(min(max(0, count), recent.count))
    }

    func items(from number: UInt64, limit: Int) -> (items: [AgentResponse], next: UInt64, missed: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        let missed = number < firstNumber ? firstNumber - number : 0
        let start = Int(max(number, firstNumber) - firstNumber)
        guard start < recent.count else { return ([], max(number, firstNumber + UInt64(recent.count)), missed) }
        let taken = Array(recent[start..<min(recent.count, start + limit)])
        return (taken, firstNumber + UInt64(start + taken.count), missed)
    }
}

/// The dev sessions the agent runs for `slipway dev` (docs/dev.md, "In the agent"): per config,
/// a ``DevSession`` (syncs, commands after uploads, logs, rebuild watch) on the agent's
/// cooperative pool — its blocking work on threads of its own —, its rebuilds and restarts as
/// `dev` jobs of the agent's queue (`slipway run-pipeline dev` with the session's options, in
/// its directory, journaled and ordered with the commit jobs), a watch on its config (an edit
/// restarts the session with the new config), and its record in `dev-sessions.json`, so that
/// an agent started after a crash resumes it (a `dev` job first: `start_dev` converges the
/// containers from wherever the crash left them).
///
/// `@unchecked Sendable`: `sessions` and `nextID` are under `lock`; each ``Running``'s mutable
/// fields too.
final class AgentDevSessions: @unchecked Sendable {
    unowned let daemon: AgentDaemon
    let feed = AgentDevFeed()
    private let lock = NSLock()
    private var sessions: [Int: Running] = [:]
    private var nextID = 1

    /// One session and what it reports.
    final class Running: @unchecked Sendable {
        let id: Int
        let startedAt: Double
        var start: AgentDevStart
        var session: DevSession?
        var state = "starting"
        var note: String?
        /// Per plan target: the container's name and remote root.
        var names: [String] = []
        var watchingTargets: Set<Int> = []
        var counters: [String: AgentDevView.Container] = [:]
        var lastRebuild: String?
        var lastRebuildAt: Double?
        var stopRequested = false
        var restartRequested = false
        var configWatch: WatchSubscription?
        let ended = DispatchSemaphore(value: 0)

        init(id: Int, start: AgentDevStart, startedAt: Double) {
            self.id = id
            self.start = start
            self.startedAt = startedAt
        }
    }

    init(daemon: AgentDaemon) {
        self.daemon = daemon
    }

    // MARK: Requests

    /// Starts a session for `start`, or returns the one that runs for its config with the same
    /// options (`attached`); one with other options is refused.
    func begin(_ start: AgentDevStart) throws(AgentError) -> (id: Int, attached: Bool) {
        lock.lock()
        if let existing = sessions.values.first(where: { $0.start.config == start.config }) {
            let options = existing.start.options
            lock.unlock()
            guard options == start.options else {
                throw AgentError.refused(
                    Self.otherOptions(config: start.config, running: options, asked: start.options)
                )
            }
            return (existing.id, true)
        }
        let id = nextID
        nextID += 1
        let running = Running(id: id, start: start, startedAt: Date().timeIntervalSince1970)
        sessions[id] = running
        lock.unlock()
        if case .failure(let failure) = persist() {
            lock.withLock { _ = sessions.removeValue(forKey: id) }
            throw AgentError.stateFile(path: daemon.paths.devSessions, action: "write", reason: failure.message)
        }
        daemon.log.write(
            "dev \(id): session for \(start.config) (\(start.options.summary)) started: \(start.targets.map(\.name).joined(separator: ", "))"
        )
        launch(running, resume: false)
        return (id, false)
    }

    static func otherOptions(config: String, running: AgentDevOptions, asked: AgentDevOptions) -> String {
        "a dev session with other options runs for \(config) (\(running.summary); this command has \(asked.summary)); `slipway dev stop` ends it, then run `slipway dev` again"
    }

    /// Resumes the sessions an earlier agent recorded (at start).
    func resume() {
        let records = AgentDevRecord.read(daemon.paths.devSessions)
        guard !records.isEmpty else { return }
        var resumed: [Running] = []
        lock.withLock {
            for record in records where !sessions.values.contains(where: { $0.start.config == record.start.config }) {
                let running = Running(id: record.id, start: record.start, startedAt: record.startedAt)
                running.state = "resuming"
                sessions[record.id] = running
                nextID = max(nextID, record.id + 1)
                resumed.append(running)
            }
        }
        for running in resumed {
            daemon.log.write(
                "dev \(running.id): resuming the session for \(running.start.config) that the last agent ran (the dev pipeline runs first, so that start_dev converges the containers)"
            )
            launch(running, resume: true)
        }
    }

    /// Ends the sessions of `config` (nil: all): their syncs stop, the containers are restored
    /// (`stop_dev`), the records removed. The number of sessions asked to stop.
    func end(config: String?) -> Int {
        let chosen = lock.withLock {
            sessions.values.filter { config == nil || $0.start.config == config }.map { running in
                running.stopRequested = true
                if running.state != "failed" { running.state = "stopping" }
                return running
            }
        }
        for running in chosen {
            running.session?.stop()
            running.configWatch?.cancel()
        }
        if !chosen.isEmpty { publishStatus() }
        return chosen.count
    }

    /// The agent stops: the sessions' syncs stop, the containers and the records stay (the
    /// next agent resumes them). Waits up to `seconds` for them.
    func shutdown(_ seconds: Double) {
        let all = lock.withLock { Array(sessions.values) }
        for running in all {
            running.session?.stop()
            running.configWatch?.cancel()
        }
        let deadline = DispatchTime.now() + seconds
        for running in all { _ = running.ended.wait(timeout: deadline) }
    }

    func views(config: String? = nil, queue: Int) -> [AgentDevView] {
        lock.withLock {
            sessions.values.sorted { $0.id < $1.id }.filter { config == nil || $0.start.config == config }.map {
                Self.view($0, queue: queue)
            }
        }
    }

    /// Call with `lock` held.
    static func view(_ r: Running, queue: Int) -> AgentDevView {
        var containers: [AgentDevView.Container] = []
        var seen: Set<String> = []
        for target in r.start.targets where seen.insert(target.name).inserted {
            containers.append(
                r.counters[target.name]
                    ?? AgentDevView.Container(
                        dev: target.dev,
                        name: target.name,
                        filesSynced: 0,
                        lastLatencyMs: nil,
                        conflicts: 0
                    )
            )
        }
        return AgentDevView(
            id: r.id,
            config: r.start.config,
            options: r.start.options,
            state: r.state,
            note: r.note,
            containers: containers,
            queue: queue,
            lastRebuild: r.lastRebuild,
            lastRebuildAt: r.lastRebuildAt,
            startedAt: r.startedAt
        )
    }

    /// The records as they stand now (temp file + rename).
    @discardableResult
    func persist() -> Result<Void, AtomicFile.Failure> {
        let records = lock.withLock {
            sessions.values.sorted { $0.id < $1.id }.map {
                AgentDevRecord(id: $0.id, start: $0.start, startedAt: $0.startedAt)
            }
        }
        if records.isEmpty {
            unlink(daemon.paths.devSessions)
            return .success(())
        }
        return AgentDevRecord.write(records, to: daemon.paths.devSessions)
    }

    // MARK: Reporting

    func out(_ running: Running, _ line: String) {
        feed.append(AgentResponse(ok: true, id: running.id, event: "dev-out", line: line, config: running.start.config))
    }

    func err(_ running: Running, _ line: String, log: Bool = true) {
        if log { daemon.log.write("dev \(running.id): \(line)") }
        feed.append(AgentResponse(ok: true, id: running.id, event: "dev-err", line: line, config: running.start.config))
    }

    func publishStatus() {
        let queue = daemon.openJobs()
        let views = views(queue: queue)
        feed.append(AgentResponse(ok: true, event: "dev-status", dev: views))
    }

    func setState(_ running: Running, _ state: String, note: String? = nil) {
        lock.withLock {
            running.state = running.stopRequested && state != "failed" ? "stopping" : state
            if let note { running.note = note }
        }
        publishStatus()
    }

    /// Renders one event of the session (as the foreground `slipway dev` prints it) and counts
    /// what the status shows.
    func report(_ running: Running, _ event: DevEvent) {
        switch event {
        case .output(let source, let line):
            out(running, "[\(source)] \(line)")
        case .decision(let text):
            out(running, "dev: \(text)")
            daemon.log.write("dev \(running.id): \(text)")
        case .failure(let text):
            err(running, "dev: \(text)")
        case .sync(let target, let event):
            let name = lock.withLock { target < running.names.count ? running.names[target] : "sync" }
            switch event {
            case .batch(let report):
                var line =
                    "\(name): \(report.kind.rawValue) \(report.files) file\(report.files == 1 ? "" : "s"), "
                    + "\(report.changes) change\(report.changes == 1 ? "" : "s") in \(DevSession.milliseconds(report.latency)) ms"
                if report.conflicts > 0 { line += ", \(report.conflicts) conflict\(report.conflicts == 1 ? "" : "s")" }
                if report.failures > 0 { line += ", \(report.failures) failed" }
                out(running, line)
                let container = String(name.prefix { $0 != ":" })
                lock.withLock {
                    let dev = running.start.targets.first { $0.name == container }?.dev ?? ""
                    var c =
                        running.counters[container]
                        ?? AgentDevView.Container(
                            dev: dev,
                            name: container,
                            filesSynced: 0,
                            lastLatencyMs: nil,
                            conflicts: 0
                        )
                    c.filesSynced += report.files
                    let (s, atto) = report.latency.components
                    c.lastLatencyMs = Double(s) * 1000 + Double(atto) / 1e15
                    c.conflicts += report.conflicts
                    running.counters[container] = c
                }
                publishStatus()
            case .decision(let decision):
                switch decision.action {
                case .conflict, .refused, .failed: err(running, "\(name): \(decision)")
                default: break
                }
            case .initialSyncStarted(let strategy, let local, let remote):
                err(running, "\(name): initial sync (\(strategy.rawValue)): \(local) local, \(remote) in the container")
            case .watching:
                err(running, "\(name): watching both sides")
                let all = lock.withLock {
                    running.watchingTargets.insert(target)
                    return running.watchingTargets.count >= running.names.count
                }
                if all { setState(running, "watching") }
            case .waitingForGit:
                break
            case .gitLockStale(let path, let held):
                err(running, "\(name): \(path) held for \(DevSession.milliseconds(held)) ms; sending the batch anyway")
            case .rescan(let reason): err(running, "\(name): rescan: \(reason)")
            case .watchLimitTooLow(let needed, let limit, let command):
                err(
                    running,
                    "\(name): \(needed) directories to watch but fs.inotify.max_user_watches is \(limit); run: \(command)"
                )
            case .paused(let reason): err(running, "\(name): \(reason)")
            case .resumed: err(running, "\(name): resumed")
            case .disconnected(let reason): err(running, "\(name): disconnected (\(reason)); reconnecting")
            case .reconnected: err(running, "\(name): reconnected; comparing both sides again")
            case .note(let text): err(running, "\(name): note: \(text)")
            }
        }
    }

    // MARK: The session's life

    func launch(_ running: Running, resume: Bool) {
        watchConfig(running)
        Task.detached { [self] in
            await life(running, resume: resume)
            running.ended.signal()
        }
    }

    /// An edit of the config (saved in place or replaced) restarts the session.
    func watchConfig(_ running: Running) {
        let config = running.start.config
        guard
            let subscription = try? FileWatcher.shared.subscribe(
                [.file(config)],
                batching: WatchBatching(quiet: .milliseconds(200), maximumDelay: .seconds(2)),
                notes: { [log = daemon.log] in log.write("dev \(running.id): watch: \($0)") }
            )
        else {
            err(running, "dev: \(config) cannot be watched: an edit does not restart the session")
            return
        }
        lock.withLock { running.configWatch = subscription }
        let thread = Thread { [self] in
            while case .batch = subscription.next() {
                let session = lock.withLock { () -> DevSession? in
                    guard !running.stopRequested else { return nil }
                    running.restartRequested = true
                    return running.session
                }
                err(running, "dev: \((config as NSString).lastPathComponent) changed: restarting the session with it")
                session?.stop()
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    var isStopping: Bool { daemon.isStopping }

    func life(_ running: Running, resume: Bool) async {
        var converge = resume
        while true {
            if lock.withLock({ running.stopRequested }) { break }
            if isStopping { return }
            if converge || lock.withLock({ running.restartRequested }) {
                let restart = lock.withLock {
                    let was = running.restartRequested
                    running.restartRequested = false
                    return was
                }
                setState(running, converge ? "resuming" : "restarting")
                let (ok, message, targets) = await runDevJob(
                    running,
                    reason: converge ? "resume the session" : "devspace.yaml changed"
                )
                if isStopping { return }
                converge = false
                if ok, !targets.isEmpty {
                    let old = lock.withLock {
                        let old = running.start.targets
                        running.start.targets = targets
                        return old
                    }
                    // Containers the new config no longer selects get their originals back.
                    let gone = old.filter { o in !targets.contains { $0.name == o.name && $0.branch == o.branch } }
                    if !gone.isEmpty { _ = await restore(running, gone) }
                    persist()
                }
                if !ok {
                    err(
                        running,
                        "dev: the dev pipeline failed (\(message)); the session goes on with the containers as they are"
                    )
                } else if restart {
                    err(running, "dev: the session restarts with the changed config")
                }
            }
            if lock.withLock({ running.stopRequested }) { break }
            let failure = await runSession(running)
            if isStopping { return }
            if lock.withLock({ running.stopRequested }) { break }
            if lock.withLock({ running.restartRequested }) { continue }
            // The session ended by itself (a sync failed for good, the config does not load):
            // it waits for a config edit or a stop.
            setState(running, "failed", note: failure)
            while !isStopping {
                let (stop, restart) = lock.withLock { (running.stopRequested, running.restartRequested) }
                if stop || restart { break }
                try? await Task.sleep(for: .milliseconds(200))
            }
            if isStopping { return }
        }
        // Stopped: the originals back, the record gone.
        let targets = lock.withLock { running.start.targets }
        let (restored, failure) = await restore(running, targets)
        for name in restored { out(running, "dev: \(name) restored (the deployed container runs again)") }
        lock.withLock { _ = sessions.removeValue(forKey: running.id) }
        running.configWatch?.cancel()
        persist()
        daemon.log.write(
            "dev \(running.id): session for \(running.start.config) ended"
                + (failure.map { "; restoring failed: \($0)" } ?? "; restored \(restored.joined(separator: ", "))")
        )
        feed.append(
            AgentResponse(
                ok: true,
                error: failure.map {
                    "\($0); `slipway run-pipeline purge` or `docker ps -a` shows what is left"
                },
                id: running.id,
                event: "dev-ended",
                message: "the dev session for \(running.start.config) ended",
                config: running.start.config
            )
        )
        publishStatus()
    }

    /// Runs the session until it is stopped or fails; the reason when it failed.
    func runSession(_ running: Running) async -> String? {
        let start = lock.withLock { running.start }
        let options = LoadOptions(
            configPath: start.config,
            workingDirectory: start.directory,
            environment: start.environment,
            vars: start.options.vars.compactMap { v in
                guard let eq = v.firstIndex(of: "=") else { return nil }
                return (String(v[..<eq]), String(v[v.index(after: eq)...]))
            },
            profiles: start.options.profiles,
            disableProfileActivation: start.options.disableProfileActivation,
            ask: nil,
            overrideName: start.options.overrideName
        )
        let loaded: LoadedConfig
        do {
            loaded = try await ConfigLoader.load(options)
        } catch {
            let text = error.diagnostics.map(\.description).joined(separator: "\n")
            err(running, "dev: the config does not load:\n\(text)")
            return "the config does not load; fix it and save"
        }
        guard let program = SyncHelperProgram.program(besides: daemon.executable, environment: start.environment)
        else {
            let text =
                "\(SyncHelperProgram.programName), the program sync runs inside the container, is not installed beside slipway nor on PATH; reinstall slipway (./install.sh installs it)"
            err(running, "dev: \(text)")
            return text
        }
        let session = DevSession(
            loaded: loaded,
            targets: start.targets,
            environment: start.environment,
            program: program,
            hookInbox: await AgentControl.hookInbox(for: loaded.directory),
            events: { [self] in report(running, $0) }
        )
        let stopNow = lock.withLock {
            running.session = session
            return running.stopRequested || running.restartRequested
        }
        if stopNow { session.stop() }
        defer { lock.withLock { running.session = nil } }
        let plan: SyncPlan
        do {
            plan = try await session.plan()
        } catch {
            err(running, "dev: \(error)")
            return "\(error)"
        }
        lock.withLock {
            running.names = plan.targets.map { "\($0.container.name):\($0.remoteRoot)" }
            running.watchingTargets = []
        }
        for note in plan.notes { err(running, "note: \(note)") }
        setState(running, plan.targets.isEmpty ? "watching" : "syncing")
        let failures = await session.run(plan, logs: start.logs) { [self] request in
            await rebuild(running, request)
        }
        for failure in failures { err(running, "dev: \(failure)") }
        return failures.first ?? "the syncs ended"
    }

    /// A change asked for new images: the dev pipeline runs again as a job of the queue.
    func rebuild(_ running: Running, _ request: DevRebuildRequest) async {
        out(
            running,
            "dev: rebuilding \(request.images.joined(separator: ", ")): \(request.reasons.joined(separator: "; "))"
        )
        setState(running, "rebuilding")
        let began = Date().timeIntervalSince1970
        let (ok, message, _) = await runDevJob(running, reason: "rebuild \(request.images.joined(separator: ", "))")
        let took = String(format: "%.1f", Date().timeIntervalSince1970 - began)
        lock.withLock {
            running.lastRebuild =
                ok
                ? "\(request.images.joined(separator: ", ")) ok in \(took) s"
                : "\(request.images.joined(separator: ", ")) failed: \(message)"
            running.lastRebuildAt = Date().timeIntervalSince1970
        }
        if !ok {
            err(
                running,
                "dev: the dev pipeline failed after the change (\(message)); fix it and save again (the session goes on)"
            )
        }
        setState(running, "watching")
    }

    /// Submits a `dev` job for the session and waits for it: whether it succeeded, its message
    /// and what its `start_dev` prepared.
    func runDevJob(_ running: Running, reason: String) async -> (ok: Bool, message: String, targets: [DevTarget]) {
        let start = lock.withLock { running.start }
        let daemon = self.daemon
        let id: Int
        do {
            id = try await onOwnThread {
                Result { () throws(AgentError) in try daemon.submitDev(start, session: running.id, reason: reason) }
            }.get()
        } catch {
            return (false, error.message, [])
        }
        out(running, "dev: job \(id) runs the dev pipeline (\(reason)); `slipway agent logs -f` shows its output")
        publishStatus()
        let (state, final) = await onOwnThread { daemon.waitForJob(id) }
        let file = daemon.paths.jobDev(final)
        let targets = JobDevFile.read(file)
        unlink(file)
        switch state {
        case .finished(let result) where result.ok:
            out(running, "dev: job \(final) finished: the dev pipeline ran")
            return (true, result.message, targets)
        case .finished(let result):
            return (false, "job \(final): \(result.message)", targets)
        case .dropped(let why):
            return (false, "job \(final) dropped: \(why)", targets)
        case nil:
            return (false, "the agent is stopping", [])
        default:
            return (false, "job \(final) did not finish", targets)
        }
    }

    /// Puts back the originals of `targets` (what `stop_dev` does for them).
    func restore(_ running: Running, _ targets: [DevTarget]) async -> (restored: [String], failure: String?) {
        let start = lock.withLock { running.start }
        let result = await onOwnThread { () -> Result<[String], DevError> in
            let api: DockerAPI
            do {
                api = try DockerAPI.fromEnvironment(start.environment, timeout: .seconds(30))
            } catch {
                return .failure(.engine("dev mode needs the local Docker engine: \(error)"))
            }
            let containers = DevContainers(api: api, helperProgram: nil)
            var restored: [String] = []
            for (branch, group) in Dictionary(grouping: targets, by: { $0.branch ?? "" }).sorted(by: { $0.key < $1.key }
            ) {
                let scope = ContainerSelector(branch: branch.isEmpty ? nil : branch, configPath: start.config)
                do throws(DevError) {
                    restored += try containers.stop(names: Set(group.map(\.name)), scope: scope)
                } catch {
                    return .failure(error)
                }
            }
            return .success(restored)
        }
        switch result {
        case .success(let names): return (names, nil)
        case .failure(let error):
            err(running, "dev: \(error)")
            return ([], "\(error)")
        }
    }
}

extension AgentDaemon {
    /// Open jobs (queued or running).
    func openJobs() -> Int {
        cond.lock()
        defer { cond.unlock() }
        return queue.running.count + queue.queued.count
    }

    /// Accepts a `dev` job for dev session `session`: `slipway run-pipeline dev` with the
    /// session's options in its directory, with its environment (journaled like every job;
    /// the values in `jobs/<id>.env`, mode 0600).
    func submitDev(_ start: AgentDevStart, session: Int, reason: String) throws(AgentError) -> Int {
        let repository = try? GitRepository.discover(from: start.directory)
        let head = try? repository?.head()
        let headCommit = head?.commit ?? String(repeating: "0", count: 40)
        let ref = head?.branchName.map { "refs/heads/" + $0 } ?? "HEAD"
        let values = Self.sanitized(start.environment)
        let captured = CapturedEnvironment(
            values: values,
            unset: environment.keys.filter { values[$0] == nil }.sorted()
        )
        let job = AgentJob(
            pipeline: "dev",
            ref: ref,
            commit: headCommit.lowercased(),
            worktree: start.directory,
            acceptedAt: Date().timeIntervalSince1970,
            source: "dev session \(session): \(reason)",
            environment: captured.names,
            arguments: start.options.arguments
        )
        cond.lock()
        defer { cond.unlock() }
        let records = queue.accept(job, at: job.acceptedAt)
        guard let id = records.first?.id else { throw AgentError.invalidJob("the dev job was not accepted") }
        if case .failure(let failure) = writeEnvironment(captured, id: id) {
            throw AgentError.stateFile(path: paths.jobEnvironment(id), action: "write", reason: failure.message)
        }
        try commit(records)
        return id
    }

    /// Blocks until job `id` — or the job that superseded it — is over; its end and its id
    /// (nil state: the agent stops first).
    func waitForJob(_ id: Int) -> (JobState?, Int) {
        var id = id
        cond.lock()
        defer { cond.unlock() }
        while !stopping {
            guard let state = queue.entries[id]?.state else { return (nil, id) }
            if case .superseded(let by) = state {
                id = by
                continue
            }
            if !state.isOpen { return (state, id) }
            cond.wait()
        }
        return (nil, id)
    }
}
