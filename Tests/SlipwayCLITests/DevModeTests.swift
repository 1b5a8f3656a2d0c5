import Foundation
import SlipwayTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// `slipway dev` end to end (issue 16): a project with a `docker` deployment and a `dev` entry,
// the real engine, the built binary. The deployment runs first (`slipway deploy`), so that the
// original container's inspection can be compared with what Ctrl-C restores.

/// A project whose `app` image runs `sleep`, deployed as a docker container, with a dev entry.
struct DevProject {
    let directory: String
    let name: String

    var container: String { "\(name)-app-main" }
    var image: String { "slipway-test/\(name)" }

    static func make(
        in directory: String,
        dev: String,
        network: String = "none",
        command: String = "echo started; exec sleep 100000"
    ) throws -> DevProject {
        let name = "devtest-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory + "/site", withIntermediateDirectories: true)
        try "<h1>v1</h1>\n".write(toFile: directory + "/site/index.html", atomically: true, encoding: .utf8)
        try """
        FROM slipway/busybox
        COPY site/ /www/
        CMD ["sh", "-c", "\(command)"]
        """.write(toFile: directory + "/Dockerfile", atomically: true, encoding: .utf8)
        try ".devspace\nnotes.txt\n".write(toFile: directory + "/.dockerignore", atomically: true, encoding: .utf8)
        try """
        version: v2beta1
        name: \(name)
        images:
          app:
            image: slipway-test/\(name)
            skipPush: true
        deployments:
          app:
            docker:
              network: \(network)
              containers:
                - name: main
                  image: slipway-test/\(name)
                  env:
                    FROM_DEPLOYMENT: "yes"
        dev:
        \(dev)
        """.write(toFile: directory + "/devspace.yaml", atomically: true, encoding: .utf8)
        return DevProject(directory: directory, name: name)
    }

    enum Ready {
        /// Every sync has compared both sides and watches.
        case syncsWatch
        /// The session runs (entries without syncs).
        case sessionRuns
    }

    /// Where a background `slipway dev` writes its output: outside the project, so that files
    /// written there do not change the image's context.
    var output: String { NSTemporaryDirectory() + "slipway-devtest-out-" + name }

    /// `slipway dev --no-logs` in the background, once it is `ready` (an issue when it is not, or
    /// when it ended).
    func startDev(until ready: Ready, within timeout: Duration = .seconds(90)) async throws -> BackgroundSlipway {
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let dev = try await BackgroundSlipway.start(["dev", "--no-logs"], in: directory, out: output)
        let isReady = try await eventually(timeout) {
            let seen =
                ready == .syncsWatch
                ? dev.stderr.contains("watching both sides") : dev.stdout.contains("dev: watching")
            return seen || dev.exitStatus != nil
        }
        #expect(isReady && dev.exitStatus == nil, "\(dev.stdout)\n\(dev.stderr)")
        return dev
    }

    func removeOutput() { try? FileManager.default.removeItem(atPath: output) }

    /// Puts the project's name where the dev entry says PROJECT.
    func fill() throws {
        let config = directory + "/devspace.yaml"
        try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "PROJECT", with: name)
            .write(toFile: config, atomically: true, encoding: .utf8)
    }

    func inspect(_ container: String, _ format: String) async throws -> String {
        let r = try await docker("inspect", "--format", format, container)
        return r.status == 0 ? r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : ""
    }

    /// The content of `path` in the container, "" when it cannot be read.
    func read(_ path: String) async throws -> String {
        let r = try await docker("exec", container, "cat", path)
        return r.status == 0 ? r.stdout : ""
    }

    /// How often the restart helper ran the command again (its `status`: `ok PID RESTARTS STATE`).
    func restarts() async throws -> Int {
        let r = try await docker("exec", container, "/.slipway/helper", "status")
        let fields = r.stdout.split(separator: " ")
        return fields.count >= 3 ? Int(fields[2]) ?? -1 : -1
    }

    func purge() async {
        _ = try? await offPool {
            let ids = try sh(["docker", "ps", "-aq", "--filter", "label=dev.slipway.project=\(name)"], cwd: "/")
            let list = ids.stdout.split(separator: "\n").map(String.init)
            if !list.isEmpty { _ = try sh(["docker", "rm", "-f", "-v"] + list, cwd: "/") }
            _ = try sh(["docker", "image", "rm", "-f", image], cwd: "/")
        }
    }
}

private func shellQuote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// Waits until `condition` holds (checked every 50 ms), at most `timeout`.
private func eventually(
    _ timeout: Duration = .seconds(20),
    _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

extension DockerHeavyDevTests {
    @Suite(.requiresDockerEngine, .timeLimit(.minutes(5)))
    struct DevModeTests {
        @Test func devReplacesTheContainerSyncsRunsCommandsAfterUploadsAndCtrlCRestoresTheOriginal() async throws {
            try await withTemporaryDirectory { dir in
                let project = try DevProject.make(
                    in: dir,
                    dev: """
                          app:
                            imageSelector: slipway-test/PROJECT
                            workingDir: /www
                            env:
                              - name: DEV_MODE
                                value: "on"
                            sync:
                              - path: ./site:/www
                                onUpload:
                                  restartContainer: true
                                  exec:
                                    - command: "cat /www/index.html >> /tmp/html-runs"
                                      onChange: ["*.html"]
                                    - command: "echo once >> /tmp/once-runs"
                                      once: true
                        """
                )
                defer { Task { await project.purge() } }
                try project.fill()

                let deploy = try await offPool { try SlipwayBinary.run(["deploy"], in: dir, timeout: 120) }
                #expect(deploy.status == 0, "\(deploy.stderr)")
                let originalID = try await project.inspect(project.container, "{{.Id}}")
                let originalConfig = try await project.inspect(project.container, "{{json .Config}}")
                let originalHost = try await project.inspect(project.container, "{{json .HostConfig}}")
                let imageID = try await project.inspect(project.container, "{{.Image}}")
                #expect(!originalID.isEmpty)

                let dev = try await project.startDev(until: .syncsWatch)
                defer { project.removeOutput() }

                // The dev container stands in for the deployed one: same name, the dev entry's
                // environment and working directory, the same image; the original is stopped.
                let devID = try await project.inspect(project.container, "{{.Id}}")
                #expect(!devID.isEmpty && devID != originalID)
                let env = try await project.inspect(project.container, "{{json .Config.Env}}")
                #expect(env.contains("DEV_MODE=on") && env.contains("FROM_DEPLOYMENT=yes"), "\(env)")
                #expect(try await project.inspect(project.container, "{{.Config.WorkingDir}}") == "/www")
                #expect(try await project.inspect(project.container, "{{.Image}}") == imageID)
                #expect(
                    try await project.inspect(project.container, "{{index .Config.Labels \"dev.slipway.dev\"}}")
                        == "app"
                )
                let swapped = project.container + ".slipway-dev-original"
                #expect(try await project.inspect(swapped, "{{.Id}}") == originalID)
                #expect(try await project.inspect(swapped, "{{.State.Running}}") == "false")

                // The restart helper is the dev container's first process.
                #expect(
                    try await project.inspect(project.container, "{{json .Config.Entrypoint}}").contains(
                        "/.slipway/helper"
                    )
                )
                let restartsBefore = try await project.restarts()

                // An edit arrives; the html command runs for it, the once command once; the process
                // is restarted once for the batch.
                try "<h1>v2</h1>\n".write(toFile: dir + "/site/index.html", atomically: false, encoding: .utf8)
                #expect(try await eventually { try await project.read("/www/index.html") == "<h1>v2</h1>\n" })
                #expect(try await eventually { try await project.read("/tmp/html-runs").contains("<h1>v2</h1>") })
                let htmlRuns = try await project.read("/tmp/html-runs")
                #expect(try await eventually { try await project.restarts() == restartsBefore + 1 })
                // A file no onChange glob matches: no html run, and once stays once.
                try "data\n".write(toFile: dir + "/site/data.txt", atomically: false, encoding: .utf8)
                #expect(try await eventually { try await project.read("/www/data.txt") == "data\n" })
                #expect(try await eventually { dev.stdout.contains("skipped, no uploaded path matches") })
                #expect(try await project.read("/tmp/html-runs") == htmlRuns, "no html command for data.txt")
                #expect(try await project.read("/tmp/once-runs") == "once\n")
                #expect(try await eventually { try await project.restarts() == restartsBefore + 2 })
                #expect(try await project.inspect(project.container, "{{.Image}}") == imageID, "no rebuild for a sync")

                // Ctrl-C: the session ends, the original is back exactly as it was deployed.
                dev.send(SIGINT)
                let status = try await dev.finished(timeout: .seconds(60))
                #expect(status == 0, "\(dev.stdout)\n\(dev.stderr)")
                #expect(try await project.inspect(project.container, "{{.Id}}") == originalID)
                #expect(try await project.inspect(project.container, "{{.State.Running}}") == "true")
                #expect(try await project.inspect(project.container, "{{json .Config}}") == originalConfig)
                #expect(try await project.inspect(project.container, "{{json .HostConfig}}") == originalHost)
                #expect(try await project.inspect(swapped, "{{.Id}}") == "", "the swapped name is gone")
                let devGone = try await docker("inspect", devID)
                #expect(devGone.status != 0, "the dev container is removed")
            }
        }

        @Test func aDockerfileEditRebuildsAndReplacesTheDevContainerAnExcludedFileDoesNothing() async throws {
            try await withTemporaryDirectory { dir in
                let project = try DevProject.make(
                    in: dir,
                    dev: """
                          app:
                            imageSelector: slipway-test/PROJECT
                            env:
                              - name: DEV_MODE
                                value: "on"
                            sync:
                              - path: ./site:/www
                        """
                )
                defer { Task { await project.purge() } }
                try project.fill()
                let dev = try await project.startDev(until: .syncsWatch)
                defer { project.removeOutput() }
                let imageID = try await project.inspect(project.container, "{{.Image}}")
                try "data\n".write(toFile: dir + "/site/data.txt", atomically: false, encoding: .utf8)
                #expect(try await eventually { try await project.read("/www/data.txt") == "data\n" })

                // A file .dockerignore excludes: neither synced nor rebuilt.
                try "n\n".write(toFile: dir + "/notes.txt", atomically: false, encoding: .utf8)
                // The Dockerfile: rebuilt, and the new dev container runs the new image with the
                // synced files in it.
                let dockerfile = try String(contentsOfFile: dir + "/Dockerfile", encoding: .utf8)
                try (dockerfile + "\nLABEL edited=1\n").write(
                    toFile: dir + "/Dockerfile",
                    atomically: false,
                    encoding: .utf8
                )
                let rebuilt = try await eventually(.seconds(60)) {
                    let image = try await project.inspect(project.container, "{{.Image}}")
                    let label = try await project.inspect(
                        project.container,
                        "{{index .Config.Labels \"dev.slipway.dev\"}}"
                    )
                    let data = try await project.read("/www/data.txt")
                    return !image.isEmpty && image != imageID && label == "app" && data == "data\n"
                }
                #expect(rebuilt, "\(dev.stdout)\n\(dev.stderr)")
                #expect(dev.stdout.contains("rebuild app? Dockerfile changed"), "\(dev.stdout)")
                #expect(!dev.stdout.contains("notes.txt"), "an excluded file triggers nothing")
                let newImage = try await project.inspect(project.container, "{{.Image}}")
                #expect(try await project.inspect(newImage, "{{index .Config.Labels \"edited\"}}") == "1")
                // A context file no sync path covers: the build decision runs (the image's layers do
                // not hold the file, so the engine may well give the same image).
                try "x\n".write(toFile: dir + "/unsynced.txt", atomically: false, encoding: .utf8)
                let rebuiltAgain = try await eventually(.seconds(60)) {
                    dev.stdout.contains(
                        "rebuilding app: app: unsynced.txt changed in its context and no sync path covers it"
                    )
                        && dev.stdout.components(separatedBy: "context changed").count >= 2
                }
                #expect(rebuiltAgain, "\(dev.stdout)")
                // That rebuild's start_dev has run too (one `dev app:` line each: the first start,
                // two rebuilds): it would remove the leftover made below.
                let settled = try await eventually(.seconds(60)) {
                    (dev.stdout + dev.stderr).components(separatedBy: "dev app: ").count - 1 >= 3
                }
                #expect(settled, "\(dev.stdout)\n\(dev.stderr)")
                // The old dev container was retired under another name and removed once the new one
                // ran: none is left.
                #expect(try await retired().isEmpty)
                // One an interrupted replacement left (the dev container's labels, a retired name)
                // is removed by the next stop_dev, and by purge.
                try await leaveRetired("000000000001")
                #expect(try await retired() == ["\(project.container).slipway-dev-retired-000000000001"])

                dev.send(SIGINT)
                #expect(try await dev.finished(timeout: .seconds(60)) == 0, "\(dev.stdout)\n\(dev.stderr)")
                // The rebuilds made a new deployed container (a new image): it runs again now.
                #expect(try await project.inspect(project.container, "{{.State.Running}}") == "true")
                #expect(
                    try await project.inspect(project.container, "{{index .Config.Labels \"dev.slipway.dev\"}}") == ""
                )
                #expect(try await retired().isEmpty, "stop_dev removes a retired dev container")
                try await leaveRetired("000000000002")
                let purged = try await offPool { try SlipwayBinary.run(["purge"], in: dir) }
                #expect(purged.status == 0, "\(purged.stderr)")
                #expect(try await retired().isEmpty, "purge removes a retired dev container")

                /// The retired dev containers of the project's container.
                func retired() async throws -> [String] {
                    let r = try await docker(
                        "ps",
                        "-a",
                        "--format",
                        "{{.Names}}",
                        "--filter",
                        "name=^\(project.container).slipway-dev-retired-"
                    )
                    return r.stdout.split(separator: "\n").map(String.init)
                }
                /// A stopped container with the deployed container's labels and a dev entry's, under a
                /// retired name.
                func leaveRetired(_ id: String) async throws {
                    let labels = try await project.inspect(project.container, "{{json .Config.Labels}}")
                    let decoded = try JSONSerialization.jsonObject(with: Data(labels.utf8)) as? [String: String] ?? [:]
                    var args = [
                        "create", "--name", "\(project.container).slipway-dev-retired-\(id)", "--network", "none",
                    ]
                    for (key, value) in decoded.merging(["dev.slipway.dev": "app"], uniquingKeysWith: { $1 }) {
                        args += ["--label", "\(key)=\(value)"]
                    }
                    let command = ["docker"] + args + ["slipway/busybox:latest"]
                    let r = try await offPool { try sh(command, cwd: "/") }
                    #expect(r.status == 0, "\(r.stderr)")
                }
            }
        }

        /// `terminal` opens in place of the logs (here its `command`, under a pseudo-terminal from
        /// `script`): it runs in the dev container, whose own process became `sleep`; when it ends,
        /// the session ends and the original is back.
        @Test func terminalRunsInTheDevContainerAndEndsTheSession() async throws {
            try await withTemporaryDirectory { dir in
                let project = try DevProject.make(
                    in: dir,
                    dev: """
                          app:
                            imageSelector: slipway-test/PROJECT
                            terminal:
                              command: "echo term-$((2+3)) in $(pwd) on $(tty); echo sleeping=$(ps -o args | grep -c '^sleep 1000000000')"
                              workDir: /www
                        """
                )
                defer { Task { await project.purge() } }
                try project.fill()
                let deploy = try await offPool { try SlipwayBinary.run(["deploy"], in: dir, timeout: 120) }
                #expect(deploy.status == 0, "\(deploy.stderr)")
                let originalID = try await project.inspect(project.container, "{{.Id}}")
                let command = "\(shellQuote(SlipwayBinary.path)) dev --no-logs"
                let r = try await offPool {
                    try sh(
                        ["sh", "-c", "timeout 120 script -qec \(shellQuote(command)) /dev/null < /dev/null"],
                        cwd: dir
                    )
                }
                #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
                #expect(r.stdout.contains("term-5 in /www on /dev/pts/"), "\(r.stdout)")
                #expect(r.stdout.contains("sleeping=1"), "the dev container runs sleep: \(r.stdout)")
                #expect(try await project.inspect(project.container, "{{.Id}}") == originalID)
                #expect(try await project.inspect(project.container, "{{.State.Running}}") == "true")
            }
        }

        /// `attach` opens the dev container's own process in place of the logs: its input is ours.
        @Test func attachConnectsToTheDevContainersProcess() async throws {
            try await withTemporaryDirectory { dir in
                let project = try DevProject.make(
                    in: dir,
                    dev: """
                          app:
                            imageSelector: slipway-test/PROJECT
                            command: ["sh", "-c", "read line; echo got-$line; sleep 1"]
                            attach:
                              disableTTY: true
                        """
                )
                defer { Task { await project.purge() } }
                try project.fill()
                let deploy = try await offPool { try SlipwayBinary.run(["deploy"], in: dir, timeout: 120) }
                #expect(deploy.status == 0, "\(deploy.stderr)")
                let originalID = try await project.inspect(project.container, "{{.Id}}")
                let r = try await offPool {
                    try sh(
                        [
                            "sh", "-c",
                            "echo hello-attach | timeout 120 \(shellQuote(SlipwayBinary.path)) dev --no-logs",
                        ],
                        cwd: dir
                    )
                }
                #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
                #expect(r.stdout.contains("got-hello-attach"), "\(r.stdout)\n\(r.stderr)")
                #expect(try await project.inspect(project.container, "{{.Id}}") == originalID)
            }
        }

        /// `ports` on the host network: `LOCAL:REMOTE` is forwarded by slipway, a port that is the
        /// same on both sides needs nothing and is said so.
        @Test func portsForwardOnTheHostNetworkAndSayWhatNeedsNothing() async throws {
            try await withTemporaryDirectory { dir in
                let (remote, local) = (try freePort(), try freePort())
                let project = try DevProject.make(
                    in: dir,
                    dev: """
                          app:
                            imageSelector: slipway-test/PROJECT
                            ports:
                              - port: "\(local):\(remote)"
                              - port: "\(remote)"
                            sync:
                              - path: ./site:/www
                        """,
                    network: "host",
                    command: "exec httpd -f -p 127.0.0.1:\(remote) -h /www"
                )
                defer { Task { await project.purge() } }
                try project.fill()
                let dev = try await project.startDev(until: .syncsWatch)
                defer { project.removeOutput() }
                #expect(
                    dev.stdout.contains("127.0.0.1:\(local) → \(project.container):\(remote) (host network)"),
                    "\(dev.stdout)"
                )
                #expect(dev.stdout.contains("so port \(remote) is this machine's already"), "\(dev.stdout)")
                func get(_ port: Int) async throws -> String {
                    try await docker(
                        "run",
                        "--rm",
                        "--network",
                        "host",
                        "slipway/busybox",
                        "wget",
                        "-qO-",
                        "http://127.0.0.1:\(port)/"
                    ).stdout
                }
                #expect(try await eventually { try await get(local) == "<h1>v1</h1>\n" }, "served through the forward")
                try "<h1>v2</h1>\n".write(toFile: dir + "/site/index.html", atomically: false, encoding: .utf8)
                #expect(
                    try await eventually { try await get(local) == "<h1>v2</h1>\n" },
                    "the synced page through the forward"
                )
                dev.send(SIGINT)
                #expect(try await dev.finished(timeout: .seconds(60)) == 0, "\(dev.stderr)")
                #expect(try await get(local) == "", "the forward ends with the session")
            }
        }

        /// `devImage` (`${runtime.images.tools}`), `command` and `env` make the dev container; the
        /// image the devImage stands in for is not built again while it is present (the default dev
        /// pipeline's `build_images --skip-dev-replaced`); a change of its context rebuilds it and
        /// leaves the dev container, which does not run it, alone.
        @Test func devImageCommandAndEnvMakeTheDevContainer() async throws {
            try await withTemporaryDirectory { dir in
                let project = try DevProject.make(
                    in: dir,
                    dev: """
                          app:
                            imageSelector: slipway-test/PROJECT
                            devImage: ${runtime.images.tools}
                            command: ["sh", "-c", "echo dev-command; exec sleep 100000"]
                            env:
                              - name: DEV_MODE
                                value: "on"
                        """
                )
                defer {
                    Task {
                        await project.purge()
                        _ = try? await docker("image", "rm", "-f", project.image + "-tools")
                    }
                }
                try project.fill()
                let config = dir + "/devspace.yaml"
                try String(contentsOfFile: config, encoding: .utf8)
                    .replacingOccurrences(
                        of: "images:\n",
                        with:
                            "images:\n  tools:\n    image: \(project.image)-tools\n    dockerfile: ./Dockerfile.tools\n    context: ./tools\n    skipPush: true\n"
                    )
                    .write(toFile: config, atomically: true, encoding: .utf8)
                try FileManager.default.createDirectory(atPath: dir + "/tools", withIntermediateDirectories: true)
                try "FROM slipway/busybox\nLABEL tools=1\nCMD [\"sh\", \"-c\", \"echo tools; exec sleep 100000\"]\n"
                    .write(toFile: dir + "/Dockerfile.tools", atomically: true, encoding: .utf8)
                try "tools\n".write(toFile: dir + "/.dockerignore", atomically: true, encoding: .utf8)
                let deploy = try await offPool { try SlipwayBinary.run(["deploy"], in: dir, timeout: 120) }
                #expect(deploy.status == 0, "\(deploy.stderr)")
                let appImage = try await project.inspect(project.container, "{{.Image}}")

                let dev = try await project.startDev(until: .sessionRuns)
                defer { project.removeOutput() }
                #expect(
                    dev.stderr.contains("build:app not built: the devImage of dev.app stands in for it"),
                    "\(dev.stderr)"
                )
                let devContainerID = try await project.inspect(project.container, "{{.Id}}")
                #expect(try await project.inspect(project.container, "{{index .Config.Labels \"tools\"}}") == "1")
                #expect(
                    try await project.inspect(project.container, "{{json .Config.Entrypoint}}")
                        == #"["sh","-c","echo dev-command; exec sleep 100000"]"#
                )
                #expect(try await project.inspect(project.container, "{{json .Config.Env}}").contains("DEV_MODE=on"))
                #expect(
                    try await eventually { try await docker("logs", project.container).stdout.contains("dev-command") }
                )

                // A change in app's context: app is rebuilt, the dev container (tools) stays.
                try "x\n".write(toFile: dir + "/site/extra.txt", atomically: false, encoding: .utf8)
                let rebuilt = try await eventually(.seconds(60)) {
                    let original = try await project.inspect(project.container + ".slipway-dev-original", "{{.Image}}")
                    return dev.stdout.contains("rebuilding app") && !original.isEmpty && original != appImage
                }
                #expect(rebuilt, "\(dev.stdout)\n\(dev.stderr)")
                try await Task.sleep(for: .seconds(1))
                #expect(try await project.inspect(project.container, "{{.Id}}") == devContainerID, "\(dev.stderr)")
                dev.send(SIGINT)
                #expect(try await dev.finished(timeout: .seconds(60)) == 0, "\(dev.stderr)")
                #expect(
                    try await project.inspect(project.container, "{{index .Config.Labels \"dev.slipway.dev\"}}") == ""
                )
            }
        }

        /// A `git checkout` that changes 2,000 synced files and the Dockerfile: one rebuild, one
        /// restart, and then the dev container's tree is the branch's.
        @Test func aCheckoutOfTwoThousandFilesAndTheDockerfileRebuildsOnceAndRestartsOnce() async throws {
            try await withTemporaryDirectory { dir in
                let project = try DevProject.make(
                    in: dir,
                    dev: """
                          app:
                            imageSelector: slipway-test/PROJECT
                            sync:
                              - path: ./site:/www
                                onUpload:
                                  restartContainer: true
                        """
                )
                defer { Task { await project.purge() } }
                try project.fill()
                try ".devspace\n.git\n".write(toFile: dir + "/.dockerignore", atomically: true, encoding: .utf8)
                func writeTree(_ version: String) throws {
                    for i in 0..<2000 {
                        let sub = dir + "/site/d\(i % 20)"
                        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
                        try "\(version) file \(i)\n".write(
                            toFile: sub + "/f\(i).txt",
                            atomically: false,
                            encoding: .utf8
                        )
                    }
                }
                try writeTree("main")
                func git(_ args: String...) async throws {
                    let r = try await offPool {
                        try sh(
                            ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"] + args,
                            cwd: dir
                        )
                    }
                    #expect(r.status == 0, "git \(args): \(r.stderr)")
                }
                try await git("init", "-q", "-b", "main")
                try await git("add", "-A")
                try await git("commit", "-qm", "main")
                try await git("checkout", "-qb", "feature")
                try writeTree("feature")
                let dockerfile = try String(contentsOfFile: dir + "/Dockerfile", encoding: .utf8)
                try (dockerfile + "\nLABEL branch=feature\n").write(
                    toFile: dir + "/Dockerfile",
                    atomically: true,
                    encoding: .utf8
                )
                try await git("commit", "-qam", "feature")
                try await git("checkout", "-q", "main")

                let dev = try await project.startDev(until: .syncsWatch, within: .seconds(120))
                defer { project.removeOutput() }
                let restartsBefore = dev.stdout.components(separatedBy: "dev: restart ").count - 1

                try await git("checkout", "-q", "feature")
                func tree(_ path: String) async throws -> String {
                    try await docker(
                        "exec",
                        project.container,
                        "sh",
                        "-c",
                        "cd \(path) && find . -type f | sort | xargs md5sum | md5sum"
                    ).stdout
                }
                let local = try await offPool {
                    try sh(["sh", "-c", "cd site && find . -type f | sort | xargs md5sum | md5sum"], cwd: dir).stdout
                }
                let converged = try await eventually(.seconds(120)) {
                    let label = try await project.inspect(project.container, "{{index .Config.Labels \"branch\"}}")
                    guard label == "feature" else { return false }
                    return try await tree("/www") == local
                }
                #expect(converged, "\(dev.stdout)\n\(dev.stderr)")
                // Whatever was still in flight settles.
                try await Task.sleep(for: .seconds(3))
                #expect(try await tree("/www") == local)
                let rebuilds = dev.stdout.components(separatedBy: "dev: rebuilding app").count - 1
                let restarts = dev.stdout.components(separatedBy: "dev: restart ").count - 1 - restartsBefore
                #expect(rebuilds == 1, "\(dev.stdout)")
                #expect(restarts == 1, "\(dev.stdout)")
                dev.send(SIGINT)
                #expect(try await dev.finished(timeout: .seconds(60)) == 0, "\(dev.stderr)")
            }
        }

        /// A dev entry whose deployments go to a cluster: start_dev says dev mode on clusters is not
        /// supported yet, exits 1 and changes nothing.
        @Test func startDevOnAKubernetesDeploymentSaysSoAndChangesNothing() async throws {
            try await withTemporaryDirectory { dir in
                let name = "devk8s-" + UUID().uuidString.prefix(8).lowercased()
                try """
                version: v2beta1
                name: \(name)
                deployments:
                  api:
                    kubectl:
                      manifests: [k8s.yaml]
                dev:
                  api:
                    imageSelector: ghcr.io/org/\(name)
                    env:
                      - name: X
                        value: "1"
                pipelines:
                  only-dev:
                    run: start_dev --all
                """.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
                let r = try await offPool { try SlipwayBinary.run(["run-pipeline", "only-dev"], in: dir) }
                #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
                #expect(r.stderr.contains("dev mode on Kubernetes clusters is not supported yet"), "\(r.stderr)")
                #expect(r.stderr.contains("devspace.yaml:9:5: dev.api"), "located: \(r.stderr)")
                // Nothing of this project exists on the engine (start_dev created and renamed nothing).
                #expect(try await docker("ps", "-aq", "--filter", "label=dev.slipway.project=\(name)").stdout == "")
                #expect(try await docker("ps", "-aq", "--filter", "name=\(name)").stdout == "")
            }
        }

        /// Under `rebuildStrategy: ignoreContextChanges` a context file outside the sync paths
        /// rebuilds nothing (and the session says why); the Dockerfile still does.
        @Test func ignoreContextChangesLeavesContextFilesAloneButNotTheDockerfile() async throws {
            try await withTemporaryDirectory { dir in
                let project = try DevProject.make(
                    in: dir,
                    dev: """
                          app:
                            imageSelector: slipway-test/PROJECT
                            env:
                              - name: DEV_MODE
                                value: "on"
                            sync:
                              - path: ./site:/www
                        """
                )
                defer { Task { await project.purge() } }
                try project.fill()
                let config = dir + "/devspace.yaml"
                try String(contentsOfFile: config, encoding: .utf8)
                    .replacingOccurrences(
                        of: "    skipPush: true\n",
                        with: "    skipPush: true\n    rebuildStrategy: ignoreContextChanges\n"
                    )
                    .write(toFile: config, atomically: true, encoding: .utf8)
                let dev = try await project.startDev(until: .syncsWatch)
                defer { project.removeOutput() }
                let imageID = try await project.inspect(project.container, "{{.Image}}")
                try "x\n".write(toFile: dir + "/unsynced.txt", atomically: false, encoding: .utf8)
                #expect(
                    try await eventually {
                        dev.stdout.contains("ignored unsynced.txt for app: rebuildStrategy ignoreContextChanges")
                    },
                    "\(dev.stdout)"
                )
                try await Task.sleep(for: .seconds(1))
                #expect(!dev.stdout.contains("rebuilding app"), "\(dev.stdout)")
                #expect(try await project.inspect(project.container, "{{.Image}}") == imageID)
                let dockerfile = try String(contentsOfFile: dir + "/Dockerfile", encoding: .utf8)
                try (dockerfile + "\nLABEL edited=1\n").write(
                    toFile: dir + "/Dockerfile",
                    atomically: false,
                    encoding: .utf8
                )
                #expect(
                    try await eventually(.seconds(60)) {
                        let image = try await project.inspect(project.container, "{{.Image}}")
                        return !image.isEmpty && image != imageID
                    },
                    "\(dev.stdout)\n\(dev.stderr)"
                )
                dev.send(SIGINT)
                #expect(try await dev.finished(timeout: .seconds(60)) == 0, "\(dev.stderr)")
            }
        }
    }
}
