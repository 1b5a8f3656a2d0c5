internal import Foundation
internal import Synchronization

/// One container a dev session works with (what `start_dev` prepared).
public struct DevTarget: Sendable, Equatable, Codable {
    /// The dev entry.
    public var dev: String
    /// The container's name (a dev container's is the deployed one's).
    public var name: String
    public var containerID: String
    /// The branch environment's tag; nil for the plain one.
    public var branch: String?

    public init(dev: String, name: String, containerID: String, branch: String?) {
        self.dev = dev
        self.name = name
        self.containerID = containerID
        self.branch = branch
    }
}

/// What a running dev session tells its caller (the CLI prints it, the agent logs it).
public enum DevEvent: Sendable, Equatable {
    /// One of the syncs reported (its index in the session's plan).
    case sync(target: Int, SyncEvent)
    /// A decision after an upload, with its reason: `restart app-web-main: after 2 uploaded
    /// files (src/a.js, src/b.js)`, `exec dev.app.sync[0].onUpload.exec[0] (npm i): skipped,
    /// no changed path matches package.json`.
    case decision(String)
    /// A line the container wrote (its log) or a command after an upload printed.
    case output(source: String, line: String)
    /// Something failed; the session goes on unless it says otherwise.
    case failure(String)
}

/// The work of `slipway dev` after its pipeline: for each prepared container, the dev entry's
/// `sync[]` (the sync engine, one per path and container), what runs after each upload batch
/// (`onUpload.exec`, then `onUpload.restartContainer` through the restart helper), the start of
/// a process held until the initial sync (`startContainer`) and the containers' logs. Runs until
/// ``stop()``.
public final class DevSession: Sendable {
    public let loaded: LoadedConfig
    public let targets: [DevTarget]
    public let environment: [String: String]
    /// `slipway-helper`, for the syncs.
    public let program: String
    /// The agent's inbox when slipway's git hooks are installed: a sync batch then also waits
    /// for their checkout or refresh event (``SyncConfiguration/hookInbox``).
    public let hookInbox: String?
    let events: @Sendable (DevEvent) -> Void
    let state = Mutex(State())

    struct State {
        var stopped = false
        var engines: [SyncEngine] = []
        var logStreams: [DockerOutputStream] = []
        var rebuildWatch: DevRebuildWatch?
        var forwarders: [PortForwarder] = []
        /// Per sync target: the paths uploaded since its last batch report.
        var uploaded: [Int: [String]] = [:]
        /// `once` commands already run, per container ID.
        var ranOnce: Set<String> = []
        /// One helper channel per container for restart and start requests (the syncs' own
        /// channels are the sync runner's).
        var controls: [String: ContainerSyncRemote] = [:]
    }

    public init(
        loaded: LoadedConfig,
        targets: [DevTarget],
        environment: [String: String],
        program: String,
        hookInbox: String? = nil,
        events: @escaping @Sendable (DevEvent) -> Void
    ) {
        self.loaded = loaded
        self.targets = targets
        self.environment = environment
        self.program = program
        self.hookInbox = hookInbox
        self.events = events
    }

    /// Ends the syncs and the log streams; ``run()`` returns.
    public func stop() {
        let (engines, streams, watch, forwarders) = state.withLock { s in
            s.stopped = true
            return (s.engines, s.logStreams, s.rebuildWatch, s.forwarders)
        }
        watch?.cancel()
        for forwarder in forwarders { forwarder.stop() }
        for control in state.withLock({ s in s.controls.values }) { control.close() }
        for engine in engines { engine.stop() }
        for stream in streams { stream.cancel() }
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    /// Ends the session on SIGINT, SIGTERM or SIGHUP (once; `signalled` learns which). Keep the
    /// returned value while the session runs.
    public func stopOnSignals(_ signalled: @escaping @Sendable (String) -> Void) -> DevSignalWatch {
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                signalled(name)
                stop()
            }
            source.resume()
            sources.append(source)
        }
        return DevSignalWatch(sources: sources)
    }

    /// Puts back the originals of the session's dev containers (``DevContainers/stop(names:scope:)``).
    public func restore() async throws(DevError) -> [String] {
        let api: DockerAPI
        do {
            api = try DockerAPI.fromEnvironment(environment, timeout: .seconds(30))
        } catch {
            throw .engine("dev mode needs the local Docker engine: \(error)")
        }
        let containers = DevContainers(api: api, helperProgram: nil)
        var restored: [String] = []
        let byBranch = Dictionary(grouping: targets) { $0.branch ?? "" }
        for (branch, group) in byBranch.sorted(by: { $0.key < $1.key }) {
            let scope = ContainerSelector(branch: branch.isEmpty ? nil : branch, configPath: loaded.absolutePath)
            let names = Set(group.map(\.name))
            let result = await onOwnThread {
                Result { () throws(DevError) in try containers.stop(names: names, scope: scope) }
            }
            restored += try result.get()
        }
        return restored
    }

    /// The sync plan of every prepared container's dev entry: the entry's `sync[]` into the
    /// containers it selects now (the dev containers).
    public func plan() async throws(SyncPlanError) -> SyncPlan {
        var targetsOut: [SyncPlan.Target] = []
        var notes: [String] = []
        let resolver: ContainerResolver
        do {
            resolver = try ContainerResolver(environment: environment)
        } catch {
            throw .selection(error)
        }
        var seen: Set<String> = []
        for target in targets where seen.insert(target.dev + "\u{0}" + (target.branch ?? "")).inserted {
            guard let pod = loaded.config.devPod(target.dev), pod.containers.contains(where: { !$0.sync.isEmpty })
            else { continue }
            let request = SyncRequest(
                selector: ContainerSelector(branch: target.branch),
                devName: target.dev,
                configNamed: true,
                workingDirectory: loaded.directory
            )
            var forDev = request
            forDev.forDev = true
            let (dev, loaded) = (forDev, self.loaded)
            let result = await onOwnThread {
                Result { () throws(SyncPlanError) in
                    try SyncPlanner.planSync(dev, loaded: loaded, resolver: resolver, choose: nil)
                }
            }
            let plan = try result.get()
            targetsOut += plan.targets
            notes += plan.notes
        }
        return SyncPlan(targets: targetsOut, timing: .defaults, notes: notes)
    }

    /// Runs the session until ``stop()``: the syncs of `plan` (from ``plan()``), the logs, and
    /// — with `rebuild` — the rebuild triggers (``DevRebuildWatch``): `rebuild` is awaited for
    /// each batch that asks (requests that arrive meanwhile are merged into the next call).
    /// Returns the failures that ended a sync.
    public func run(
        _ plan: SyncPlan,
        logs: Bool,
        rebuild: (@Sendable (DevRebuildRequest) async -> Void)? = nil
    ) async -> [String] {
        let api: DockerAPI
        do {
            api = try DockerAPI.fromEnvironment(environment, timeout: .seconds(30))
        } catch {
            events(.failure("dev mode needs the local Docker engine: \(error)"))
            return ["\(error)"]
        }
        let syncConfigs = Self.syncConfigs(loaded.config)
        await startPorts(api: api)
        let actions = AsyncStream<(Int, SyncBatchReport)>.makeStream()
        return await withTaskGroup(of: [String].self) { group in
            if logs {
                for target in targets where (loaded.config.devPod(target.dev).map(logsEnabled) ?? true) {
                    // The stream is read with blocking calls: on a thread of its own.
                    group.addTask {
                        await onOwnThread { self.followLogs(api: api, target: target) }
                        return []
                    }
                }
            }
            if let rebuild {
                do {
                    let watch = try DevRebuildWatch(
                        loaded: loaded,
                        syncRoots: plan.targets.map(\.localRoot),
                        notes: { self.events(.decision("watch: \($0)")) }
                    )
                    let stopNow = state.withLock { s in
                        s.rebuildWatch = watch
                        return s.stopped
                    }
                    if stopNow { watch.cancel() }
                    let requests = AsyncStream<DevRebuildRequest>.makeStream()
                    group.addTask {
                        await onOwnThread {
                            while true {
                                let (request, finished) = watch.next { self.events(.decision($0)) }
                                if finished { break }
                                if let request { requests.continuation.yield(request) }
                            }
                            requests.continuation.finish()
                        }
                        return []
                    }
                    group.addTask {
                        var iterator = requests.stream.makeAsyncIterator()
                        while let first = await iterator.next() {
                            if self.isStopped { continue }
                            await rebuild(first)
                        }
                        return []
                    }
                } catch {
                    events(.failure("images will not be rebuilt on changes in this session: \(error)"))
                }
            }
            group.addTask {
                for await (index, report) in actions.stream {
                    await self.afterBatch(
                        api: api,
                        target: plan.targets[index],
                        index: index,
                        report: report,
                        syncConfigs: syncConfigs
                    )
                }
                return []
            }
            group.addTask {
                let failures = await SyncRunner.run(
                    plan,
                    program: self.program,
                    stateDirectory: self.loaded.directory,
                    environment: self.environment,
                    hookInbox: self.hookInbox,
                    events: { index, event in
                        self.events(.sync(target: index, event))
                        switch event {
                        case .decision(let d) where d.direction == .upload:
                            switch d.action {
                            case .uploaded, .deleted, .renamed, .modeChanged:
                                self.state.withLock { $0.uploaded[index, default: []].append(d.path) }
                            default: break
                            }
                        case .batch(let report) where report.kind != .download:
                            actions.continuation.yield((index, report))
                        default: break
                        }
                    },
                    started: { engines in
                        let stopNow = self.state.withLock { s in
                            s.engines = engines
                            return s.stopped
                        }
                        if stopNow { for engine in engines { engine.stop() } }
                    }
                )
                actions.continuation.finish()
                // The syncs ended (each failed, or synced once with noWatch): said now; the
                // session — logs, rebuilds, a terminal — goes on until it is stopped.
                for failure in failures { self.events(.failure(failure.message)) }
                while !self.isStopped { try? await Task.sleep(for: .milliseconds(100)) }
                return failures.map(\.message)
            }
            var all: [String] = []
            for await failures in group { all += failures }
            return all
        }
    }

    /// The entries' `ports` for their containers (``PortPlan``): what needs a forward gets one
    /// for the session's life; the rest is said.
    func startPorts(api: DockerAPI) async {
        for target in targets {
            guard let pod = loaded.config.devPod(target.dev), !pod.ports.isEmpty else { continue }
            let name = target.name
            let mode = await onOwnThread { Self.networkMode(api: api, container: name) }
            for decision in PortPlan.decide(pod, container: name, networkMode: mode ?? "") {
                switch decision {
                case .note(let text):
                    events(.decision("ports: \(text)"))
                case .forward(let forward):
                    do {
                        let forwarder = try PortForwarder(forward) {
                            Self.address(api: api, container: name, port: forward.remotePort)
                        }
                        let stopNow = state.withLock { s in
                            s.forwarders.append(forwarder)
                            return s.stopped
                        }
                        if stopNow { forwarder.stop() }
                        events(
                            .decision(
                                "ports: \(forward.bindAddress):\(forward.localPort) → \(name):\(forward.remotePort) (\(mode == "host" ? "host network" : "network \(mode ?? "?")"))"
                            )
                        )
                    } catch {
                        events(.failure("ports: \(error)"))
                    }
                }
            }
        }
    }

    /// The network mode of `container`, a `container:` mode followed to the container whose
    /// network it shares (a `--local` pod's infra container).
    static func networkMode(api: DockerAPI, container: String) -> String? {
        var name = container
        for _ in 0..<3 {
            guard let info = try? api.inspectContainer(name) else { return nil }
            let mode = info.hostConfig["NetworkMode"]?.string ?? ""
            guard mode.hasPrefix("container:") else { return mode }
            name = String(mode.dropFirst("container:".count))
        }
        return nil
    }

    /// Where `container`'s `port` is reached now: this machine on the host network, else its
    /// address on its first network.
    static func address(api: DockerAPI, container: String, port: Int) -> (host: String, port: Int)? {
        var name = container
        for _ in 0..<3 {
            guard let info = try? api.inspectContainer(name) else { return nil }
            let mode = info.hostConfig["NetworkMode"]?.string ?? ""
            if mode == "host" { return ("127.0.0.1", port) }
            if mode.hasPrefix("container:") {
                name = String(mode.dropFirst("container:".count))
                continue
            }
            for (_, endpoint) in info.networks.sorted(by: { $0.key < $1.key }) {
                if let ip = endpoint["IPAddress"]?.string, !ip.isEmpty { return (ip, port) }
            }
            return nil
        }
        return nil
    }

    /// `logs.lastLines` of the target's entry, else 100.
    func lastLines(_ target: DevTarget) -> Int {
        loaded.config.devPod(target.dev)?.containers.compactMap { $0.logs?.lastLines }.first ?? 100
    }

    func logsEnabled(_ pod: DevPodConfig) -> Bool {
        pod.containers.allSatisfy { $0.logs?.enabled ?? true }
    }

    /// Every `sync[]` entry by key.
    static func syncConfigs(_ config: DevSpaceConfig) -> [String: SyncConfig] {
        var out: [String: SyncConfig] = [:]
        for pod in config.devPods {
            for container in pod.containers { for sync in container.sync { out[sync.key] = sync } }
        }
        return out
    }

    /// After a batch that sent something: the entry's commands (those whose `onChange` matches,
    /// `once` ones once per container life), then the restart; after the initial sync, the
    /// start of a held process.
    func afterBatch(
        api: DockerAPI,
        target: SyncPlan.Target,
        index: Int,
        report: SyncBatchReport,
        syncConfigs: [String: SyncConfig]
    ) async {
        let paths = state.withLock { s in s.uploaded.removeValue(forKey: index) ?? [] }
        guard let key = target.syncKey, let sync = syncConfigs[key] else { return }
        let container = target.container.name
        if report.kind == .initial && sync.startContainer {
            await helperRequest(
                container: container,
                root: target.remoteRoot,
                "start",
                reason: "after the initial sync of \(key)"
            )
        }
        guard !paths.isEmpty else { return }
        let shown = Self.listed(paths)
        for (i, exec) in sync.exec.enumerated() {
            let name = "\(key).onUpload.exec[\(i)]" + (exec.name.map { " (\($0))" } ?? "")
            if !exec.onChange.isEmpty {
                let matcher = try? IgnoreMatcher(patterns: exec.onChange)
                let matched = paths.filter { matcher?.isExcluded($0, isDirectory: false) ?? false }
                guard !matched.isEmpty else {
                    events(
                        .decision(
                            "exec \(name): skipped, no uploaded path matches \(exec.onChange.joined(separator: ", ")) (\(shown))"
                        )
                    )
                    continue
                }
            }
            if exec.once {
                let first = state.withLock { $0.ranOnce.insert(target.container.id + "\u{0}" + name).inserted }
                guard first else {
                    events(.decision("exec \(name): skipped, once per container and already run in \(container)"))
                    continue
                }
            }
            events(.decision("exec \(name) \(exec.local ? "on this machine" : "in \(container)"): after \(shown)"))
            let status = await runExec(api: api, exec, container: container, name: name)
            if status != 0 && exec.failOnError {
                events(.failure("\(name) failed (exit status \(status)); the restart after this batch is skipped"))
                return
            }
        }
        if sync.restartContainer {
            await helperRequest(container: container, root: target.remoteRoot, "restart", reason: "after \(shown)")
        }
    }

    /// `3 files (src/a.js, src/b.js, …)`.
    static func listed(_ paths: [String]) -> String {
        let unique = Array(Set(paths)).sorted()
        let head = unique.prefix(3).joined(separator: ", ")
        return "\(unique.count) changed path\(unique.count == 1 ? "" : "s") (\(head)\(unique.count > 3 ? ", …" : ""))"
    }

    /// `restart` or `start` through the restart helper in `container`, over a helper channel of
    /// the session's own (one exec per container, then a round trip of a few ms per request);
    /// a channel that broke (the container was made again) is opened once more.
    func helperRequest(container: String, root: String, _ request: String, reason: String) async {
        let start = ContinuousClock.now
        var lastError: SyncRemoteError?
        for attempt in 0..<2 {
            do {
                let control = try await control(container, root: root, fresh: attempt > 0)
                let report = try await request == "start" ? control.startProcess() : control.restartProcess()
                events(
                    .decision(
                        "\(request) \(container) \(reason): done in \(Self.milliseconds(ContinuousClock.now - start)) ms (pid \(report.pid), \(report.restarts) restart\(report.restarts == 1 ? "" : "s") so far)"
                    )
                )
                return
            } catch {
                lastError = error
                if case .processFailed = error { break }
            }
        }
        events(.failure("\(request) \(container) \(reason) failed: \(lastError.map { "\($0)" } ?? "unknown")"))
    }

    func control(_ container: String, root: String, fresh: Bool) async throws(SyncRemoteError) -> ContainerSyncRemote {
        if !fresh, let known = state.withLock({ $0.controls[container] }) { return known }
        if let old = state.withLock({ $0.controls.removeValue(forKey: container) }) { old.close() }
        let remote = try await ContainerSyncRemote.connect(
            environment: environment,
            container: container,
            program: program,
            options: ContainerSyncRemote.Options(root: root)
        )
        let stopNow = state.withLock { s in
            s.controls[container] = remote
            return s.stopped
        }
        if stopNow { remote.close() }
        return remote
    }

    static func milliseconds(_ d: Duration) -> String {
        String(format: "%.1f", Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
    }

    /// One `onUpload.exec` command: in the container (`sh -c COMMAND` without `args`), or on
    /// this machine with `local: true`; its output as ``DevEvent/output(source:line:)``.
    func runExec(api: DockerAPI, _ exec: SyncConfig.Exec, container: String, name: String) async -> Int32 {
        let argv = exec.args.map { [exec.command] + $0 } ?? ["sh", "-c", exec.command]
        // The config's variables the command names reach it as environment variables (the
        // loader left them as `${NAME}` expansions for the shell, never spliced into its text).
        var variables: [(String, String)] = []
        if exec.args == nil {
            for (key, value) in loaded.variables
            where VariableResolver.isEnvName(key) && exec.command.contains("${\(key)}") {
                variables.append((key, VariableResolver.text(of: value)))
            }
        }
        if exec.local {
            var env = environment
            for (key, value) in variables { env[key] = value }
            do {
                let out = try await ProcessRunner.run(
                    findExecutable(argv[0], path: environment["PATH"]) ?? argv[0],
                    Array(argv.dropFirst()),
                    environment: env,
                    workingDirectory: loaded.directory
                )
                for line in (out.standardOutput + out.standardError).split(separator: "\n") {
                    events(.output(source: name, line: String(line)))
                }
                return out.status
            } catch {
                events(.failure("\(name): \(error)"))
                return 127
            }
        }
        let config = DockerExecConfig(command: argv, environment: variables.map { "\($0.0)=\($0.1)" })
        let result = await onOwnThread {
            Result { () throws(DockerAPIError) in
                try api.exec(container: container, config, timeout: .seconds(600))
            }
        }
        switch result {
        case .success(let r):
            for line in (r.stdout + r.stderr).split(separator: "\n") {
                events(.output(source: name, line: String(line)))
            }
            return Int32(truncatingIfNeeded: r.exitCode)
        case .failure(let error):
            events(.failure("\(name): \(error)"))
            return 127
        }
    }

    /// The container's log from now on, line by line, until the session stops; followed again
    /// when the container is made again (a rebuild) or restarted.
    func followLogs(api: DockerAPI, target: DevTarget) {
        var since: Double? = nil
        while !isStopped {
            let stream: DockerOutputStream
            do {
                // First what the container wrote so far (its last lines), then from the moment it
                // was last followed.
                stream = try api.logs(
                    container: target.name,
                    follow: true,
                    since: since,
                    tail: since == nil ? lastLines(target) : nil
                )
            } catch {
                usleep(250_000)
                continue
            }
            let stop = state.withLock { s in
                if !s.stopped { s.logStreams.append(stream) }
                return s.stopped
            }
            if stop {
                stream.cancel()
                return
            }
            var partial: [UInt8] = []
            while let piece = try? stream.next() {
                partial += piece.bytes
                while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: partial[..<newline], as: UTF8.self)
                    partial.removeSubrange(...newline)
                    events(.output(source: target.name, line: line))
                }
            }
            if !partial.isEmpty { events(.output(source: target.name, line: String(decoding: partial, as: UTF8.self))) }
            since = Date().timeIntervalSince1970
            state.withLock { s in s.logStreams.removeAll { $0 === stream } }
            if !isStopped { usleep(250_000) }
        }
    }
}

/// Signal handlers that last as long as this value (``DevSession/stopOnSignals(_:)``).
public final class DevSignalWatch: @unchecked Sendable {
    let sources: [any DispatchSourceSignal]

    init(sources: [any DispatchSourceSignal]) {
        self.sources = sources
    }

    deinit {
        for source in sources { source.cancel() }
    }
}
