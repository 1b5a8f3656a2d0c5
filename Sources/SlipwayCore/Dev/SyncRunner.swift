internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// Runs a ``SyncPlan``: one ``SyncEngine`` per target, each over a ``ContainerSyncRemote`` into
/// its container, all at once. What `slipway sync` does after planning (and, next, what a dev
/// session does for its `sync[]`).
public enum SyncRunner {
    /// How long a disconnected sync keeps asking for its container again (a `docker restart`
    /// takes up to its stop timeout; a re-creation by `deploy` a few seconds).
    public static let reconnectWindow: Duration = .seconds(30)

    /// The engine's configuration for one target of a plan. `stateDirectory` is the directory
    /// whose `.devspace/slipway/` keeps what each sync last synced (the config's directory).
    public static func configuration(
        for target: SyncPlan.Target,
        timing: SyncTiming,
        stateDirectory: String,
        hookInbox: String? = nil
    ) throws(SyncConfigurationError) -> SyncConfiguration {
        let filter = try SyncFilter.load(
            SyncExcludes(
                excludePaths: target.excludePaths,
                uploadExcludePaths: target.uploadExcludePaths,
                downloadExcludePaths: target.downloadExcludePaths
            ),
            baseDirectory: target.localRoot
        )
        let remote = "\(target.container.name):\(target.remoteRoot)"
        var configuration = SyncConfiguration(
            localRoot: target.localRoot,
            name: "\(target.localRoot) → \(remote)",
            initialSync: InitialSyncStrategy(rawValue: target.initialSync.rawValue) ?? .preferLocal,
            compareBy: InitialSyncCompareBy(rawValue: target.compareBy.rawValue) ?? .mtime,
            filter: filter,
            disableUpload: !target.upload,
            disableDownload: !target.download,
            noWatch: !target.watch,
            timing: timing,
            statePath: SyncState.path(
                configDirectory: stateDirectory,
                identifier: SyncState.identifier(localRoot: target.localRoot, remote: remote)
            ),
            skipping: [stateDirectory + "/.devspace"]
        )
        configuration.hookInbox = hookInbox
        return configuration
    }

    /// Connects to `target`'s container (by name, so that a re-created container is found
    /// again), installing the helper `program` when it is missing or stale.
    public static func connect(
        _ target: SyncPlan.Target,
        program: String,
        environment: [String: String]
    ) async throws(SyncRemoteError) -> ContainerSyncRemote {
        try await ContainerSyncRemote.connect(
            environment: environment,
            container: target.container.name,
            program: program,
            options: ContainerSyncRemote.Options(root: target.remoteRoot)
        )
    }

    /// Runs every target of `plan` until each stops (after its initial sync when it does not
    /// watch; else until ``SyncEngine/stop()`` or a failure). `started` receives the engines,
    /// so that the caller can stop them. Returns one failure per target that failed, in the
    /// plan's order, each naming its target.
    public static func run(
        _ plan: SyncPlan,
        program: String,
        stateDirectory: String,
        environment: [String: String],
        hookInbox: String? = nil,
        events: @escaping @Sendable (_ target: Int, SyncEvent) -> Void,
        started: @escaping @Sendable ([SyncEngine]) -> Void = { _ in }
    ) async -> [(target: Int, message: String)] {
        var engines: [(Int, SyncEngine)] = []
        var failures: [(target: Int, message: String)] = []
        for (index, target) in plan.targets.enumerated() {
            // The container's / holds /proc, /sys and /dev: downloading it would never end, and
            // mirroring into it would delete the container's system.
            if target.remoteRoot == "/" {
                failures.append(
                    (
                        index,
                        "\(target.origin): the path in \(target.container.name) is / (its working directory is /, or the path says so); sync a directory of the application instead, e.g. --path .:/app"
                    )
                )
                continue
            }
            let configuration: SyncConfiguration
            do {
                configuration = try Self.configuration(
                    for: target,
                    timing: plan.timing,
                    stateDirectory: stateDirectory,
                    hookInbox: hookInbox
                )
            } catch {
                failures.append((index, "\(target.origin): \(error)"))
                continue
            }
            let remote: ContainerSyncRemote
            do {
                remote = try await connect(target, program: program, environment: environment)
            } catch {
                failures.append((index, "\(configuration.name): \(error)"))
                continue
            }
            let engine = SyncEngine(
                configuration: configuration,
                remote: remote,
                reconnect: { _ in await reconnect(target, program: program, environment: environment) },
                events: { events(index, $0) }
            )
            engines.append((index, engine))
        }
        started(engines.map(\.1))
        let results = await withTaskGroup(of: (Int, String?).self) { group in
            for (index, engine) in engines {
                group.addTask {
                    do {
                        try await engine.run()
                        return (index, nil)
                    } catch {
                        return (index, "\(error)")
                    }
                }
            }
            var collected: [(Int, String?)] = []
            for await result in group { collected.append(result) }
            return collected
        }
        for (index, message) in results { if let message { failures.append((index, message)) } }
        return failures.sorted { $0.target < $1.target }
    }

    /// A new remote for `target` after its channel dropped: asked again every 250 ms for
    /// ``reconnectWindow``; nil when the container did not come back.
    static func reconnect(
        _ target: SyncPlan.Target,
        program: String,
        environment: [String: String]
    ) async -> (any SyncRemote)? {
        let deadline = ContinuousClock.now + reconnectWindow
        while ContinuousClock.now < deadline {
            if let remote = try? await connect(target, program: program, environment: environment) { return remote }
            try? await Task.sleep(for: .milliseconds(250))
        }
        return nil
    }
}
