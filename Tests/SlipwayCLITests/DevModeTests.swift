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

    static func make(in directory: String, dev: String) throws -> DevProject {
        let name = "devtest-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory + "/site", withIntermediateDirectories: true)
        try "<h1>v1</h1>\n".write(toFile: directory + "/site/index.html", atomically: true, encoding: .utf8)
        try """
        FROM slipway/busybox
        COPY site/ /www/
        CMD ["sh", "-c", "echo started; exec sleep 100000"]
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
              network: none
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
            let config = dir + "/devspace.yaml"
            try String(contentsOfFile: config, encoding: .utf8)
                .replacingOccurrences(of: "PROJECT", with: project.name)
                .write(toFile: config, atomically: true, encoding: .utf8)

            let deploy = try await offPool { try SlipwayBinary.run(["deploy"], in: dir, timeout: 120) }
            #expect(deploy.status == 0, "\(deploy.stderr)")
            let originalID = try await project.inspect(project.container, "{{.Id}}")
            let originalConfig = try await project.inspect(project.container, "{{json .Config}}")
            let originalHost = try await project.inspect(project.container, "{{json .HostConfig}}")
            let imageID = try await project.inspect(project.container, "{{.Image}}")
            #expect(!originalID.isEmpty)

            // Outside the project: files written there must not change the image's context.
            let out = NSTemporaryDirectory() + "slipway-devtest-out-" + project.name
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: out) }
            let dev = try await BackgroundSlipway.start(["dev", "--no-logs"], in: dir, out: out)
            let watching = try await eventually(.seconds(90)) {
                dev.stderr.contains("watching both sides") || dev.exitStatus != nil
            }
            #expect(watching && dev.exitStatus == nil, "\(dev.stdout)\n\(dev.stderr)")

            // The dev container stands in for the deployed one: same name, the dev entry's
            // environment and working directory, the same image; the original is stopped.
            let devID = try await project.inspect(project.container, "{{.Id}}")
            #expect(!devID.isEmpty && devID != originalID)
            let env = try await project.inspect(project.container, "{{json .Config.Env}}")
            #expect(env.contains("DEV_MODE=on") && env.contains("FROM_DEPLOYMENT=yes"), "\(env)")
            #expect(try await project.inspect(project.container, "{{.Config.WorkingDir}}") == "/www")
            #expect(try await project.inspect(project.container, "{{.Image}}") == imageID)
            #expect(
                try await project.inspect(project.container, "{{index .Config.Labels \"dev.slipway.dev\"}}") == "app"
            )
            let swapped = project.container + ".slipway-dev-original"
            #expect(try await project.inspect(swapped, "{{.Id}}") == originalID)
            #expect(try await project.inspect(swapped, "{{.State.Running}}") == "false")

            // The restart helper is the dev container's first process.
            #expect(
                try await project.inspect(project.container, "{{json .Config.Entrypoint}}").contains("/.slipway/helper")
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
            let config = dir + "/devspace.yaml"
            try String(contentsOfFile: config, encoding: .utf8)
                .replacingOccurrences(of: "PROJECT", with: project.name)
                .write(toFile: config, atomically: true, encoding: .utf8)
            let out = NSTemporaryDirectory() + "slipway-devtest-out-" + project.name
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: out) }
            let dev = try await BackgroundSlipway.start(["dev", "--no-logs"], in: dir, out: out)
            let watching = try await eventually(.seconds(90)) {
                dev.stderr.contains("watching both sides") || dev.exitStatus != nil
            }
            #expect(watching && dev.exitStatus == nil, "\(dev.stdout)\n\(dev.stderr)")
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
                let label = try await project.inspect(project.container, "{{index .Config.Labels \"dev.slipway.dev\"}}")
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

            dev.send(SIGINT)
            #expect(try await dev.finished(timeout: .seconds(60)) == 0, "\(dev.stdout)\n\(dev.stderr)")
            // The rebuilds made a new deployed container (a new image): it runs again now.
            #expect(try await project.inspect(project.container, "{{.State.Running}}") == "true")
            #expect(
                try await project.inspect(project.container, "{{index .Config.Labels \"dev.slipway.dev\"}}") == ""
            )
        }
    }
}
