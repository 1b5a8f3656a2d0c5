internal import Foundation

extension DockerDeployer {
    /// The body `docker create ARGUMENTS` sends to the engine (docker CLI 28, measured by
    /// tracing its request), built here for the engine's API, or nil when an argument is one
    /// this does not reproduce exactly (a port range, an IPv6 address, an unknown restart
    /// policy…): the caller then runs the CLI. `arguments` are ``Container/arguments`` without
    /// `--detach`, so stdout and stderr are attached as `docker create` does.
    ///
    /// Used where the CLI's ~40 ms of start-up sat on the path a user waits on: the new
    /// original `create_deployments` creates while a dev container stands in for it. A test
    /// creates one container each way and compares their inspections.
    static func createSpec(_ arguments: [String]) -> DockerContainerSpec? {
        var env: [String] = []
        var labels: [String: JSONValue] = [:]
        var exposed: [String: JSONValue] = [:]
        var bindings: [(String, JSONValue)] = []
        var binds: [String] = []
        var volumes: [String: JSONValue] = [:]
        var network: String?
        var restart: JSONValue = ["Name": "no", "MaximumRetryCount": 0]
        var workdir = ""
        var entrypoint: JSONValue = .null
        var rest = arguments[...]
        while let flag = rest.first, flag.hasPrefix("--") {
            rest = rest.dropFirst()
            guard let value = rest.first else { return nil }
            rest = rest.dropFirst()
            switch flag {
            case "--name": continue
            case "--network": network = value
            case "--workdir": workdir = value
            case "--env":
                guard value.contains("=") else { return nil }
                env.append(value)
            case "--label":
                let parts = value.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty else { return nil }
                labels[String(parts[0])] = .string(String(parts[1]))
            case "--entrypoint":
                guard !value.isEmpty else { return nil }
                entrypoint = .strings([value])
            case "--restart":
                guard let policy = restartPolicy(value) else { return nil }
                restart = policy
            case "--publish":
                guard let (port, binding) = portBinding(value) else { return nil }
                exposed[port] = .object([:])
                bindings.append((port, binding))
            case "--volume":
                let parts = value.split(separator: ":", omittingEmptySubsequences: false)
                guard (1...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else { return nil }
                if parts.count == 1 { volumes[value] = .object([:]) } else { binds.append(value) }
            default: return nil
            }
        }
        guard let image = rest.first, !image.hasPrefix("-") else { return nil }
        let cmd = Array(rest.dropFirst())
        var portBindings: [String: JSONValue] = [:]
        for (port, binding) in bindings { portBindings[port] = .array((portBindings[port]?.array ?? []) + [binding]) }

        let config: [String: JSONValue] = [
            "Hostname": "", "Domainname": "", "User": "",
            "AttachStdin": false, "AttachStdout": true, "AttachStderr": true,
            "ExposedPorts": .object(exposed),
            "Tty": false, "OpenStdin": false, "StdinOnce": false,
            "Env": env.isEmpty ? .null : .strings(env),
            "Cmd": cmd.isEmpty ? .null : .strings(cmd),
            "Image": .string(image),
            "Volumes": .object(volumes),
            "WorkingDir": .string(workdir),
            "Entrypoint": entrypoint,
            "OnBuild": .null,
            "Labels": .object(labels),
        ]
        var host = cliHostConfigDefaults
        host["Binds"] = binds.isEmpty ? .null : .strings(binds)
        host["NetworkMode"] = .string(network ?? "default")
        host["PortBindings"] = .object(portBindings)
        host["RestartPolicy"] = restart
        // The CLI names the default network's endpoint; a named one gets none at create.
        let networks: [String: JSONValue] = network == nil ? ["default": .object([:])] : [:]
        return DockerContainerSpec(config: config, hostConfig: host, networks: networks)
    }

    /// `--restart` as the CLI parses it: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    static func restartPolicy(_ text: String) -> JSONValue? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let name = String(parts[0])
        switch (name, parts.count) {
        case ("no", 1), ("always", 1), ("unless-stopped", 1), ("on-failure", 1):
            return ["Name": .string(name), "MaximumRetryCount": 0]
        case ("on-failure", 2):
            guard let count = Int64(parts[1]), count >= 0 else { return nil }
            return ["Name": "on-failure", "MaximumRetryCount": .int(count)]
        default: return nil
        }
    }

    /// `--publish [IP:][HOSTPORT:]PORT[/PROTO]` as the CLI turns it into an exposed port and a
    /// binding; nil for ranges and IPv6 addresses (left to the CLI).
    static func portBinding(_ text: String) -> (String, JSONValue)? {
        guard !text.contains("["), !text.contains("-") else { return nil }
        var spec = Substring(text)
        var proto = "tcp"
        if let slash = spec.lastIndex(of: "/") {
            proto = String(spec[spec.index(after: slash)...])
            spec = spec[..<slash]
            guard ["tcp", "udp", "sctp"].contains(proto) else { return nil }
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let isPort = { (p: String) in !p.isEmpty && p.allSatisfy(\.isASCII) && UInt16(p) != nil }
        let (ip, hostPort, port): (String, String, String)
        switch parts.count {
        case 1: (ip, hostPort, port) = ("", "", parts[0])
        case 2: (ip, hostPort, port) = ("", parts[0], parts[1])
        case 3: (ip, hostPort, port) = (parts[0], parts[1], parts[2])
        default: return nil
        }
        guard isPort(port), hostPort.isEmpty || isPort(hostPort) else { return nil }
        guard ip.isEmpty || ip.split(separator: ".").count == 4 && ip.allSatisfy({ $0.isNumber || $0 == "." }) else {
            return nil
        }
        // The CLI keeps the numbers as written ("08080" stays so): normalised, they could differ.
        guard String(UInt16(port) ?? 0) == port, hostPort.isEmpty || String(UInt16(hostPort) ?? 0) == hostPort else {
            return nil
        }
        return ("\(port)/\(proto)", ["HostIp": .string(ip), "HostPort": .string(hostPort)])
    }

    /// The HostConfig fields `docker create` sends with their zero values (CLI 28, API 1.41).
    static let cliHostConfigDefaults: [String: JSONValue] = [
        "ContainerIDFile": "", "LogConfig": ["Type": "", "Config": .object([:])],
        "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": .null, "ConsoleSize": .array([0, 0]),
        "CapAdd": .null, "CapDrop": .null, "CgroupnsMode": "", "Dns": .array([]), "DnsOptions": .array([]),
        "DnsSearch": .array([]), "ExtraHosts": .null, "GroupAdd": .null, "IpcMode": "", "Cgroup": "",
        "Links": .null, "OomScoreAdj": 0, "PidMode": "", "Privileged": false, "PublishAllPorts": false,
        "ReadonlyRootfs": false, "SecurityOpt": .null, "UTSMode": "", "UsernsMode": "", "ShmSize": 0,
        "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
        "BlkioWeightDevice": .array([]), "BlkioDeviceReadBps": .array([]), "BlkioDeviceWriteBps": .array([]),
        "BlkioDeviceReadIOps": .array([]), "BlkioDeviceWriteIOps": .array([]), "CpuPeriod": 0, "CpuQuota": 0,
        "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
        "Devices": .array([]), "DeviceCgroupRules": .null, "DeviceRequests": .null, "MemoryReservation": 0,
        "MemorySwap": 0, "MemorySwappiness": -1, "OomKillDisable": false, "PidsLimit": 0, "Ulimits": .array([]),
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": .null,
        "ReadonlyPaths": .null,
    ]
}
