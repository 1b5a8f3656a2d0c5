internal import Foundation

/// The agent's line protocol (docs/agent.md): the client writes one JSON object per line, the
/// agent answers with JSON lines on the same connection.
///
/// - `{"op":"status"}` → `{"ok":true,"status":{…}}`
/// - `{"op":"submit","job":{"pipeline":…,"ref":…,"commit":…,"worktree":…},"wait":true}` →
///   `{"ok":true,"id":N}`, then with `wait` one more line when the job is over:
///   `{"ok":true,"event":"finished"|"superseded"|"dropped","id":N,"result":{…},"message":…}`
/// - `{"op":"follow","lines":N}` → the last N log lines, then every new one, as
///   `{"ok":true,"event":"log","line":…}`, until the client hangs up
/// - `{"op":"stop"}` → `{"ok":true}`; the agent stops (a running job is interrupted and
///   resumed by the next agent)
/// - `{"op":"devStart","dev":{…}}` → `{"ok":true,"id":N,"message":"started"|"attached"}`;
///   `{"op":"devStatus","config":…}` → `{"ok":true,"dev":[…]}`; `{"op":"devStop","config":…}`
///   → `{"ok":true,"message":…}` (the end follows as a `dev-ended` item to followers);
///   `{"op":"devFollow","lines":N}` → `dev-status`, then `dev-out`, `dev-err`, `dev-status`
///   and `dev-ended` items as they come, until the client hangs up (docs/agent.md)
///
/// - `{"op":"warm","config":DIR}` → `{"ok":true,"warm":{…}}`: the context digests the agent
///   keeps current for the config in DIR (``WarmSnapshot``; every file event queued before the
///   request handled first), or `{"ok":true,"message":REASON}` when it keeps none for it
///
/// Failures: `{"ok":false,"error":"…"}`; `"busy":true` when the agent turned the connection away
/// for its connection limits (docs/agent.md), which `AgentClient` retries for a while.
public struct AgentRequest: Codable, Sendable, Equatable {
    public var op: String
    public var job: SubmittedJob?
    public var wait: Bool?
    public var lines: Int?
    /// `devStart`: the session to start (or attach to).
    public var dev: AgentDevStart?
    /// `devStatus`, `devStop`: the config whose session is meant (nil: every session).
    public var config: String?

    public struct SubmittedJob: Codable, Sendable, Equatable {
        public var pipeline: String
        public var ref: String
        public var commit: String
        public var worktree: String
        /// The submitting command's environment that matters for the job (sent over the
        /// private socket; the agent keeps it in a 0600 file, the journal keeps its names).
        public var environment: CapturedEnvironment?
        public init(
            pipeline: String,
            ref: String,
            commit: String,
            worktree: String,
            environment: CapturedEnvironment? = nil
        ) {
            self.pipeline = pipeline
            self.ref = ref
            self.commit = commit
            self.worktree = worktree
            self.environment = environment
        }
    }

    public init(
        op: String,
        job: SubmittedJob? = nil,
        wait: Bool? = nil,
        lines: Int? = nil,
        dev: AgentDevStart? = nil,
        config: String? = nil
    ) {
        self.dev = dev
        self.config = config
        self.op = op
        self.job = job
        self.wait = wait
        self.lines = lines
    }
}

public struct AgentResponse: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: String?
    public var id: Int?
    public var event: String?
    public var line: String?
    public var result: JobResult?
    public var message: String?
    public var status: AgentStatus?
    /// With `ok: false`: the agent is at a connection limit; the request was not acted on and
    /// may be sent again on a new connection.
    public var busy: Bool?
    /// Dev sessions (`devStatus`, `dev-status` items).
    public var dev: [AgentDevView]?
    /// The config a `dev-out`, `dev-err` or `dev-ended` item is about.
    public var config: String?
    /// `warm`: the agent's current context digests for the config asked about.
    public var warm: WarmSnapshot?

    public init(
        ok: Bool,
        error: String? = nil,
        id: Int? = nil,
        event: String? = nil,
        line: String? = nil,
        result: JobResult? = nil,
        message: String? = nil,
        status: AgentStatus? = nil,
        busy: Bool? = nil,
        dev: [AgentDevView]? = nil,
        config: String? = nil,
        warm: WarmSnapshot? = nil
    ) {
        self.dev = dev
        self.config = config
        self.warm = warm
        self.busy = busy
        self.ok = ok
        self.error = error
        self.id = id
        self.event = event
        self.line = line
        self.result = result
        self.message = message
        self.status = status
    }
}

/// What `slipway status` shows.
public struct AgentStatus: Codable, Sendable, Equatable {
    public struct JobView: Codable, Sendable, Equatable {
        public var id: Int
        public var pipeline: String
        public var branch: String?
        public var commit: String
        public var worktree: String
        /// queued, awaiting-push, running, finished, failed, superseded, dropped
        public var state: String
        public var since: Double?
        public var result: JobResult?
        public var note: String?
    }
    public var pid: Int32?
    public var startedAt: Double?
    public var repository: String
    public var running: [JobView]
    public var queued: [JobView]
    public var awaitingPush: [JobView]
    /// The newest finished job per pipeline.
    public var last: [JobView]
    /// Jobs dropped since their pipeline's newest finished job (a push that did not happen or
    /// could not be confirmed: nothing was built or deployed for it). Optional for agents
    /// from before it existed.
    public var dropped: [JobView]?
    /// The dev sessions the agent runs (or, without an agent, those recorded for the next
    /// one to resume). Optional for agents from before it existed.
    public var dev: [AgentDevView]?

    public init(queue: JobQueue, repository: String, pid: Int32?, startedAt: Double?) {
        self.pid = pid
        self.startedAt = startedAt
        self.repository = repository
        running = queue.running.map(Self.view)
        queued = queue.queued.map(Self.view)
        awaitingPush = queue.awaiting.map(Self.view)
        last = queue.lastResults.keys.sorted().compactMap { queue.entries[queue.lastResults[$0]!.job.id] }.map(
            Self.view
        )
        dropped = queue.recentlyDropped().map(Self.view)
    }

    static func view(_ e: JobQueue.Entry) -> JobView {
        var v = JobView(
            id: e.job.id,
            pipeline: e.job.pipeline,
            branch: e.job.branch,
            commit: e.job.commit,
            worktree: e.job.worktree,
            state: "",
            since: nil,
            result: nil,
            note: nil
        )
        switch e.state {
        case .awaitingPush:
            v.state = "awaiting-push"
            v.note = e.job.push.map { "waiting for the push to \($0.remote) to finish" }
        case .queued:
            v.state = "queued"
            if e.resumed { v.note = "resumed: it was running when the agent stopped" }
        case .running(_, _, let since):
            v.state = "running"
            v.since = since
        case .finished(let r):
            v.state = r.ok ? "finished" : "failed"
            v.result = r
        case .superseded(let by):
            v.state = "superseded"
            v.note = "by job \(by)"
        case .dropped(let reason):
            v.state = "dropped"
            v.note = reason
        }
        return v
    }
}

/// A connection to a running agent.
///
/// When the agent answers a request with `busy` (it is at a connection limit and did not act
/// on it), the client connects again and sends the request again, for up to `busyRetry`
/// seconds, before it hands the refusal to the caller.
public final class AgentClient {
    private var fd: Int32
    private let paths: AgentPaths
    private var timeout: Double?
    private var buffer: [UInt8] = []
    /// The request whose first answer has not arrived yet (it may be sent again).
    private var unanswered: AgentRequest?
    private var retryUntil = Date.distantPast
    public var busyRetry: Double = 10

    /// Connects to the agent of `paths`; nil when no agent answers there.
    public init?(paths: AgentPaths, timeout: Double = 5) throws(AgentError) {
        guard let fd = try Self.connect(paths) else { return nil }
        self.fd = fd
        self.paths = paths
        setTimeout(timeout)
    }

    private static func connect(_ paths: AgentPaths) throws(AgentError) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AgentError.socket("socket(): \(String(cString: strerror(errno)))") }
        guard var address = paths.socketAddress() else {
            close(fd)
            throw AgentError.socket("\(paths.socket): the socket path is too long")
        }
        var connected: Int32
        repeat {
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        } while connected != 0 && errno == EINTR
        if connected != 0 {
            let code = errno
            close(fd)
            if code == ENOENT || code == ECONNREFUSED { return nil }
            if code == EACCES || code == EPERM {
                throw AgentError.socket(
                    "\(paths.socket): permission denied; the agent's socket is private to the user who started it"
                )
            }
            throw AgentError.socket("cannot connect to \(paths.socket): \(String(cString: strerror(code)))")
        }
        return fd
    }

    deinit { close(fd) }

    /// How long a read may wait (nil: forever).
    public func setTimeout(_ seconds: Double?) {
        timeout = seconds
        var tv = timeval(tv_sec: 0, tv_usec: 0)
        if let seconds {
            tv.tv_sec = Int(seconds)
            tv.tv_usec = Int((seconds - Double(Int(seconds))) * 1_000_000)
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    public func send(_ request: AgentRequest) throws(AgentError) {
        unanswered = request
        retryUntil = Date().addingTimeInterval(busyRetry)
        if write(request) { return }
        let reason = String(cString: strerror(errno))
        // The agent may have said why before it hung up (a refused user, a busy agent: then
        // `receive` sends the request again).
        if let answer = try? receive() {
            pushBack(answer)
            return
        }
        throw AgentError.connection("the agent closed the connection: \(reason)")
    }

    /// Writes `request` as one line; false when the connection failed.
    private func write(_ request: AgentRequest) -> Bool {
        guard var data = try? JSONEncoder().encode(request) else { return false }
        data.append(UInt8(ascii: "\n"))
        return data.withUnsafeBytes { buf -> Bool in
            guard let base = buf.baseAddress else { return false }
            var offset = 0
            while offset < buf.count {
                let n = Glibc.send(fd, base + offset, buf.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }

    private var pushedBack: AgentResponse?

    private func pushBack(_ response: AgentResponse) { pushedBack = response }

    /// Whether a response can be read within `seconds` (one is buffered, or the socket has
    /// data or was closed).
    public func waitReadable(_ seconds: Double) -> Bool {
        if pushedBack != nil || buffer.contains(UInt8(ascii: "\n")) { return true }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, Int32(seconds * 1000)) > 0
    }

    /// The next response; nil when the agent hung up.
    public func receive() throws(AgentError) -> AgentResponse? {
        if let response = pushedBack {
            pushedBack = nil
            return response
        }
        var delay: useconds_t = 20_000
        while true {
            let response = try readResponse()
            if let request = unanswered, let response, response.busy == true, !response.ok, Date() < retryUntil {
                // Turned away before the agent acted on it: again, on a new connection.
                usleep(delay)
                delay = min(delay * 2, 250_000)
                guard let fd = try Self.connect(paths) else { return nil }
                close(self.fd)
                self.fd = fd
                buffer = []
                setTimeout(timeout)
                if !write(request) { continue }
                continue
            }
            unanswered = nil
            if var refused = response, refused.busy == true, !refused.ok {
                refused.error =
                    (refused.error ?? "busy")
                    + " (the agent of \(paths.commonDir) stayed at its connection limits for \(Int(busyRetry)) s; `slipway agent logs` says who holds them)"
                return refused
            }
            return response
        }
    }

    private func readResponse() throws(AgentError) -> AgentResponse? {
        while true {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                guard let response = try? JSONDecoder().decode(AgentResponse.self, from: Data(line)) else {
                    throw AgentError.connection(
                        "the agent sent a line that is not a response: \(String(decoding: line.prefix(120), as: UTF8.self))"
                    )
                }
                return response
            }
            var chunk = [UInt8](repeating: 0, count: 16_384)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { return nil }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw AgentError.connection("the agent did not answer in time")
                }
                // A reset after the agent's last line: what it said is in `buffer` already.
                if errno == ECONNRESET { return nil }
                throw AgentError.connection("reading from the agent: \(String(cString: strerror(errno)))")
            }
            buffer += chunk[..<n]
        }
    }

    /// Sends `request` and returns the first answer (an error answer is thrown).
    public func call(_ request: AgentRequest) throws(AgentError) -> AgentResponse {
        try send(request)
        guard let response = try receive() else {
            throw AgentError.connection("the agent closed the connection without answering")
        }
        if !response.ok { throw AgentError.refused(response.error ?? "the agent refused the request") }
        return response
    }
}
