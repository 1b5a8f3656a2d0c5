internal import Foundation

/// The agent's dev sessions as `slipway dev`, `slipway dev status` and `slipway dev stop` use
/// them (docs/dev.md): handed over, asked, followed and ended over the agent's socket.
public enum AgentDevControl {
    /// The sessions the agent of `paths` runs for `config` (nil: all); nil when no agent runs.
    public static func sessions(_ paths: AgentPaths, config: String?) throws(AgentError) -> [AgentDevView]? {
        guard let client = try AgentClient(paths: paths) else { return nil }
        return try client.call(AgentRequest(op: "devStatus", config: config)).dev ?? []
    }

    /// The sessions recorded for the next agent (when none runs).
    public static func recorded(_ paths: AgentPaths) -> [AgentDevView] {
        AgentDevRecord.read(paths.devSessions).map { record in
            AgentDevView(
                id: record.id,
                config: record.start.config,
                options: record.start.options,
                state: "stopped",
                note: "the agent is not running; it resumes the session when it starts (`slipway dev` starts it)",
                containers: record.start.targets.map {
                    AgentDevView.Container(dev: $0.dev, name: $0.name, filesSynced: 0, lastLatencyMs: nil, conflicts: 0)
                },
                queue: 0,
                lastRebuild: nil,
                lastRebuildAt: nil,
                startedAt: record.startedAt
            )
        }
    }

    /// Hands `start` to the agent (which must run): the session's id, and whether one with
    /// the same options ran already (`attached`). Other options are refused with the reason.
    public static func start(
        _ paths: AgentPaths,
        _ start: AgentDevStart
    ) throws(AgentError) -> (
        id: Int, attached: Bool
    ) {
        guard let client = try AgentClient(paths: paths) else {
            throw AgentError.connection("the agent stopped answering; see \(paths.log)")
        }
        let answer = try client.call(AgentRequest(op: "devStart", dev: start))
        return (answer.id ?? 0, answer.message == "attached")
    }

    /// Asks the agent to end the sessions of `config` (nil: all); false when none ran.
    public static func stop(_ paths: AgentPaths, config: String?) throws(AgentError) -> Bool {
        guard let client = try AgentClient(paths: paths) else { return false }
        do {
            _ = try client.call(AgentRequest(op: "devStop", config: config))
            return true
        } catch {
            if case .refused(let message) = error, message.hasPrefix("no dev session runs") { return false }
            throw error
        }
    }

    /// How following ended.
    public enum FollowEnd: Sendable, Equatable {
        /// `item` asked to stop.
        case done
        /// The agent hung up (it stopped or died).
        case hungUp
        /// `keepGoing` said no.
        case cancelled
    }

    /// Follows the sessions: a `dev-status` item first, then `dev-out`, `dev-err`,
    /// `dev-status` and `dev-ended` items, the last `lines` of output first. `item` returns
    /// false to stop; `keepGoing` is asked every half second.
    public static func follow(
        _ paths: AgentPaths,
        lines: Int,
        keepGoing: () -> Bool = { true },
        item: (AgentResponse) -> Bool
    ) throws(AgentError) -> FollowEnd {
        guard let client = try AgentClient(paths: paths) else { return .hungUp }
        client.setTimeout(nil)
        try client.send(AgentRequest(op: "devFollow", lines: lines))
        while true {
            if !client.waitReadable(0.5) {
                if !keepGoing() { return .cancelled }
                continue
            }
            guard let response = try client.receive() else { return .hungUp }
            if !response.ok { throw AgentError.refused(response.error ?? "the agent stopped sending") }
            if !item(response) { return .done }
        }
    }

    /// Calls `handler` (once per signal, on a dispatch queue) on SIGINT, SIGTERM or SIGHUP
    /// while the returned value lives.
    public static func onSignals(_ handler: @escaping @Sendable (String) -> Void) -> DevSignalWatch {
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(name) }
            source.resume()
            sources.append(source)
        }
        return DevSignalWatch(sources: sources)
    }
}
