import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

#if canImport(Glibc)
import Glibc
#endif

// The engine and the helper together against real containers (issue 15's "Done when"): a
// `FROM scratch` container (slipway-pause as PID 1, the helper installed before it starts) and a
// busybox one, each as root and as 1234:1234. After every step the container's tree — read
// with `docker cp` (the engine's archive API), never through the helper — equals the local tree
// minus the excludes, compared by content hashes; nothing excluded is there; owners are the
// container user's. Every docker call runs on a thread of its own (`offPool`), never on
// Swift's cooperative pool, which the engines under test need.

/// Which image and which user.
struct ScenarioVariant: CustomTestStringConvertible, Sendable {
    var scratch: Bool
    var user: String?

    var root: String { scratch ? "/data/sync" : (user == nil ? "/app" : "/tmp/sync") }
    var owner: String { user ?? "0:0" }
    var testDescription: String { (scratch ? "scratch" : "busybox") + " as " + (user ?? "root") }

    static let all = [
        ScenarioVariant(scratch: true, user: nil), ScenarioVariant(scratch: true, user: "1234:1234"),
        ScenarioVariant(scratch: false, user: nil), ScenarioVariant(scratch: false, user: "1234:1234"),
    ]
}

/// One test's container, labelled with the test's own value and removed at the end.
struct ScenarioContainer: Sendable {
    let id: String
    let variant: ScenarioVariant
    static let labelKey = "dev.slipway.sync-scenario-test"

    /// A scratch container is created, given the helper (before it starts) and a world-writable
    /// `/data`, then started; a busybox one runs `sleep`.
    static func start(_ variant: ScenarioVariant, name: String? = nil) async throws -> ScenarioContainer {
        let api = DockerAPI()
        let pause = variant.scratch ? try builtProgram("slipway-pause") : ""
        let id = try await offPool {
            let spec = DockerContainerSpec(
                image: variant.scratch ? try PauseImage.ensure(api, program: pause) : "slipway/busybox:latest",
                command: variant.scratch ? nil : ["sleep", "3600"],
                labels: [Self.labelKey: "1"],
                user: variant.user,
                networkMode: "none"
            )
            return try api.createContainer(name: name, spec: spec).id
        }
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
        return ScenarioContainer(id: id, variant: variant)
    }

    func remove() {
        _ = try? sh(["docker", "rm", "-f", "-v", id], cwd: "/")
    }

    /// The tree under the sync root as `docker cp` reads it: path → "f:<sha256>:<mode>", "d" or
    /// "l:<target>" (as ``treeSnapshot(_:skipping:)``), and path → "uid:gid".
    func tree() async throws -> (entries: [String: String], owners: [String: String]) {
        let (id, root) = (id, variant.root)
        return try await offPool { try containerTree(id, root) }
    }

    /// Writes `text` to `path` (relative to the root) as the container's user would: with a
    /// shell in busybox, with the archive API (owned by that user) in scratch, which has none.
    func write(_ path: String, _ text: String) async throws {
        let (id, variant) = (id, variant)
        try await offPool {
            if variant.scratch {
                let ids = variant.owner.split(separator: ":").compactMap { Int($0) }
                let attributes = TarAttributes(
                    mode: 0o644,
                    uid: ids.first ?? 0,
                    gid: ids.last ?? 0,
                    modificationTime: Int64(Date().timeIntervalSince1970)
                )
                try DockerAPI().putArchive(container: id, path: variant.root) { tar in
                    var directory = ""
                    for component in path.split(separator: "/").dropLast() {
                        directory += (directory.isEmpty ? "" : "/") + component
                        var attributes = attributes
                        attributes.mode = 0o755
                        try tar.appendDirectory(directory, attributes)
                    }
                    try tar.appendFile(path, attributes, contents: Array(text.utf8))
                }
            } else {
                let r = try sh(
                    [
                        "docker", "exec", id, "sh", "-c", "mkdir -p \"$(dirname \"$1\")\" && printf %s \"$2\" > \"$1\"",
                        "sh",
                        variant.root + "/" + path, text,
                    ],
                    cwd: "/"
                )
                guard r.status == 0 else { throw TestSupportError("write \(path) in \(id): \(r.stderr)") }
            }
        }
    }
}

/// `docker cp CONTAINER:ROOT -` read by Python's tarfile.
func containerTree(
    _ container: String,
    _ root: String
) throws -> (
    entries: [String: String], owners: [String: String]
) {
    let script = """
        import hashlib, sys, tarfile
        archive = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
        for m in archive:
            name = m.name.split("/", 1)
            if len(name) < 2: continue
            if m.isfile(): kind = "f:%s:%o" % (hashlib.sha256(archive.extractfile(m).read()).hexdigest(), m.mode & 0o777)
            elif m.isdir(): kind = "d"
            elif m.issym(): kind = "l:" + m.linkname
            else: kind = "other"
            sys.stdout.buffer.write(("%s\\0%s\\0%d:%d\\0" % (name[1], kind, m.uid, m.gid)).encode("utf-8", "surrogateescape"))
        """
    let result = try sh(
        ["sh", "-c", "docker cp \"$1:$2\" - | python3 -c \"$3\"", "sh", container, root, script],
        cwd: "/"
    )
    guard result.status == 0 else { throw TestSupportError("docker cp \(container):\(root): \(result.stderr)") }
    let fields = result.stdout.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
    var entries: [String: String] = [:]
    var owners: [String: String] = [:]
    var index = 0
    while index + 2 < fields.count {
        entries[fields[index]] = fields[index + 1]
        owners[fields[index]] = fields[index + 2]
        index += 3
    }
    return (entries, owners)
}

/// What the container must hold of `local`: everything but `.git`, `.devspace`, the excluded
/// `node_modules/` and `*.log`, and conflict copies (never uploaded).
func expectedRemoteTree(_ local: String) -> [String: String] {
    treeSnapshot(local) { path in
        let name = (path as NSString).lastPathComponent
        return path == ".git" || path == ".devspace" || path == "node_modules" || name.hasSuffix(".log")
            || name.contains(".slipway-conflict-")
    }
}

/// Waits (suspending, reading both trees off the pool every 150 ms) until the container's tree
/// equals `expected()`; records the difference when it does not within `timeout`.
@discardableResult
func waitConverged(
    _ what: String,
    _ container: ScenarioContainer,
    expected: @escaping @Sendable () -> [String: String],
    timeout: Duration = .seconds(30),
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> [String: String] {
    let deadline = ContinuousClock.now + timeout
    var there: [String: String] = [:]
    var here: [String: String] = [:]
    repeat {
        there = try await container.tree().entries
        here = try await offPool { expected() }
        if there == here { return there }
        try await Task.sleep(for: .milliseconds(150))
    } while ContinuousClock.now < deadline
    let extra = there.filter { here[$0.key] != $0.value }.keys.sorted().prefix(10)
    let missing = here.filter { there[$0.key] != $0.value }.keys.sorted().prefix(10)
    Issue.record(
        "\(what): the container did not converge; differs there: \(Array(extra)); differs here: \(Array(missing))",
        sourceLocation: sourceLocation
    )
    return there
}

/// Polls `condition` on a thread of its own every 100 ms until it holds or `timeout` passes;
/// records an issue then.
func waitUntilOffPool(
    _ what: String,
    timeout: Duration = .seconds(20),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: @escaping @Sendable () throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await offPool(condition) { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
}

// One case at a time, with room: alone the four cases take ~30 s together, but in a full run on
// 2 cores, beside the engine-heavy dev suites, three of them once passed 180 s each.
@Suite(.requiresDockerEngine, .serialized, .timeLimit(.minutes(6)))
struct SyncContainerScenarioTests {
    static let filterExcludes = SyncExcludes(excludePaths: ["node_modules/", "*.log"])

    @Test(arguments: ScenarioVariant.all)
    func everyKindOfChangeReachesTheContainer(_ variant: ScenarioVariant) async throws {
        let container = try await ScenarioContainer.start(variant)
        defer { container.remove() }
        try await withTemporaryDirectory { dir in
            let local = dir + "/local"
            try makeDirs(local)
            // A real repository: branch one holds one file under gen/, branch two 5,000 more.
            try await offPool { try makeTwoBranches(local) }
            try putFile(local + "/a.txt", "alpha\n")
            try putFile(local + "/dir/b.txt", "beta\n")
            try putFile(local + "/run.sh", "#!/bin/sh\necho hi\n", mode: 0o755)
            try putFile(local + "/node_modules/dep/x.js", "excluded\n")
            try putFile(local + "/debug.log", "excluded\n")
            symlink("a.txt", local + "/link")

            let configuration = testConfiguration(
                local,
                dir: dir,
                strategy: .preferLocal,
                filter: try SyncFilter.load(Self.filterExcludes, baseDirectory: local)
            )
            let connect: @Sendable () async throws -> ContainerSyncRemote = {
                try await ContainerSyncRemote.connect(
                    container: container.id,
                    program: try builtProgram("slipway-helper"),
                    options: ContainerSyncRemote.Options(root: variant.root)
                )
            }
            var sync = RunningSync(configuration, remote: try await connect())
            await sync.started()
            let expected: @Sendable () -> [String: String] = { expectedRemoteTree(local) }

            func ownersAreTheUsers(_ step: String) async throws {
                let owners = try await container.tree().owners
                let others = owners.filter { $0.value != variant.owner }
                #expect(others.isEmpty, "\(step): not owned by \(variant.owner): \(others.prefix(5))")
            }

            // The initial sync: everything but the excludes.
            var there = try await waitConverged("the initial sync", container, expected: expected)
            #expect(there["a.txt"] != nil && there["link"] == "l:a.txt" && there["gen/readme"] != nil)
            #expect(there.keys.allSatisfy { !$0.hasPrefix("node_modules") && !$0.hasSuffix(".log") && $0 != ".git" })
            try await ownersAreTheUsers("initial sync")

            // Each kind of change, one at a time, converged after each.
            let steps: [(String, () throws -> Void)] = [
                ("create", { try putFile(local + "/created.txt", "new\n") }),
                ("modify", { try putFile(local + "/a.txt", "alpha two\n") }),
                ("rename", { rename(local + "/dir/b.txt", local + "/dir/c.txt") }),
                ("delete", { unlink(local + "/run.sh") }),
                ("nested directory", { try putFile(local + "/new/deep/er/d.txt", "delta\n") }),
                ("symlink", { symlink("../../a.txt", local + "/new/deep/to-a") }),
                ("mode change", { chmod(local + "/dir/c.txt", 0o700) }),
                (
                    "excluded changes",
                    {
                        try putFile(local + "/node_modules/dep/y.js", "excluded\n")
                        try putFile(local + "/new/trace.log", "excluded\n")
                        try putFile(local + "/created.txt", "new two\n")  // a change to wait for
                    }
                ),
            ]
            for (step, change) in steps {
                try change()
                there = try await waitConverged(step, container, expected: expected)
            }
            #expect(there["dir/c.txt"]?.hasSuffix(":700") == true && there["dir/b.txt"] == nil)
            #expect(there["run.sh"] == nil && there["new/deep/to-a"] == "l:../../a.txt")
            #expect(there.keys.allSatisfy { !$0.hasPrefix("node_modules") && !$0.hasSuffix(".log") })
            try await ownersAreTheUsers("edits")

            // A 50 MB file arrives whole (compared by hash), then goes.
            var block = [UInt8](repeating: 0, count: 50 << 20)
            for index in stride(from: 0, to: block.count, by: 4096) {
                block[index] = UInt8(truncatingIfNeeded: index >> 12)
            }
            try Data(block).write(to: URL(fileURLWithPath: local + "/big.bin"))
            there = try await waitConverged("the 50 MB file", container, expected: expected)
            #expect(there["big.bin"] != nil)
            try await ownersAreTheUsers("50 MB file")
            unlink(local + "/big.bin")
            try await waitConverged("the 50 MB file's deletion", container, expected: expected)

            // A 5,000-file checkout of another branch: one batch.
            let mark = await sync.settledCount()
            let checkout = try await offPool { try sh(["git", "checkout", "-q", "two"], cwd: local) }
            try #require(checkout.status == 0, "\(checkout.stderr)")
            there = try await waitConverged(
                "the 5,000-file checkout",
                container,
                expected: expected,
                timeout: .seconds(60)
            )
            #expect(there.keys.filter { $0.hasPrefix("gen/") && $0.hasSuffix(".txt") }.count == 5000)
            let batches = sync.log.batches(since: mark).filter { $0.kind != .download }
            #expect(batches.count == 1 && batches.first?.files ?? 0 >= 5000, "\(batches)")
            try await ownersAreTheUsers("checkout")

            // A file made inside the container comes back.
            try await container.write("made/inside.txt", "made in the container\n")
            await waitUntil("the download", timeout: .seconds(20)) {
                readText(local + "/made/inside.txt") == "made in the container\n"
            }
            try await waitConverged("the download", container, expected: expected)

            // A conflict: both sides change a.txt while the sync is stopped.
            #expect(await sync.stop() == nil)
            try putFile(local + "/a.txt", "the local side\n")
            try await container.write("a.txt", "the container side\n")
            sync = RunningSync(configuration, remote: try await connect())
            await sync.started()
            there = try await waitConverged("the conflict", container, expected: expected)
            #expect(readText(local + "/a.txt") == "the local side\n")
            let names = try FileManager.default.contentsOfDirectory(atPath: local)
            var copies: [String] = []
            for name in names where name.utf8.starts(with: "a.txt.slipway-conflict-".utf8) { copies.append(name) }
            #expect(copies.count == 1, "\(copies)")
            if let copy = copies.first {
                #expect(copy.wholeMatch(of: /a\.txt\.slipway-conflict-\d{8}T\d{6}Z/) != nil, "\(copy)")
                #expect(readText(local + "/" + copy) == "the container side\n")
                #expect(sync.engine.status.conflicts.map(\.copy) == [copy])
            }
            #expect(there.keys.allSatisfy { !$0.contains("slipway-conflict") })
            try await ownersAreTheUsers("conflict")
            #expect(await sync.stop() == nil)
        }
    }
}

/// `local` as a git repository with two branches made by fast-import: `one` holds
/// `gen/readme`; `two` changes it and adds 5,000 files in 50 directories. `one` is checked out.
func makeTwoBranches(_ local: String) throws {
    func git(_ args: String...) throws {
        let result = try sh(["git"] + args, cwd: local)
        guard result.status == 0 else { throw TestSupportError("git \(args): \(result.stderr)") }
    }
    try git("init", "-q", "-b", "main")
    var stream = "commit refs/heads/one\ncommitter t <t@example.com> 1700000000 +0000\ndata 3\none\n"
    stream += "M 644 inline gen/readme\ndata 4\none\n\n"
    stream += "commit refs/heads/two\ncommitter t <t@example.com> 1700000000 +0000\ndata 3\ntwo\nfrom refs/heads/one\n"
    stream += "M 644 inline gen/readme\ndata 4\ntwo\n\n"
    for index in 0..<5000 {
        let content = "two \(index)\n"
        stream += "M 644 inline gen/m\(index % 50)/f\(index).txt\ndata \(content.utf8.count)\n\(content)\n"
    }
    let importFile = local + "/../import"
    try Data(stream.utf8).write(to: URL(fileURLWithPath: importFile))
    let imported = try sh(["sh", "-c", "git fast-import --quiet < \"$1\"", "sh", importFile], cwd: local)
    guard imported.status == 0 else { throw TestSupportError("fast-import: \(imported.stderr)") }
    try git("checkout", "-q", "-f", "one")
}

// MARK: Overflow

// Nested in `WatcherTests` (serialized): the forced overflow of the shared watcher reaches every
// subscriber, so no other watcher test may run meanwhile.
extension WatcherTests {
    @Test(.requiresDockerEngine) func anOverflowThroughAContainerIsSaidAndEndsConverged() async throws {
        let variant = ScenarioVariant(scratch: false, user: "1234:1234")
        let container = try await ScenarioContainer.start(variant)
        defer { container.remove() }
        try await withTemporaryDirectory { dir in
            let local = dir + "/local"
            try putFile(local + "/a", "a")
            try putFile(local + "/b", "b")
            let remote = try await ContainerSyncRemote.connect(
                container: container.id,
                program: try builtProgram("slipway-helper"),
                options: ContainerSyncRemote.Options(root: variant.root)
            )
            let sync = RunningSync(testConfiguration(local, dir: dir), remote: remote)
            await sync.started()
            let expected: @Sendable () -> [String: String] = { expectedRemoteTree(local) }
            try await waitConverged("the initial sync", container, expected: expected)
            let limit =
                Int(
                    (try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8))?
                        .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                ) ?? 16384
            let mark = await sync.settledCount()
            try await offPool {
                FileWatcher.shared.holdingReader {
                    // Changes made while the queue overflows: only a rescan can find them.
                    try? putFile(local + "/lost-in-the-flood.txt", "found")
                    try? putFile(local + "/sub/dir/nested.txt", "nested")
                    unlink(local + "/b")
                    for index in 0..<(4 * limit + 65536) {  // more than the queue and the reader's buffer hold
                        chmod(local + (index % 2 == 0 ? "/a" : "/lost-in-the-flood.txt"), index % 4 < 2 ? 0o644 : 0o600)
                    }
                    chmod(local + "/a", 0o644)
                    chmod(local + "/lost-in-the-flood.txt", 0o644)
                }
            }
            let there = try await waitConverged("the rescan", container, expected: expected)
            #expect(there["lost-in-the-flood.txt"] != nil && there["sub/dir/nested.txt"] != nil && there["b"] == nil)
            let said = sync.log.since(mark).contains {
                if case .rescan(let reason) = $0 { reason.contains("overflowed") } else { false }
            }
            #expect(said, "\(sync.log.since(mark).prefix(10))")
            let rescanned = sync.log.batches(since: mark).contains { $0.kind == .rescan }
            #expect(rescanned)
            // And the sync goes on afterwards.
            try putFile(local + "/after.txt", "after")
            try await waitConverged("an edit after the rescan", container, expected: expected)
            #expect(await sync.stop() == nil)
        }
    }
}

// MARK: Hostile container-side paths

extension SyncContainerScenarioTests {
    /// The container names files and links to leave the root (links to `/etc`, to `..`, to the
    /// host's directory beside the local root; a name with bytes that are not UTF-8; a directory
    /// replaced by a link out): nothing outside the local root is touched, the refusals are said,
    /// and the sync goes on.
    @Test func hostileContainerPathsNeverLeaveTheLocalRoot() async throws {
        let variant = ScenarioVariant(scratch: false, user: nil)
        let container = try await ScenarioContainer.start(variant)
        defer { container.remove() }
        try await withTemporaryDirectory { dir in
            let local = dir + "/local"
            let outside = dir + "/outside"
            try putFile(outside + "/sentinel.txt", "sentinel\n")
            try putFile(local + "/keep.txt", "keep\n")
            let sentinel = treeSnapshot(outside)
            let beside = { try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0 != "state" }.sorted() }
            let besideBefore = try beside()
            let etcBefore = try FileManager.default.contentsOfDirectory(atPath: "/etc").sorted()
            func inContainer(_ script: String) async throws {
                let id = container.id
                let r = try await offPool {
                    try sh(["docker", "exec", id, "sh", "-c", script, "sh", variant.root, outside], cwd: "/")
                }
                try #require(r.status == 0, "\(script): \(r.stderr)")
            }
            try await inContainer(
                """
                set -e; mkdir -p "$1/sub" && cd "$1"
                echo inside > sub/file
                ln -s /etc etc-link
                ln -s .. up
                ln -s ../../../.. up4
                ln -s "$2" to-outside
                ln -s "$2/sentinel.txt" to-sentinel
                printf odd > "$(printf 'odd\\377name')"
                printf nl > "$(printf 'new\\nline')"
                printf dots > ..x
                """
            )
            let configuration = testConfiguration(local, dir: dir, strategy: .preferLocal)
            let connect: @Sendable () async throws -> ContainerSyncRemote = {
                try await ContainerSyncRemote.connect(
                    container: container.id,
                    program: try builtProgram("slipway-helper"),
                    options: ContainerSyncRemote.Options(root: variant.root)
                )
            }
            let sync = RunningSync(configuration, remote: try await connect())
            await sync.started()
            await waitUntil("the ordinary files") {
                readText(local + "/sub/file") == "inside\n" && readText(local + "/..x") == "dots"
            }
            func refused() -> Set<String> {
                Set(sync.log.decisions.compactMap { if case .refused = $0.action { $0.path } else { nil } })
            }
            func notes() -> [String] { sync.log.all.compactMap { if case .note(let text) = $0 { text } else { nil } } }
            #expect(refused().isSuperset(of: ["etc-link", "up", "up4", "to-outside", "to-sentinel"]), "\(refused())")
            #expect(notes().contains { $0.contains("odd") && $0.contains("not a valid sync path") }, "\(notes())")
            // A newline is a valid name: it arrives as it is.
            #expect(readText(local + "/new\nline") == "nl")
            for name in ["etc-link", "up", "up4", "to-outside", "to-sentinel"] {
                var info = stat()
                #expect(lstat(local + "/" + name, &info) != 0, "\(name) was made locally")
            }

            // A directory replaced by a link out of the tree, and files written "into" it.
            let mark = await sync.settledCount()
            try await inContainer(
                """
                set -e; cd "$1"
                rm -rf sub && ln -s "$2" sub
                mkdir -p "$2" && echo evil > "$2/evil.txt" && echo evil > sentinel-overwrite
                ln -sf /etc/passwd keep-link
                """
            )
            await waitUntil("the replaced directory to be seen") {
                sync.log.decisions(since: mark).contains { $0.path == "sub" || $0.path.hasPrefix("sub/") }
            }
            await waitUntil("the next ordinary file and the link out") {
                readText(local + "/sentinel-overwrite") == "evil\n" && refused().contains("keep-link")
            }
            #expect(refused().isSuperset(of: ["keep-link"]), "\(refused())")
            var info = stat()
            if lstat(local + "/sub", &info) == 0 {
                #expect(info.st_mode & S_IFMT != S_IFLNK, "sub became a symlink locally")
            }
            #expect(readText(local + "/keep.txt") == "keep\n")

            // Nothing beside the local root, on the host's /etc, or in the sentinel changed.
            #expect(treeSnapshot(outside) == sentinel)
            #expect(try beside() == besideBefore)
            #expect(try FileManager.default.contentsOfDirectory(atPath: "/etc").sorted() == etcBefore)
            // Every local symlink stays inside the root.
            for (path, value) in treeSnapshot(local) where value.hasPrefix("l:") {
                let target = String(value.dropFirst(2))
                let resolved = URL(
                    fileURLWithPath: target,
                    relativeTo: URL(fileURLWithPath: local + "/" + path).deletingLastPathComponent()
                )
                .standardized.path
                #expect(!target.hasPrefix("/") && resolved.hasPrefix(local + "/"), "\(path) → \(target)")
            }

            // The sync goes on.
            try putFile(local + "/after.txt", "after\n")
            let id = container.id
            try await waitUntilOffPool("an upload after all that") {
                try containerTree(id, variant.root).entries["after.txt"] != nil
            }
            #expect(await sync.stop() == nil)
        }
    }
}
