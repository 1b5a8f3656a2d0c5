internal import Foundation

/// One container of a list (`GET /containers/json`).
public struct DockerContainerSummary: Sendable, Equatable {
    public var id: String
    /// Its names without the API's leading `/`.
    public var names: [String]
    /// The image as the container was created with it (a name, or an ID).
    public var image: String
    /// The image's ID (`sha256:…`).
    public var imageID: String
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    public var state: String
    /// The engine's sentence (`Up 3 seconds`, `Exited (0) 2 minutes ago`).
    public var status: String
    public var labels: [String: String]
    /// Seconds since the epoch.
    public var created: Int64

    init(_ json: JSONValue) {
        id = json["Id"]?.string ?? ""
        names = (json["Names"]?.strings ?? []).map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 }
        image = json["Image"]?.string ?? ""
        imageID = json["ImageID"]?.string ?? ""
        state = json["State"]?.string ?? ""
        status = json["Status"]?.string ?? ""
        labels = json["Labels"]?.stringMap ?? [:]
        created = Int64(json["Created"]?.int ?? 0)
    }

    /// The first name (containers have one, unless legacy links gave them more).
    public var name: String { names.first ?? id }
}

/// An inspected container (`GET /containers/{id}/json`): the typed fields a caller needs and
/// the whole answer in ``json``.
public struct DockerContainer: Sendable, Equatable {
    /// The engine's answer, every field of it.
    public var json: JSONValue

    public init(json: JSONValue) {
        self.json = json
    }

    public var id: String { json["Id"]?.string ?? "" }
    /// The name without the API's leading `/`.
    public var name: String {
        let name = json["Name"]?.string ?? ""
        return name.hasPrefix("/") ? String(name.dropFirst()) : name
    }
    /// The image's ID (`sha256:…`).
    public var imageID: String { json["Image"]?.string ?? "" }
    /// The image as the container was created with it (`Config.Image`).
    public var image: String { config["Image"]?.string ?? "" }
    public var labels: [String: String] { config["Labels"]?.stringMap ?? [:] }
    /// Whether its process has a terminal (then its logs and attach streams are raw, not framed).
    public var tty: Bool { config["Tty"]?.bool ?? false }
    public var restartCount: Int { json["RestartCount"]?.int ?? 0 }
    /// `Config`, as the engine reports it.
    public var config: JSONValue { json["Config"] ?? .object([:]) }
    /// `HostConfig`, as the engine reports it.
    public var hostConfig: JSONValue { json["HostConfig"] ?? .object([:]) }
    /// `NetworkSettings.Networks`: endpoint settings per network name.
    public var networks: [String: JSONValue] { json["NetworkSettings"]?["Networks"]?.object ?? [:] }

    public var state: State { State(json["State"] ?? .object([:])) }

    public struct State: Sendable, Equatable {
        /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
        public var status: String
        public var running: Bool
        public var paused: Bool
        public var restarting: Bool
        public var pid: Int
        public var exitCode: Int
        /// RFC 3339 with nanoseconds; `0001-01-01T00:00:00Z` before the first start.
        public var startedAt: String
        public var finishedAt: String
        public var error: String

        init(_ json: JSONValue) {
            status = json["Status"]?.string ?? ""
            running = json["Running"]?.bool ?? false
            paused = json["Paused"]?.bool ?? false
            restarting = json["Restarting"]?.bool ?? false
            pid = json["Pid"]?.int ?? 0
            exitCode = json["ExitCode"]?.int ?? 0
            startedAt = json["StartedAt"]?.string ?? ""
            finishedAt = json["FinishedAt"]?.string ?? ""
            error = json["Error"]?.string ?? ""
        }
    }
}

/// What a container is created with (`POST /containers/create`): `Config`'s fields,
/// `HostConfig` and the endpoint settings per network, as JSON the engine takes as it is.
public struct DockerContainerSpec: Sendable, Equatable {
    /// The create body's top-level fields (`Image`, `Cmd`, `Entrypoint`, `Env`, `Labels`,
    /// `WorkingDir`, `User`, `Tty`, `OpenStdin`, `ExposedPorts`, `Volumes`…).
    public var config: [String: JSONValue]
    public var hostConfig: [String: JSONValue]
    /// `EndpointsConfig`: settings per network name. An API before 1.44 takes one network
    /// at create; ``DockerAPI/createContainer(name:spec:)`` connects the others afterwards.
    public var networks: [String: JSONValue]

    public init(config: [String: JSONValue], hostConfig: [String: JSONValue] = [:], networks: [String: JSONValue] = [:])
    {
        self.config = config
        self.hostConfig = hostConfig
        self.networks = networks
    }

    /// The common fields by name; nil and empty leave the image's own value.
    public init(
        image: String,
        command: [String]? = nil,
        entrypoint: [String]? = nil,
        environment: [String] = [],
        labels: [String: String] = [:],
        workingDirectory: String? = nil,
        user: String? = nil,
        tty: Bool = false,
        openStdin: Bool = false,
        networkMode: String? = nil,
        binds: [String] = [],
        autoRemove: Bool = false,
        stopSignal: String? = nil
    ) {
        var config: [String: JSONValue] = ["Image": .string(image)]
        if let command { config["Cmd"] = .strings(command) }
        if let entrypoint { config["Entrypoint"] = .strings(entrypoint) }
        if !environment.isEmpty { config["Env"] = .strings(environment) }
        if !labels.isEmpty { config["Labels"] = .stringMap(labels) }
        if let workingDirectory { config["WorkingDir"] = .string(workingDirectory) }
        if let user { config["User"] = .string(user) }
        if let stopSignal { config["StopSignal"] = .string(stopSignal) }
        if tty { config["Tty"] = true }
        if openStdin {
            config["OpenStdin"] = true
            config["AttachStdin"] = true
            config["StdinOnce"] = false
        }
        var host: [String: JSONValue] = [:]
        if let networkMode { host["NetworkMode"] = .string(networkMode) }
        if !binds.isEmpty { host["Binds"] = .strings(binds) }
        if autoRemove { host["AutoRemove"] = true }
        self.init(config: config, hostConfig: host)
    }

    /// Everything `container` was created with — `Config`, `HostConfig`, its networks — so
    /// that a container made from this is the same container under another name (or, after
    /// changing ``image``, the same container on a new image). Left out is only what the engine
    /// generates per container: a hostname that is its ID, its ID among its network aliases, the
    /// addresses its endpoints were given; and the legacy links are turned from inspect's
    /// `/other:/this/alias` back into create's `other:alias`.
    public init(inspected container: DockerContainer) {
        var config = container.config.object ?? [:]
        let shortID = String(container.id.prefix(12))
        if let hostname = config["Hostname"]?.string, !hostname.isEmpty, container.id.hasPrefix(hostname) {
            config["Hostname"] = nil
        }
        var host = container.hostConfig.object ?? [:]
        let mode = host["NetworkMode"]?.string ?? ""
        if mode.hasPrefix("container:") {
            // The network belongs to the other container: the engine refuses these with it.
            for key in ["Hostname", "Domainname", "ExposedPorts", "MacAddress"] { config[key] = nil }
        }
        if let links = host["Links"]?.strings {
            host["Links"] = .strings(
                links.map { link in
                    let parts = link.split(separator: ":", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { return link }
                    let other = parts[0].hasPrefix("/") ? String(parts[0].dropFirst()) : parts[0]
                    let alias = parts[1].split(separator: "/").last.map(String.init) ?? parts[1]
                    return "\(other):\(alias)"
                }
            )
        }
        var networks: [String: JSONValue] = [:]
        for (name, endpoint) in container.networks {
            var kept: [String: JSONValue] = [:]
            for key in ["IPAMConfig", "Links", "DriverOpts"] {
                if let value = endpoint[key], !value.isNull { kept[key] = value }
            }
            if let aliases = endpoint["Aliases"]?.strings {
                let own = aliases.filter { $0 != shortID && $0 != container.id }
                if !own.isEmpty { kept["Aliases"] = .strings(own) }
            }
            networks[name] = .object(kept)
        }
        self.init(config: config, hostConfig: host, networks: networks)
    }

    public var image: String? {
        get { config["Image"]?.string }
        set { config["Image"] = newValue.map { .string($0) } }
    }

    public var labels: [String: String] {
        get { config["Labels"]?.stringMap ?? [:] }
        set { config["Labels"] = .stringMap(newValue) }
    }

    /// The network the engine is told about at create: the one `NetworkMode` names, else the
    /// first by name.
    var primaryNetwork: String? {
        let mode = hostConfig["NetworkMode"]?.string ?? ""
        if networks[mode] != nil { return mode }
        return networks.keys.sorted().first
    }

    /// The create body, with the primary network only.
    var body: JSONValue {
        var body = config
        body["HostConfig"] = .object(hostConfig)
        if let primary = primaryNetwork, let endpoint = networks[primary] {
            body["NetworkingConfig"] = ["EndpointsConfig": .object([primary: endpoint])]
        }
        return .object(body)
    }
}

/// A container just created.
public struct DockerCreatedContainer: Sendable, Equatable {
    public var id: String
    public var warnings: [String]
}

/// An exec's state (`GET /exec/{id}/json`).
public struct DockerExecState: Sendable, Equatable {
    public var running: Bool
    /// nil while it runs.
    public var exitCode: Int?
    public var pid: Int
    public var containerID: String
}

/// What an exec is created with.
public struct DockerExecConfig: Sendable, Equatable {
    public var command: [String]
    /// `NAME=value`.
    public var environment: [String]
    public var workingDirectory: String?
    public var user: String?
    public var tty: Bool
    /// Whether the process reads stdin from the stream (``DockerHijackedStream/write(_:)``).
    public var stdin: Bool
    public var privileged: Bool

    public init(
        command: [String],
        environment: [String] = [],
        workingDirectory: String? = nil,
        user: String? = nil,
        tty: Bool = false,
        stdin: Bool = false,
        privileged: Bool = false
    ) {
        self.command = command
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.user = user
        self.tty = tty
        self.stdin = stdin
        self.privileged = privileged
    }
}

/// A finished exec: its exit status and its output, split.
public struct DockerExecResult: Sendable, Equatable {
    public var exitCode: Int
    public var standardOutput: [UInt8]
    public var standardError: [UInt8]

    public var stdout: String { String(decoding: standardOutput, as: UTF8.self) }
    public var stderr: String { String(decoding: standardError, as: UTF8.self) }
}

/// A piece of a process's output, from the stream it was written to.
public struct DockerOutput: Sendable, Equatable {
    public enum Stream: UInt8, Sendable {
        case stdin = 0
        case stdout = 1
        case stderr = 2
        /// The engine's own error about the stream (API 1.42 and later).
        case system = 3
    }

    public var stream: Stream
    public var bytes: [UInt8]

    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// One message of the events stream (`GET /events`).
public struct DockerEvent: Sendable, Equatable, Decodable {
    /// `container`, `image`, `network`, `volume`, `daemon`…
    public var type: String
    /// `create`, `start`, `die`, `destroy`, `exec_start: sh -c …`…
    public var action: String
    public var actor: Actor
    /// Seconds and nanoseconds since the epoch.
    public var time: Int64
    public var timeNano: Int64

    public struct Actor: Sendable, Equatable, Decodable {
        /// The object's ID (a container's full ID).
        public var id: String
        /// Its labels and details (`name`, `image`, `exitCode`…).
        public var attributes: [String: String]

        enum CodingKeys: String, CodingKey {
            case id = "ID"
            case attributes = "Attributes"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = try container.decodeIfPresent(String.self, forKey: .id) ?? ""
            attributes = try container.decodeIfPresent([String: String].self, forKey: .attributes) ?? [:]
        }
    }

    enum CodingKeys: String, CodingKey {
        case type = "Type"
        case action = "Action"
        case actor = "Actor"
        case time
        case timeNano
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        type = try container.decodeIfPresent(String.self, forKey: .type) ?? ""
        action = try container.decodeIfPresent(String.self, forKey: .action) ?? ""
        actor =
            try container.decodeIfPresent(Actor.self, forKey: .actor)
            ?? Actor(id: "", attributes: [:])
        time = try container.decodeIfPresent(Int64.self, forKey: .time) ?? 0
        timeNano = try container.decodeIfPresent(Int64.self, forKey: .timeNano) ?? 0
    }
}

extension DockerEvent.Actor {
    init(id: String, attributes: [String: String]) {
        self.id = id
        self.attributes = attributes
    }
}
