import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// `dev.<name>` typed for dev mode: the dev container's fields, what cannot apply locally (noted
/// at its place), and the dev container's spec made from an inspected original.
@Suite struct DevConfigTests {
    static let config = """
        version: v2beta1
        name: dev-fields
        dev:
          app:
            imageSelector: ghcr.io/org/app
            devImage: ghcr.io/org/app-dev
            command: ["node", "server.js"]
            args: ["--inspect"]
            workingDir: /src
            env:
              - name: DEBUG
                value: "1"
            restartHelper:
              inject: true
            terminal:
              command: bash
              workDir: /src
            logs:
              lastLines: 20
            ports:
              - port: "9229"
              - port: "8080:80"
                bindAddress: 0.0.0.0
            resources:
              limits:
                cpu: "1"
            persistPaths:
              - path: /data
            patches:
              - op: add
                path: spec.x
                value: y
            sync:
              - path: ./src:/src
                onUpload:
                  restartContainer: true
        """

    @Test func everyDevContainerFieldIsTyped() async throws {
        let loaded = try await loadConfig(Self.config)
        let pod = try #require(loaded.config.devPod("app"))
        let c = try #require(pod.containers.first)
        #expect(c.devImage == "ghcr.io/org/app-dev")
        #expect(c.command == ["node", "server.js"] && c.args == ["--inspect"] && c.workingDir == "/src")
        #expect(c.env.map { "\($0.name)=\($0.value)" } == ["DEBUG=1"])
        #expect(c.restartHelperInject == true && c.needsRestartHelper && c.needsReplacement)
        #expect(c.terminal?.command == "bash" && c.terminal?.workDir == "/src" && c.terminal?.enabled == true)
        #expect(c.logs?.lastLines == 20)
        #expect(pod.ports.map(\.port) == ["9229", "8080:80"] && pod.ports[1].bindAddress == "0.0.0.0")
    }

    @Test func fieldsThatCannotApplyLocallyAreNotedAtTheirPlaces() async throws {
        let loaded = try await loadConfig(Self.config)
        let notes = loaded.config.syncNotes(file: loaded.displayPath).map(\.description)
        for (key, line) in [("resources", 24), ("persistPaths", 27), ("patches", 29)] {
            #expect(
                notes.contains { $0.hasPrefix("devspace.yaml:\(line):5: dev.app.\(key): ignored because ") },
                "\(key) in \(notes)"
            )
        }
        #expect(notes.count == 3, "\(notes)")
    }

    @Test func onlySyncAsksForNoDevContainer() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: plain
            dev:
              app:
                imageSelector: app
                sync:
                  - path: ./src:/src
            """
        )
        let c = try #require(loaded.config.devPod("app")?.containers.first)
        #expect(!c.needsReplacement && !c.needsRestartHelper)
    }

    /// The dev container is the original with the entry's changes: the original image's own
    /// defaults give way to the dev image's, `command` without `args` runs no cmd, the restart
    /// helper wraps what would run, labels say what it is, no health check.
    @Test func theDevSpecIsTheOriginalWithTheEntrysChanges() async throws {
        let loaded = try await loadConfig(Self.config)
        var c = try #require(loaded.config.devPod("app")?.containers.first)
        let original = DockerContainer(
            json: [
                "Id": "0123456789abcdef0123",
                "Config": [
                    "Image": "ghcr.io/org/app:v1", "Hostname": "0123456789ab",
                    "Entrypoint": .strings(["/entry"]), "Cmd": .strings(["serve"]),
                    "Env": .strings(["PATH=/bin", "FROM_DEPLOY=yes"]), "WorkingDir": "/app",
                    "Labels": ["dev.slipway.project": "p"],
                ],
                "HostConfig": ["NetworkMode": "host", "RestartPolicy": ["Name": "always"]],
            ]
        )
        let appImage: JSONValue = [
            "Entrypoint": .strings(["/entry"]), "Cmd": .strings(["serve"]), "Env": .strings(["PATH=/bin"]),
            "WorkingDir": "/app",
        ]
        let devImage: JSONValue = ["Env": .strings(["PATH=/usr/bin", "NODE=1"])]
        var spec = DevContainers.devSpec(
            original: original,
            originalImageConfig: appImage,
            devImage: "ghcr.io/org/app-dev:v1",
            devImageConfig: devImage,
            config: c,
            dev: "app",
            digest: "d"
        )
        #expect(spec.image == "ghcr.io/org/app-dev:v1")
        #expect(spec.config["Hostname"] == nil)
        #expect(spec.config["WorkingDir"]?.string == "/src")
        #expect(
            spec.config["Entrypoint"]?.strings == ["/.slipway/helper", "run", "--", "node", "server.js", "--inspect"]
        )
        #expect(spec.config["Cmd"]?.strings == [])
        #expect(spec.config["Env"]?.strings == ["FROM_DEPLOY=yes", "PATH=/usr/bin", "NODE=1", "DEBUG=1"])
        #expect(spec.config["Healthcheck"]?["Test"]?.strings == ["NONE"])
        #expect(spec.hostConfig["RestartPolicy"]?["Name"]?.string == "always")
        #expect(spec.labels["dev.slipway.dev"] == "app" && spec.labels["dev.slipway.dev-original"] == original.id)
        #expect(
            spec.labels["dev.slipway.dev-image"] == "ghcr.io/org/app:v1" && spec.labels["dev.slipway.project"] == "p"
        )

        // `command` alone: no cmd; no helper when nothing restarts.
        c.args = nil
        c.sync = []
        c.terminal = nil
        spec = DevContainers.devSpec(
            original: original,
            originalImageConfig: appImage,
            devImage: nil,
            devImageConfig: appImage,
            config: c,
            dev: "app",
            digest: "d"
        )
        #expect(spec.config["Entrypoint"]?.strings == ["node", "server.js"] && spec.config["Cmd"]?.strings == [])
        #expect(spec.image == "ghcr.io/org/app:v1")
    }

    /// An `onUpload.exec` command runs with `sh -c`: a variable's value reaches it as an
    /// environment variable, never spliced into its text (a hostile value stays data); with
    /// `args` there is no shell and the value is the argument.
    @Test func onUploadExecCommandsKeepValuesOutOfTheShellText() async throws {
        let loaded = try await loadConfig(
            """
            version: v2beta1
            name: exec-values
            vars:
              X: "a; touch /tmp/pwned"
            dev:
              app:
                imageSelector: app
                sync:
                  - path: ./src:/src
                    onUpload:
                      exec:
                        - command: "echo ${X}"
                        - command: "${X}"
                          args: ["--flag"]
            """
        )
        let exec = try #require(loaded.config.devPod("app")?.containers.first?.sync.first?.exec)
        #expect(exec[0].command.contains("${X}") && !exec[0].command.contains("pwned"), "\(exec[0].command)")
        #expect(exec[1].command == "a; touch /tmp/pwned")
        #expect(loaded.variables.contains { $0.0 == "X" })
    }
}
