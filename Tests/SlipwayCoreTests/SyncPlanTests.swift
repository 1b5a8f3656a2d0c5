import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

#if canImport(Glibc)
import Glibc
#endif

/// The timing of batches: flags, then `SLIPWAY_SYNC_*`, then 5 / 150 / 1000 ms.
@Suite struct SyncTimingTests {
    @Test func flagsThenVariablesThenDefaults() throws {
        #expect(try SyncTiming.resolve(quiet: nil, burst: nil, maximumDelay: nil, environment: [:]) == .defaults)
        #expect(
            SyncTiming.defaults
                == SyncTiming(quietMilliseconds: 5, burstMilliseconds: 150, maximumDelayMilliseconds: 1000)
        )
        let env = ["SLIPWAY_SYNC_QUIET_MS": "20", "SLIPWAY_SYNC_BURST_MS": "300", "SLIPWAY_SYNC_MAX_DELAY_MS": "2000"]
        #expect(
            try SyncTiming.resolve(quiet: nil, burst: nil, maximumDelay: nil, environment: env)
                == SyncTiming(quietMilliseconds: 20, burstMilliseconds: 300, maximumDelayMilliseconds: 2000)
        )
        #expect(
            try SyncTiming.resolve(quiet: 1, burst: nil, maximumDelay: 500, environment: env)
                == SyncTiming(quietMilliseconds: 1, burstMilliseconds: 300, maximumDelayMilliseconds: 500)
        )
    }

    @Test func badValuesSayWhereTheyCameFrom() {
        func message(_ quiet: Int?, _ burst: Int?, _ max: Int?, _ env: [String: String]) -> String {
            do {
                _ = try SyncTiming.resolve(quiet: quiet, burst: burst, maximumDelay: max, environment: env)
                return ""
            } catch {
                return error.description
            }
        }
        #expect(
            message(nil, nil, nil, ["SLIPWAY_SYNC_QUIET_MS": "fast"]).hasPrefix(
                "SLIPWAY_SYNC_QUIET_MS=fast: not a number of milliseconds"
            )
        )
        #expect(message(nil, nil, nil, ["SLIPWAY_SYNC_BURST_MS": "-1"]).hasPrefix("SLIPWAY_SYNC_BURST_MS=-1"))
        #expect(
            message(200, nil, nil, [:]).contains(
                "the quiet time 200 ms (--quiet-ms) is longer than the burst quiet time 150 ms (the default)"
            )
        )
        #expect(
            message(nil, nil, 100, [:]).contains(
                "(the default) is longer than the maximum delay 100 ms (--max-delay-ms)"
            )
        )
        #expect(message(0, 0, 0, [:]).contains("must be at least 1 ms"))
        #expect(message(nil, nil, nil, ["SLIPWAY_SYNC_MAX_DELAY_MS": "90"]).contains("(SLIPWAY_SYNC_MAX_DELAY_MS)"))
    }

    @Test(arguments: [
        (".", "/work", "/work"), ("src", "/work", "/work/src"), ("/app", "/work", "/app"), ("../x", "/work", "/x"),
        ("./a/../b/", "/", "/b"), (".", "/", "/"), ("src", "", "/src"), ("../../..", "/a", "/"),
    ])
    func remotePathsStartAtTheWorkingDirectory(_ remote: String, _ workdir: String, _ expected: String) {
        #expect(SyncPlanner.remotePath(remote, workingDirectory: workdir) == expected)
    }
}

@Suite(.requiresDockerEngine) struct SyncPlanTests {
    let resolver = ContainerResolver(api: DockerAPI())

    /// A project directory with `devspace.yaml` (`config`) and `files`, and containers labelled
    /// as its deployments'.
    func withProject<T>(
        _ config: String,
        files: [String: String] = [:],
        _ body: (String, LoadedConfig, LabelledContainers) async throws -> T
    ) async throws -> T {
        try await withTemporaryDirectory { dir in
            try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            for (name, content) in files {
                let path = dir + "/" + name
                try FileManager.default.createDirectory(
                    atPath: (path as NSString).deletingLastPathComponent,
                    withIntermediateDirectories: true
                )
                try content.write(toFile: path, atomically: true, encoding: .utf8)
            }
            let loaded = try await ConfigLoader.load(
                LoadOptions(workingDirectory: dir, environment: ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent"])
            )
            let containers = LabelledContainers(config: loaded.absolutePath)
            defer { containers.removeAll() }
            return try await body(dir, loaded, containers)
        }
    }

    func plan(
        _ request: SyncRequest,
        _ loaded: LoadedConfig?,
        choose: SyncPlanner.Chooser? = nil
    ) async throws(SyncPlanError) -> SyncPlan {
        try await SyncPlanner.plan(request, loaded: loaded, resolver: resolver, choose: choose)
    }

    static let config = """
        version: v2beta1
        name: plan
        images:
          app:
            image: slipway/busybox
            tags: [latest]
        dev:
          app:
            imageSelector: slipway/busybox
            container: main
            sync:
              - path: ./src:/app
                excludePaths: [node_modules/]
                excludeFile: .syncignore
                uploadExcludePaths: [tmp/]
                downloadExcludePaths: [build/]
                initialSync: mirrorLocal
                initialSyncCompareBy: size
                polling: true
          conf:
            labelSelector: {tier: web}
            sync:
              - path: ./conf/app.conf:/etc/app.conf
                file: true
                disableDownload: true
                noWatch: true
        """

    @Test func pathsStartAtTheContainersWorkingDirectory() async throws {
        try await withProject(Self.config, files: ["src/a": "a"]) { dir, loaded, c in
            try c.make("work", workdir: "/work")
            var request = SyncRequest(paths: ["src:lib", ".", "./src:/abs", "../up:../x"], workingDirectory: dir)
            request.selector.containerName = "main"
            let p = try await plan(request, loaded)
            #expect(p.targets.map(\.remoteRoot) == ["/work/lib", "/work", "/abs", "/x"])
            #expect(
                p.targets.map(\.localRoot) == [
                    dir + "/src", dir, dir + "/src", (dir as NSString).deletingLastPathComponent + "/up",
                ]
            )
            #expect(p.targets[3].localRootExists == false, "a missing local root is made by the download")
            let t = p.targets[0]
            #expect(t.upload && t.download && t.watch && t.initialSync == .preferLocal && t.compareBy == .mtime)
            #expect(t.excludePaths == [".devspace/", ".git/"] && t.origin == "--path src:lib")
            #expect(p.timing == .defaults)
            #expect(p.notes.isEmpty, "\(p.notes)")
            // Without --path: . into the working directory; the config's entries are used only
            // when named, and a note says so.
            request.paths = []
            let plain = try await plan(request, loaded)
            #expect(plain.targets.map(\.remoteRoot) == ["/work"] && plain.targets.map(\.origin) == ["--path .:."])
            #expect(plain.notes.contains { $0.contains("slipway sync uses them when the config is named") })

            // A container without a working directory: `/`.
            c.removeAll()
            try c.make("root")
            request.paths = ["src"]
            #expect(try await plan(request, loaded).targets.map(\.remoteRoot) == ["/src"])
        }
    }

    @Test func theConfigsEntriesAsDevSpaceSyncUsesThem() async throws {
        try await withProject(
            Self.config,
            files: ["src/a": "a", ".syncignore": "# comment\n*.tmp\n\n!keep.tmp\n", "conf/app.conf": "x"]
        ) {
            dir,
            loaded,
            c in
            try c.make("main", user: ["tier": "web"])
            // Named config, two entries, nobody to ask: the entries are listed.
            var request = SyncRequest(configNamed: true, workingDirectory: dir)
            do throws(SyncPlanError) {
                _ = try await plan(request, loaded)
                Issue.record("expected a choice")
            } catch {
                guard case .ambiguousEntries(let names) = error else {
                    Issue.record("\(error)")
                    return
                }
                #expect(
                    names == [
                        "app: Sync img-selector: slipway/busybox/main: ./src <-> /app",
                        "conf: Sync selector: tier=web: ./conf/app.conf <-> /etc/app.conf",
                    ]
                )
                #expect(error.description.contains("slipway sync NAME"))
            }
            // Asked on a terminal: the first.
            let chosen = try await plan(request, loaded, choose: { _, options in options.count == 2 ? 0 : nil })
            let t = try #require(chosen.targets.first)
            #expect(chosen.targets.count == 1 && t.container.name == c.name("main"))
            #expect(t.localRoot == dir + "/src" && t.remoteRoot == "/app")
            #expect(t.origin == "dev.app.sync[0] (devspace.yaml:12:9)")
            #expect(t.excludePaths == [".devspace/", ".git/", "node_modules/", "*.tmp", "!keep.tmp"])
            #expect(t.uploadExcludePaths == ["tmp/"] && t.downloadExcludePaths == ["build/"])
            #expect(t.compareBy == .size)
            // devspace sync's strategy wins over the entry's, and says so; polling is noted.
            #expect(t.initialSync == .preferLocal)
            #expect(
                chosen.notes.contains {
                    $0.hasPrefix(
                        "devspace.yaml:17:9: dev.app.sync[0].initialSync: mirrorLocal is what slipway dev uses"
                    )
                }
            )
            #expect(
                chosen.notes.contains { $0.hasPrefix("devspace.yaml:19:9: dev.app.sync[0].polling: ignored because") }
            )
            // Flags: -e replaces excludePaths, --download-on-initial-sync=false is mirrorLocal,
            // --initial-sync wins over both.
            request.devName = "app"
            request.excludes = ["a,b", "c"]
            request.downloadOnInitialSync = false
            let flagged = try await plan(request, loaded)
            #expect(flagged.targets[0].excludePaths == [".devspace/", ".git/", "a", "b", "c", "*.tmp", "!keep.tmp"])
            #expect(flagged.targets[0].initialSync == .mirrorLocal)
            request.initialSync = .keepAll
            #expect(try await plan(request, loaded).targets[0].initialSync == .keepAll)

            // One file: its directories are the roots, everything else there excluded.
            request = SyncRequest(devName: "conf", workingDirectory: dir)
            let file = try await plan(request, loaded)
            let f = try #require(file.targets.first)
            #expect(f.localRoot == dir + "/conf" && f.remoteRoot == "/etc" && f.singleFile == "app.conf")
            #expect(f.excludePaths.suffix(2) == ["/*", "!/app.conf"])
            #expect(f.upload && !f.download && !f.watch && f.localRootExists)
            // Upload only, with a local root that does not exist: an error at the entry's path.
            try FileManager.default.removeItem(atPath: dir + "/conf")
            do throws(SyncPlanError) {
                _ = try await plan(request, loaded)
                Issue.record("expected an error")
            } catch {
                #expect(error.description.hasPrefix("devspace.yaml:23:9: dev.conf.sync[0].path:"), "\(error)")
                #expect(error.description.contains("no such file"), "\(error)")
            }
            // A dev entry that does not exist names the ones that do.
            request.devName = "nope"
            do throws(SyncPlanError) {
                _ = try await plan(request, loaded)
                Issue.record("expected an error")
            } catch {
                #expect(error.description == "devspace.yaml has no dev entry nope; it has: app, conf")
            }
        }
    }

    @Test func aMissingExcludeFileIsAnErrorAtItsPlace() async throws {
        try await withProject(Self.config, files: ["src/a": "a"]) { dir, loaded, c in
            try c.make("main")
            let request = SyncRequest(devName: "app", workingDirectory: dir)
            do throws(SyncPlanError) {
                _ = try await plan(request, loaded)
                Issue.record("expected an error")
            } catch {
                #expect(
                    error.description
                        == "devspace.yaml:14:9: dev.app.sync[0].excludeFile: \(dir)/.syncignore: no such file"
                )
            }
        }
    }

    @Test func severalContainersAreEachSyncedUnlessPicked() async throws {
        try await withProject(Self.config) { dir, loaded, c in
            try c.make("one")
            try c.make("two", deployment: "worker")
            var request = SyncRequest(workingDirectory: dir)
            request.selector.containerName = "main"
            let both = try await plan(request, loaded)
            #expect(both.targets.map(\.container.name) == [c.name("one"), c.name("two")])
            // --pick without a terminal: the list, and what to do.
            request.pick = true
            do throws(SyncPlanError) {
                _ = try await plan(request, loaded)
                Issue.record("expected an error")
            } catch {
                #expect(error.description.hasPrefix("2 containers match --container-name main:"), "\(error)")
                #expect(
                    error.description.contains(c.name("one"))
                        && error.description.contains("--pick chooses on a terminal")
                )
            }
            #expect(
                try await plan(request, loaded, choose: { _, _ in 1 }).targets.map(\.container.name) == [c.name("two")]
            )
            // No selector at all is a choice too, never "sync everything".
            request = SyncRequest(workingDirectory: dir)
            do throws(SyncPlanError) {
                _ = try await plan(request, loaded)
                Issue.record("expected an error")
            } catch {
                #expect(error.description.contains("name one with --container NAME"), "\(error)")
            }
            // The same container path twice in one sync.
            request.selector.containerName = "main"
            request.selector.labels = try LabelRequirement.parse("dev.slipway.deployment=api")
            request.paths = [".:/app", "./x:/app/"]
            do throws(SyncPlanError) {
                _ = try await plan(request, loaded)
                Issue.record("expected an error")
            } catch {
                #expect(error.description.contains(":/app is synced twice"), "\(error)")
            }
        }
    }

    @Test func theImageSelectorResolvesTheConfigsImages() async throws {
        try await withProject(Self.config) { dir, loaded, c in
            try c.make("main")
            var request = SyncRequest(workingDirectory: dir)
            request.selector.imageAsWritten = "${runtime.images.app}"
            let p = try await plan(request, loaded)
            #expect(p.targets.map(\.container.name) == [c.name("main")])
            request.selector.imageAsWritten = "${runtime.images.nope}"
            do throws(SyncPlanError) {
                _ = try await plan(request, loaded)
                Issue.record("expected an error")
            } catch {
                #expect(error.description.contains("names no image of devspace.yaml (it has: app)"), "\(error)")
            }
            // An images key resolves to its image and tag (the config's first tag, no build yet).
            request.selector.imageAsWritten = "slipway/busybox:nope"
            do throws(SyncPlanError) {
                _ = try await plan(request, loaded)
                Issue.record("expected no match")
            } catch {
                #expect(
                    error.description.contains("no running container matches --image-selector slipway/busybox:nope")
                )
            }
        }
    }

    @Test func aSecondSyncIntoTheSameContainerPathIsRefused() async throws {
        try await withProject(Self.config) { dir, loaded, c in
            try c.make("main")
            var request = SyncRequest(paths: [".:/app"], workingDirectory: dir)
            request.selector.containerName = "main"
            let p = try await plan(request, loaded)
            let locks = dir + "/locks"
            var first: SyncLock? = try SyncLock.acquire(p, directory: locks)
            #expect(first?.paths.count == 1)
            do throws(SyncPlanError) {
                _ = try SyncLock.acquire(p, directory: locks)
                Issue.record("expected the lock to be held")
            } catch {
                #expect(
                    error.description.hasPrefix(
                        "another slipway sync already syncs into \(c.name("main")):/app (pid \(getpid()), from \(dir))"
                    ),
                    "\(error)"
                )
            }
            // Another path of the same container is another lock.
            request.paths = [".:/other"]
            let other = try SyncLock.acquire(try await plan(request, loaded), directory: locks)
            // Released when the holder goes away, however it goes.
            first = nil
            _ = try SyncLock.acquire(p, directory: locks)
            withExtendedLifetime(other) {}
            #expect(first == nil)

            // A process killed with -9 holds it no more.
            let file = try #require(SyncLock.acquire(p, directory: locks).paths.first)
            // -o: the lock is flock(1)'s alone, not its child's.
            let held = try sh(
                ["sh", "-c", "flock -o -x \"$1\" sleep 60 >/dev/null 2>&1 & echo $!", "sh", file],
                cwd: dir
            )
            let pid = held.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            var holding = false
            for _ in 0..<100 {
                if (try? SyncLock.acquire(p, directory: locks)) == nil {
                    holding = true
                    break
                }
                usleep(20_000)
            }
            #expect(holding, "flock(1) took the lock")
            _ = try sh(["kill", "-9", pid], cwd: dir)
            var free = false
            for _ in 0..<250 {
                if (try? SyncLock.acquire(p, directory: locks)) != nil {
                    free = true
                    break
                }
                usleep(20_000)
            }
            #expect(free, "the lock went with its killed holder")
            // In a git repository the locks live in its state directory.
            _ = try sh(["git", "init", "-q", dir], cwd: dir)
            #expect(SyncLock.directory(for: dir, environment: [:]).hasSuffix("/.git/slipway/sync"))
        }
    }
}
