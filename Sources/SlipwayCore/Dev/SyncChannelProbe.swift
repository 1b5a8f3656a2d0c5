internal import Foundation

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Measures the sync channel into a running container: the round trip of one small write
/// (``ContainerSyncRemote/apply(_:)`` of a single `.write`, from the call to its outcome) again
/// and again. `bench/sync-channel` runs it through `slipway __sync-channel` on a release build,
/// beside `docker exec` and `docker cp` of the same file.
public enum SyncChannelProbe {
    public struct Report: Sendable {
        /// Connecting (inspect, exec, HELLO; a first install included when it was needed).
        public var connect: Duration
        public var installedHelper: Bool
        /// One per write, in order.
        public var roundTrips: [Duration]
        /// The helper's process on this host (the exec's PID), for its CPU and memory.
        public var helperPID: Int
    }

    /// Connects to `container` with the helper `program`, writes `count` files of `size` bytes
    /// to `root/probe.bin` one at a time, and returns the remote (still open, its watch started
    /// when `watch`) with the figures.
    public static func measure(
        environment: [String: String]? = nil,
        container: String,
        program: String,
        root: String,
        count: Int,
        size: Int,
        watch: Bool
    ) async throws(SyncRemoteError) -> (ContainerSyncRemote, Report, AsyncThrowingStream<[String], any Error>?) {
        let source = NSTemporaryDirectory() + "/slipway-sync-probe-\(getpid())"
        guard FileManager.default.createFile(atPath: source, contents: Data(repeating: 0x61, count: size)) else {
            throw .unusable("cannot write the probe's file \(source)")
        }
        defer { unlink(source) }
        let started = ContinuousClock.now
        let remote = try await ContainerSyncRemote.connect(
            environment: environment,
            container: container,
            program: program,
            options: .init(root: root)
        )
        let connect = started.duration(to: .now)
        let changes = watch ? try await remote.changes() : nil
        var roundTrips: [Duration] = []
        roundTrips.reserveCapacity(count)
        for index in 0..<count {
            let operation = SyncOperation.write(
                path: "probe.bin",
                source: source,
                mode: 0o644,
                mtimeNanoseconds: 1_700_000_000_000_000_000 + Int64(index),
                expect: .anything
            )
            let before = ContinuousClock.now
            let outcome = try await remote.apply([operation])
            roundTrips.append(before.duration(to: .now))
            if case .failed(_, let message) = outcome.first {
                throw .unusable("the probe's write failed: \(message)")
            }
        }
        let channel = remote.channel
        let pid = (try? channel.api.inspectExec(channel.execID).pid) ?? 0
        return (
            remote,
            Report(connect: connect, installedHelper: remote.installedHelper, roundTrips: roundTrips, helperPID: pid),
            changes
        )
    }
}
