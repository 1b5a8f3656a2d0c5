import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

// The engine and the helper together, as `slipway sync` runs them (`SyncRunner`): a local
// tree synced into a running busybox container, as root and as a non-root user. After each
// step the container's tree (read back with `docker cp`, not through the helper) equals the
// local tree minus the excludes, owners are the container user's, and a file the container
// makes comes back.

/// `docker cp CONTAINER:ROOT -` unpacked into a fresh directory, as ``treeSnapshot(_:skipping:)``.
private func containerSnapshot(_ container: String, _ root: String) throws -> [String: String] {
    try withTemporaryDirectory { out in
        let r = try sh(
            ["sh", "-c", "docker cp \"$1:$2/.\" - | tar -x -C \"$3\"", "sh", container, root, out],
            cwd: "/"
        )
        guard r.status == 0 else { throw TestSupportError("docker cp \(container):\(root): \(r.stderr)") }
        return treeSnapshot(out)
    }
}

@Suite(.requiresDockerEngine, .timeLimit(.minutes(3)))
struct SyncIntoContainerTests {
    /// (user, remote root): root writes anywhere; a non-root user in a directory it may write.
    static let variants: [(user: String, root: String)] = [("0:0", "/app"), ("1234:1234", "/tmp/app")]

    @Test(arguments: [0, 1])
    func aTreeFollowsEveryKindOfChange(_ variant: Int) async throws {
        let (user, remoteRoot) = Self.variants[variant]
        let label = "dev.slipway.sync-into-test=" + UUID().uuidString.lowercased()
        let run = try sh(
            [
                "docker", "run", "-d", "--network", "none", "--label", label, "--user", user,
                "slipway/busybox:latest", "sleep", "300",
            ],
            cwd: "/"
        )
        try #require(run.status == 0, "\(run.stderr)")
        let container = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? sh(["docker", "rm", "-f", "-v", container], cwd: "/") }

        try await withTemporaryDirectory { local in
            let files: [(String, String)] = [
                ("a.txt", "alpha\n"), ("dir/b.txt", "beta\n"), ("run.sh", "#!/bin/sh\necho hi\n"),
                ("node_modules/dep/x.js", "excluded\n"),
            ]
            for (path, text) in files {
                try FileManager.default.createDirectory(
                    atPath: (local + "/" + path as NSString).deletingLastPathComponent,
                    withIntermediateDirectories: true
                )
                try text.write(toFile: local + "/" + path, atomically: false, encoding: .utf8)
            }
            chmod(local + "/run.sh", 0o755)
            symlink("a.txt", local + "/link")

            let filter = try SyncFilter.load(SyncExcludes(excludePaths: ["node_modules/"]), baseDirectory: local)
            let configuration = SyncConfiguration(
                localRoot: local,
                name: "test",
                initialSync: .mirrorLocal,
                filter: filter,
                timing: SyncTiming(quietMilliseconds: 5, burstMilliseconds: 50, maximumDelayMilliseconds: 500)
            )
            let remote = try await ContainerSyncRemote.connect(
                container: container,
                program: try builtProgram("slipway-helper"),
                options: ContainerSyncRemote.Options(root: remoteRoot)
            )
            let log = SyncEventLog()
            let engine = SyncEngine(configuration: configuration, remote: remote, events: { log.append($0) })
            let task = Task { try await engine.run() }
            defer { engine.stop() }

            let expected = { treeSnapshot(local) { $0 == "node_modules" || $0.hasPrefix("node_modules/") } }
            func converged() -> Bool { (try? containerSnapshot(container, remoteRoot)) == expected() }

            // The initial sync: everything but the excluded tree.
            await waitUntil("the initial sync", timeout: .seconds(20)) { converged() }
            #expect(try containerSnapshot(container, remoteRoot) == expected())
            #expect(try containerSnapshot(container, remoteRoot)["node_modules"] == nil, "nothing excluded was sent")

            // Create, modify, rename, delete, a new nested directory, a mode change.
            try "alpha two\n".write(toFile: local + "/a.txt", atomically: true, encoding: .utf8)
            rename(local + "/dir/b.txt", local + "/dir/c.txt")
            unlink(local + "/run.sh")
            try FileManager.default.createDirectory(atPath: local + "/new/deep", withIntermediateDirectories: true)
            try "delta\n".write(toFile: local + "/new/deep/d.txt", atomically: false, encoding: .utf8)
            chmod(local + "/a.txt", 0o600)
            await waitUntil("the edits", timeout: .seconds(20)) { converged() }
            #expect(try containerSnapshot(container, remoteRoot) == expected())

            // Owners are the container user's.
            let owners = try sh(
                [
                    "docker", "exec", container, "sh", "-c", "cd \"$1\" && stat -c '%u:%g' a.txt new/deep/d.txt", "sh",
                    remoteRoot,
                ],
                cwd: "/"
            )
            #expect(owners.stdout.split(separator: "\n").allSatisfy { $0 == user }, "\(owners.stdout) \(owners.stderr)")

            // A file the container makes comes back.
            let made = try sh(
                ["docker", "exec", container, "sh", "-c", "echo made-inside > \"$1\"/made.txt", "sh", remoteRoot],
                cwd: "/"
            )
            #expect(made.status == 0, "\(made.stderr)")
            await waitUntil("the download", timeout: .seconds(20)) {
                (try? String(contentsOfFile: local + "/made.txt", encoding: .utf8)) == "made-inside\n"
            }
            #expect(converged())
            engine.stop()
            _ = await task.result
        }
    }
}
