internal import Foundation

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Who owns what the helper makes when it runs as root (a `uid:gid` the sync was configured
/// with); without one, files belong to the user the helper runs as.
public struct SyncOwner: Sendable, Equatable, Hashable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }
}

/// A tree in a Docker container, reached through slipway's helper (`/.slipway/helper serve`)
/// over ONE long-lived exec whose stdin and stdout carry the framed protocol of
/// docs/sync-protocol.md. A round trip costs about a millisecond, where a fresh `docker exec`
/// or archive call costs 50–80 ms (bench/sync-channel).
///
/// ``connect(api:container:program:options:)`` copies the helper into the container when it is
/// missing or another build (the HELLO exchange compares the running helper's SHA-256 with the
/// local program's). Operations of one ``apply(_:)`` are sent back to back — file content
/// streamed in 256 KiB pieces, nothing held whole — while a reader thread collects the answers,
/// so a batch costs one round trip. The channel breaking (the container stopped, restarted or
/// was removed) fails every waiting call, and every later one, with
/// ``SyncRemoteError/disconnected(_:)``; the engine connects again.
///
/// Thread-safe: any number of calls may run at once (their frames never interleave; answers
/// are matched by request id). No `Foundation.Process`: the channel is the engine's API.
public final class ContainerSyncRemote: SyncRemote, @unchecked Sendable {
    public struct Options: Sendable, Equatable {
        /// The root in the container (absolute).
        public var root: String
        /// The user the helper runs as (the exec's `User`: a name, `uid` or `uid:gid`); nil runs
        /// it as the container's own user, so that what it writes is that user's.
        public var user: String?
        /// When the helper runs as root: the owner given to what it makes.
        public var owner: SyncOwner?
        /// Makes the root (and its parents) when it is missing.
        public var createRoot: Bool
        /// `fsync`s each written file before renaming it into place.
        public var fsync: Bool
        /// How long a call waits for the helper to make progress before the channel counts as
        /// broken (a paused or frozen container).
        public var answerTimeout: Duration

        public init(
            root: String,
            user: String? = nil,
            owner: SyncOwner? = nil,
            createRoot: Bool = true,
            fsync: Bool = false,
            answerTimeout: Duration = .seconds(60)
        ) {
            self.root = root
            self.user = user
            self.owner = owner
            self.createRoot = createRoot
            self.fsync = fsync
            self.answerTimeout = answerTimeout
        }
    }

    let channel: HelperChannel

    /// The container as it was named to ``connect(api:container:program:options:)``.
    public var container: String { channel.container }
    public var options: Options { channel.options }
    /// The user and group the helper runs as: what new files belong to (unless ``Options/owner``).
    public var helperUID: UInt32 { channel.helperUID }
    public var helperGID: UInt32 { channel.helperGID }
    /// Whether this connection had to copy the helper into the container first.
    public let installedHelper: Bool

    init(channel: HelperChannel, installedHelper: Bool) {
        self.channel = channel
        self.installedHelper = installedHelper
    }

    deinit { channel.close(reason: "the sync remote was released") }

    // MARK: Connecting

    /// The engine's API for `environment` (nil: this process's). A `DOCKER_HOST` of `tcp://` or
    /// `ssh://` is reached through the docker CLI only, which cannot hold the sync channel:
    /// ``SyncRemoteError/unusable(_:)`` says so.
    public static func engineAPI(_ environment: [String: String]? = nil) throws(SyncRemoteError) -> DockerAPI {
        let environment = environment ?? ProcessInfo.processInfo.environment
        if let host = environment["DOCKER_HOST"], host.hasPrefix("tcp://") || host.hasPrefix("ssh://") {
            throw .unusable(cliOnlyMessage(host))
        }
        do {
            return try DockerAPI.fromEnvironment(environment)
        } catch {
            throw .unusable("sync cannot reach the Docker engine: \(error)")
        }
    }

    /// The engine's API behind `engine`, refused for an engine reached through the CLI alone.
    public static func engineAPI(_ engine: DockerEngine) throws(SyncRemoteError) -> DockerAPI {
        if let cli = engine.cliOnly { throw .unusable(cliOnlyMessage(cli["DOCKER_HOST"] ?? engine.location)) }
        return engine.api
    }

    static func cliOnlyMessage(_ host: String) -> String {
        "sync needs the Docker engine's API on its unix socket to hold one channel into the container open, "
            + "and DOCKER_HOST=\(host) is reached through the docker CLI only; run slipway on the engine's host "
            + "(DOCKER_HOST unset, or unix:///path/to/docker.sock)"
    }

    /// Connects to `container` (a name or an ID; it must be running) for the tree at
    /// `options.root`, copying `program` (the local slipway-helper) into it first when it is
    /// missing or stale.
    public static func connect(
        environment: [String: String]? = nil,
        container: String,
        program: String,
        options: Options
    ) async throws(SyncRemoteError) -> ContainerSyncRemote {
        try await connect(api: try engineAPI(environment), container: container, program: program, options: options)
    }

    public static func connect(
        api: DockerAPI,
        container: String,
        program: String,
        options: Options
    ) async throws(SyncRemoteError) -> ContainerSyncRemote {
        guard options.root.hasPrefix("/") else {
            throw .unusable("the sync root in the container must be an absolute path, not \(options.root)")
        }
        let loaded = try SyncHelperProgram.load(program)
        return try await blocking {
            () throws(SyncRemoteError) in
            try connectBlocking(api: api, container: container, loaded: loaded, options: options)
        }
    }

    static func connectBlocking(
        api: DockerAPI,
        container: String,
        loaded: SyncHelperProgram.Loaded,
        options: Options
    ) throws(SyncRemoteError) -> ContainerSyncRemote {
        var installed = false
        while true {
            let info = try inspect(api, container)
            guard info.state.running, !info.state.paused, !info.state.restarting else {
                throw .disconnected("the container \(container) is not running (\(info.state.status))")
            }
            switch try HelperChannel.start(
                api: api,
                container: container,
                info: info,
                loaded: loaded,
                options: options,
                acceptAnyBuild: installed
            ) {
            case .ready(let channel):
                return ContainerSyncRemote(channel: channel, installedHelper: installed)
            case .stale(let detail):
                if installed {
                    throw .unusable("slipway's sync helper does not start in the container \(container): \(detail)")
                }
                if info.hostConfig["ReadonlyRootfs"]?.bool == true
                    && !SyncHelperProgram.hasWritableMount(info, at: SyncHelperProgram.containerDirectory)
                {
                    throw .unusable(SyncHelperProgram.readOnlyMessage(container))
                }
                try SyncHelperProgram.install(api: api, container: container, loaded: loaded)
                installed = true
            }
        }
    }

    static func inspect(_ api: DockerAPI, _ container: String) throws(SyncRemoteError) -> DockerContainer {
        let found: DockerContainer?
        do {
            found = try api.inspectContainer(container)
        } catch {
            throw .unusable("cannot look up the container \(container): \(error)")
        }
        guard let found else { throw .unusable("there is no container \(container) (`docker ps --all` lists them)") }
        return found
    }

    // MARK: SyncRemote

    public func manifest(hashing paths: Set<String>, hashAll: Bool) async throws(SyncRemoteError) -> [SyncEntry] {
        try await channel.manifest(hashing: paths, hashAll: hashAll)
    }

    /// Asks the helper for these paths alone (ENTRIES), not the whole tree: a change the
    /// container makes costs a look at what changed, whatever the size of the tree.
    public func entries(
        _ paths: [String],
        recursive: Bool,
        hashing: Set<String>
    ) async throws(SyncRemoteError) -> [SyncEntry] {
        try await channel.entries(paths, recursive: recursive, hashing: hashing)
    }

    public func apply(_ operations: [SyncOperation]) async throws(SyncRemoteError) -> [SyncOutcome] {
        try await channel.apply(operations)
    }

    /// Also gives the new file the remote's permission bits (setuid, setgid and sticky left out)
    /// and modification time.
    public func download(_ path: String, to destination: String) async throws(SyncRemoteError) -> SyncEntry {
        try await channel.download(path, to: destination)
    }

    /// One watch at a time: a second call ends the first stream. Paths the helper's own
    /// operations changed are not reported back.
    public func changes() async throws(SyncRemoteError) -> AsyncThrowingStream<[String], any Error> {
        try await channel.watch()
    }

    public func close() { channel.close(reason: "the sync channel to \(container) was closed") }

    // MARK: The process (dev containers)

    /// Restarts the container's command through the restart helper, its PID 1 (`/.slipway/helper
    /// run -- COMMAND`, docs/dev.md): SIGTERM to the command's process group, SIGKILL after the
    /// helper's grace (2 s unless `--grace-ms`), then the command runs again. Returns when the new
    /// process runs, over this open channel — no `docker exec`. A container whose PID 1 is
    /// something else is ``SyncRemoteError/unusable(_:)`` ("… was not started by slipway's restart
    /// helper; …"); a helper that cannot do it (not started yet, command not found, stopping)
    /// throws ``SyncRemoteError/processFailed(errno:message:)``.
    public func restartProcess() async throws(SyncRemoteError) -> RestartReport {
        try await channel.process(HelperFrameType.restart, what: "restart")
    }

    /// Starts the command of a helper run with `--wait-start` (slipway sends it after the initial
    /// sync, as DevSpace touches `/.devspace/start`). A command already running is left alone
    /// and reported; one that exited is started now. Errors as ``restartProcess()``.
    public func startProcess() async throws(SyncRemoteError) -> RestartReport {
        try await channel.process(HelperFrameType.start, what: "start")
    }

    /// What the helper reported on the side since the last call (a directory it cannot list, a
    /// special file left out of the manifest, a watch it cannot add, a path from the container
    /// that is not a valid sync path), oldest first; at most the last 200 are kept.
    public func takeNotes() -> [String] { channel.takeNotes() }

    static func blocking<T: Sendable>(
        _ body: @escaping @Sendable () throws(SyncRemoteError) -> T
    ) async throws(SyncRemoteError) -> T {
        let result = await onOwnThread { Result { () throws(SyncRemoteError) in try body() } }
        return try result.get()
    }
}

/// What a restart or start through the restart helper did.
public struct RestartReport: Sendable, Equatable {
    /// The command's process, in the container's pid namespace.
    public var pid: Int32
    /// How often the helper ran the command again since the container started (on request, or
    /// after it exited by itself).
    public var restarts: Int
    /// From sending the request to the helper's answer (the new process spawned).
    public var duration: Duration

    public init(pid: Int32, restarts: Int, duration: Duration) {
        self.pid = pid
        self.restarts = restarts
        self.duration = duration
    }
}

// MARK: - The channel

/// One exec of the helper and its framed conversation. A reader thread takes every frame off the
/// stream and hands it to the request waiting for it (by id) or to the watch. Callers send their
/// requests under `writeLock` — from their own task when the batch is light, from a thread of
/// their own when it carries 64 KiB or more — and await a continuation the reader thread
/// resumes: no thread is made or blocked per round trip.
final class HelperChannel: @unchecked Sendable {
    let api: DockerAPI
    let container: String
    let options: ContainerSyncRemote.Options
    let stream: DockerHijackedStream
    let execID: String
    let helperUID: UInt32
    let helperGID: UInt32
    /// The container's start time when the channel opened (a restart changes it).
    let startedAt: String

    /// Guards everything below.
    private let state = NSLock()
    private var handlers: [UInt32: Handler] = [:]
    private var nextID: UInt32 = 1
    private var failure: SyncRemoteError?
    private var lastProgress = ContinuousClock.now
    private var watchID: UInt32 = 0
    private var watchContinuation: AsyncThrowingStream<[String], any Error>.Continuation?
    private var notes: [String] = []
    private var stderrTail: [UInt8] = []
    /// Serialises writers so that the frames of one request (a write's data) stay together.
    private let writeLock = NSLock()
    /// Tests turn it off to see the helper refuse bad paths itself.
    var checksPathsLocally = true

    private init(
        api: DockerAPI,
        container: String,
        options: ContainerSyncRemote.Options,
        stream: DockerHijackedStream,
        execID: String,
        uid: UInt32,
        gid: UInt32,
        startedAt: String
    ) {
        self.api = api
        self.container = container
        self.options = options
        self.stream = stream
        self.execID = execID
        self.helperUID = uid
        self.helperGID = gid
        self.startedAt = startedAt
    }

    enum Opened {
        case ready(HelperChannel)
        /// No helper, another build, or something else answered.
        case stale(String)
    }

    /// Starts the helper and says HELLO.
    static func start(
        api: DockerAPI,
        container: String,
        info: DockerContainer,
        loaded: SyncHelperProgram.Loaded,
        options: ContainerSyncRemote.Options,
        acceptAnyBuild: Bool
    ) throws(SyncRemoteError) -> Opened {
        let execID: String
        let stream: DockerHijackedStream
        do {
            execID = try api.createExec(
                container: container,
                DockerExecConfig(command: [SyncHelperProgram.containerPath, "serve"], user: options.user, stdin: true)
            )
            stream = try api.startExec(execID)
        } catch {
            throw engineFailure(error, container: container, doing: "start slipway's sync helper in")
        }
        var hello = HelperBytes()
        hello.u32(syncHelperProtocolVersion)
        var flags: UInt32 = 0
        if options.owner != nil { flags |= HelperHelloFlags.chown }
        if options.fsync { flags |= HelperHelloFlags.fsync }
        if options.createRoot { flags |= HelperHelloFlags.createRoot }
        hello.u32(flags)
        hello.u32(options.owner?.uid ?? 0)
        hello.u32(options.owner?.gid ?? 0)
        hello.text(options.root)

        var parser = HelperFrameParser()
        var errors: [UInt8] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(15))
        let answer: HelperFrame
        do {
            try stream.write(HelperBytes.frame(HelperFrameType.hello, id: 0, hello.bytes), timeout: .seconds(10))
            var frame: HelperFrame?
            while frame == nil {
                let left = ContinuousClock.now.duration(to: deadline)
                guard left > .zero, let piece = try stream.next(timeout: left) else { break }
                if piece.stream == .stdout {
                    parser.append(piece.bytes)
                    do {
                        frame = try parser.next()
                    } catch {
                        stream.cancel()
                        return .stale("it answered something else than the protocol")
                    }
                } else {
                    errors += piece.bytes
                }
            }
            guard let frame else {
                stream.cancel()
                let ran = try? api.inspectExec(execID)
                let text = String(decoding: errors.suffix(1000), as: UTF8.self).trimmingCharacters(
                    in: .whitespacesAndNewlines
                )
                let status = ran?.exitCode.map { "exit status \($0)" } ?? "no answer within 15 s"
                return .stale(text.isEmpty ? status : "\(status): \(text)")
            }
            answer = frame
        } catch {
            stream.cancel()
            return .stale("\(error)")
        }

        var reader = HelperReader(answer.payload)
        let version = reader.u32()
        let uid = reader.u32()
        let gid = reader.u32()
        let digest = Array(reader.take(32))
        let (code, message) = reader.failure()
        guard answer.type == HelperFrameType.helloAnswer, answer.payload.count >= 48 else {
            stream.cancel()
            return .stale("its first answer is not HELLO (type 0x\(String(answer.type, radix: 16)))")
        }
        guard version == syncHelperProtocolVersion else {
            stream.cancel()
            return .stale("it speaks protocol \(version), this slipway \(syncHelperProtocolVersion)")
        }
        guard digest == loaded.digest || acceptAnyBuild else {
            stream.cancel()
            return .stale("it is another build than \(loaded.path)")
        }
        guard code == 0 else {
            stream.cancel()
            throw .unusable("cannot sync into \(options.root) in the container \(container): \(message)")
        }
        let channel = HelperChannel(
            api: api,
            container: container,
            options: options,
            stream: stream,
            execID: execID,
            uid: uid,
            gid: gid,
            startedAt: info.state.startedAt
        )
        if let owner = options.owner, uid != 0, owner != SyncOwner(uid: uid, gid: gid) {
            channel.noteLocked(
                "the helper runs as \(uid):\(gid), not root, so what it makes is \(uid):\(gid)'s, not \(owner.uid):\(owner.gid)'s"
            )
        }
        channel.startReading(parser)
        return .ready(channel)
    }

    static func engineFailure(_ error: DockerAPIError, container: String, doing: String) -> SyncRemoteError {
        if case .status(_, let code, let message) = error {
            if code == 404 { return .unusable("there is no container \(container) (`docker ps --all` lists them)") }
            if code == 409 { return .disconnected("the container \(container) is not running: \(message)") }
        }
        return .unusable("cannot \(doing) the container \(container): \(error)")
    }

    // MARK: Reading

    private func startReading(_ parser: HelperFrameParser) {
        let thread = Thread { [self] in readLoop(parser) }
        thread.stackSize = 1 << 20
        thread.name = "slipway-sync-reader"
        thread.start()
    }

    /// Takes frames off the stream until it ends. Each wait for the helper lasts at most the
    /// answer timeout: when it passes with a request waiting and no progress meanwhile, the
    /// helper counts as frozen (a paused container). Idle, that is one wake-up a minute.
    private func readLoop(_ initial: HelperFrameParser) {
        var parser = initial
        var ending: SyncRemoteError?
        do {
            while true {
                let next: DockerOutput?
                do {
                    next = try stream.next(timeout: options.answerTimeout)
                } catch .timedOut {
                    if stalled() { return }
                    continue
                }
                guard let piece = next else { break }
                switch piece.stream {
                case .stdout:
                    parser.append(piece.bytes)
                    state.lock()
                    lastProgress = .now
                    do {
                        while let frame = try parser.next() { dispatchLocked(frame) }
                    } catch {
                        failLocked(error)
                    }
                    state.unlock()
                case .stderr, .system:
                    state.lock()
                    stderrTail = Array((stderrTail + piece.bytes).suffix(2000))
                    state.unlock()
                case .stdin:
                    break
                }
            }
        } catch {
            ending = .disconnected("the stream from the helper in \(container) broke: \(error)")
        }
        state.lock()
        let alreadyFailed = failure != nil
        state.unlock()
        if alreadyFailed { return }
        let reason = ending ?? .disconnected(explainEnd())
        state.lock()
        failLocked(reason)
        state.unlock()
    }

    /// Why the stream ended, as far as the engine tells. A container being stopped or restarted
    /// kills the helper a moment before the engine records it: while the helper was killed by
    /// a signal and the container still looks the same, it is asked again for up to a second.
    private func explainEnd() -> String {
        let exec = try? api.inspectExec(execID)
        let killed = (exec?.exitCode ?? 137) >= 128
        var info = try? api.inspectContainer(container)
        for _ in 0..<20 {
            guard killed, let state = info?.state, state.running, state.startedAt == startedAt else { break }
            usleep(50_000)
            info = try? api.inspectContainer(container)
        }
        guard let info else { return "the container \(container) is gone" }
        let state = info.state
        if state.restarting || (state.running && state.startedAt != startedAt) {
            return "the container \(container) restarted"
        }
        if !state.running { return "the container \(container) stopped (\(state.status))" }
        self.state.lock()
        let errors = String(decoding: stderrTail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        self.state.unlock()
        var detail = "the helper in \(container) exited"
        if let code = exec?.exitCode {
            detail += code >= 128 ? " (killed by signal \(code - 128))" : " with status \(code)"
        }
        if !errors.isEmpty { detail += ": \(errors)" }
        return detail
    }

    /// Hands a frame to its request or to the watch (with `state` locked).
    private func dispatchLocked(_ frame: HelperFrame) {
        if frame.type == HelperFrameType.fatal {
            let text = String(decoding: frame.payload, as: UTF8.self)
            failLocked(.protocolViolation("the helper in \(container) stopped: \(text)"))
            return
        }
        if let handler = handlers[frame.id] {
            if handler.handle(frame) { handlers[frame.id] = nil }
            return
        }
        guard frame.id == watchID, watchID != 0, let continuation = watchContinuation else { return }
        switch frame.type {
        case HelperFrameType.changes:
            var paths: [String] = []
            for raw in frame.payload.split(separator: 0) {
                if let path = HelperReader.utf8(raw), SyncPath.isValid(path) {
                    paths.append(path)
                } else {
                    noteLocked("refused a changed path from the container: \(String(decoding: raw, as: UTF8.self))")
                }
            }
            if !paths.isEmpty { continuation.yield(paths) }
        case HelperFrameType.unknown:
            continuation.yield([])
        case HelperFrameType.note:
            var reader = HelperReader(frame.payload)
            noteLocked(reader.failure().message)
        default:
            break
        }
    }

    /// Keeps a note for ``takeNotes()`` (with `state` locked, or before the reader starts).
    func noteLocked(_ text: String) {
        notes.append(text)
        if notes.count > 200 { notes.removeFirst(notes.count - 200) }
    }

    func takeNotes() -> [String] {
        state.lock()
        defer { state.unlock() }
        let taken = notes
        notes = []
        return taken
    }

    /// Marks the channel broken (the first reason wins), wakes every waiter, ends the watch and
    /// closes the stream (the helper sees its stdin end and exits).
    private func failLocked(_ error: SyncRemoteError) {
        guard failure == nil else { return }
        failure = error
        let abandoned = handlers.values
        handlers = [:]
        for handler in abandoned { handler.abandon(error) }
        watchContinuation?.finish(throwing: error)
        watchContinuation = nil
        stream.cancel()
    }

    func close(reason: String) {
        state.lock()
        failLocked(.disconnected(reason))
        state.unlock()
    }

    // MARK: Requests

    /// What a request waiting for answers does with each of its frames (true: it is complete),
    /// and with a broken channel. Both run on the reader thread (or the failing one) with
    /// `state` locked.
    private struct Handler {
        let handle: (HelperFrame) -> Bool
        let abandon: (SyncRemoteError) -> Void
    }

    /// A request's result, handed from the reader thread to the awaiting task. Used with
    /// `state` locked.
    private final class Completion<T: Sendable>: @unchecked Sendable {
        private var result: Result<T, SyncRemoteError>?
        private var continuation: CheckedContinuation<Result<T, SyncRemoteError>, Never>?

        var isFinished: Bool { result != nil }

        func finish(_ value: Result<T, SyncRemoteError>) {
            guard result == nil else { return }
            result = value
            continuation?.resume(returning: value)
            continuation = nil
        }

        func attach(_ waiting: CheckedContinuation<Result<T, SyncRemoteError>, Never>) {
            if let result { waiting.resume(returning: result) } else { continuation = waiting }
        }
    }

    /// Registers `count` consecutive ids (`handle` gets the index within the batch).
    private func register(
        _ count: Int = 1,
        handle: @escaping (Int, HelperFrame) -> Bool,
        abandon: @escaping (SyncRemoteError) -> Void
    ) throws(SyncRemoteError) -> UInt32 {
        state.lock()
        defer { state.unlock() }
        if let failure { throw failure }
        // A request's wait for progress starts now, however long the channel was idle.
        if handlers.isEmpty { lastProgress = .now }
        if nextID > UInt32.max - UInt32(count) - 1 { nextID = 1 }
        let first = nextID
        nextID += UInt32(count)
        for index in 0..<count {
            handlers[first + UInt32(index)] = Handler(handle: { frame in handle(index, frame) }, abandon: abandon)
        }
        return first
    }

    /// Waits for `completion` (the reader thread finishes it, or fails it with the channel).
    private func wait<T: Sendable>(_ completion: Completion<T>) async throws(SyncRemoteError) -> T {
        let result = await withCheckedContinuation { continuation in
            state.lock()
            completion.attach(continuation)
            state.unlock()
        }
        return try result.get()
    }

    /// Whether a request waits and the helper made no progress for the answer timeout; the
    /// channel is failed then.
    private func stalled() -> Bool {
        state.lock()
        defer { state.unlock() }
        guard failure == nil else { return true }
        guard !handlers.isEmpty, lastProgress.duration(to: .now) >= options.answerTimeout else { return false }
        failLocked(
            .disconnected(
                "the helper in \(container) made no progress for \(options.answerTimeout) (is the container paused?)"
            )
        )
        return true
    }

    /// Runs `body` here when it is light, else on a thread of its own (a batch that may wait
    /// for the socket must not hold a thread of Swift's cooperative pool while it is sent).
    private static func sending(
        heavy: Bool,
        _ body: @escaping @Sendable () throws(SyncRemoteError) -> Void
    ) async throws(SyncRemoteError) {
        if !heavy { return try body() }
        let result = await onOwnThread { Result { () throws(SyncRemoteError) in try body() } }
        try result.get()
    }

    /// Frames collected and written in pieces of about 256 KiB.
    private struct Outgoing {
        var bytes: [UInt8] = []

        mutating func add(_ type: UInt8, _ id: UInt32, _ payload: [UInt8]) {
            var header = HelperBytes(reserving: HelperFrame.headerSize)
            header.u8(type)
            header.u32(id)
            header.u32(UInt32(payload.count))
            bytes += header.bytes
            bytes += payload
        }

        mutating func add(_ type: UInt8, _ id: UInt32, _ payload: UnsafeRawBufferPointer) {
            var header = HelperBytes(reserving: HelperFrame.headerSize)
            header.u8(type)
            header.u32(id)
            header.u32(UInt32(payload.count))
            bytes += header.bytes
            bytes.append(contentsOf: payload)
        }

        var isFull: Bool { bytes.count >= 256 << 10 }
    }

    /// Writes `out` when it is full (or `force`); the caller holds `writeLock`.
    private func send(_ out: inout Outgoing, force: Bool = false) throws(SyncRemoteError) {
        guard !out.bytes.isEmpty, force || out.isFull else { return }
        do {
            try stream.write(out.bytes, timeout: options.answerTimeout)
        } catch {
            state.lock()
            failLocked(.disconnected("cannot send to the helper in \(container): \(error)"))
            let failure = self.failure
            state.unlock()
            throw failure ?? .disconnected("cannot send to the helper in \(container): \(error)")
        }
        out.bytes.removeAll(keepingCapacity: true)
        state.lock()
        lastProgress = .now
        state.unlock()
    }

    /// Sends the frames `produce` makes, under `writeLock` (so that they stay together).
    private func sendLocked(_ produce: (inout Outgoing) throws(SyncRemoteError) -> Void) throws(SyncRemoteError) {
        writeLock.lock()
        defer { writeLock.unlock() }
        var out = Outgoing()
        try produce(&out)
        try send(&out, force: true)
    }

    // MARK: Apply

    private final class Outcomes: @unchecked Sendable {
        var values: [SyncOutcome?]
        var remaining: Int
        init(_ count: Int) {
            values = Array(repeating: nil, count: count)
            remaining = count
        }
    }

    func apply(_ operations: [SyncOperation]) async throws(SyncRemoteError) -> [SyncOutcome] {
        guard !operations.isEmpty else { return [] }
        let outcomes = Outcomes(operations.count)
        let completion = Completion<[SyncOutcome]>()
        let container = self.container
        /// Records an outcome (with `state` locked); the last one completes the batch.
        let settleLocked: @Sendable (Int, SyncOutcome) -> Void = { index, outcome in
            if outcomes.values[index] == nil { outcomes.remaining -= 1 }
            outcomes.values[index] = outcome
            if outcomes.remaining == 0 {
                completion.finish(
                    .success(outcomes.values.map { $0 ?? .failed(errno: EPROTO, message: "no answer from the helper") })
                )
            }
        }
        let first = try register(
            operations.count,
            handle: { [self] index, frame in
                var reader = HelperReader(frame.payload)
                let outcome: SyncOutcome
                switch frame.type {
                case HelperFrameType.applied, HelperFrameType.conflict:
                    var entry: SyncEntry?
                    if reader.u8() == 1 {
                        var invalid: String?
                        entry = reader.entry(invalidPath: &invalid)
                        if let invalid {
                            noteLocked("refused an entry from the container: \(invalid) is not a valid sync path")
                        }
                        if reader.bad { noteLocked("a malformed entry from the helper in \(container)") }
                    }
                    outcome = frame.type == HelperFrameType.applied ? .applied(entry) : .conflict(current: entry)
                case HelperFrameType.failed:
                    let (code, message) = reader.failure()
                    outcome = .failed(errno: code, message: message)
                default:
                    outcome = .failed(
                        errno: EPROTO,
                        message: "the helper answered 0x\(String(frame.type, radix: 16)) to operation \(index + 1)"
                    )
                }
                settleLocked(index, outcome)
                return true
            },
            abandon: { completion.finish(.failure($0)) }
        )
        // A light batch (its frames fit in the socket's buffer, so writing them does not wait)
        // is sent from here; a heavier one from a thread of its own.
        var content: Int64 = 0
        for case .write(_, let source, _, _, _) in operations {
            var info = stat()
            if stat(source, &info) == 0 { content += Int64(info.st_size) }
        }
        let heavy = content >= 64 << 10 || operations.count > 256
        try await Self.sending(heavy: heavy) { [self] () throws(SyncRemoteError) in
            try sendOperations(operations, first: first, settleLocked: settleLocked)
        }
        return try await wait(completion)
    }

    private func sendOperations(
        _ operations: [SyncOperation],
        first: UInt32,
        settleLocked: (Int, SyncOutcome) -> Void
    ) throws(SyncRemoteError) {
        /// An outcome settled here, without the helper (nothing was sent for it).
        func settle(_ index: Int, _ outcome: SyncOutcome) {
            state.lock()
            handlers[first + UInt32(index)] = nil
            settleLocked(index, outcome)
            state.unlock()
        }
        try sendLocked { (out: inout Outgoing) throws(SyncRemoteError) in
            var chunk: [UInt8] = []
            for (index, operation) in operations.enumerated() {
                let id = first + UInt32(index)
                if checksPathsLocally, let bad = operation.paths.first(where: { !SyncPath.isValid($0) }) {
                    settle(index, .failed(errno: EINVAL, message: "refused \(bad): not a valid relative sync path"))
                    continue
                }
                var payload = HelperBytes()
                switch operation {
                case .write(let path, let source, let mode, let mtime, let expect):
                    let fd = posixOpen(source, O_RDONLY | O_CLOEXEC)
                    guard fd >= 0 else {
                        let code = errno
                        settle(index, .failed(errno: code, message: "cannot read \(source): \(syncErrorText(code))"))
                        continue
                    }
                    defer { posixClose(fd) }
                    payload.u32(mode & 0o7777)
                    payload.i64(mtime)
                    payload.expectation(expect)
                    payload.text(path)
                    out.add(HelperFrameType.write, id, payload.bytes)
                    if chunk.isEmpty { chunk = [UInt8](repeating: 0, count: HelperFrame.chunkSize) }
                    var total: UInt64 = 0
                    var readError: Int32 = 0
                    while true {
                        let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
                        if n < 0 {
                            if errno == EINTR { continue }
                            readError = errno
                            break
                        }
                        if n == 0 { break }
                        chunk.withUnsafeBytes {
                            out.add(HelperFrameType.data, id, UnsafeRawBufferPointer(rebasing: $0[..<n]))
                        }
                        total += UInt64(n)
                        try send(&out)
                    }
                    var tail = HelperBytes()
                    if readError != 0 {
                        tail.u32(UInt32(bitPattern: readError))
                        tail.text("cannot read \(source): \(syncErrorText(readError))")
                        out.add(HelperFrameType.abort, id, tail.bytes)
                    } else {
                        tail.u64(total)
                        out.add(HelperFrameType.end, id, tail.bytes)
                    }
                case .mkdir(let path, let mode):
                    payload.u32(mode & 0o7777)
                    payload.text(path)
                    out.add(HelperFrameType.mkdir, id, payload.bytes)
                case .symlink(let path, let target):
                    payload.sized(path)
                    payload.text(target)
                    out.add(HelperFrameType.symlink, id, payload.bytes)
                case .rename(let from, let to):
                    payload.sized(from)
                    payload.text(to)
                    out.add(HelperFrameType.rename, id, payload.bytes)
                case .remove(let path, let expect):
                    payload.expectation(expect)
                    payload.text(path)
                    out.add(HelperFrameType.remove, id, payload.bytes)
                case .chmod(let path, let mode):
                    payload.u32(mode & 0o7777)
                    payload.text(path)
                    out.add(HelperFrameType.chmod, id, payload.bytes)
                }
                try send(&out)
            }
        }
    }

    // MARK: Manifest

    private final class Entries: @unchecked Sendable {
        var values: [SyncEntry] = []
    }

    func manifest(hashing paths: Set<String>, hashAll: Bool) async throws(SyncRemoteError) -> [SyncEntry] {
        var flags = HelperBytes()
        flags.u32(hashAll ? 1 : 0)
        return try await list(HelperFrameType.manifest, flags.bytes, hashing: hashAll ? [] : paths, what: "a manifest")
    }

    /// The entries at `paths` (ENTRIES), in requests of at most a frame of paths each; a path
    /// named twice, or below another with `recursive`, is listed once.
    func entries(_ paths: [String], recursive: Bool, hashing: Set<String>) async throws(SyncRemoteError) -> [SyncEntry]
    {
        var result: [SyncEntry] = []
        var seen = Set<String>()
        var start = paths.startIndex
        while start < paths.endIndex {
            var payload = HelperBytes()
            payload.u32(recursive ? 1 : 0)
            var bytes = payload.bytes
            var end = start
            while end < paths.endIndex, bytes.count + paths[end].utf8.count + 1 <= HelperFrame.maximumPayload {
                bytes += paths[end].utf8
                bytes.append(0)
                end += 1
            }
            if end == start { end += 1 }  // a path longer than a frame: the helper refuses it alone
            let chunk = Set(paths[start..<end])
            let hashed = hashing.filter { SyncPath.isCovered($0, by: chunk, recursive: recursive) }
            for entry in try await list(HelperFrameType.entries, bytes, hashing: hashed, what: "entries")
            where seen.insert(entry.path).inserted {
                result.append(entry)
            }
            start = end
        }
        return result
    }

    /// One MANIFEST or ENTRIES request and its answers (ENTRY…, NOTE…, END), with the files in
    /// `hashing` hashed.
    private func list(
        _ type: UInt8,
        _ request: [UInt8],
        hashing paths: Set<String>,
        what: String
    ) async throws(SyncRemoteError) -> [SyncEntry] {
        let entries = Entries()
        let completion = Completion<[SyncEntry]>()
        let root = options.root
        let container = self.container
        let id = try register(
            handle: { [self] _, frame in
                var reader = HelperReader(frame.payload)
                switch frame.type {
                case HelperFrameType.entry:
                    var invalid: String?
                    if let entry = reader.entry(invalidPath: &invalid) {
                        entries.values.append(entry)
                    } else if let invalid {
                        noteLocked("refused an entry of the container's tree: \(invalid) is not a valid sync path")
                    } else {
                        completion.finish(
                            .failure(.protocolViolation("a malformed entry from the helper in \(container)"))
                        )
                    }
                    return false
                case HelperFrameType.note:
                    noteLocked(reader.failure().message)
                    return false
                case HelperFrameType.endAnswer:
                    completion.finish(.success(entries.values))
                    return true
                case HelperFrameType.failed:
                    let (_, message) = reader.failure()
                    completion.finish(
                        .failure(.unusable("cannot list \(root) in the container \(container): \(message)"))
                    )
                    return true
                default:
                    completion.finish(
                        .failure(
                            .protocolViolation("the helper answered 0x\(String(frame.type, radix: 16)) to \(what)")
                        )
                    )
                    return true
                }
            },
            abandon: { completion.finish(.failure($0)) }
        )
        try await Self.sending(heavy: paths.count > 20_000) { [self] () throws(SyncRemoteError) in
            try sendLocked { (out: inout Outgoing) throws(SyncRemoteError) in
                var piece: [UInt8] = []
                for path in paths {
                    if piece.count + path.utf8.count + 1 > HelperFrame.maximumPayload {
                        out.add(HelperFrameType.hashPaths, id, piece)
                        try send(&out)
                        piece = []
                    }
                    piece += path.utf8
                    piece.append(0)
                }
                if !piece.isEmpty { out.add(HelperFrameType.hashPaths, id, piece) }
                out.add(type, id, request)
            }
        }
        return try await wait(completion)
    }

    // MARK: Restart and start

    /// RESTART or START: the serving helper asks PID 1's control socket and answers PROCESS
    /// (pid, restarts) or FAILED — ESRCH when PID 1 is not the restart helper.
    func process(_ type: UInt8, what: String) async throws(SyncRemoteError) -> RestartReport {
        let began = ContinuousClock.now
        let completion = Completion<(pid: Int32, restarts: Int)>()
        let container = self.container
        let id = try register(
            handle: { _, frame in
                var reader = HelperReader(frame.payload)
                switch frame.type {
                case HelperFrameType.process:
                    let pid = reader.u32()
                    let restarts = reader.u32()
                    if reader.bad {
                        completion.finish(
                            .failure(
                                .protocolViolation("a malformed answer to a \(what) from the helper in \(container)")
                            )
                        )
                    } else {
                        completion.finish(.success((Int32(bitPattern: pid), Int(restarts))))
                    }
                case HelperFrameType.failed:
                    let (code, message) = reader.failure()
                    if code == ESRCH {
                        completion.finish(
                            .failure(
                                .unusable(
                                    "the container \(container) was not started by slipway's restart helper; \(message)"
                                )
                            )
                        )
                    } else {
                        completion.finish(
                            .failure(
                                .processFailed(
                                    errno: code,
                                    message: "cannot \(what) in the container \(container): \(message)"
                                )
                            )
                        )
                    }
                default:
                    completion.finish(
                        .failure(
                            .protocolViolation("the helper answered 0x\(String(frame.type, radix: 16)) to a \(what)")
                        )
                    )
                }
                return true
            },
            abandon: { completion.finish(.failure($0)) }
        )
        try sendLocked { (out: inout Outgoing) in out.add(type, id, []) }
        let answer = try await wait(completion)
        return RestartReport(pid: answer.pid, restarts: answer.restarts, duration: began.duration(to: .now))
    }

    // MARK: Download

    private final class Download: @unchecked Sendable {
        var entry: SyncEntry?
        var localError: Int32 = 0
    }

    func download(_ path: String, to destination: String) async throws(SyncRemoteError) -> SyncEntry {
        guard SyncPath.isValid(path) || !checksPathsLocally else {
            throw .failed(
                path: path,
                errno: EINVAL,
                message: "refused to download \(path): not a valid relative sync path"
            )
        }
        let fd = posixOpen(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            throw .failed(path: path, errno: code, message: "cannot create \(destination): \(syncErrorText(code))")
        }
        var keep = false
        defer {
            posixClose(fd)
            if !keep { unlink(destination) }
        }
        let download = Download()
        let completion = Completion<Bool>()
        let container = self.container
        let id = try register(
            handle: { _, frame in
                var reader = HelperReader(frame.payload)
                switch frame.type {
                case HelperFrameType.entry:
                    var invalid: String?
                    download.entry = reader.entry(invalidPath: &invalid)
                    return false
                case HelperFrameType.dataAnswer:
                    guard download.localError == 0 else { return false }
                    frame.payload.withUnsafeBytes { raw in
                        guard let base = raw.baseAddress else { return }
                        var done = 0
                        while done < raw.count {
                            let n = posixWrite(fd, base + done, raw.count - done)
                            if n < 0 {
                                if errno == EINTR { continue }
                                download.localError = errno
                                return
                            }
                            done += n
                        }
                    }
                    return false
                case HelperFrameType.endAnswer:
                    completion.finish(.success(true))
                    return true
                case HelperFrameType.failed:
                    let (code, message) = reader.failure()
                    completion.finish(.failure(.failed(path: path, errno: code, message: message)))
                    return true
                default:
                    completion.finish(
                        .failure(
                            .protocolViolation(
                                "the helper in \(container) answered 0x\(String(frame.type, radix: 16)) to a download"
                            )
                        )
                    )
                    return true
                }
            },
            abandon: { completion.finish(.failure($0)) }
        )
        try sendLocked { (out: inout Outgoing) in out.add(HelperFrameType.download, id, Array(path.utf8)) }
        _ = try await wait(completion)
        if download.localError != 0 {
            throw .failed(
                path: path,
                errno: download.localError,
                message: "cannot write \(destination): \(syncErrorText(download.localError))"
            )
        }
        guard let entry = download.entry else {
            throw .protocolViolation("the helper in \(container) sent no entry for the download of \(path)")
        }
        fchmod(fd, mode_t(entry.mode & 0o777))
        var times = [
            timespec(tv_sec: 0, tv_nsec: utimeOmit),
            timespec(
                tv_sec: Int(entry.mtimeNanoseconds.floorDivided(by: 1_000_000_000)),
                tv_nsec: Int(entry.mtimeNanoseconds.floorModulo(1_000_000_000))
            ),
        ]
        futimens(fd, &times)
        keep = true
        return entry
    }

    // MARK: Watch

    func watch() async throws(SyncRemoteError) -> AsyncThrowingStream<[String], any Error> {
        let (stream, continuation) = AsyncThrowingStream<[String], any Error>.makeStream()
        let completion = Completion<Bool>()
        let root = options.root
        let id = try register(
            handle: { [self] _, frame in
                var reader = HelperReader(frame.payload)
                switch frame.type {
                case HelperFrameType.watching:
                    completion.finish(.success(true))
                    return true
                case HelperFrameType.note:
                    noteLocked(reader.failure().message)
                    return false
                case HelperFrameType.failed:
                    let (code, message) = reader.failure()
                    completion.finish(.failure(.failed(path: root, errno: code, message: message)))
                    return true
                default:
                    completion.finish(
                        .failure(.protocolViolation("the helper answered 0x\(String(frame.type, radix: 16)) to WATCH"))
                    )
                    return true
                }
            },
            abandon: { completion.finish(.failure($0)) }
        )
        let previous = state.withLock {
            let previous = watchContinuation
            watchID = id
            watchContinuation = continuation
            return previous
        }
        previous?.finish()
        do {
            try sendLocked { (out: inout Outgoing) in out.add(HelperFrameType.watch, id, []) }
            _ = try await wait(completion)
        } catch {
            state.withLock {
                if watchID == id {
                    watchID = 0
                    watchContinuation = nil
                }
            }
            continuation.finish(throwing: error)
            throw error
        }
        continuation.onTermination = { [weak self] _ in self?.stopWatch(id) }
        return stream
    }

    /// Ends the watch `id` (its stream was dropped): the helper stops watching. Called from the
    /// stream's termination, which can happen with `state` locked (the channel failing, a new
    /// watch), so the work is done on a thread of its own.
    private func stopWatch(_ id: UInt32) {
        let thread = Thread { [self] in
            state.lock()
            guard watchID == id, failure == nil else {
                state.unlock()
                return
            }
            watchID = 0
            watchContinuation = nil
            state.unlock()
            try? sendLocked { (out: inout Outgoing) in out.add(HelperFrameType.unwatch, id, []) }
        }
        thread.stackSize = 256 << 10
        thread.start()
    }
}

extension SyncOperation {
    /// The paths the operation names.
    var paths: [String] {
        switch self {
        case .write(let path, _, _, _, _), .mkdir(let path, _), .symlink(let path, _), .remove(let path, _),
            .chmod(let path, _):
            return [path]
        case .rename(let from, let to):
            return [from, to]
        }
    }
}

/// `UTIME_OMIT` (a macro Swift does not import): leave that time as it is.
private let utimeOmit = (1 << 30) - 2

private func syncErrorText(_ code: Int32) -> String { String(cString: strerror(code)) }

// The POSIX calls under names of their own: inside `HelperChannel`, `open` and `close` would
// name its methods.
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 { open(path, flags, mode) }
private func posixClose(_ fd: Int32) { _ = close(fd) }
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }

extension Int64 {
    fileprivate func floorDivided(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor < 0) ? quotient - 1 : quotient
    }

    fileprivate func floorModulo(_ divisor: Int64) -> Int64 {
        let remainder = self % divisor
        return remainder < 0 ? remainder + divisor : remainder
    }
}
