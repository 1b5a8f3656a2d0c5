import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// Helpers of the sync engine's tests: trees on disk, an engine run in the background, the
// events it reported, and waiting for a condition.

/// Events a sync reported, in order (thread-safe).
final class SyncEventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [SyncEvent] = []

    func append(_ event: SyncEvent) { lock.withLock { events.append(event) } }

    var all: [SyncEvent] { lock.withLock { events } }
    var count: Int { lock.withLock { events.count } }

    func since(_ index: Int) -> [SyncEvent] { lock.withLock { Array(events[min(index, events.count)...]) } }

    var decisions: [SyncDecision] {
        all.compactMap { if case .decision(let decision) = $0 { decision } else { nil } }
    }

    func decisions(since index: Int) -> [SyncDecision] {
        since(index).compactMap { if case .decision(let decision) = $0 { decision } else { nil } }
    }

    func batches(since index: Int = 0) -> [SyncBatchReport] {
        since(index).compactMap { if case .batch(let report) = $0 { report } else { nil } }
    }

    /// The decisions that changed something (not `unchanged`).
    func changes(since index: Int = 0) -> [SyncDecision] {
        decisions(since: index).filter { $0.action != .unchanged }
    }
}

/// Polls `condition` every 5 ms until it holds or `timeout` passes; records an issue then.
/// It suspends between polls and never blocks its thread: the engine under test starts as a
/// task on Swift's cooperative pool (two threads on a machine of two cores), so two tests that
/// each held a pool thread while waiting for their own engine would each wait for the other
/// (seen in CI: both sync tests timed out after 60 s with their engines never started, and every
/// other test stalled behind them).
@discardableResult
func waitUntil(
    _ what: String,
    timeout: Duration = .seconds(10),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    if try condition() { return true }
    Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
    return false
}

/// A file tree as a map: relative path → "f:<sha256>:<mode>", "d", or "l:<target>".
func treeSnapshot(_ root: String, skipping: (String) -> Bool = { _ in false }) -> [String: String] {
    var result: [String: String] = [:]
    var pending = [""]
    while let relative = pending.popLast() {
        let directory = relative.isEmpty ? root : root + "/" + relative
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { continue }
        for name in names {
            let path = relative.isEmpty ? name : relative + "/" + name
            if skipping(path) { continue }
            var info = stat()
            guard lstat(directory + "/" + name, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                result[path] = "d"
                pending.append(path)
            case S_IFLNK:
                result[path] = "l:" + (LocalTree.readLink(directory + "/" + name) ?? "?")
            default:
                let digest = LocalTree(root: directory).hash(name) ?? "unreadable"
                result[path] = "f:\(digest):\(String(info.st_mode & 0o777, radix: 8))"
            }
        }
    }
    return result
}

func putFile(_ path: String, _ text: String, mode: mode_t? = nil) throws {
    let directory = (path as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    if let mode { chmod(path, mode) }
}

func readText(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
}

func makeDirs(_ path: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
}

/// Sets a file's mtime to `seconds` since the epoch.
func setMtime(_ path: String, seconds: Int) {
    var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
    utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
}

/// A sync engine running in the background on `configuration` against `remote`.
final class RunningSync: @unchecked Sendable {
    let engine: SyncEngine
    let log: SyncEventLog
    private let task: Task<SyncError?, Never>

    init(
        _ configuration: SyncConfiguration,
        remote: any SyncRemote,
        reconnect: @escaping @Sendable (SyncRemoteError) async -> (any SyncRemote)? = { _ in nil },
        watchLimitPath: String? = nil
    ) {
        let log = SyncEventLog()
        let engine = SyncEngine(
            configuration: configuration,
            remote: remote,
            reconnect: reconnect,
            events: { log.append($0) }
        )
        if let watchLimitPath { engine.watchLimitPath = watchLimitPath }
        self.engine = engine
        self.log = log
        task = Task {
            do throws(SyncError) {
                try await engine.run()
                return nil
            } catch {
                return error
            }
        }
    }

    /// Waits until the engine watches both sides (its initial sync is done).
    func started(sourceLocation: SourceLocation = #_sourceLocation) async {
        // The initial sync first: in a full run on 2 cores it once took over 10 s.
        await waitUntil("the sync to start watching", timeout: .seconds(60), sourceLocation: sourceLocation) {
            log.all.contains(.watching) || finishedEarly
        }
    }

    /// The log's length once the engine is between batches: no event for 100 ms and the last one
    /// not a decision (a batch's decisions are followed by its report). A mark taken as soon as
    /// the trees agree could fall before the decisions of the batch that made them agree: the
    /// files are applied before the batch reports them.
    func settledCount() async -> Int {
        var count = log.count
        var stableSince = ContinuousClock.now
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
            let now = log.count
            if now != count {
                count = now
                stableSince = ContinuousClock.now
                continue
            }
            let lastIsDecision = log.all.last.map { if case .decision = $0 { true } else { false } } ?? false
            if !lastIsDecision && ContinuousClock.now - stableSince >= .milliseconds(100) { return count }
        }
        return log.count
    }

    private var finishedEarly: Bool {
        if case .stopped = engine.status.phase { return true }
        return false
    }

    /// Stops the engine and returns the error `run()` ended with.
    @discardableResult
    func stop() async -> SyncError? {
        engine.stop()
        return await task.value
    }

    /// `run()`'s end, without stopping it.
    func finished() async -> SyncError? { await task.value }
}

/// Runs one sync to completion without watching (`noWatch`) and returns its events.
func syncOnce(_ configuration: SyncConfiguration, remote: any SyncRemote) async throws -> SyncEventLog {
    var configuration = configuration
    configuration.noWatch = true
    let log = SyncEventLog()
    let engine = SyncEngine(configuration: configuration, remote: remote, events: { log.append($0) })
    try await engine.run()
    return log
}

/// A local and a remote directory under `dir`.
func syncTrees(_ dir: String) throws -> (local: String, remote: String) {
    try makeDirs(dir + "/local")
    try makeDirs(dir + "/remote")
    return (dir + "/local", dir + "/remote")
}

/// The configuration the tests start from: the state under `dir/state`.
func testConfiguration(
    _ local: String,
    dir: String,
    strategy: InitialSyncStrategy = .mirrorLocal,
    filter: SyncFilter = SyncFilter(),
    timing: SyncTiming = SyncTiming()
) -> SyncConfiguration {
    SyncConfiguration(
        localRoot: local,
        name: "test",
        initialSync: strategy,
        filter: filter,
        timing: timing,
        statePath: dir + "/state/sync.json"
    )
}

/// Suspends for `milliseconds` without holding a thread (see ``waitUntil(_:timeout:sourceLocation:_:)``).
func pause(milliseconds: Int) async {
    try? await Task.sleep(for: .milliseconds(milliseconds))
}
