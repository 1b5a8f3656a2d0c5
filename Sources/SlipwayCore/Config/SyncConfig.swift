/// One `dev.<name>` entry (DevSpace's `DevPod`): what slipway's sync uses of it — the selector
/// that finds its container and each container's `sync[]` paths.
public struct DevPodConfig: Sendable, Equatable {
    public var name: String
    /// `imageSelector` as written (runtime variables still in it).
    public var imageSelector: String?
    /// `labelSelector`, in the file's order.
    public var labelSelector: [LabelPair]
    /// `namespace`: a Kubernetes namespace, which no local container has.
    public var namespace: String?
    /// The containers whose paths are synced: the entries of `containers` when there are any
    /// (DevSpace's `EachDevContainer` then ignores the entry's own `sync`), else the entry itself.
    public var containers: [DevContainerConfig]
    /// `ports[]`: `LOCAL:REMOTE` (or one port for both) with an optional `bindAddress`.
    public var ports: [PortMapping]
    /// Pod-wide fields that cannot apply to a container of the local engine, with their places
    /// (`persistenceOptions`, `patches`, `open`, `namespace`).
    public var ignored: [IgnoredField]
    public var mark: Mark

    /// One `ports[]` entry.
    public struct PortMapping: Sendable, Equatable {
        public var port: String
        public var bindAddress: String?
        public var mark: Mark
    }

    public struct LabelPair: Sendable, Equatable, Hashable {
        public var key: String
        public var value: String

        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }
}

/// A field of `dev` that loads and is checked but cannot apply to a container of the local
/// engine: `slipway validate` names it with its place.
public struct IgnoredField: Sendable, Equatable {
    /// Its key path: `dev.app.resources`.
    public var key: String
    public var mark: Mark
    public var reason: String
}

/// One `DevContainer`: what the dev container is made of and its `sync[]` paths.
public struct DevContainerConfig: Sendable, Equatable {
    /// `terminal`.
    public struct Terminal: Sendable, Equatable {
        public var enabled: Bool
        public var command: String?
        public var workDir: String?
        public var disableReplace: Bool
        public var disableTTY: Bool
        public var mark: Mark
    }

    /// `attach`.
    public struct Attach: Sendable, Equatable {
        public var enabled: Bool
        public var disableReplace: Bool
        public var disableTTY: Bool
        public var mark: Mark
    }

    /// `logs`.
    public struct Logs: Sendable, Equatable {
        public var enabled: Bool
        public var lastLines: Int?
    }

    /// `container` (filled from the key under `containers`, as DevSpace's adjustment does); nil
    /// when the entry names none.
    public var container: String?
    /// Its key path, for messages: `dev.app` or `dev.app.containers.web`.
    public var path: String
    public var sync: [SyncConfig]
    /// `devImage` as written (runtime variables and legacy image names resolved when used).
    public var devImage: String?
    /// `command`: replaces the image's entrypoint (and, without `args`, its cmd), as a pod's
    /// `command` does.
    public var command: [String]?
    /// `args`: replaces the image's cmd.
    public var args: [String]?
    public var workingDir: String?
    /// `env[]`, in the file's order.
    public var env: [(name: String, value: String)]
    /// `restartHelper.inject`: nil when not written (injected when a sync needs it).
    public var restartHelperInject: Bool?
    public var terminal: Terminal?
    public var attach: Attach?
    public var logs: Logs?
    /// Fields that cannot apply to a local container, with their places.
    public var ignored: [IgnoredField]
    /// Where each field written in the file starts, for messages.
    public var marks: [String: Mark]
    public var mark: Mark

    public static func == (a: Self, b: Self) -> Bool {
        a.container == b.container && a.path == b.path && a.sync == b.sync && a.devImage == b.devImage
            && a.command == b.command && a.args == b.args && a.workingDir == b.workingDir
            && a.env.map { [$0.name, $0.value] } == b.env.map { [$0.name, $0.value] }
            && a.restartHelperInject == b.restartHelperInject && a.terminal == b.terminal && a.attach == b.attach
            && a.logs == b.logs && a.ignored == b.ignored && a.mark == b.mark
    }

    /// Whether a sync restarts the process after an upload or holds it until the first sync:
    /// both need the restart helper as the container's first process.
    public var needsRestartHelper: Bool {
        guard restartHelperInject != false else { return false }
        return sync.contains { $0.restartContainer || $0.startContainer }
    }

    /// Whether the running container is replaced by a dev container (DevSpace's
    /// `needPodReplaceContainer`, less what cannot apply locally).
    public var needsReplacement: Bool {
        devImage != nil || command != nil || args != nil || workingDir != nil || !env.isEmpty
            || needsRestartHelper || (terminal.map { $0.enabled && !$0.disableReplace } ?? false)
            || (attach.map { $0.enabled && !$0.disableReplace } ?? false)
    }
}

/// One entry of `dev.<name>.sync[]` (or `dev.<name>.containers.<c>.sync[]`), every field DevSpace
/// has, with the place each was written for messages.
public struct SyncConfig: Sendable, Equatable {
    /// `initialSync`: what the first comparison of the two trees does with a difference.
    public enum InitialSync: String, Sendable, Equatable, CaseIterable, Codable {
        case mirrorLocal, mirrorRemote, preferLocal, preferRemote, preferNewest, keepAll, disabled
    }

    /// `initialSyncCompareBy`: when two files of equal size count as equal.
    public enum CompareBy: String, Sendable, Equatable, CaseIterable, Codable {
        /// Equal size and modification time are equal (DevSpace's default).
        case mtime
        /// Equal size alone is equal.
        case size
    }

    /// `bandwidthLimits`, in KB/s.
    public struct BandwidthLimits: Sendable, Equatable {
        public var download: Int?
        public var upload: Int?
    }

    /// `onUpload.exec[]`.
    public struct Exec: Sendable, Equatable {
        public var name: String?
        public var command: String
        public var args: [String]?
        public var failOnError: Bool
        public var local: Bool
        public var once: Bool
        public var onChange: [String]
    }

    /// Its key path, `dev.app.sync[0]`.
    public var key: String
    /// `path` as written; empty when not written (DevSpace's `.:.`).
    public var path: String
    /// The local and remote sides of ``path``, split on the last `:` as DevSpace does (an empty
    /// side is `.`; a path without `:` is the same on both sides).
    public var localPath: String
    public var remotePath: String
    public var excludePaths: [String]
    public var excludeFile: String?
    public var downloadExcludePaths: [String]
    public var downloadExcludeFile: String?
    public var uploadExcludePaths: [String]
    public var uploadExcludeFile: String?
    /// nil when not written: `mirrorLocal` for `dev`, and `slipway sync` decides its own.
    public var initialSync: InitialSync?
    public var initialSyncCompareBy: CompareBy
    public var waitInitialSync: Bool
    public var disableDownload: Bool
    public var disableUpload: Bool
    public var noWatch: Bool
    public var file: Bool
    public var polling: Bool
    public var printLogs: Bool
    public var startContainer: Bool
    public var bandwidthLimits: BandwidthLimits?
    public var restartContainer: Bool
    public var exec: [Exec]
    /// The deprecated `onUpload.execRemote` was written.
    public var execRemote: Bool
    /// Where the entry starts.
    public var mark: Mark
    /// Where each field written in the file starts (`path`, `onUpload.exec`…), for messages.
    public var marks: [String: Mark]

    /// DevSpace's `ParseSyncPath`: `""` is `.:.`; the split is on the last `:`; an empty side
    /// is `.`; a path without `:` names the same path on both sides.
    public static func split(_ path: String) -> (local: String, remote: String) {
        if path.isEmpty { return (".", ".") }
        guard let colon = path.lastIndex(of: ":") else { return (path, path) }
        let local = String(path[..<colon])
        let remote = String(path[path.index(after: colon)...])
        return (local.isEmpty ? "." : local, remote.isEmpty ? "." : remote)
    }
}

// MARK: - What slipway does with each field

extension SyncConfig {
    /// Whether slipway's sync acts on a field.
    public enum Support: Sendable, Equatable {
        /// Used, as the text says.
        case supported(String)
        /// Loaded and checked, not acted on, for the reason given ("ignored because …").
        case ignored(because: String)
    }

    /// Every field of `sync[]`, in DevSpace's order, and what slipway does with it. `slipway
    /// validate` names the ignored ones a config sets; docs/sync.md lists them all.
    public static let fields: [(key: String, support: Support)] = [
        (
            "path",
            .supported(
                "LOCAL:REMOTE, split on the last ':'; the remote side relative to the container's working directory"
            )
        ),
        ("excludePaths", .supported("gitignore patterns, both ways")),
        ("excludeFile", .supported("a file of such patterns (relative to the config's directory), both ways")),
        ("downloadExcludePaths", .supported("patterns not downloaded")),
        ("downloadExcludeFile", .supported("a file of patterns not downloaded")),
        ("uploadExcludePaths", .supported("patterns not uploaded, and never deleted in the container")),
        ("uploadExcludeFile", .supported("a file of patterns not uploaded")),
        (
            "startContainer",
            .supported(
                "slipway dev: the process is held by the restart helper until the initial sync is done (slipway sync ignores it)"
            )
        ),
        (
            "onUpload.restartContainer",
            .supported(
                "slipway dev: the restart helper restarts the process after each upload batch, in milliseconds (slipway sync ignores it)"
            )
        ),
        (
            "onUpload.exec",
            .supported(
                "slipway dev: commands after each upload batch (onChange globs, once, local, failOnError; slipway sync ignores them)"
            )
        ),
        (
            "onUpload.execRemote",
            .ignored(because: "it is DevSpace's deprecated form of onUpload.exec; write onUpload.exec instead")
        ),
        (
            "initialSync",
            .supported(
                "mirrorLocal (the default), mirrorRemote, preferLocal, preferRemote, preferNewest, keepAll, disabled"
            )
        ),
        ("waitInitialSync", .supported("whether dev waits for the initial sync before going on (default true)")),
        (
            "initialSyncCompareBy",
            .supported(
                "mtime (default: equal size and modification time are equal, else the contents' hashes decide) or size"
            )
        ),
        ("disableDownload", .supported("upload only")),
        ("disableUpload", .supported("download only")),
        (
            "bandwidthLimits",
            .ignored(
                because:
                    "the sync talks to the local Docker engine over its unix socket, not a network link; nothing is throttled"
            )
        ),
        (
            "polling",
            .ignored(
                because:
                    "slipway's helper watches the container with inotify, which costs nothing while idle; DevSpace's polling walks the whole tree every 1.7 s"
            )
        ),
        ("noWatch", .supported("sync once, then stop")),
        ("file", .supported("the path names one file: its directory is synced with every other entry excluded")),
        ("printLogs", .ignored(because: "slipway prints one line per batch (files, bytes, latency) whatever it says")),
    ]

    /// The reason `key` is ignored; nil for a supported field.
    public static func ignoredReason(_ key: String) -> String? {
        guard let field = fields.first(where: { $0.key == key }), case .ignored(let reason) = field.support else {
            return nil
        }
        return reason
    }

    /// The ignored fields this entry sets to something that would change what DevSpace does,
    /// with their places.
    public var ignoredFields: [(key: String, mark: Mark, reason: String)] {
        var set: [String] = []
        if startContainer { set.append("startContainer") }
        if restartContainer { set.append("onUpload.restartContainer") }
        if !exec.isEmpty { set.append("onUpload.exec") }
        if execRemote { set.append("onUpload.execRemote") }
        if let limits = bandwidthLimits, limits.download != nil || limits.upload != nil {
            set.append("bandwidthLimits")
        }
        if polling { set.append("polling") }
        if printLogs { set.append("printLogs") }
        return set.compactMap { key in
            Self.ignoredReason(key).map { (key, marks[key] ?? mark, $0) }
        }
    }

    /// The ignored fields as notes: `FILE:LINE:COL: dev.app.sync[0].polling: ignored because …`.
    public func notes(file: String) -> [ConfigDiagnostic] {
        ignoredFields.map {
            ConfigDiagnostic(
                file: file,
                mark: $0.mark,
                path: "\(key).\($0.key)",
                message: "ignored because \($0.reason)"
            )
        }
    }
}

extension DevSpaceConfig {
    /// The notes for every ignored `dev` field the config sets (the entries' fields that cannot
    /// apply locally, then their `sync[]` fields), in the file's order.
    public func syncNotes(file: String) -> [ConfigDiagnostic] {
        devPods.flatMap { pod in
            let own = (pod.ignored + pod.containers.flatMap(\.ignored)).sorted {
                ($0.mark.line, $0.mark.column) < ($1.mark.line, $1.mark.column)
            }.map {
                ConfigDiagnostic(file: file, mark: $0.mark, path: $0.key, message: "ignored because \($0.reason)")
            }
            return own + pod.containers.flatMap { $0.sync.flatMap { $0.notes(file: file) } }
        }
    }
}

// MARK: - Decoding

extension DevPodConfig {
    init(name: String, node: Node) {
        self.name = name
        mark = node.mark
        imageSelector = node["imageSelector"]?.text.flatMap { $0.isEmpty ? nil : $0 }
        labelSelector = (node["labelSelector"]?.pairs ?? []).compactMap { p in
            p.key.scalar.map { LabelPair(key: $0, value: p.value.text ?? "") }
        }
        namespace = node["namespace"]?.text.flatMap { $0.isEmpty ? nil : $0 }
        let path = "dev.\(name)"
        ports = (node["ports"]?.items ?? []).compactMap { item in
            guard let port = item["port"]?.text, !port.isEmpty else { return nil }
            return PortMapping(
                port: port,
                bindAddress: item["bindAddress"]?.text.flatMap { $0.isEmpty ? nil : $0 },
                mark: item.mark
            )
        }
        var ignored: [IgnoredField] = []
        let podReasons: [(String, String)] = [
            ("namespace", "a container of the local engine has no Kubernetes namespace"),
            (
                "persistenceOptions",
                "it configures the volume of persistPaths, which a local container does not need: its files outlive a restart"
            ),
            (
                "patches",
                "they patch a Kubernetes pod spec; a local dev container is made from the container it replaces"
            ),
            ("open", "slipway does not open browsers"),
        ]
        for pair in node.pairs ?? [] {
            guard let key = pair.key.scalar, let reason = podReasons.first(where: { $0.0 == key })?.1 else { continue }
            guard !pair.value.isNull else { continue }
            ignored.append(IgnoredField(key: "\(path).\(key)", mark: pair.key.mark, reason: reason))
        }
        self.ignored = ignored
        let entries = node["containers"]?.pairs ?? []
        if entries.isEmpty {
            containers = [
                DevContainerConfig(
                    node: node,
                    container: node["container"]?.text.flatMap { $0.isEmpty ? nil : $0 },
                    path: path
                )
            ]
        } else {
            containers = entries.compactMap { p in
                guard let key = p.key.scalar else { return nil }
                let sub = "\(path).containers.\(key)"
                let named = p.value["container"]?.text.flatMap { $0.isEmpty ? nil : $0 }
                return DevContainerConfig(node: p.value, container: named ?? key, path: sub)
            }
        }
    }
}

extension DevContainerConfig {
    /// Container fields that cannot apply locally, and why.
    static let ignoredReasons: [(String, String)] = [
        ("resources", "a local container keeps the limits it was deployed with"),
        ("persistPaths", "a local container's files outlive a restart of its process; nothing needs persisting"),
        ("reversePorts", "a local container reaches the host directly (host network, or the engine's gateway)"),
        ("ssh", "slipway enter opens a shell in the container; no SSH server is injected"),
        ("proxyCommands", "commands run in a local container reach the host's tools directly"),
        ("arch", "slipway's helper is built for this machine's architecture, which the local engine runs"),
    ]

    init(node: Node, container: String?, path: String) {
        self.container = container
        self.path = path
        mark = node.mark
        sync = SyncConfig.list(node["sync"], path: path)
        var marks: [String: Mark] = [:]
        var ignored: [IgnoredField] = []
        for pair in node.pairs ?? [] {
            guard let key = pair.key.scalar else { continue }
            marks[key] = pair.key.mark
            if let reason = Self.ignoredReasons.first(where: { $0.0 == key })?.1, !pair.value.isNull {
                ignored.append(IgnoredField(key: "\(path).\(key)", mark: pair.key.mark, reason: reason))
            }
        }
        self.marks = marks
        self.ignored = ignored
        func text(_ name: String) -> String? { node[name]?.text.flatMap { $0.isEmpty ? nil : $0 } }
        devImage = text("devImage")
        command = node["command"].flatMap { $0.isNull ? nil : $0.strings }
        args = node["args"].flatMap { $0.isNull ? nil : $0.strings }
        workingDir = text("workingDir")
        env = (node["env"]?.items ?? []).compactMap { item in
            guard let name = item["name"]?.text, !name.isEmpty else { return nil }
            return (name, item["value"]?.text ?? "")
        }
        restartHelperInject = node["restartHelper"]?["inject"]?.bool
        if let t = node["terminal"], t.isMapping {
            terminal = Terminal(
                enabled: t["enabled"]?.bool ?? true,
                command: t["command"]?.text.flatMap { $0.isEmpty ? nil : $0 },
                workDir: t["workDir"]?.text.flatMap { $0.isEmpty ? nil : $0 },
                disableReplace: t["disableReplace"]?.bool ?? false,
                disableTTY: t["disableTTY"]?.bool ?? false,
                mark: t.mark
            )
        } else {
            terminal = nil
        }
        if let a = node["attach"], a.isMapping {
            attach = Attach(
                enabled: a["enabled"]?.bool ?? true,
                disableReplace: a["disableReplace"]?.bool ?? false,
                disableTTY: a["disableTTY"]?.bool ?? false,
                mark: a.mark
            )
        } else {
            attach = nil
        }
        if let l = node["logs"], l.isMapping {
            logs = Logs(enabled: l["enabled"]?.bool ?? true, lastLines: l["lastLines"]?.text.flatMap { Int($0) })
        } else {
            logs = nil
        }
    }
}

extension SyncConfig {
    static func list(_ node: Node?, path: String) -> [SyncConfig] {
        (node?.items ?? []).enumerated().map { SyncConfig(node: $0.element, key: "\(path).sync[\($0.offset)]") }
    }

    init(node: Node, key: String) {
        self.key = key
        mark = node.mark
        var marks: [String: Mark] = [:]
        for pair in node.pairs ?? [] {
            guard let name = pair.key.scalar else { continue }
            marks[name] = pair.key.mark
            if name == "onUpload" {
                for inner in pair.value.pairs ?? [] {
                    if let innerName = inner.key.scalar { marks["onUpload." + innerName] = inner.key.mark }
                }
            }
        }
        self.marks = marks
        path = node["path"]?.text ?? ""
        (localPath, remotePath) = Self.split(path)
        func list(_ name: String) -> [String] { node[name]?.strings ?? [] }
        func text(_ name: String) -> String? { node[name]?.text.flatMap { $0.isEmpty ? nil : $0 } }
        excludePaths = list("excludePaths")
        excludeFile = text("excludeFile")
        downloadExcludePaths = list("downloadExcludePaths")
        downloadExcludeFile = text("downloadExcludeFile")
        uploadExcludePaths = list("uploadExcludePaths")
        uploadExcludeFile = text("uploadExcludeFile")
        initialSync = text("initialSync").flatMap(InitialSync.init(rawValue:))
        initialSyncCompareBy = text("initialSyncCompareBy").flatMap(CompareBy.init(rawValue:)) ?? .mtime
        waitInitialSync = node["waitInitialSync"]?.bool ?? true
        disableDownload = node["disableDownload"]?.bool ?? false
        disableUpload = node["disableUpload"]?.bool ?? false
        noWatch = node["noWatch"]?.bool ?? false
        file = node["file"]?.bool ?? false
        polling = node["polling"]?.bool ?? false
        printLogs = node["printLogs"]?.bool ?? false
        startContainer = node["startContainer"]?.bool ?? false
        if let limits = node["bandwidthLimits"], limits.isMapping {
            bandwidthLimits = BandwidthLimits(
                download: limits["download"]?.text.flatMap { Int($0) },
                upload: limits["upload"]?.text.flatMap { Int($0) }
            )
        } else {
            bandwidthLimits = nil
        }
        let onUpload = node["onUpload"]
        restartContainer = onUpload?["restartContainer"]?.bool ?? false
        exec = (onUpload?["exec"]?.items ?? []).map { e in
            Exec(
                name: e["name"]?.text,
                command: e["command"]?.text ?? "",
                args: e["args"].flatMap { $0.isNull ? nil : $0.strings },
                failOnError: e["failOnError"]?.bool ?? false,
                local: e["local"]?.bool ?? false,
                once: e["once"]?.bool ?? false,
                onChange: e["onChange"]?.strings ?? []
            )
        }
        execRemote = onUpload?["execRemote"].map { !$0.isNull } ?? false
    }
}
