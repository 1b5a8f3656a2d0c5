internal import Foundation

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

// MARK: - Containers

extension DockerAPI {
    /// `GET /containers/json`: the containers (stopped ones too unless `all` is false) that
    /// carry every label of `labels` (`key`, or `key=value`; an empty value matches only an
    /// empty label) and match `filters` (the engine's filters: `name`, `status`, `ancestor`…).
    public func containers(
        all: Bool = true,
        labels: [String] = [],
        filters: [String: [String]] = [:]
    ) throws(DockerAPIError) -> [DockerContainerSummary] {
        var filters = filters
        if !labels.isEmpty { filters["label", default: []] += labels }
        var path = "/containers/json?all=\(all ? 1 : 0)"
        if !filters.isEmpty { path += "&filters=" + Self.queryEscaped(Self.filtersJSON(filters)) }
        let list = try call("GET", path).json()
        guard let items = list.array else {
            throw .malformedResponse(request: "GET /containers/json", detail: "not a list")
        }
        return items.map(DockerContainerSummary.init)
    }

    /// `GET /containers/{id}/json`: the container (by ID, ID prefix or name), or nil when
    /// there is none.
    public func inspectContainer(_ container: String) throws(DockerAPIError) -> DockerContainer? {
        let response = try send("GET", "/containers/\(Self.pathEscaped(container))/json")
        if response.code == 404 { return nil }
        try response.requireSuccess()
        return DockerContainer(json: try response.json())
    }

    /// `POST /containers/create?name=`: a new container (not started). A spec with several
    /// networks is created on its primary one and then connected to the others
    /// (`POST /networks/{name}/connect`), as the API before 1.44 takes one at create.
    @discardableResult
    public func createContainer(
        name: String? = nil,
        spec: DockerContainerSpec
    ) throws(DockerAPIError)
        -> DockerCreatedContainer
    {
        let path = "/containers/create" + (name.map { "?name=" + Self.queryEscaped($0) } ?? "")
        let response = try call("POST", path, json: spec.body)
        let body = try response.json()
        guard let id = body["Id"]?.string else {
            throw .malformedResponse(request: response.request, detail: "no Id in the answer")
        }
        let primary = spec.primaryNetwork
        for (network, endpoint) in spec.networks.sorted(by: { $0.key < $1.key }) where network != primary {
            try call(
                "POST",
                "/networks/\(Self.pathEscaped(network))/connect",
                json: ["Container": .string(id), "EndpointConfig": endpoint]
            )
        }
        return DockerCreatedContainer(id: id, warnings: body["Warnings"]?.strings ?? [])
    }

    /// `POST /containers/{id}/start`. Returns false when it was already running.
    @discardableResult
    public func startContainer(_ container: String) throws(DockerAPIError) -> Bool {
        let response = try send("POST", "/containers/\(Self.pathEscaped(container))/start")
        if response.code == 304 { return false }
        try response.requireSuccess()
        return true
    }

    /// `POST /containers/{id}/stop?t=`: SIGTERM (or the container's stop signal), then SIGKILL
    /// after `timeout` seconds. Returns false when it was not running.
    @discardableResult
    public func stopContainer(_ container: String, timeout seconds: Int = 10) throws(DockerAPIError) -> Bool {
        let response = try send(
            "POST",
            "/containers/\(Self.pathEscaped(container))/stop?t=\(seconds)",
            limit: timeout + .seconds(max(0, seconds))
        )
        if response.code == 304 { return false }
        try response.requireSuccess()
        return true
    }

    /// `POST /containers/{id}/restart?t=`: a stop as ``stopContainer(_:timeout:)`` does it, then
    /// a start; the call returns once the container runs again.
    public func restartContainer(_ container: String, timeout seconds: Int = 10) throws(DockerAPIError) {
        try call(
            "POST",
            "/containers/\(Self.pathEscaped(container))/restart?t=\(seconds)",
            limit: timeout + .seconds(max(0, seconds))
        )
    }

    /// `POST /containers/{id}/kill?signal=`.
    public func killContainer(_ container: String, signal: String = "KILL") throws(DockerAPIError) {
        try call("POST", "/containers/\(Self.pathEscaped(container))/kill?signal=\(Self.queryEscaped(signal))")
    }

    /// What ``waitContainer(_:condition:timeout:)`` waits for.
    public enum WaitCondition: String, Sendable {
        case notRunning = "not-running"
        case nextExit = "next-exit"
        case removed
    }

    /// `POST /containers/{id}/wait?condition=`: blocks until the container reaches
    /// `condition` (at most `timeout`; nil: as long as it takes) and returns its exit status.
    public func waitContainer(
        _ container: String,
        condition: WaitCondition = .notRunning,
        timeout limit: Duration? = nil
    ) throws(DockerAPIError) -> Int {
        let path = "/containers/\(Self.pathEscaped(container))/wait?condition=\(condition.rawValue)"
        let deadline = Deadline.after(optional: limit)
        let exchange = try DockerExchange(
            socketPath: socketPath,
            method: "POST",
            path: path,
            deadline: .after(timeout),
            stallTimeout: timeout,
            headDeadline: .after(timeout)
        )
        let response = try exchange.response(deadline: deadline)
        try response.requireSuccess()
        let body = try response.json()
        if let message = body["Error"]?["Message"]?.string, !message.isEmpty {
            throw .status(request: response.request, code: response.code, message: message)
        }
        guard let status = body["StatusCode"]?.int else {
            throw .malformedResponse(request: response.request, detail: "no StatusCode in the answer")
        }
        return status
    }

    /// `POST /containers/{id}/rename?name=`.
    public func renameContainer(_ container: String, to name: String) throws(DockerAPIError) {
        try call("POST", "/containers/\(Self.pathEscaped(container))/rename?name=\(Self.queryEscaped(name))")
    }

    /// `DELETE /containers/{id}`: with `force`, a running container is killed first; with
    /// `volumes`, its anonymous volumes go too. Returns false when there was none.
    @discardableResult
    public func removeContainer(
        _ container: String,
        force: Bool = false,
        volumes: Bool = false
    ) throws(DockerAPIError)
        -> Bool
    {
        let response = try send(
            "DELETE",
            "/containers/\(Self.pathEscaped(container))?force=\(force)&v=\(volumes)",
            limit: timeout + .seconds(10)
        )
        if response.code == 404 { return false }
        try response.requireSuccess()
        return true
    }

    /// `POST /containers/{id}/resize?h=&w=`: the terminal size of a container with a TTY.
    public func resizeContainer(_ container: String, height: Int, width: Int) throws(DockerAPIError) {
        try call("POST", "/containers/\(Self.pathEscaped(container))/resize?h=\(height)&w=\(width)")
    }

    // MARK: Archive

    /// `PUT /containers/{id}/archive?path=`: unpacks the tar that `produce` writes into the
    /// directory `path` of the container — running, or created and not yet started. The tar is
    /// sent while it is written (chunked; nothing is held whole), and each piece may wait at
    /// most `stallTimeout` for the engine to take it. Entries keep their mode and numeric owner
    /// (unless `copyUIDGID`, which gives them the container's user instead).
    ///
    /// `produce` must not call ``TarWriter/finish()``: the archive is finished here.
    public func putArchive(
        container: String,
        path: String,
        noOverwriteDirNonDir: Bool = false,
        copyUIDGID: Bool = false,
        stallTimeout: Duration = .seconds(30),
        _ produce: (TarWriter) throws -> Void
    ) throws(DockerAPIError) {
        try withoutActuallyEscaping(produce) { produce throws(DockerAPIError) in
            try putArchive(
                container: container,
                path: path,
                noOverwriteDirNonDir: noOverwriteDirNonDir,
                copyUIDGID: copyUIDGID,
                stallTimeout: stallTimeout,
                body: .stream(contentType: "application/x-tar", length: nil) { writer in
                    let tar = writer.tar()
                    try produce(tar)
                    try tar.finish()
                }
            )
        }
    }

    /// `PUT /containers/{id}/archive?path=` with a body of your own (a tar already made).
    public func putArchive(
        container: String,
        path: String,
        noOverwriteDirNonDir: Bool = false,
        copyUIDGID: Bool = false,
        stallTimeout: Duration = .seconds(30),
        body: DockerRequestBody
    ) throws(DockerAPIError) {
        let query =
            "path=\(Self.queryEscaped(path))&noOverwriteDirNonDir=\(noOverwriteDirNonDir)&copyUIDGID=\(copyUIDGID)"
        let label = "PUT /containers/\(container)/archive"
        let exchange = try DockerExchange(
            socketPath: socketPath,
            method: "PUT",
            path: "/containers/\(Self.pathEscaped(container))/archive?\(query)",
            label: label,
            body: body,
            deadline: .after(timeout),
            stallTimeout: stallTimeout,
            headDeadline: .after(stallTimeout)
        )
        try exchange.response(deadline: .after(stallTimeout)).requireSuccess()
    }

    // MARK: Exec

    /// `POST /containers/{id}/exec`: an exec (not started); its ID.
    public func createExec(container: String, _ config: DockerExecConfig) throws(DockerAPIError) -> String {
        var body: [String: JSONValue] = [
            "Cmd": .strings(config.command), "AttachStdout": true, "AttachStderr": true,
            "AttachStdin": .bool(config.stdin), "Tty": .bool(config.tty), "Privileged": .bool(config.privileged),
        ]
        if !config.environment.isEmpty { body["Env"] = .strings(config.environment) }
        if let directory = config.workingDirectory { body["WorkingDir"] = .string(directory) }
        if let user = config.user { body["User"] = .string(user) }
        let response = try call("POST", "/containers/\(Self.pathEscaped(container))/exec", json: .object(body))
        guard let id = try response.json()["Id"]?.string else {
            throw .malformedResponse(request: response.request, detail: "no Id in the answer")
        }
        return id
    }

    /// `POST /exec/{id}/start` on a hijacked connection (`Upgrade: tcp`, answered `101`): the
    /// process's output as it is written — multiplexed frames split into stdout and stderr, or
    /// one raw stream with `tty` — and its stdin.
    public func startExec(_ id: String, tty: Bool = false) throws(DockerAPIError) -> DockerHijackedStream {
        let exchange = try DockerExchange(
            socketPath: socketPath,
            method: "POST",
            path: "/exec/\(Self.pathEscaped(id))/start",
            body: .json(["Detach": false, "Tty": .bool(tty)]),
            upgrade: true,
            deadline: .after(timeout),
            stallTimeout: timeout,
            headDeadline: .after(timeout)
        )
        guard exchange.succeeded else {
            try exchange.response(deadline: .after(timeout)).requireSuccess()
            throw .malformedResponse(request: exchange.request, detail: "status \(exchange.code)")
        }
        return DockerHijackedStream(reader: OutputReader(exchange: exchange, multiplexed: !tty))
    }

    /// `GET /exec/{id}/json`.
    public func inspectExec(_ id: String) throws(DockerAPIError) -> DockerExecState {
        let body = try call("GET", "/exec/\(Self.pathEscaped(id))/json").json()
        return DockerExecState(
            running: body["Running"]?.bool ?? false,
            exitCode: body["ExitCode"]?.int,
            pid: body["Pid"]?.int ?? 0,
            containerID: body["ContainerID"]?.string ?? ""
        )
    }

    /// `POST /exec/{id}/resize?h=&w=`: the terminal size of an exec with a TTY.
    public func resizeExec(_ id: String, height: Int, width: Int) throws(DockerAPIError) {
        try call("POST", "/exec/\(Self.pathEscaped(id))/resize?h=\(height)&w=\(width)")
    }

    /// Runs `config.command` in `container` and waits for it: its exit status and its output,
    /// stdout and stderr apart (one stream with a TTY). `input` is written to its stdin, which
    /// is then closed. Fails with ``DockerAPIError/outputTooLarge(request:limit:)`` beyond
    /// `outputLimit` bytes and with ``DockerAPIError/timedOut(request:after:)`` when the
    /// process runs longer than `limit` (nil: as long as it takes).
    public func exec(
        container: String,
        _ config: DockerExecConfig,
        input: [UInt8]? = nil,
        outputLimit: Int = 64 << 20,
        timeout limit: Duration? = nil
    ) throws(DockerAPIError) -> DockerExecResult {
        var config = config
        if input != nil { config.stdin = true }
        let id = try createExec(container: container, config)
        let stream = try startExec(id, tty: config.tty)
        defer { stream.cancel() }
        if let input {
            try stream.write(input)
            stream.closeInput()
        }
        let deadline = Deadline.after(optional: limit)
        var out: [UInt8] = []
        var err: [UInt8] = []
        while let piece = try stream.reader.next(deadline: deadline) {
            if piece.stream == .stdout || piece.stream == .stdin { out += piece.bytes } else { err += piece.bytes }
            guard out.count + err.count <= outputLimit else {
                throw .outputTooLarge(request: "exec \(config.command.joined(separator: " "))", limit: outputLimit)
            }
        }
        // The output ends as the process does; its status follows within moments.
        let started = ContinuousClock.now
        let wait = limit ?? timeout
        while true {
            let state = try inspectExec(id)
            if !state.running, let code = state.exitCode {
                return DockerExecResult(exitCode: code, standardOutput: out, standardError: err)
            }
            guard started.duration(to: .now) < wait else {
                throw .exitCodeUnavailable(request: "exec \(config.command.joined(separator: " "))", after: wait)
            }
            usleep(2_000)
        }
    }

    /// `exec` for a command line.
    public func exec(
        container: String,
        _ command: [String],
        user: String? = nil,
        workingDirectory: String? = nil,
        input: [UInt8]? = nil,
        timeout limit: Duration? = nil
    ) throws(DockerAPIError) -> DockerExecResult {
        try exec(
            container: container,
            DockerExecConfig(command: command, workingDirectory: workingDirectory, user: user),
            input: input,
            timeout: limit
        )
    }

    // MARK: Attach, logs, events

    /// `POST /containers/{id}/attach?stream=1` on a hijacked connection: the container's
    /// output from now on (with `logs`, what it wrote before too) and, with `stdin`, its input.
    /// `tty` nil asks the container whether it has one (its output is then one raw stream).
    public func attach(
        container: String,
        stdin: Bool = false,
        stdout: Bool = true,
        stderr: Bool = true,
        logs: Bool = false,
        tty: Bool? = nil
    ) throws(DockerAPIError) -> DockerHijackedStream {
        let raw: Bool
        if let tty { raw = tty } else { raw = try self.tty(of: container) }
        let query =
            "stream=1&stdin=\(stdin ? 1 : 0)&stdout=\(stdout ? 1 : 0)&stderr=\(stderr ? 1 : 0)&logs=\(logs ? 1 : 0)"
        let exchange = try DockerExchange(
            socketPath: socketPath,
            method: "POST",
            path: "/containers/\(Self.pathEscaped(container))/attach?\(query)",
            label: "POST /containers/\(container)/attach",
            upgrade: true,
            deadline: .after(timeout),
            stallTimeout: timeout,
            headDeadline: .after(timeout)
        )
        guard exchange.succeeded else {
            try exchange.response(deadline: .after(timeout)).requireSuccess()
            throw .malformedResponse(request: exchange.request, detail: "status \(exchange.code)")
        }
        return DockerHijackedStream(reader: OutputReader(exchange: exchange, multiplexed: !raw))
    }

    /// `GET /containers/{id}/logs`: what the container wrote (the last `tail` lines, or since
    /// `since` seconds after the epoch) and, with `follow`, what it writes until it stops or the
    /// stream is cancelled. `tty` nil asks the container whether it has one.
    public func logs(
        container: String,
        follow: Bool = false,
        stdout: Bool = true,
        stderr: Bool = true,
        since: Double? = nil,
        tail: Int? = nil,
        timestamps: Bool = false,
        tty: Bool? = nil
    ) throws(DockerAPIError) -> DockerOutputStream {
        let raw: Bool
        if let tty { raw = tty } else { raw = try self.tty(of: container) }
        var query = "follow=\(follow ? 1 : 0)&stdout=\(stdout ? 1 : 0)&stderr=\(stderr ? 1 : 0)"
        query += "&timestamps=\(timestamps ? 1 : 0)&tail=\(tail.map(String.init) ?? "all")"
        if let since { query += "&since=\(Self.timestamp(since))" }
        let exchange = try DockerExchange(
            socketPath: socketPath,
            method: "GET",
            path: "/containers/\(Self.pathEscaped(container))/logs?\(query)",
            label: "GET /containers/\(container)/logs",
            deadline: .after(timeout),
            stallTimeout: timeout,
            headDeadline: .after(timeout)
        )
        guard exchange.succeeded else {
            try exchange.response(deadline: .after(timeout)).requireSuccess()
            throw .malformedResponse(request: exchange.request, detail: "status \(exchange.code)")
        }
        return DockerOutputStream(reader: OutputReader(exchange: exchange, multiplexed: !raw))
    }

    /// `GET /events`: the engine's events matching `filters` (`type`, `event`, `container`,
    /// `label`, `image`…) as they happen, from `since` (seconds after the epoch; by default the
    /// moment of this call, so that nothing that happens after the call returns — or between
    /// the call and the engine's subscription — is missed) until `until` (nil: until cancelled).
    public func events(
        filters: [String: [String]] = [:],
        since: Double? = nil,
        until: Double? = nil
    ) throws(DockerAPIError) -> DockerEventStream {
        var query = "since=\(Self.timestamp(since ?? Self.now()))"
        if let until { query += "&until=\(Self.timestamp(until))" }
        if !filters.isEmpty { query += "&filters=" + Self.queryEscaped(Self.filtersJSON(filters)) }
        let exchange = try DockerExchange(
            socketPath: socketPath,
            method: "GET",
            path: "/events?\(query)",
            label: "GET /events",
            deadline: .after(timeout),
            stallTimeout: timeout,
            headDeadline: .after(timeout)
        )
        guard exchange.succeeded else {
            try exchange.response(deadline: .after(timeout)).requireSuccess()
            throw .malformedResponse(request: exchange.request, detail: "status \(exchange.code)")
        }
        return DockerEventStream(exchange: exchange)
    }

    // MARK: Helpers

    private func tty(of container: String) throws(DockerAPIError) -> Bool {
        guard let inspected = try inspectContainer(container) else {
            throw .status(
                request: "GET /containers/\(container)/json",
                code: 404,
                message: "No such container: \(container)"
            )
        }
        return inspected.tty
    }

    /// The engine's filter argument: a JSON object of lists.
    static func filtersJSON(_ filters: [String: [String]]) -> String {
        String(decoding: JSONValue.object(filters.mapValues { .strings($0) }).encoded(), as: UTF8.self)
    }

    /// Seconds after the epoch, now, with nanoseconds.
    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// `seconds.nanoseconds`, as the engine reads `since` and `until`.
    static func timestamp(_ seconds: Double) -> String {
        let whole = seconds.rounded(.down)
        let nanos = Int(((seconds - whole) * 1e9).rounded(.down))
        let fraction = String(nanos)
        return "\(Int64(whole)).\(String(repeating: "0", count: max(0, 9 - fraction.count)) + fraction)"
    }
}
