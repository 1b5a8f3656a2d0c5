internal import Foundation

/// What ``WatchSubscription/next(until:)`` returns.
public enum WatchDelivery: Sendable {
    case batch(WatchBatch)
    /// The deadline passed with no batch due.
    case timedOut
    /// ``WatchSubscription/cancel()`` was called (or the subscription's watcher stopped).
    case cancelled
}

/// One subscriber's view of the process-wide ``FileWatcher``: its roots, their states, and a
/// batcher that gathers the changed paths until they are due.
///
/// **Batching.** The watcher's reader adds each change as it handles the event; repeated
/// changes of one path are coalesced. A batch is due ``WatchBatching/quiet`` after its last
/// event (``WatchBatching/burstQuiet`` once it holds more than ``WatchBatching/burstEvents``
/// events), or ``WatchBatching/maximumDelay`` after its first, whichever comes first. No timer
/// runs: the consumer's own thread waits in ``next(until:)`` until the batch is due, so an idle
/// subscription costs no wake-ups, and a slow consumer (a digest of seconds) delays nobody
/// else's batches.
///
/// **Rescans** (an overflow, a failed watch, the root gone) go into the batch like changes.
/// Before a batch that asks for one is handed out, the watcher re-watches what it can (a
/// ``drain()``), so that a scan made after receiving it misses nothing that happens later.
///
/// Cancel it when done (``cancel()``): the watcher keeps its watches until then, and stops
/// (closing its inotify instance) when its last subscription is cancelled.
///
/// `@unchecked Sendable`: the batch state is guarded by `condition`; the roots' watch state
/// lives in the watcher, under its lock.
public final class WatchSubscription: @unchecked Sendable {
    /// The roots as given (trailing slashes removed); a root's index is its identity.
    public let roots: [WatchRoot]
    public let batching: WatchBatching
    let id: Int
    private let watcher: FileWatcher

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var changes: [PathChange] = []
    private var positions: [Key: Int] = [:]
    private var rescan: [Int: RescanReason] = [:]
    private var firstEvent: ContinuousClock.Instant?
    private var lastEvent: ContinuousClock.Instant?
    private var added: UInt64 = 0
    /// Events added since the last batch was handed out (before coalescing).
    private var eventsInBatch = 0
    private var cancelled = false

    private struct Key: Hashable {
        var root: Int
        var path: String
    }

    init(id: Int, roots: [WatchRoot], batching: WatchBatching, watcher: FileWatcher) {
        self.id = id
        self.roots = roots
        self.batching = batching
        self.watcher = watcher
    }

    // MARK: Consumer side

    /// Waits until a batch is due and returns it; `.timedOut` when `deadline` passes first
    /// (nil: no deadline), `.cancelled` once the subscription is cancelled.
    public func next(until deadline: ContinuousClock.Instant? = nil) -> WatchDelivery {
        var drained = false
        condition.lock()
        while true {
            if cancelled {
                condition.unlock()
                return .cancelled
            }
            let now = ContinuousClock.now
            var wake = deadline
            if let first = firstEvent, let last = lastEvent {
                let due = min(last + batching.quiet(afterEvents: eventsInBatch), first + batching.maximumDelay)
                if now >= due {
                    if !rescan.isEmpty && !drained {
                        // Watches first, then the consumer's scan: re-watch what can be.
                        drained = true
                        condition.unlock()
                        _ = watcher.drain(self)
                        condition.lock()
                        continue
                    }
                    let batch = WatchBatch(
                        changes: changes,
                        rescan: rescan,
                        sequence: added,
                        firstEvent: first,
                        lastEvent: last
                    )
                    changes = []
                    positions = [:]
                    rescan = [:]
                    firstEvent = nil
                    lastEvent = nil
                    eventsInBatch = 0
                    condition.unlock()
                    return .batch(batch)
                }
                wake = deadline.map { min($0, due) } ?? due
            }
            if let deadline, now >= deadline {
                condition.unlock()
                return .timedOut
            }
            if let wake {
                let seconds =
                    Double((wake - now).components.attoseconds) / 1e18 + Double((wake - now).components.seconds)
                _ = condition.wait(until: Date(timeIntervalSinceNow: max(0, seconds)))
            } else {
                condition.wait()
            }
        }
    }

    /// Handles every event queued before this call (and re-watches roots that need it), then
    /// returns each root's state. The changes those events made are in the batch (not yet
    /// necessarily due). After ``cancel()``, or if the watcher does not answer, every root is
    /// unknown.
    @discardableResult
    public func drain() -> [WatchState] {
        watcher.drain(self)
    }

    /// Each root's state as last handled (without draining).
    public var states: [WatchState] {
        watcher.states(of: self)
    }

    /// How many changes and rescans were added so far (coalesced ones too). With
    /// ``WatchBatch/sequence``, a consumer tells whether it has handled everything up to a
    /// point: ``drain()``, read this, and wait for a batch at least as far.
    public var sequence: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return added
    }

    /// Whether changes are waiting (due or not).
    public var hasPending: Bool {
        condition.lock()
        defer { condition.unlock() }
        return firstEvent != nil
    }

    /// Replaces a tree's or directory's filter (the `.dockerignore` changed). The directories
    /// it watches are brought in line by the next ``drain()``.
    public func setFilter(_ filter: (any WatchFilter)?, forRoot root: Int) {
        watcher.setFilter(filter, forRoot: root, of: self)
    }

    /// Stops watching this subscription's roots; a consumer waiting in ``next(until:)`` gets
    /// `.cancelled`. Safe to call more than once and from any thread but the watcher's.
    public func cancel() {
        watcher.remove(self)
        close()
    }

    // MARK: Watcher side (called by the reader, with the watcher's lock held)

    func add(_ change: PathChange) {
        condition.lock()
        defer { condition.unlock() }
        guard !cancelled else { return }
        added &+= 1
        // The consumer sleeps until the batch is due and then looks again: only a new batch
        // changes when it must wake (a later event only moves the quiet period's end later).
        let first = firstEvent == nil
        stamp()
        defer { if first { condition.signal() } }
        let key = Key(root: change.root, path: change.path)
        if let at = positions[key] {
            changes[at].kinds.formUnion(change.kinds)
            changes[at].isDirectory = change.isDirectory
            if change.renamedFrom != nil { changes[at].renamedFrom = change.renamedFrom }
        } else if rescan[change.root] == .tooManyChanges {
            // The root is scanned whole anyway.
        } else if changes.count >= batching.maximumPaths {
            rescan[change.root] = .tooManyChanges
        } else {
            positions[key] = changes.count
            changes.append(change)
        }
    }

    func addRescan(_ root: Int, _ reason: RescanReason) {
        condition.lock()
        defer { condition.unlock() }
        guard !cancelled else { return }
        added &+= 1
        stamp()
        // The first reason stays: it is the one that made the root unknown.
        if rescan[root] == nil || rescan[root] == .watchedAgain { rescan[root] = reason }
        condition.signal()
    }

    private func stamp() {
        eventsInBatch += 1
        let now = ContinuousClock.now
        if firstEvent == nil { firstEvent = now }
        lastEvent = now
    }

    /// Wakes the consumer for good (cancelled, or the watcher stopped).
    func close() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}
