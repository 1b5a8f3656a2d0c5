import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The sync helper (Sources/SlipwayHelper) and its host side (`ContainerSyncRemote`) against
// real containers: a `FROM scratch` one (the pause program as PID 1 and nothing else) and a
// busybox one, as root and as 1234:1234. What a test checks inside a container is read with
// `docker cp … -` (the engine's archive, not the helper) wherever it can be.

/// A program `swift build` made beside the test bundle (slipway-helper, slipway-pause).

private let busybox = "slipway/busybox:latest"

/// Which image, which user, which root.
struct SyncVariant: CustomTestStringConvertible, Sendable {
    var scratch: Bool
    var user: String?
    var owner: SyncOwner?

    var root: String { scratch ? "/data/sync" : (user == nil ? "/app/src" : "/tmp/sync") }
    var expectedUID: UInt32 { owner?.uid ?? (user == nil ? 0 : 1234) }
    var expectedGID: UInt32 { owner?.gid ?? (user == nil ? 0 : 1234) }
    var testDescription: String {
        (scratch ? "scratch" : "busybox") + (user.map { " as \($0)" } ?? " as root")
            + (owner.map { " owned by \($0.uid):\($0.gid)" } ?? "")
    }

    static let all = [
        SyncVariant(scratch: true, user: nil), SyncVariant(scratch: true, user: "1234:1234"),
        SyncVariant(scratch: false, user: nil), SyncVariant(scratch: false, user: "1234:1234"),
        SyncVariant(scratch: false, user: nil, owner: SyncOwner(uid: 4321, gid: 4321)),
    ]
}

/// The containers of one test (labelled with the test's own value), removed through the CLI at
/// the end.
private struct Containers {
    let api = DockerAPI()
    static let labelKey = "dev.slipway.sync-helper-test"
    let value = UUID().uuidString.lowercased()

    /// A running container of `variant`'s image. A scratch one is created, given the helper
    /// (``SyncHelperProgram/install``, before it starts) and a world-writable `/data`, then
    /// started; a busybox one just runs (the helper is copied in when slipway connects).
    func start(_ variant: SyncVariant, extraHostConfig: [String: JSONValue] = [:]) async throws -> String {
        let id = try await offPool { try create(variant, extraHostConfig: extraHostConfig) }
        if variant.scratch {
            try await SyncHelperProgram.install(api: api, container: id, program: try builtProgram("slipway-helper"))
        }
        try await offPool {
            if variant.scratch {
                try api.putArchive(container: id, path: "/") { tar in
                    try tar.appendDirectory("data", TarAttributes(mode: 0o1777))
                }
            }
            _ = try api.startContainer(id)
        }
        return id
    }

    private func create(_ variant: SyncVariant, extraHostConfig: [String: JSONValue]) throws -> String {
        let image: String
        let command: [String]?
        if variant.scratch {
            image = try PauseImage.ensure(api, program: try builtProgram("slipway-pause"))
            command = nil
        } else {
            image = busybox
            command = ["sleep", "3600"]
        }
        var spec = DockerContainerSpec(
            image: image,
            command: command,
            labels: [Self.labelKey: value],
            user: variant.user,
            networkMode: "none"
        )
        for (key, value) in extraHostConfig { spec.hostConfig[key] = value }
        return try api.createContainer(name: nil, spec: spec).id
    }

    func removeAll() {
        _ = try? sh(
            [
                "sh", "-c", "docker ps -aq --filter \"label=$1\" | xargs -r docker rm -f -v", "sh",
                "\(Self.labelKey)=\(value)",
            ],
            cwd: "/"
        )
    }
}

/// One entry of a container's tree as the engine's archive shows it.
private struct Listed: Equatable {
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var size: UInt64
    var mtimeSeconds: Int64
    var type: String
    var link: String
    var sha256: String
}

/// The tree under `root` in `container`, read with `docker cp CONTAINER:ROOT -` (paths relative
/// to the root).
private func listing(_ container: String, _ root: String) async throws -> [String: Listed] {
    try await offPool { try listingNow(container, root) }
}

private func listingNow(_ container: String, _ root: String) throws -> [String: Listed] {
    let script = """
        import hashlib, sys, tarfile
        archive = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
        for m in archive:
            digest = hashlib.sha256(archive.extractfile(m).read()).hexdigest() if m.isfile() else ""
            kind = m.type.decode() if isinstance(m.type, bytes) else m.type
            print("\\t".join([m.name, str(m.mode), str(m.uid), str(m.gid), str(m.size), str(int(m.mtime)), kind, m.linkname, digest]))
        """
    let result = try sh(
        ["sh", "-c", "docker cp \"$1:$2\" - | python3 -c \"$3\"", "sh", container, root, script],
        cwd: "/"
    )
    guard result.status == 0 else { throw TestSupportError("docker cp \(container):\(root): \(result.stderr)") }
    var tree: [String: Listed] = [:]
    for line in result.stdout.split(separator: "\n") {
        let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 9 else { continue }
        let parts = f[0].split(separator: "/", maxSplits: 1)
        guard parts.count == 2 else { continue }  // the root itself
        tree[String(parts[1])] = Listed(
            mode: (UInt32(f[1]) ?? 0) & 0o7777,
            uid: UInt32(f[2]) ?? 0,
            gid: UInt32(f[3]) ?? 0,
            size: UInt64(f[4]) ?? 0,
            mtimeSeconds: Int64(f[5]) ?? 0,
            type: f[6],
            link: f[7],
            sha256: f[8]
        )
    }
    return tree
}

private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        throw TestSupportError("cannot write \(path)")
    }
}

/// Runs a blocking call on a thread of its own: the tests' engine and CLI calls must not hold
/// the few threads of Swift's cooperative pool, which every other test needs too.

private func docker(_ args: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await offPool { try sh(["docker"] + args, cwd: "/") }
}

private func withoutHash(_ entry: SyncEntry) -> SyncEntry {
    var entry = entry
    entry.sha256 = nil
    return entry
}

/// Every batch of `changes` until `enough` holds for the paths seen, or 10 s passed.
private func collect(
    _ changes: AsyncThrowingStream<[String], any Error>,
    until enough: @escaping @Sendable (Set<String>) -> Bool
) async throws -> Set<String> {
    let collector = Task {
        var seen: Set<String> = []
        for try await batch in changes {
            seen.formUnion(batch)
            if enough(seen) { break }
        }
        return seen
    }
    let timer = Task {
        try await Task.sleep(for: .seconds(10))
        collector.cancel()
    }
    defer { timer.cancel() }
    return try await collector.value
}

/// The entry an outcome reports as applied.
private func appliedEntry(_ outcome: SyncOutcome) -> SyncEntry? {
    if case .applied(let entry) = outcome { return entry }
    return nil
}

@Suite(.serialized, .timeLimit(.minutes(3)))
struct SyncHelperTests {
    // MARK: Every operation, in every image, as every user

    @Test(.requiresDockerEngine, arguments: SyncVariant.all)
    func everyOperation(_ variant: SyncVariant) async throws {
        try await withTemporaryDirectory { dir in
            let containers = Containers()
            defer { containers.removeAll() }
            let id = try await containers.start(variant)
            let remote = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: id,
                program: try builtProgram("slipway-helper"),
                options: .init(root: variant.root, user: variant.user, owner: variant.owner)
            )
            defer { remote.close() }
            #expect(remote.installedHelper == !variant.scratch, "scratch containers got the helper before they started")
            #expect(remote.helperUID == (variant.user == nil ? 0 : 1234))

            // Sources: sizes around SHA-256's block edges, an executable, a nested file.
            var sources: [String: [UInt8]] = [:]
            for size in [0, 1, 55, 56, 63, 64, 65, 1000, 300_000] {
                sources["f\(size)"] = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ size) }
            }
            sources["run.sh"] = Array("#!/bin/sh\necho ran\n".utf8)
            sources["deep"] = Array("nested\n".utf8)
            for (name, bytes) in sources { try writeFile(dir + "/" + name, bytes) }
            let mtime: Int64 = 1_600_000_000_123_456_789

            var operations: [SyncOperation] = [
                .mkdir(path: "d", mode: 0o755), .mkdir(path: "d/sub", mode: 0o750),
                .mkdir(path: "d/sub/deeper", mode: 0o700),
            ]
            for size in [0, 1, 55, 56, 63, 64, 65, 1000, 300_000] {
                operations.append(
                    .write(
                        path: "d/f\(size)",
                        source: dir + "/f\(size)",
                        mode: 0o640,
                        mtimeNanoseconds: mtime + Int64(size),
                        expect: .absent
                    )
                )
            }
            operations += [
                .write(
                    path: "run.sh",
                    source: dir + "/run.sh",
                    mode: 0o755,
                    mtimeNanoseconds: mtime,
                    expect: .anything
                ),
                .write(
                    path: "d/sub/deeper/deep",
                    source: dir + "/deep",
                    mode: 0o600,
                    mtimeNanoseconds: mtime,
                    expect: .absent
                ),
                .symlink(path: "d/link", target: "f1000"),
                .symlink(path: "d/link", target: "f1"),  // replaced
                .rename(from: "d/f0", to: "d/empty"),
                .chmod(path: "run.sh", mode: 0o700),
                .chmod(path: "d/sub", mode: 0o2770),
                .remove(path: "never-there", expect: .anything),
                .mkdir(path: "d", mode: 0o755),  // already there: fine
            ]
            let outcomes = try await remote.apply(operations)
            #expect(outcomes.count == operations.count)
            for (operation, outcome) in zip(operations, outcomes) {
                #expect(
                    appliedEntry(outcome) != nil || operation == .remove(path: "never-there", expect: .anything),
                    "\(operation) → \(outcome)"
                )
            }
            if case .applied(let entry?) = outcomes[3] {
                #expect(entry.path == "d/f0" && entry.kind == .file && entry.size == 0 && entry.mode == 0o640)
                #expect(
                    entry.mtimeNanoseconds == mtime && entry.uid == variant.expectedUID
                        && entry.gid == variant.expectedGID
                )
            }
            #expect(outcomes[operations.count - 2] == .applied(nil))

            // What the engine's archive sees.
            let tree = try await listing(id, variant.root)
            #expect(
                Set(tree.keys) == [
                    "d", "d/sub", "d/sub/deeper", "d/sub/deeper/deep", "d/empty", "d/f1", "d/f55", "d/f56", "d/f63",
                    "d/f64", "d/f65", "d/f1000", "d/f300000", "d/link", "run.sh",
                ]
            )
            for (path, item) in tree {
                #expect(
                    item.uid == variant.expectedUID && item.gid == variant.expectedGID,
                    "\(path) owner \(item.uid):\(item.gid)"
                )
            }
            for size in [1, 55, 56, 63, 64, 65, 1000, 300_000] {
                let item = tree["d/f\(size)"]
                #expect(item?.sha256 == sha256Hex(bytes: sources["f\(size)"] ?? []), "d/f\(size)")
                #expect(item?.mode == 0o640 && item?.mtimeSeconds == (mtime + Int64(size)) / 1_000_000_000)
            }
            #expect(tree["d/empty"]?.size == 0 && tree["d/empty"]?.type == "0")
            #expect(
                tree["run.sh"]?.mode == 0o700 && tree["run.sh"]?.sha256 == sha256Hex(bytes: sources["run.sh"] ?? [])
            )
            #expect(tree["d/link"]?.type == "2" && tree["d/link"]?.link == "f1")
            #expect(tree["d/sub"]?.mode == 0o2770 && tree["d/sub/deeper"]?.mode == 0o700 && tree["d"]?.mode == 0o755)
            #expect(tree["d/sub/deeper/deep"]?.mode == 0o600)

            // The manifest: every entry, hashes equal to the local ones, nanosecond times.
            let manifest = try await remote.manifest(hashing: [], hashAll: true)
            let byPath = Dictionary(manifest.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
            #expect(Set(byPath.keys) == Set(tree.keys))
            for size in [1, 55, 56, 63, 64, 65, 1000, 300_000] {
                #expect(byPath["d/f\(size)"]?.sha256 == sha256Hex(bytes: sources["f\(size)"] ?? []))
                #expect(byPath["d/f\(size)"]?.mtimeNanoseconds == mtime + Int64(size))
            }
            #expect(byPath["d/empty"]?.sha256 == sha256Hex(bytes: []))
            #expect(
                byPath["d/link"]?.kind == .symlink && byPath["d/link"]?.linkTarget == "f1"
                    && byPath["d/link"]?.sha256 == nil
            )
            #expect(byPath["d"]?.kind == .directory && byPath["d/sub"]?.mode == 0o2770)
            let some = try await remote.manifest(hashing: ["run.sh"], hashAll: false)
            #expect(some.filter { $0.sha256 != nil }.map(\.path) == ["run.sh"])

            // Entries at a few paths (ENTRIES), without listing the tree: what exists, the
            // same as the manifest says; missing paths, paths under a file or a symlink and an
            // invalid one left out; a directory with everything below it when recursive.
            let asked = try await remote.entries(
                ["run.sh", "d/sub", "missing", "d/f1/under-a-file", "d/link/x", "d/../run.sh", "d/f55"],
                recursive: false,
                hashing: ["d/f55"]
            )
            #expect(asked.map(\.path).sorted() == ["d/f55", "d/sub", "run.sh"])
            #expect(remote.takeNotes().contains { $0.contains("d/../run.sh") }, "the invalid path is reported")
            #expect(asked.first { $0.path == "d/f55" }?.sha256 == sha256Hex(bytes: sources["f55"] ?? []))
            #expect(asked.first { $0.path == "run.sh" }.map(withoutHash) == byPath["run.sh"].map(withoutHash))
            #expect(asked.first { $0.path == "run.sh" }?.sha256 == nil, "only what was asked is hashed")
            let below = try await remote.entries(
                ["d/sub", "d/sub/deeper"],
                recursive: true,
                hashing: ["d/sub/deeper/deep"]
            )
            #expect(below.map(\.path).sorted() == ["d/sub", "d/sub/deeper", "d/sub/deeper/deep"], "each entry once")
            #expect(below.first { $0.path == "d/sub/deeper/deep" }?.sha256 == sha256Hex(bytes: sources["deep"] ?? []))

            // Expectations: what was last synced must still be there.
            let f1 = try #require(byPath["d/f1"])
            try writeFile(dir + "/f1b", Array("changed".utf8))
            let checked = try await remote.apply([
                .write(
                    path: "d/f1",
                    source: dir + "/f1b",
                    mode: 0o644,
                    mtimeNanoseconds: mtime,
                    expect: .file(size: 99, mtimeNanoseconds: f1.mtimeNanoseconds)
                ),
                .write(path: "d/f55", source: dir + "/f1b", mode: 0o644, mtimeNanoseconds: mtime, expect: .absent),
                .remove(path: "d/f56", expect: .file(size: 56, mtimeNanoseconds: 1)),
                .write(
                    path: "d/f1",
                    source: dir + "/f1b",
                    mode: 0o644,
                    mtimeNanoseconds: mtime,
                    expect: .file(size: f1.size, mtimeNanoseconds: f1.mtimeNanoseconds)
                ),
                .remove(path: "d/f64", expect: .file(size: 64, mtimeNanoseconds: mtime + 64)),
                .remove(path: "d/sub", expect: .anything),
                .write(
                    path: "d/new",
                    source: dir + "/missing-locally",
                    mode: 0o644,
                    mtimeNanoseconds: mtime,
                    expect: .absent
                ),
            ])
            guard case .conflict(let current?) = checked[0] else {
                Issue.record("a stale expectation must be a conflict: \(checked[0])")
                return
            }
            #expect(current.path == "d/f1" && current.size == 1)
            #expect(checked[1] == .conflict(current: byPath["d/f55"].map(withoutHash)))
            #expect(checked[2] == .conflict(current: byPath["d/f56"].map(withoutHash)))
            #expect(appliedEntry(checked[3])?.size == 7)
            #expect(checked[4] == .applied(nil))
            #expect(checked[5] == .applied(nil), "a directory is removed with everything in it")
            if case .failed(let code, let message) = checked[6] {
                #expect(code == ENOENT && message.contains("missing-locally"))
            } else {
                Issue.record("a missing local source fails its operation alone: \(checked[6])")
            }
            let after = try await listing(id, variant.root)
            #expect(after["d/f1"]?.sha256 == sha256Hex(bytes: Array("changed".utf8)))
            #expect(after["d/f55"] != nil && after["d/f56"] != nil && after["d/f64"] == nil && after["d/sub"] == nil)
            #expect(after["d/new"] == nil)
            #expect(!after.keys.contains { $0.contains(".slipway-tmp-") }, "no temp file is left behind")

            // Download: content, mode and time; a missing path is an error of that path alone.
            let copy = dir + "/downloaded"
            let got = try await remote.download("d/f1000", to: copy)
            #expect(got.size == 1000 && got.mode == 0o640)
            #expect(FileManager.default.contents(atPath: copy).map(Array.init) == sources["f1000"])
            var st = stat()
            #expect(lstat(copy, &st) == 0 && st.st_mode & 0o7777 == 0o640)
            #expect(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) == mtime + 1000)
            await #expect(throws: SyncRemoteError.self) { _ = try await remote.download("d/nothing", to: dir + "/n") }
            do throws(SyncRemoteError) {
                _ = try await remote.download("d/nothing", to: dir + "/n")
            } catch {
                guard case .failed(let path, let code, _) = error else {
                    Issue.record("a missing file is a failure of that path: \(error)")
                    return
                }
                #expect(path == "d/nothing" && code == ENOENT)
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/n"), "a failed download leaves no file")
            await #expect(throws: SyncRemoteError.self) { _ = try await remote.download("d", to: dir + "/dir") }

            // A batch of 1,000 small files in one apply.
            var many: [SyncOperation] = [.mkdir(path: "many", mode: 0o755)]
            for index in 0..<1000 {
                many.append(
                    .write(
                        path: "many/\(index).txt",
                        source: dir + "/f64",
                        mode: 0o644,
                        mtimeNanoseconds: mtime,
                        expect: .absent
                    )
                )
            }
            let started = ContinuousClock.now
            let manyOutcomes = try await remote.apply(many)
            let took = started.duration(to: .now)
            #expect(manyOutcomes.allSatisfy { appliedEntry($0) != nil })
            #expect(took < .seconds(60), "1,000 writes took \(took)")
            let counted = try await remote.manifest(hashing: [], hashAll: false).filter { $0.path.hasPrefix("many/") }
            #expect(counted.count == 1000)
            #expect(remote.takeNotes().isEmpty)
        }
    }

    // MARK: Hostile paths

    @Test(
        .requiresDockerEngine,
        arguments: [SyncVariant(scratch: false, user: nil), SyncVariant(scratch: true, user: nil)]
    )
    func hostilePathsNeverLeaveTheRoot(_ variant: SyncVariant) async throws {
        try await withTemporaryDirectory { dir in
            let containers = Containers()
            defer { containers.removeAll() }
            let id = try await containers.start(variant)
            let remote = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: id,
                program: try builtProgram("slipway-helper"),
                options: .init(root: variant.root)
            )
            defer { remote.close() }
            try writeFile(dir + "/evil", Array("owned\n".utf8))
            let etcBefore = try await listing(id, "/etc")

            // A symlink in the tree pointing out of it (the container could have made it).
            let made = try await remote.apply([
                .symlink(path: "etc", target: "/etc"), .symlink(path: "up", target: ".."),
                .mkdir(path: "ok", mode: 0o755),
            ])
            #expect(made.allSatisfy { appliedEntry($0) != nil })
            let write = { (path: String) in
                SyncOperation.write(
                    path: path,
                    source: dir + "/evil",
                    mode: 0o644,
                    mtimeNanoseconds: 0,
                    expect: .anything
                )
            }
            let through: [SyncOperation] = [
                write("etc/passwd"), write("etc/slipway-evil"), write("up/escaped"), write("up/etc/hostname"),
                .mkdir(path: "etc/x", mode: 0o755), .symlink(path: "etc/l", target: "x"),
                .rename(from: "etc/hostname", to: "ok/stolen"), .rename(from: "ok", to: "etc/ok"),
                .remove(path: "etc/hosts", expect: .anything), .chmod(path: "etc/hosts", mode: 0o777),
                .chmod(path: "etc", mode: 0o777),
            ]
            let refused = try await remote.apply(through)
            for (operation, outcome) in zip(through, refused) {
                guard case .failed(let code, let message) = outcome else {
                    Issue.record("\(operation) must fail: \(outcome)")
                    continue
                }
                #expect(code == ENOTDIR || code == ELOOP, "\(operation): \(code) \(message)")
            }
            await #expect(throws: SyncRemoteError.self) { _ = try await remote.download("etc/hosts", to: dir + "/h") }
            await #expect(throws: SyncRemoteError.self) { _ = try await remote.download("etc", to: dir + "/h2") }

            // Paths that are not relative sync paths: refused here, and by the helper itself.
            let bad = ["../x", "/etc/passwd", "a//b", "./a", "a/./b", "a/..", "", "x/"]
            let local = try await remote.apply(bad.map(write))
            #expect(local.allSatisfy { if case .failed(EINVAL, _) = $0 { true } else { false } }, "\(local)")
            remote.channel.checksPathsLocally = false
            let helper = try await remote.apply(
                bad.map(write) + [.mkdir(path: "../up", mode: 0o755), .remove(path: "..", expect: .anything)]
            )
            #expect(helper.allSatisfy { if case .failed(EINVAL, _) = $0 { true } else { false } }, "\(helper)")
            remote.channel.checksPathsLocally = true

            // Replacing the symlink itself is fine: it is an entry of the tree.
            let replaced = try await remote.apply([write("etc"), .remove(path: "up", expect: .anything)])
            #expect(appliedEntry(replaced[0])?.kind == .file && replaced[1] == .applied(nil))
            #expect(try await listing(id, "/etc") == etcBefore, "nothing under /etc changed")
            let rootTree = try await listing(id, variant.root)
            #expect(Set(rootTree.keys) == ["etc", "ok"] && rootTree["etc"]?.type == "0")
        }
    }

    // MARK: A 50 MB file

    @Test(.requiresDockerEngine)
    func largeFileStreams() async throws {
        try await withTemporaryDirectory { dir in
            let variant = SyncVariant(scratch: true, user: "1234:1234")
            let containers = Containers()
            defer { containers.removeAll() }
            let id = try await containers.start(variant)
            let remote = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: id,
                program: try builtProgram("slipway-helper"),
                options: .init(root: variant.root, user: variant.user)
            )
            defer { remote.close() }
            let size = 50 << 20
            let make = try await offPool {
                try sh(["dd", "if=/dev/urandom", "of=\(dir)/big", "bs=1048576", "count=50"], cwd: dir)
            }
            #expect(make.status == 0)
            let local = try #require(FileManager.default.contents(atPath: dir + "/big"))
            let started = ContinuousClock.now
            let outcome = try await remote.apply([
                .write(
                    path: "big",
                    source: dir + "/big",
                    mode: 0o644,
                    mtimeNanoseconds: 1_700_000_000_000_000_000,
                    expect: .absent
                )
            ])
            let took = started.duration(to: .now)
            #expect(appliedEntry(outcome[0])?.size == UInt64(size), "\(outcome)")
            let manifest = try await remote.manifest(hashing: ["big"], hashAll: false)
            #expect(manifest.first { $0.path == "big" }?.sha256 == sha256Hex(bytes: Array(local)))

            // The helper never held the file: its peak resident memory stays far below 50 MB.
            let execID = remote.channel.execID
            let exec = try await offPool { try containers.api.inspectExec(execID) }
            let status = try String(contentsOfFile: "/proc/\(exec.pid)/status", encoding: .utf8)
            let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.map {
                Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
            }
            let peakKB = try #require(peak)
            #expect(peakKB < 12 * 1024, "the helper's peak RSS was \(peakKB) kB")

            let back = dir + "/back"
            _ = try await remote.download("big", to: back)
            #expect(FileManager.default.contents(atPath: back) == local)
            print("sync-helper-test: 50 MB write \(took), helper peak RSS \(peakKB) kB")
        }
    }

    // MARK: Watch

    @Test(.requiresDockerEngine)
    func watchReportsTheContainersChangesNotItsOwn() async throws {
        try await withTemporaryDirectory { dir in
            let variant = SyncVariant(scratch: false, user: "1234:1234")
            let containers = Containers()
            defer { containers.removeAll() }
            let id = try await containers.start(variant)
            let remote = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: id,
                program: try builtProgram("slipway-helper"),
                options: .init(root: variant.root, user: variant.user)
            )
            defer { remote.close() }
            _ = try await remote.apply([.mkdir(path: "w", mode: 0o755)])
            let changes = try await remote.changes()
            try writeFile(dir + "/mine", Array("from slipway".utf8))
            _ = try await remote.apply([
                .write(path: "w/mine.txt", source: dir + "/mine", mode: 0o644, mtimeNanoseconds: 0, expect: .anything),
                .mkdir(path: "w/made", mode: 0o755), .chmod(path: "w/mine.txt", mode: 0o600),
                .rename(from: "w/mine.txt", to: "w/moved.txt"),
            ])
            let made = try await docker(
                "exec",
                "--user",
                "1234:1234",
                id,
                "sh",
                "-c",
                "mkdir -p \(variant.root)/w/new/deeper && echo hi > \(variant.root)/w/new/deeper/file.txt && echo x > \(variant.root)/w/top.txt"
            )
            #expect(made.status == 0, "\(made.stderr)")
            let seen = try await collect(changes) { $0.isSuperset(of: ["w/new/deeper/file.txt", "w/top.txt"]) }
            #expect(seen.isSuperset(of: ["w/new", "w/new/deeper", "w/new/deeper/file.txt", "w/top.txt"]), "\(seen)")
            #expect(
                seen.isDisjoint(with: ["w/mine.txt", "w/made", "w/moved.txt"]),
                "slipway's own work came back: \(seen)"
            )
        }
    }

    @Test(.requiresDockerEngine)
    func aFileInADirectoryItCannotWriteIsWrittenInPlace() async throws {
        try await withTemporaryDirectory { dir in
            let variant = SyncVariant(scratch: false, user: "1234:1234")
            let containers = Containers()
            defer { containers.removeAll() }
            let id = try await containers.start(variant)
            let remote = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: id,
                program: try builtProgram("slipway-helper"),
                options: .init(root: variant.root, user: variant.user)
            )
            defer { remote.close() }
            _ = try await remote.apply([.mkdir(path: "x", mode: 0o755)])
            // A directory of root's with one file the user may write and one it may not.
            let setup = try await docker(
                "exec",
                "--user",
                "0",
                id,
                "sh",
                "-c",
                "mkdir \(variant.root)/locked && echo old-content-longer > \(variant.root)/locked/mine && "
                    + "chown 1234:1234 \(variant.root)/locked/mine && echo root > \(variant.root)/locked/theirs"
            )
            #expect(setup.status == 0, "\(setup.stderr)")
            try writeFile(dir + "/new", Array("new\n".utf8))
            let outcomes = try await remote.apply([
                .write(
                    path: "locked/mine",
                    source: dir + "/new",
                    mode: 0o600,
                    mtimeNanoseconds: 1_650_000_000_000_000_000,
                    expect: .anything
                ),
                .write(
                    path: "locked/theirs",
                    source: dir + "/new",
                    mode: 0o644,
                    mtimeNanoseconds: 0,
                    expect: .anything
                ),
                .write(path: "locked/fresh", source: dir + "/new", mode: 0o644, mtimeNanoseconds: 0, expect: .absent),
            ])
            let written = try #require(appliedEntry(outcomes[0]), "\(outcomes[0])")
            #expect(written.size == 4 && written.mode == 0o600 && written.mtimeNanoseconds == 1_650_000_000_000_000_000)
            #expect(outcomes[1] == .failed(errno: EACCES, message: "cannot write locked/theirs: Permission denied"))
            if case .failed(let code, _) = outcomes[2] {
                #expect(code == EACCES)
            } else {
                Issue.record("\(outcomes[2])")
            }
            let seen = try await docker(
                "exec",
                id,
                "sh",
                "-c",
                "cat \(variant.root)/locked/mine; stat -c '%a %u %Y' \(variant.root)/locked/mine; ls -a \(variant.root)/locked"
            )
            #expect(seen.stdout == "new\n600 1234 1650000000\n.\n..\nmine\ntheirs\n", "\(seen)")
        }
    }

    @Test(.requiresDockerEngine)
    func anOverflowedQueueIsReportedAsUnknown() async throws {
        let containers = Containers()
        defer { containers.removeAll() }
        let id = try await containers.start(SyncVariant(scratch: false, user: nil))
        let remote = try await ContainerSyncRemote.connect(
            api: containers.api,
            container: id,
            program: try builtProgram("slipway-helper"),
            options: .init(root: "/app")
        )
        defer { remote.close() }
        _ = try await remote.apply([.mkdir(path: "flood", mode: 0o755)])
        let changes = try await remote.changes()
        let limit =
            Int(
                (try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            ) ?? 16384
        // The helper frozen, the engine unpacks more files into a watched directory than the
        // kernel queues events for (each file: created, written, closed, attributes).
        #expect(try await docker("pause", id).status == 0)
        let files = limit / 3 + 1000
        do {
            defer { _ = try? sh(["docker", "unpause", id], cwd: "/") }
            try await offPool {
                try containers.api.putArchive(container: id, path: "/app") { tar in
                    for index in 0..<files {
                        try tar.appendFile("flood/\(index)", TarAttributes(mode: 0o644, uid: 7), contents: [1])
                    }
                }
            }
        }
        let unknown = Task {
            for try await batch in changes where batch.isEmpty { return true }
            return false
        }
        let timer = Task {
            try await Task.sleep(for: .seconds(10))
            unknown.cancel()
        }
        defer { timer.cancel() }
        #expect(try await unknown.value, "an overflow must reach the engine as an unknown batch")
        // The tree is all there; removing it in the container is quicker than the engine's.
        #expect(try await remote.manifest(hashing: [], hashAll: false).count == files + 1)
        #expect(try await remote.apply([.remove(path: "flood", expect: .anything)]) == [.applied(nil)])
    }

    // MARK: Restarts, stale helpers, read-only roots, engines without the socket

    @Test(.requiresDockerEngine)
    func restartDisconnectsAndTheNextConnectionKeepsTheHelper() async throws {
        try await withTemporaryDirectory { dir in
            let variant = SyncVariant(scratch: false, user: nil)
            let containers = Containers()
            defer { containers.removeAll() }
            let id = try await containers.start(variant)
            let program = try builtProgram("slipway-helper")
            let remote = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: id,
                program: program,
                options: .init(root: variant.root)
            )
            #expect(remote.installedHelper)
            let changes = try await remote.changes()
            #expect(try await docker("restart", "-t", "0", id).status == 0)
            do {
                for try await _ in changes {}
                Issue.record("the watch must end with an error")
            } catch {
                #expect(error as? SyncRemoteError != nil, "\(error)")
                if case .disconnected(let detail)? = error as? SyncRemoteError {
                    // Caught mid-restart, the container is either back already or still stopped.
                    #expect(detail.contains("restarted") || detail.contains("stopped (exited)"), "\(detail)")
                }
            }
            try writeFile(dir + "/f", [1, 2, 3])
            await #expect(throws: SyncRemoteError.self) {
                _ = try await remote.apply([
                    .write(path: "f", source: dir + "/f", mode: 0o644, mtimeNanoseconds: 0, expect: .anything)
                ])
            }
            do throws(SyncRemoteError) {
                _ = try await remote.manifest(hashing: [], hashAll: false)
            } catch {
                guard case .disconnected = error else {
                    Issue.record("a dropped channel is .disconnected: \(error)")
                    return
                }
            }

            // The container restarted with its filesystem: the same helper is still there.
            let again = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: id,
                program: program,
                options: .init(root: variant.root)
            )
            #expect(!again.installedHelper)
            #expect(
                appliedEntry(
                    try await again.apply([
                        .write(path: "f", source: dir + "/f", mode: 0o644, mtimeNanoseconds: 0, expect: .anything)
                    ])[0]
                ) != nil
            )

            // Stopped, then removed.
            #expect(try await docker("stop", "-t", "0", id).status == 0)
            await #expect(throws: SyncRemoteError.self) { _ = try await again.manifest(hashing: [], hashAll: false) }
            do throws(SyncRemoteError) {
                _ = try await ContainerSyncRemote.connect(
                    api: containers.api,
                    container: id,
                    program: program,
                    options: .init(root: "/app")
                )
                Issue.record("a stopped container cannot be synced")
            } catch {
                guard case .disconnected(let detail) = error else {
                    Issue.record("a stopped container is .disconnected: \(error)")
                    return
                }
                #expect(detail.contains("not running"))
            }
            #expect(try await docker("rm", "-f", id).status == 0)
            do throws(SyncRemoteError) {
                _ = try await ContainerSyncRemote.connect(
                    api: containers.api,
                    container: id,
                    program: program,
                    options: .init(root: "/app")
                )
                Issue.record("a removed container cannot be synced")
            } catch {
                guard case .unusable(let detail) = error else {
                    Issue.record("a removed container is .unusable: \(error)")
                    return
                }
                #expect(detail.contains("no container"))
            }
        }
    }

    @Test(.requiresDockerEngine)
    func aFrozenContainerCountsAsDisconnected() async throws {
        try await withTemporaryDirectory { dir in
            let containers = Containers()
            defer { containers.removeAll() }
            let id = try await containers.start(SyncVariant(scratch: false, user: nil))
            let remote = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: id,
                program: try builtProgram("slipway-helper"),
                options: .init(root: "/app", answerTimeout: .seconds(1))
            )
            defer { remote.close() }
            try writeFile(dir + "/f", [1])
            #expect(try await docker("pause", id).status == 0)
            defer { _ = try? sh(["docker", "unpause", id], cwd: "/") }
            let started = ContinuousClock.now
            do throws(SyncRemoteError) {
                _ = try await remote.apply([
                    .write(path: "f", source: dir + "/f", mode: 0o644, mtimeNanoseconds: 0, expect: .anything)
                ])
                Issue.record("a paused container cannot answer")
            } catch {
                guard case .disconnected(let detail) = error else {
                    Issue.record("a frozen helper is .disconnected: \(error)")
                    return
                }
                #expect(detail.contains("no progress") && detail.contains("paused"), "\(detail)")
            }
            let waited = started.duration(to: .now)
            #expect(waited >= .milliseconds(900) && waited < .seconds(5), "\(waited)")
        }
    }

    @Test(.requiresDockerEngine)
    func aStaleOrBrokenHelperIsReplaced() async throws {
        let containers = Containers()
        defer { containers.removeAll() }
        let id = try await containers.start(SyncVariant(scratch: false, user: "1234:1234"))
        let program = try builtProgram("slipway-helper")
        #expect(try await docker("exec", id, "mkdir", "-p", "/.slipway").status != 0, "a non-root user cannot make it")
        #expect(try await docker("exec", "--user", "0", id, "mkdir", "-p", "/.slipway").status == 0)
        // A truncated helper (it cannot start), then a program that answers something else.
        let truncated = try await offPool {
            try sh(
                [
                    "sh", "-c",
                    "head -c 4096 \"$1\" | docker exec -i --user 0 \"$2\" sh -c 'cat > /.slipway/helper && chmod 755 /.slipway/helper'",
                    "sh", program, id,
                ],
                cwd: "/"
            )
        }
        #expect(truncated.status == 0, "\(truncated.stderr)")
        let impostor = "#!/bin/sh\necho this is not the helper\nsleep 1\n"
        for round in 0..<2 {
            let remote = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: id,
                program: program,
                options: .init(root: "/tmp/sync", user: "1234:1234")
            )
            #expect(remote.installedHelper, "round \(round)")
            let mode = try await docker("exec", id, "stat", "-c", "%a %u", "/.slipway", "/.slipway/helper")
            #expect(mode.stdout == "755 0\n755 0\n")
            #expect(try await remote.manifest(hashing: [], hashAll: false).isEmpty)
            remote.close()
            let replaced = try await offPool {
                try sh(
                    [
                        "sh", "-c",
                        "printf '%s' \"$1\" | docker exec -i --user 0 \"$2\" sh -c 'cat > /.slipway/helper'",
                        "sh", impostor, id,
                    ],
                    cwd: "/"
                )
            }
            #expect(replaced.status == 0)
        }
    }

    @Test(.requiresDockerEngine)
    func aReadOnlyRootNeedsAVolumeForTheHelper() async throws {
        let containers = Containers()
        defer { containers.removeAll() }
        let program = try builtProgram("slipway-helper")
        let readOnly = try await containers.start(
            SyncVariant(scratch: false, user: nil),
            extraHostConfig: ["ReadonlyRootfs": true, "Tmpfs": .object(["/work": "mode=1777"])]
        )
        do throws(SyncRemoteError) {
            _ = try await ContainerSyncRemote.connect(
                api: containers.api,
                container: readOnly,
                program: program,
                options: .init(root: "/work")
            )
            Issue.record("a read-only root cannot take the helper")
        } catch {
            guard case .unusable(let message) = error else {
                Issue.record("a read-only root is .unusable: \(error)")
                return
            }
            #expect(
                message.contains("read-only root filesystem") && message.contains("volume at /.slipway"),
                "\(message)"
            )
        }
        // What the message says to do works.
        let spec = DockerContainerSpec(
            config: [
                "Image": .string(busybox), "Cmd": .strings(["sleep", "3600"]),
                "Labels": .stringMap([Containers.labelKey: containers.value]),
                "Volumes": .object(["/.slipway": .object([:])]),
            ],
            hostConfig: ["ReadonlyRootfs": true, "NetworkMode": "none", "Tmpfs": .object(["/work": "mode=1777"])]
        )
        let volumed = try await offPool {
            let id = try containers.api.createContainer(name: nil, spec: spec).id
            _ = try containers.api.startContainer(id)
            return id
        }
        let remote = try await ContainerSyncRemote.connect(
            api: containers.api,
            container: volumed,
            program: program,
            options: .init(root: "/work")
        )
        defer { remote.close() }
        #expect(remote.installedHelper)
        #expect(try await remote.apply([.mkdir(path: "x", mode: 0o755)]).allSatisfy { appliedEntry($0) != nil })
    }

    @Test func anEngineReachedThroughTheCLIIsRefused() async throws {
        for host in ["tcp://10.0.0.1:2376", "ssh://build@host"] {
            do throws(SyncRemoteError) {
                _ = try ContainerSyncRemote.engineAPI(["DOCKER_HOST": host])
                Issue.record("\(host) must be refused")
            } catch {
                guard case .unusable(let message) = error else {
                    Issue.record("\(host): \(error)")
                    continue
                }
                #expect(message.contains("DOCKER_HOST=\(host)") && message.contains("unix socket"), "\(message)")
            }
            let engine = try DockerEngine.fromEnvironment(["DOCKER_HOST": host])
            #expect(throws: SyncRemoteError.self) { _ = try ContainerSyncRemote.engineAPI(engine) }
            await #expect(throws: SyncRemoteError.self) {
                _ = try await ContainerSyncRemote.connect(
                    environment: ["DOCKER_HOST": host],
                    container: "any",
                    program: "/nonexistent",
                    options: .init(root: "/app")
                )
            }
        }
        #expect(try ContainerSyncRemote.engineAPI(["DOCKER_HOST": "unix:///run/x.sock"]).socketPath == "/run/x.sock")
    }

    // MARK: The frames themselves

    @Test func framesSpanReadsAndBadFramesAreRefused() throws {
        var entry = HelperBytes()
        entry.u8(1)
        entry.u64(5)
        entry.i64(-1_500_000_000)
        entry.u32(0o100644)
        entry.u32(7)
        entry.u32(8)
        entry.u8(1)
        entry.append([UInt8](repeating: 0xAB, count: 32))
        entry.sized("a/b")
        entry.sized("")
        let frames =
            HelperBytes.frame(HelperFrameType.entry, id: 9, entry.bytes)
            + HelperBytes.frame(HelperFrameType.endAnswer, id: 9, [0, 0, 0, 0, 0, 0, 0, 1])
        var parser = HelperFrameParser()
        var got: [HelperFrame] = []
        for byte in frames {
            parser.append([byte])
            while let frame = try parser.next() { got.append(frame) }
        }
        #expect(got.map(\.type) == [HelperFrameType.entry, HelperFrameType.endAnswer] && got.allSatisfy { $0.id == 9 })
        var reader = HelperReader(got[0].payload)
        var invalid: String?
        let maybe = reader.entry(invalidPath: &invalid)
        let decoded = try #require(maybe)
        #expect(
            decoded
                == SyncEntry(
                    path: "a/b",
                    kind: .file,
                    size: 5,
                    mtimeNanoseconds: -1_500_000_000,
                    mode: 0o644,
                    uid: 7,
                    gid: 8,
                    sha256: String(repeating: "ab", count: 32)
                )
        )

        for path in ["../etc/passwd", "/abs", "a//b"] {
            var hostile = HelperBytes()
            hostile.u8(1)
            hostile.u64(0)
            hostile.i64(0)
            hostile.u32(0o644)
            hostile.u32(0)
            hostile.u32(0)
            hostile.u8(0)
            hostile.sized(path)
            hostile.sized("")
            var r = HelperReader(hostile.bytes)
            var refused: String?
            #expect(r.entry(invalidPath: &refused) == nil && refused == path)
        }
        var short = HelperReader([1, 2, 3])
        var none: String?
        #expect(short.entry(invalidPath: &none) == nil && short.bad)

        var huge = HelperFrameParser()
        huge.append([HelperFrameType.dataAnswer, 0, 0, 0, 1, 0x7F, 0xFF, 0xFF, 0xFF])
        #expect(throws: SyncRemoteError.self) { _ = try huge.next() }
    }
}
