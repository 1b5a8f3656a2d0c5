import Foundation
import SlipwayTestSupport
import Testing

@testable import SlipwayCore

/// `DockerDeployer.createSpec`: the body `docker create` sends, built for the engine's API. The
/// engine test creates one container each way from the same command line and compares what the
/// engine made of them.
@Suite struct DockerCreateBodyTests {
    @Test func portsRestartsAndVolumesAsTheCLIParsesThem() throws {
        let spec = try #require(
            DockerDeployer.createSpec([
                "--name", "n", "--publish", "8080:80", "--publish", "127.0.0.1:9090:90/udp", "--publish", "7070",
                "--publish", "127.0.0.1::81", "--publish", "8081:80", "--restart", "on-failure:3", "--volume",
                "/tmp:/data:ro", "--volume", "/anon", "--env", "A=1", "--entrypoint", "sh", "--label", "a=b=c",
                "img:1", "-c", "true",
            ])
        )
        #expect(
            spec.hostConfig["PortBindings"]
                == [
                    "80/tcp": .array([["HostIp": "", "HostPort": "8080"], ["HostIp": "", "HostPort": "8081"]]),
                    "90/udp": .array([["HostIp": "127.0.0.1", "HostPort": "9090"]]),
                    "7070/tcp": .array([["HostIp": "", "HostPort": ""]]),
                    "81/tcp": .array([["HostIp": "127.0.0.1", "HostPort": ""]]),
                ]
        )
        #expect(spec.config["ExposedPorts"]?.object?.keys.sorted() == ["7070/tcp", "80/tcp", "81/tcp", "90/udp"])
        #expect(spec.hostConfig["RestartPolicy"] == ["Name": "on-failure", "MaximumRetryCount": 3])
        #expect(spec.hostConfig["Binds"] == .strings(["/tmp:/data:ro"]))
        #expect(spec.config["Volumes"] == ["/anon": .object([:])])
        #expect(spec.config["Labels"] == ["a": "b=c"])
        #expect(spec.config["Entrypoint"] == .strings(["sh"]))
        #expect(spec.config["Cmd"] == .strings(["-c", "true"]))
        #expect(spec.image == "img:1")
        #expect(spec.hostConfig["NetworkMode"] == "default")
    }

    @Test(arguments: [
        ["--publish", "8000-8001:8000-8001", "img"],
        ["--publish", "[::1]:80:80", "img"],
        ["--publish", "80/http", "img"],
        ["--publish", "080:80", "img"],
        ["--restart", "sometimes", "img"],
        ["--restart", "on-failure:x", "img"],
        ["--volume", "a:b:c:d", "img"],
        ["--env", "FROM_THE_CLIS_ENVIRONMENT", "img"],
        ["--entrypoint", "", "img"],
        ["--cpus", "1", "img"],
        ["--detach", "img"],
        ["--name", "n"],
    ])
    func whatItDoesNotReproduceIsLeftToTheCLI(arguments: [String]) {
        #expect(DockerDeployer.createSpec(arguments) == nil, "\(arguments)")
    }

    /// What the engine made of a creation: `Config` (its hostname is the container's ID) and
    /// `HostConfig` as they are, the mounts without an anonymous volume's generated name.
    func made(_ id: String) throws -> JSONValue {
        let inspected = try #require(try DockerAPI().inspectContainer(id))
        var config = inspected.json["Config"]?.object ?? [:]
        config["Hostname"] = nil
        // The CLI's `--env` order is not stable either (["B=", "A=1", …] in one CI run, the
        // argument order in others); with no name given twice the engine treats them as a set.
        if let env = config["Env"]?.array {
            config["Env"] = .array(env.sorted { ($0.string ?? "") < ($1.string ?? "") })
        }
        let mounts = (inspected.json["Mounts"]?.array ?? []).map { mount -> JSONValue in
            var m = mount.object ?? [:]
            if m["Type"] == "volume" && m["Name"]?.string?.count == 64 {
                m["Name"] = nil
                m["Source"] = nil
            }
            return .object(m)
        }
        // The CLI keeps its `--volume` binds in a Go map, so their order in `Binds` differs from
        // one `docker create` to the next; the engine treats them as a set.
        var hostConfig = inspected.json["HostConfig"]?.object ?? [:]
        if let binds = hostConfig["Binds"]?.array {
            hostConfig["Binds"] = .array(binds.sorted { ($0.string ?? "") < ($1.string ?? "") })
        }
        return [
            "Config": .object(config), "HostConfig": .object(hostConfig),
            "Mounts": .array(mounts.sorted { ($0["Destination"]?.string ?? "") < ($1["Destination"]?.string ?? "") }),
            "Networks": .strings((inspected.json["NetworkSettings"]?["Networks"]?.object ?? [:]).keys.sorted()),
        ]
    }

    @Test func theEngineMakesTheSameContainerAsTheCLIDoes() throws {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let volume = "slipway-create-body-\(suffix)"
        let label = "dev.slipway.create-body-test=\(suffix)"
        defer {
            _ = try? sh(
                [
                    "sh", "-c",
                    "docker ps -aq --filter \"label=$1\" | xargs -r docker rm -f -v; docker volume rm -f \"$2\"", "sh",
                    label, volume,
                ],
                cwd: "/"
            )
        }
        let lines: [[String]] = [
            [
                "--network", "none", "--restart", "on-failure:3", "--workdir", "/w", "--env", "A=1", "--env", "B=",
                "--publish", "8080:80", "--publish", "127.0.0.1:9090:90/udp", "--publish", "7070", "--volume",
                "/tmp:/data:ro", "--volume", "\(volume):/n", "--volume", "/anon", "--entrypoint", "sh", "--label",
                "a=b", "slipway/busybox:latest", "-c", "sleep 1",
            ],
            ["slipway/busybox:latest"],
            ["--network", "host", "--restart", "unless-stopped", "--env", "PORT=1", "slipway/busybox:latest", "httpd"],
        ]
        for (index, line) in lines.enumerated() {
            let arguments = ["--label", label] + line
            let spec = try #require(DockerDeployer.createSpec(arguments), "\(arguments)")
            let viaCLI = try sh(
                ["docker", "create", "--name", "slipway-cb-cli-\(suffix)-\(index)"] + arguments,
                cwd: "/"
            )
            try #require(viaCLI.status == 0, "\(viaCLI.stderr)")
            let viaAPI = try DockerAPI().createContainer(name: "slipway-cb-api-\(suffix)-\(index)", spec: spec)
            let cli = try made(viaCLI.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            let api = try made(viaAPI.id)
            for key in ["Config", "HostConfig", "Mounts", "Networks"] {
                #expect(
                    cli[key] == api[key],
                    "\(arguments): \(key) differs:\nCLI \(cli[key] ?? .null)\nAPI \(api[key] ?? .null)"
                )
            }
        }
    }
}
