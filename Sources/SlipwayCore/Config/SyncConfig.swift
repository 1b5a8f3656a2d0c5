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
    public var mark: Mark

    public struct LabelPair: Sendable, Equatable, Hashable {
        public var key: String
        public var value: String

        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }
}

/// The part of a `DevContainer` sync uses.
public struct DevContainerConfig: Sendable, Equatable {
    /// `container` (filled from the key under `containers`, as DevSpace's adjustment does); nil
    /// when the entry names none.
    public var container: String?
    /// Its key path, for messages: `dev.app` or `dev.app.containers.web`.
    public var path: String
    public var sync: [SyncConfig]
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
            .ignored(
                because:
                    "holding the container's process until the first sync needs slipway dev's restart helper, which is not built yet; the process starts as the image says"
            )
        ),
        (
            "onUpload.restartContainer",
            .ignored(
                because:
                    "restarting the process after an upload needs slipway dev's restart helper, which is not built yet"
            )
        ),
        ("onUpload.exec", .ignored(because: "commands after an upload are run by slipway dev, which is not built yet")),
        (
            "onUpload.execRemote",
            .ignored(because: "it is DevSpace's deprecated form of onUpload.exec, which slipway does not run yet")
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
    /// The notes for every ignored `sync[]` field the config sets, in the file's order.
    public func syncNotes(file: String) -> [ConfigDiagnostic] {
        devPods.flatMap { $0.containers.flatMap { $0.sync.flatMap { $0.notes(file: file) } } }
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
        let entries = node["containers"]?.pairs ?? []
        if entries.isEmpty {
            containers = [
                DevContainerConfig(
                    container: node["container"]?.text.flatMap { $0.isEmpty ? nil : $0 },
                    path: path,
                    sync: SyncConfig.list(node["sync"], path: path)
                )
            ]
        } else {
            containers = entries.compactMap { p in
                guard let key = p.key.scalar else { return nil }
                let sub = "\(path).containers.\(key)"
                let named = p.value["container"]?.text.flatMap { $0.isEmpty ? nil : $0 }
                return DevContainerConfig(
                    container: named ?? key,
                    path: sub,
                    sync: SyncConfig.list(p.value["sync"], path: sub)
                )
            }
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
