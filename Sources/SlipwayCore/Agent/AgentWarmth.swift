internal import Foundation

/// The agent's one `DigestWarmer` (one worktree at a time, on the process's one `FileWatcher`): it keeps
/// the contexts of one worktree warm — the main worktree from the start, then the worktree of
/// the latest job — and hands each job run there a fresh snapshot (`SLIPWAY_WARM_DIGESTS`).
/// A job elsewhere, or one that starts before the warmer has settled, walks as a foreground
/// build does; a warm entry is used only when it matches exactly, so a stale warmer costs a
/// walk, never a wrong digest.
///
/// `@unchecked Sendable`: `warmer`, `directory`, `configStamp` and `loading` are read and
/// written with `lock` held.
final class AgentWarmth: @unchecked Sendable {
    let environment: [String: String]
    let note: @Sendable (String) -> Void
    private let lock = NSLock()
    private var warmer: DigestWarmer?
    private var directory: String?
    private var configStamp: IndexIdentity?
    private var loading = false

    init(environment: [String: String], note: @escaping @Sendable (String) -> Void) {
        self.environment = environment
        self.note = note
    }

    /// The environment a job in `directory` gets: the snapshot written to `path`.
    func prepare(directory: String, snapshotPath: String) -> [String: String] {
        lock.lock()
        let warmer = self.directory == directory ? self.warmer : nil
        lock.unlock()
        guard let warmer else { return [:] }
        let snapshot = warmer.snapshot()
        guard !snapshot.entries.isEmpty else { return [:] }
        do {
            try snapshot.write(to: snapshotPath)
        } catch {
            note("warm digests: \(error.message)")
            return [:]
        }
        return [WarmSnapshot.environmentVariable: snapshotPath]
    }

    /// What a build in `directory` (the config's directory) may take instead of walking: the
    /// warmer's snapshot — every event queued before this call handled first — or why there is
    /// none.
    func answer(directory: String) -> WarmAnswer {
        lock.lock()
        let (warmer, watched, loading) = (self.warmer, self.directory, self.loading)
        lock.unlock()
        guard let warmer, watched == directory else {
            if loading { return WarmAnswer(snapshot: nil, reason: "the agent is loading the config to watch it") }
            return WarmAnswer(
                snapshot: nil,
                reason: watched.map { "the agent keeps the contexts of \($0) warm, not of this directory" }
                    ?? "the agent watches no build contexts (its log says why)"
            )
        }
        return WarmAnswer(snapshot: warmer.snapshot())
    }

    /// Makes sure the warmer watches `directory` with its current config (in the background:
    /// loading the config and the first digest take a while).
    func watch(_ directory: String) {
        lock.lock()
        let config = directory + "/devspace.yaml"
        let stamp = IndexIdentity.of(config)
        if loading || (self.directory == directory && configStamp == stamp && warmer != nil) || stamp == nil {
            lock.unlock()
            return
        }
        loading = true
        lock.unlock()
        let thread = Thread { [self] in
            let loaded = Self.load(directory, environment: environment)
            lock.lock()
            let old = warmer
            warmer = nil
            self.directory = nil
            lock.unlock()
            old?.stop()
            var started: DigestWarmer?
            switch loaded {
            case .success(let config):
                let candidate = DigestWarmer(loaded: config, notes: note)
                do {
                    try candidate.start()
                    started = candidate
                    note("warm digests: watching the build contexts of \(directory)")
                } catch {
                    note("warm digests: \(directory): \(error); builds there walk their contexts")
                }
            case .failure(let message):
                note(
                    "warm digests: \(directory): the config does not load (\(message)); builds there walk their contexts"
                )
            }
            lock.lock()
            warmer = started
            self.directory = started == nil ? nil : directory
            configStamp = stamp
            loading = false
            lock.unlock()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    func stop() {
        lock.lock()
        let old = warmer
        warmer = nil
        lock.unlock()
        old?.stop()
    }

    /// `@unchecked Sendable`: written once by the loading task before it signals `done`, read
    /// only after `done.wait()` returns.
    private final class Box: @unchecked Sendable {
        var result: Result<LoadedConfig, ConfigError>?
    }

    private enum Loaded {
        case success(LoadedConfig)
        case failure(String)
    }

    private static func load(_ directory: String, environment: [String: String]) -> Loaded {
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let options = LoadOptions(workingDirectory: directory, environment: environment)
        Task {
            do throws(ConfigError) {
                box.result = .success(try await ConfigLoader.load(options))
            } catch {
                box.result = .failure(error)
            }
            done.signal()
        }
        done.wait()
        switch box.result {
        case .success(let loaded)?: return .success(loaded)
        case .failure(let error)?: return .failure(error.diagnostics.first.map { "\($0)" } ?? "\(error)")
        case nil: return .failure("no result")
        }
    }
}
