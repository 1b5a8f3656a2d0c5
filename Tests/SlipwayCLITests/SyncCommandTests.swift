import ArgumentParser
import Foundation
import SlipwayCore
import SlipwayTestSupport
import Testing

@testable import SlipwayCLI

/// `slipway sync`'s flags, parsed in-process as the binary parses them (pflag's booleans first).
@Suite struct SyncParsingTests {
    func sync(_ args: [String]) throws -> SlipwayCommand.Sync {
        try #require(try SlipwayCommand.parseCommandLine(["sync"] + args) as? SlipwayCommand.Sync)
    }

    @Test func everyFlag() throws {
        let s = try sync([
            "app", "--container-name", "web", "-l", "a=1", "--label-selector", "b!=2,c", "--image-selector",
            "${runtime.images.app}", "--pick", "--wait", "--wait-timeout", "5", "--branch-env=feature/Login",
            "--path", ".:/app", "--path", "src:lib", "-e", "a,b", "--exclude", "c", "--upload-only", "--initial-sync",
            "keepAll", "--download-on-initial-sync=false", "--no-watch", "--quiet-ms", "1", "--burst-ms", "2",
            "--max-delay-ms", "3", "--json", "--config", "other.yaml", "-C", "/tmp",
        ])
        #expect(s.dev == "app" && s.selection.containerName == "web" && s.selection.container == nil)
        #expect(
            s.selection.labelSelectors == ["a=1", "b!=2,c"] && s.selection.imageSelector == "${runtime.images.app}"
        )
        #expect(s.selection.pick && s.selection.wait && s.selection.waitTimeout == 5)
        #expect(s.selection.branchEnv == "feature/Login")
        #expect(s.paths == [".:/app", "src:lib"] && s.excludes == ["a,b", "c"])
        #expect(s.uploadOnly && !s.downloadOnly && s.initialSync == "keepAll" && !s.downloadOnInitialSync)
        #expect(s.noWatch && s.quietMs == 1 && s.burstMs == 2 && s.maxDelayMs == 3 && s.json)
        #expect(s.global.config == "other.yaml" && s.global.chdir == "/tmp")

        let request = s.request(timing: .defaults, workingDirectory: "/w", configNamed: true)
        #expect(request.selector.containerName == "web" && request.selector.branch == "feature-Login")
        #expect(request.selector.labels.map(\.description) == ["a=1", "b!=2", "c"])
        #expect(request.selector.imageAsWritten == "${runtime.images.app}" && request.selector.image == nil)
        #expect(request.pick && request.wait && request.waitTimeout == .seconds(5))
        #expect(request.paths == [".:/app", "src:lib"] && request.excludes == ["a,b", "c"])
        #expect(request.uploadOnly && request.initialSync == .keepAll && request.strategy == .keepAll)
        #expect(request.noWatch && request.devName == "app" && request.configNamed && request.workingDirectory == "/w")
    }

    @Test func defaultsAndOtherSpellings() throws {
        let d = try sync([])
        #expect(d.dev == nil && d.paths.isEmpty && d.downloadOnInitialSync && !d.noWatch && !d.json)
        let r = d.request(timing: .defaults, workingDirectory: "/w", configNamed: false)
        #expect(r.strategy == .preferLocal && !r.pick && !r.wait && r.waitTimeout == nil && r.selector.isEmpty)
        #expect(r.selector.branch == nil)
        #expect(
            try sync(["--no-download-on-initial-sync"]).request(
                timing: .defaults,
                workingDirectory: "/",
                configNamed: false
            ).strategy == .mirrorLocal
        )
        #expect(try sync(["--download-on-initial-sync=true"]).downloadOnInitialSync)
        let c = try sync([
            "-c", "api", "--download-only", "--upload-only=false", "--polling=false", "--branch-env", "main",
        ])
        #expect(c.selection.containerName == "api" && c.downloadOnly && !c.uploadOnly && !c.polling)
        #expect(c.selection.branchEnv == "main")
        #expect(try sync(["--container", "3f2a1b9c0d1e"]).selection.container == "3f2a1b9c0d1e")
        #expect(try sync(["--pod", "p"]).selection.pod == "p")
        // `deploy --branch-env` stays a switch.
        let deploy = try #require(
            try SlipwayCommand.parseCommandLine(["deploy", "--branch-env=true"]) as? SlipwayCommand.Deploy
        )
        #expect(deploy.flags.branchEnv)
    }

    @Test(arguments: [
        ["--upload-only", "--download-only"], ["--initial-sync", "mirror"], ["--polling"], ["--polling=true"],
        ["--container", "x", "-c", "y"], ["--container", "x", "-l", "a=b"], ["--container", "x", "--branch-env", "m"],
        ["-l", "a in (b,c)"], ["-l", "a=1,,b"], ["--quiet-ms", "-1"], ["--max-delay-ms", "600001"],
        ["--quiet-ms", "200", "--burst-ms", "100", "--max-delay-ms", "300"], ["--wait-timeout", "5"],
        ["--wait", "--wait-timeout", "0"], ["--container", " "], ["--branch-env"], ["--path", ""], ["--nope"],
        ["--json=maybe"], ["a", "b"],
    ])
    func usageErrorsExit64(_ args: [String]) {
        do {
            _ = try SlipwayCommand.parseCommandLine(["sync"] + args)
            Issue.record("\(args) parsed")
        } catch {
            #expect(SlipwayCommand.exitCode(for: error).rawValue == 64, "\(args): \(error)")
        }
    }

    @Test func theUsageErrorsSayWhatToDo() {
        func message(_ args: [String]) -> String {
            do {
                _ = try SlipwayCommand.parseCommandLine(["sync"] + args)
                return ""
            } catch {
                return SlipwayCommand.message(for: error)
            }
        }
        #expect(
            message(["--polling"]).contains(
                "--polling is not supported: slipway's helper watches the container with inotify"
            )
        )
        #expect(
            message(["--upload-only", "--download-only"])
                == "--upload-only cannot be used together with --download-only"
        )
        #expect(
            message(["--initial-sync", "mirror"]).contains(
                "use one of mirrorLocal, mirrorRemote, preferLocal, preferRemote, preferNewest, keepAll, disabled"
            )
        )
        #expect(message(["--container", "x", "-c", "y"]).contains("cannot be combined with --container-name"))
        #expect(message(["-l", "a in (b,c)"]).contains("set-based terms"))
        #expect(
            message(["--quiet-ms", "200", "--burst-ms", "100", "--max-delay-ms", "300"]).contains(
                "(--quiet-ms) is longer than the burst quiet time 100 ms (--burst-ms)"
            )
        )
    }
}

/// `slipway sync` end to end: the built binary, a git repository with a devspace.yaml, and
/// containers labelled as slipway's deployers label them.
@Suite(.requiresDockerEngine, .timeLimit(.minutes(3)))
struct SyncCommandTests {
    static let config = """
        version: v2beta1
        name: sync-cli
        dev:
          app:
            labelSelector: {tier: web}
            sync:
              - path: ./src:/app
                polling: true
                bandwidthLimits: {upload: 100}
          jobs:
            imageSelector: slipway/busybox
            container: worker
            sync:
              - path: ./jobs:jobs
        """

    /// A git repository with the config, `src/`, and a container per call of `make`.
    func withProject(_ body: (String, LabelledCLIContainers) throws -> Void) throws {
        try withTemporaryDirectory { dir in
            try Self.config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            #expect(try sh(["git", "init", "-q", dir], cwd: dir).status == 0)
            let containers = LabelledCLIContainers(config: dir + "/devspace.yaml")
            defer { containers.removeAll() }
            try body(dir, containers)
        }
    }

    @Test func printsThePlanForEachSelectorForm() throws {
        try withProject { dir, c in
            let id = try c.make("web", container: "main", user: ["tier": "web"], workdir: "/srv")
            try c.make("feature", container: "main", branch: "feature-login")
            let plain = try SlipwayBinary.run(
                ["sync", "-c", "main", "--path", "src:code", "--json", "--no-watch"],
                in: dir
            )
            #expect(plain.status == 0, "\(plain.stderr)")
            let first = String(plain.stdout.split(separator: "\n").first ?? "")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
            let targets = try #require(json["targets"] as? [[String: Any]])
            #expect(targets.count == 1)
            #expect(targets.first?["remoteRoot"] as? String == "/srv/code")
            #expect(targets.first?["localRoot"] as? String == dir + "/src")
            #expect((targets.first?["container"] as? [String: Any])?["id"] as? String == id)
            // The initial sync ran: its batch is the next line, as JSON.
            #expect(plain.stdout.contains("\"event\":\"batch\""), "\(plain.stdout)")
            // The human form; a branch environment by its branch's name.
            let branch = try SlipwayBinary.run(
                ["sync", "--branch-env=feature/login", "-c", "main", "--path", "src:/code", "--no-watch"],
                in: dir
            )
            #expect(branch.status == 0, "\(branch.stderr)")
            #expect(
                branch.stdout.contains(" ⇄ \(c.name("feature")):/code (preferLocal, both ways, once)"),
                "\(branch.stdout)"
            )
            // The container's / is never a sync root (its working directory is /).
            let slash = try SlipwayBinary.run(
                ["sync", "--branch-env=feature/login", "-c", "main", "--no-watch"],
                in: dir
            )
            #expect(
                slash.status == 1 && slash.stderr.contains("sync a directory of the application instead"),
                "\(slash.stderr)"
            )
            // Labels, and the config's entry for a named dev entry (its ignored fields noted).
            let named = try SlipwayBinary.run(["sync", "app", "--no-watch"], in: dir)
            #expect(named.status == 0, "\(named.stderr)")
            #expect(
                named.stdout.contains("\(dir)/src ⇄ \(c.name("web")):/app (preferLocal, both ways, once)"),
                "\(named.stdout)"
            )
            #expect(named.stdout.contains("from dev.app.sync[0] (devspace.yaml:7:9)"), "\(named.stdout)")
            #expect(
                named.stderr.contains("note: devspace.yaml:8:9: dev.app.sync[0].polling: ignored because"),
                "\(named.stderr)"
            )
            #expect(named.stderr.contains("note: devspace.yaml:9:9: dev.app.sync[0].bandwidthLimits: ignored because"))
        }
    }

    @Test func failuresExit1WithWhatToDo() throws {
        try withProject { dir, c in
            try c.make("web", container: "main", user: ["tier": "web"])
            for (args, text) in [
                (["--pod", "api-0"], "slipway: Kubernetes pods are not supported yet (--pod api-0)"),
                (["-n", "team", "-c", "main"], "Kubernetes pods are not supported yet (--namespace team)"),
                (["--kube-context", "kind-dev"], "Kubernetes pods are not supported yet (--kube-context kind-dev)"),
                (["-c", "nothing"], "slipway: no running container matches --container-name nothing"),
                (["--config", "devspace.yaml"], "2 sync configurations found; name the dev entry to use"),
                (["nope"], "devspace.yaml has no dev entry nope; it has: app, jobs"),
                (["-c", "main", "--path", "missing:/x", "--upload-only"], "no such directory"),
            ] {
                let r = try SlipwayBinary.run(["sync"] + args, in: dir)
                #expect(r.status == 1 && r.stderr.contains(text), "\(args): \(r.status) \(r.stderr)")
                #expect(r.stdout.isEmpty, "\(args): \(r.stdout)")
            }
            let env = try SlipwayBinary.run(["sync", "-c", "main"], in: dir, env: ["SLIPWAY_SYNC_QUIET_MS": "soon"])
            #expect(env.status == 1 && env.stderr.contains("SLIPWAY_SYNC_QUIET_MS=soon: not a number of milliseconds"))
            let usage = try SlipwayBinary.run(["sync", "--polling"], in: dir)
            #expect(usage.status == 64 && usage.stderr.contains("--polling is not supported"), "\(usage.stderr)")
        }
    }

    @Test func aSecondSyncIntoTheSameContainerPathIsRefused() throws {
        try withProject { dir, c in
            let id = try c.make("web", container: "main")
            let lock = SyncLock.path(in: dir + "/.git/slipway/sync", container: id, remote: "/app")
            // The first sync's lock, held by another process (flock(1), the same flock(2)).
            try FileManager.default.createDirectory(
                atPath: dir + "/.git/slipway/sync",
                withIntermediateDirectories: true
            )
            try "pid 4242, from /elsewhere\n".write(toFile: lock, atomically: false, encoding: .utf8)
            let held = try sh(
                ["sh", "-c", "flock -o -x \"$1\" sleep 60 >/dev/null 2>&1 & echo $!", "sh", lock],
                cwd: dir
            )
            let pid = held.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = try? sh(["kill", "-9", pid], cwd: dir) }
            var refused: SlipwayBinary.Result?
            for _ in 0..<50 {
                let r = try SlipwayBinary.run(["sync", "-c", "main", "--path", ".:/app", "--no-watch"], in: dir)
                if r.status == 1 {
                    refused = r
                    break
                }
                usleep(50_000)
            }
            let r = try #require(refused, "the held lock was never seen")
            #expect(
                r.stderr.contains(
                    "another slipway sync already syncs into \(c.name("web")):/app (pid 4242, from /elsewhere)"
                ),
                "\(r.stderr)"
            )
            // Another path of the same container is free.
            #expect(
                try SlipwayBinary.run(["sync", "-c", "main", "--path", ".:/other", "--no-watch"], in: dir).status == 0
            )
        }
    }

    @Test func waitSeesTheContainerStart() throws {
        try withProject { dir, c in
            try c.make("late", container: "late", start: false)
            let script = """
                "$1" sync -c late --path src:/code --wait --wait-timeout 120 --json --no-watch > out.json 2> err.txt &
                pid=$!
                sleep 1
                docker start "$2" > /dev/null
                wait $pid
                echo "status $?"
                """
            let r = try sh(["sh", "-c", script, "sh", SlipwayBinary.path, c.name("late")], cwd: dir)
            #expect(
                r.stdout.contains("status 0"),
                "\(r.stdout) \(r.stderr) \((try? String(contentsOfFile: dir + "/err.txt", encoding: .utf8)) ?? "")"
            )
            let out = try String(contentsOfFile: dir + "/out.json", encoding: .utf8)
            #expect(out.contains("\"name\":\"\(c.name("late"))\""), "\(out)")
        }
    }

    @Test func validateNamesTheIgnoredFields() throws {
        try withProject { dir, _ in
            let r = try SlipwayBinary.run(["validate"], in: dir)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(
                r.stdout.contains(
                    "note: devspace.yaml:8:9: dev.app.sync[0].polling: ignored because slipway's helper watches the container with inotify"
                ),
                "\(r.stdout)"
            )
            #expect(
                r.stdout.contains("note: devspace.yaml:9:9: dev.app.sync[0].bandwidthLimits: ignored because"),
                "\(r.stdout)"
            )
        }
    }
}

/// Containers labelled as slipway's deployers label them, made with the docker CLI.
struct LabelledCLIContainers {
    let config: String
    let marker = "dev.slipway.sync-cli-test=" + UUID().uuidString.lowercased()

    func name(_ base: String) -> String { "\(base)-\(marker.suffix(8))" }

    @discardableResult
    func make(
        _ base: String,
        container: String,
        branch: String = "",
        user: [String: String] = [:],
        workdir: String? = nil,
        start: Bool = true
    ) throws -> String {
        var args = ["docker", start ? "run" : "create"]
        if start { args.append("-d") }
        args += ["--network", "none", "--name", name(base), "--label", marker]
        var labels = [
            "dev.slipway.config": config, "dev.slipway.project": "sync-cli", "dev.slipway.deployment": "api",
            "dev.slipway.container": container, "dev.slipway.branch": branch,
        ]
        for (k, v) in user { labels["dev.slipway.user.\(k)"] = v }
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) { args += ["--label", "\(k)=\(v)"] }
        if let workdir { args += ["--workdir", workdir] }
        args += ["slipway/busybox:latest", "sleep", "300"]
        let out = try sh(args, cwd: "/")
        guard out.status == 0 else { throw TestSupportError("\(args): \(out.stderr)") }
        return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func removeAll() {
        _ = try? sh(
            ["sh", "-c", "docker ps -aq --filter \"label=$1\" | xargs -r docker rm -f >/dev/null", "sh", marker],
            cwd: "/"
        )
    }
}
