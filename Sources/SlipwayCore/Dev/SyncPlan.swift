internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// The batch timing as `slipway sync` is given it: `--quiet-ms`, `--burst-ms`,
/// `--max-delay-ms`, else `SLIPWAY_SYNC_QUIET_MS`, `_BURST_MS`, `_MAX_DELAY_MS`, else the
/// defaults (the type itself is the engine's, in `SyncConfiguration.swift`).
extension SyncTiming {
    public static let defaults = SyncTiming()
    /// The longest any of them may be: ten minutes.
    public static let limit = 600_000
    public static let variables = (
        quiet: "SLIPWAY_SYNC_QUIET_MS", burst: "SLIPWAY_SYNC_BURST_MS", maximumDelay: "SLIPWAY_SYNC_MAX_DELAY_MS"
    )

    /// The flags' values, else the environment's, else the defaults. A variable that is not a
    /// number of milliseconds, or values out of order, are errors that name where they came from.
    public static func resolve(
        quiet: Int?,
        burst: Int?,
        maximumDelay: Int?,
        environment: [String: String]
    ) throws(SyncPlanError) -> SyncTiming {
        func value(_ flag: Int?, _ variable: String, _ fallback: Int) throws(SyncPlanError) -> (Int, String) {
            if let flag { return (flag, "--" + flagName(variable)) }
            guard let text = environment[variable], !text.isEmpty else { return (fallback, "the default") }
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)), number >= 0, number <= limit else {
                throw .invalid(
                    "\(variable)=\(text): not a number of milliseconds from 0 to \(limit); unset it or give e.g. \(variable)=\(fallback)"
                )
            }
            return (number, variable)
        }
        let q = try value(quiet, variables.quiet, defaults.quietMilliseconds)
        let b = try value(burst, variables.burst, defaults.burstMilliseconds)
        let m = try value(maximumDelay, variables.maximumDelay, defaults.maximumDelayMilliseconds)
        if let problem = orderProblem((q.0, q.1), (b.0, b.1), (m.0, m.1)) { throw .invalid(problem) }
        return SyncTiming(quietMilliseconds: q.0, burstMilliseconds: b.0, maximumDelayMilliseconds: m.0)
    }

    /// `SLIPWAY_SYNC_MAX_DELAY_MS` → `max-delay-ms`.
    static func flagName(_ variable: String) -> String {
        variable.dropFirst("SLIPWAY_SYNC_".count).lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// Why the three values (each with where it came from) do not make a timing; nil when they do:
    /// quiet ≤ burst ≤ maximum delay, and a maximum delay of at least 1 ms.
    public static func orderProblem(_ q: (Int, String), _ b: (Int, String), _ m: (Int, String)) -> String? {
        if m.0 < 1 { return "the maximum delay (\(m.1)) must be at least 1 ms" }
        if q.0 > b.0 {
            return
                "the quiet time \(q.0) ms (\(q.1)) is longer than the burst quiet time \(b.0) ms (\(b.1)); it must not be"
        }
        if b.0 > m.0 {
            return
                "the burst quiet time \(b.0) ms (\(b.1)) is longer than the maximum delay \(m.0) ms (\(m.1)); it must not be"
        }
        return nil
    }
}

/// What `slipway sync` (and `dev`'s `sync[]`) will sync: per container and path, the two roots,
/// the excludes, the strategy, the directions and the timing. The engine (`SyncEngine` with a
/// `ContainerSyncRemote`) runs it.
public struct SyncPlan: Sendable, Equatable, Codable {
    public struct Target: Sendable, Equatable, Codable {
        public var container: SelectedContainer
        /// Where it comes from: `--path .:/app`, or `dev.app.sync[0] (devspace.yaml:14:9)`.
        public var origin: String
        /// Absolute, on this machine.
        public var localRoot: String
        /// Absolute, in the container (relative paths start at its working directory).
        public var remoteRoot: String
        /// gitignore patterns relative to the roots, excluded both ways (`.devspace/` and `.git/`
        /// first, then the entry's `excludePaths` and `excludeFile`'s lines, or `-e`'s).
        public var excludePaths: [String]
        /// Not uploaded, and never deleted in the container.
        public var uploadExcludePaths: [String]
        /// Not downloaded.
        public var downloadExcludePaths: [String]
        public var upload: Bool
        public var download: Bool
        public var initialSync: SyncConfig.InitialSync
        public var compareBy: SyncConfig.CompareBy
        /// Keep watching after the initial sync (false: `--no-watch`, `noWatch`).
        public var watch: Bool
        /// `dev` waits for the initial sync before it goes on.
        public var waitInitialSync: Bool
        /// `file: true`: the one file synced (the roots are its directories, and the excludes
        /// leave only it).
        public var singleFile: String?
        /// False when the local root does not exist yet (a download creates it).
        public var localRootExists: Bool
        /// The `sync[]` entry's key path (`dev.app.sync[0]`); nil for a `--path`.
        public var syncKey: String? = nil

        /// One line: `./src → proj-api-main:/app (preferLocal, both ways, watching)`.
        public var summary: String {
            let directions = upload && download ? "both ways" : upload ? "upload only" : "download only"
            var text = "\(localRoot) ⇄ \(container.name):\(remoteRoot) (\(initialSync.rawValue), \(directions)"
            text += watch ? ", watching" : ", once"
            if let singleFile { text += ", only \(singleFile)" }
            return text + ")"
        }
    }

    public var targets: [Target]
    public var timing: SyncTiming
    /// What the user should read once (fields ignored, defaults that differ from `dev`).
    public var notes: [String]

    public init(targets: [Target], timing: SyncTiming, notes: [String] = []) {
        self.targets = targets
        self.timing = timing
        self.notes = notes
    }

    /// The plan as JSON (`--json`).
    public func json() -> String {
        let encoder = JSONEncoder()
        // One line: the events of the sync follow it, one JSON object per line.
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Why a sync cannot start. Each case reads as a sentence that says what to do.
public enum SyncPlanError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No container, or not one.
    case selection(ContainerSelectionError)
    /// A problem at a place in the config.
    case config([ConfigDiagnostic])
    /// A problem with what was given (a local path, a variable).
    case invalid(String)
    /// The config has no `sync[]` entry to use.
    case noSyncConfig(file: String, dev: String?)
    /// Several `sync[]` entries and nobody to choose.
    case ambiguousEntries([String])
    /// Another sync already runs into that container path.
    case locked(container: String, remote: String, holder: String)
    /// The lock file could not be used.
    case lockFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .selection(let error): return error.description
        case .config(let diagnostics): return diagnostics.map(\.description).joined(separator: "\n")
        case .invalid(let text): return text
        case .noSyncConfig(let file, let dev):
            if let dev {
                return "\(file): dev.\(dev) has no sync entry; add one (sync: [{path: ./:/app}]) or use --path"
            }
            return "no sync config found in \(file): no dev.*.sync[] entry; use --path LOCAL:REMOTE"
        case .ambiguousEntries(let names):
            return
                "\(names.count) sync configurations found; name the dev entry to use (slipway sync NAME) or run on a terminal to choose:\n"
                + names.map { "  \($0)" }.joined(separator: "\n")
        case .locked(let container, let remote, let holder):
            return
                "another slipway sync already syncs into \(container):\(remote) (\(holder)); stop it first, or sync another path"
        case .lockFailed(let path, let reason):
            return "cannot lock \(path): \(reason)"
        }
    }
}

/// What `slipway sync` was asked for (its flags, after parsing).
public struct SyncRequest: Sendable {
    /// The selector from the flags (the image selector as written, resolved by the planner);
    /// a config entry's own selector fills the fields the flags leave empty.
    public var selector: ContainerSelector
    /// `--pick`: choose one container when several match.
    public var pick: Bool
    /// `--wait`: wait for a matching container to run.
    public var wait: Bool
    /// How long `--wait` waits (nil: until interrupted).
    public var waitTimeout: Duration?
    /// `--path LOCAL:REMOTE` (empty: `.:.`, or the config's entries).
    public var paths: [String]
    /// `-e/--exclude` (comma-separated values split): replaces the entries' `excludePaths`.
    public var excludes: [String]
    public var uploadOnly: Bool
    public var downloadOnly: Bool
    /// `--initial-sync`.
    public var initialSync: SyncConfig.InitialSync?
    /// `--download-on-initial-sync` (default true): `preferLocal`, else `mirrorLocal`.
    public var downloadOnInitialSync: Bool
    public var noWatch: Bool
    public var timing: SyncTiming
    /// The dev entry named on the command line (`slipway sync NAME`).
    public var devName: String?
    /// The config was named (`--config`, `DEVSPACE_CONFIG`): its `sync[]` entries are used
    /// when no `--path` is given, as `devspace sync` does.
    public var configNamed: Bool
    /// Where relative local paths of `--path` start.
    public var workingDirectory: String
    /// `slipway dev`: an entry's `initialSync` decides (default `mirrorLocal`), as `devspace
    /// dev` does.
    public var forDev = false

    public init(
        selector: ContainerSelector = ContainerSelector(),
        pick: Bool = false,
        wait: Bool = false,
        waitTimeout: Duration? = nil,
        paths: [String] = [],
        excludes: [String] = [],
        uploadOnly: Bool = false,
        downloadOnly: Bool = false,
        initialSync: SyncConfig.InitialSync? = nil,
        downloadOnInitialSync: Bool = true,
        noWatch: Bool = false,
        timing: SyncTiming = .defaults,
        devName: String? = nil,
        configNamed: Bool = false,
        workingDirectory: String
    ) {
        self.selector = selector
        self.pick = pick
        self.wait = wait
        self.waitTimeout = waitTimeout
        self.paths = paths
        self.excludes = excludes
        self.uploadOnly = uploadOnly
        self.downloadOnly = downloadOnly
        self.initialSync = initialSync
        self.downloadOnInitialSync = downloadOnInitialSync
        self.noWatch = noWatch
        self.timing = timing
        self.devName = devName
        self.configNamed = configNamed
        self.workingDirectory = workingDirectory
    }

    /// The strategy the command line asks for: `--initial-sync`, else `preferLocal` (or
    /// `mirrorLocal` with `--download-on-initial-sync=false`), as `devspace sync` decides.
    public var strategy: SyncConfig.InitialSync {
        initialSync ?? (downloadOnInitialSync ? .preferLocal : .mirrorLocal)
    }
}

/// Turns a ``SyncRequest`` into a ``SyncPlan``: which `sync[]` entries or `--path`s, which
/// containers, and each target's roots, excludes and strategy.
public enum SyncPlanner {
    /// Asks the user to choose one of `options` (`question` says what for); nil when there is
    /// no terminal. Returns the index chosen.
    public typealias Chooser = ContainerResolver.Chooser

    /// One `sync[]` entry of the config, with its dev entry and container.
    public struct Entry: Sendable, Equatable {
        public var pod: DevPodConfig
        public var container: DevContainerConfig
        public var sync: SyncConfig
        /// DevSpace's name for it: `app: Sync img-selector: app/web: ./src <-> /app`.
        public var name: String
    }

    /// Every `sync[]` entry of the config, in the file's order (DevSpace's list for `devspace sync`).
    public static func entries(_ config: DevSpaceConfig) -> [Entry] {
        var out: [Entry] = []
        for pod in config.devPods {
            for container in pod.containers {
                for sync in container.sync {
                    var selector = ""
                    if let image = pod.imageSelector {
                        selector = "img-selector: " + image
                    } else if !pod.labelSelector.isEmpty {
                        selector =
                            "selector: " + pod.labelSelector.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                    }
                    if let name = container.container { selector += "/" + name }
                    out.append(
                        Entry(
                            pod: pod,
                            container: container,
                            sync: sync,
                            name: "\(pod.name): Sync \(selector): \(sync.localPath) <-> \(sync.remotePath)"
                        )
                    )
                }
            }
        }
        return out
    }

    /// One thing to sync before its containers are known.
    struct Source {
        var origin: String
        var selector: ContainerSelector
        var local: String
        /// Where a relative local path starts.
        var base: String
        var remote: String
        var sync: SyncConfig?
    }

    /// The plan for `request`. `loaded` is the config, when there is one (scope of the
    /// selectors, image selectors, `sync[]` entries); `choose` asks on a terminal.
    public static func plan(
        _ request: SyncRequest,
        loaded: LoadedConfig?,
        resolver: ContainerResolver,
        choose: Chooser?
    ) async throws(SyncPlanError) -> SyncPlan {
        let result = await onOwnThread {
            Result { () throws(SyncPlanError) in
                try planSync(request, loaded: loaded, resolver: resolver, choose: choose)
            }
        }
        return try result.get()
    }

    /// ``plan(_:loaded:resolver:choose:)`` on the calling thread (it blocks on the engine).
    public static func planSync(
        _ request: SyncRequest,
        loaded: LoadedConfig?,
        resolver: ContainerResolver,
        choose: Chooser?
    ) throws(SyncPlanError) -> SyncPlan {
        var notes: [String] = []
        let sources = try sources(request, loaded: loaded, choose: choose, notes: &notes)
        var targets: [SyncPlan.Target] = []
        for source in sources {
            var containers: [SelectedContainer]
            do {
                containers = try resolver.running(source.selector, wait: request.wait, timeout: request.waitTimeout)
            } catch {
                throw .selection(error)
            }
            if containers.count > 1 && (request.pick || source.selector.isEmpty) {
                let hint =
                    request.pick
                    ? "--pick chooses on a terminal; without one, name the container with --container NAME"
                    : "name one with --container NAME (or narrow with -c, -l, --image-selector: a selector that matches several syncs into each)"
                do {
                    containers = [
                        try ContainerResolver.chooseOne(
                            containers,
                            selector: source.selector,
                            choose: choose,
                            hint: hint
                        )
                    ]
                } catch {
                    throw .selection(error)
                }
            }
            for container in containers {
                targets.append(
                    try target(source, container: container, request: request, loaded: loaded, notes: &notes)
                )
            }
        }
        var seen: Set<String> = []
        for t in targets {
            let key = t.container.id + "\u{0}" + t.remoteRoot
            guard seen.insert(key).inserted else {
                throw .invalid(
                    "\(t.container.name):\(t.remoteRoot) is synced twice (\(t.origin) and an earlier path); give each container path once"
                )
            }
        }
        return SyncPlan(targets: targets, timing: request.timing, notes: notes)
    }

    /// The entries or `--path`s to sync, each with its selector.
    static func sources(
        _ request: SyncRequest,
        loaded: LoadedConfig?,
        choose: Chooser?,
        notes: inout [String]
    ) throws(SyncPlanError) -> [Source] {
        let flags = request.selector.scoped(to: loaded)
        let useEntries = loaded != nil && request.paths.isEmpty && (request.configNamed || request.devName != nil)
        if let loaded, !useEntries, request.paths.isEmpty, !entries(loaded.config).isEmpty {
            notes.append(
                "\(loaded.displayPath) has dev.*.sync[] entries; slipway sync uses them when the config is named (--config or DEVSPACE_CONFIG) or a dev entry is (slipway sync NAME), as devspace sync does; syncing . into the container's working directory instead"
            )
        }
        guard useEntries, let loaded else {
            var pod: DevPodConfig?
            if let name = request.devName, let loaded {
                guard let found = loaded.config.devPod(name) else { throw unknownDev(name, loaded) }
                pod = found
            }
            let paths = request.paths.isEmpty ? [".:."] : request.paths
            return try paths.map { (path) throws(SyncPlanError) in
                let (local, remote) = SyncConfig.split(path)
                var selector = flags
                if let pod { selector = merged(flags, pod: pod, container: pod.containers.first) }
                selector.image = try resolvedImage(selector.imageAsWritten, loaded: loaded)
                return Source(
                    origin: "--path \(path)",
                    selector: selector,
                    local: local,
                    base: request.workingDirectory,
                    remote: remote,
                    sync: nil
                )
            }
        }
        var all = entries(loaded.config)
        if let name = request.devName {
            guard loaded.config.devPod(name) != nil else { throw unknownDev(name, loaded) }
            all = all.filter { $0.pod.name == name }
            guard !all.isEmpty else { throw .noSyncConfig(file: loaded.displayPath, dev: name) }
        } else if all.count > 1 {
            let names = all.map(\.name)
            guard
                let index = choose?("Multiple sync configurations found. Which one do you want to use?", names),
                all.indices.contains(index)
            else { throw .ambiguousEntries(names) }
            all = [all[index]]
        }
        guard !all.isEmpty else { throw .noSyncConfig(file: loaded.displayPath, dev: nil) }
        var out: [Source] = []
        for entry in all {
            var selector = merged(flags, pod: entry.pod, container: entry.container)
            selector.image = try resolvedImage(selector.imageAsWritten, loaded: loaded)
            if entry.pod.namespace != nil {
                notes.append(
                    "\(loaded.displayPath):\(entry.pod.mark): dev.\(entry.pod.name).namespace is not used: slipway syncs into containers on the local Docker engine"
                )
            }
            out.append(
                Source(
                    origin: "\(entry.sync.key) (\(loaded.displayPath):\(entry.sync.mark))",
                    selector: selector,
                    local: entry.sync.localPath,
                    base: loaded.directory,
                    remote: entry.sync.remotePath,
                    sync: entry.sync
                )
            )
        }
        return out
    }

    static func unknownDev(_ name: String, _ loaded: LoadedConfig) -> SyncPlanError {
        let names = loaded.config.devPods.map(\.name)
        return .invalid(
            "\(loaded.displayPath) has no dev entry \(name)"
                + (names.isEmpty ? " (it has no dev section)" : "; it has: " + names.joined(separator: ", "))
        )
    }

    static func merged(
        _ flags: ContainerSelector,
        pod: DevPodConfig,
        container: DevContainerConfig?
    ) -> ContainerSelector {
        flags.merged(pod: pod, container: container)
    }

    static func resolvedImage(_ written: String?, loaded: LoadedConfig?) throws(SyncPlanError) -> String? {
        do {
            return try ContainerSelector.resolvedImage(written, loaded: loaded)
        } catch {
            throw .selection(error)
        }
    }

    /// One target: the roots resolved, the excludes read, the strategy and directions decided.
    static func target(
        _ source: Source,
        container: SelectedContainer,
        request: SyncRequest,
        loaded: LoadedConfig?,
        notes: inout [String]
    ) throws(SyncPlanError) -> SyncPlan.Target {
        let sync = source.sync
        func place(_ key: String) -> String {
            guard let sync, let loaded else { return source.origin }
            return "\(loaded.displayPath):\(sync.marks[key] ?? sync.mark): \(sync.key).\(key)"
        }
        var localRoot = ConfigLoader.absolute(source.local, in: source.base)
        var remoteRoot = remotePath(source.remote, workingDirectory: container.workingDirectory)

        // Excludes: always .devspace/ and .git/; -e replaces the entry's excludePaths, as
        // devspace sync does.
        var excludes = [".devspace/", ".git/"]
        var uploadExcludes: [String] = []
        var downloadExcludes: [String] = []
        let given = request.excludes.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        if let sync {
            excludes += given.isEmpty ? sync.excludePaths : given
            uploadExcludes = sync.uploadExcludePaths
            downloadExcludes = sync.downloadExcludePaths
            let base = loaded?.directory ?? source.base
            excludes += try readExcludeFile(sync.excludeFile, key: "excludeFile", base: base, place: place)
            uploadExcludes += try readExcludeFile(
                sync.uploadExcludeFile,
                key: "uploadExcludeFile",
                base: base,
                place: place
            )
            downloadExcludes += try readExcludeFile(
                sync.downloadExcludeFile,
                key: "downloadExcludeFile",
                base: base,
                place: place
            )
        } else {
            excludes += given
        }

        // One file: its directories are the roots, and everything else there is excluded.
        var singleFile: String?
        if sync?.file == true {
            let localName = (localRoot as NSString).lastPathComponent
            let remoteName = (remoteRoot as NSString).lastPathComponent
            guard localName == remoteName else {
                throw .invalid(
                    "\(place("path")): with file: true the local and the remote path must name the same file (\(localName), \(remoteName))"
                )
            }
            singleFile = localName
            localRoot = (localRoot as NSString).deletingLastPathComponent
            remoteRoot = (remoteRoot as NSString).deletingLastPathComponent
            excludes += ["/*", "!/" + escapePattern(localName)]
        }

        let upload = !(sync?.disableUpload ?? false) && !request.downloadOnly
        let download = !(sync?.disableDownload ?? false) && !request.uploadOnly
        guard upload || download else {
            throw .invalid(
                "\(source.origin): nothing to sync: "
                    + (request.uploadOnly ? "--upload-only with disableUpload" : "--download-only with disableDownload")
            )
        }

        var st = stat()
        var exists = false
        if let singleFile, !download, stat(joinPath(localRoot, singleFile), &st) != 0 {
            throw .invalid(
                "\(place("path")): \(joinPath(localRoot, singleFile)): no such file (and nothing is downloaded to make it)"
            )
        }
        if stat(localRoot, &st) == 0 {
            if (st.st_mode & S_IFMT) != S_IFDIR {
                throw .invalid(
                    "\(place("path")): \(localRoot) is a file; sync the directory that holds it"
                        + (sync == nil ? "" : ", or set file: true to sync this one file")
                )
            }
            exists = true
        } else if !download {
            throw .invalid("\(place("path")): \(localRoot): no such directory (and nothing is downloaded to make it)")
        }

        let strategy = request.forDev ? (sync?.initialSync ?? .mirrorLocal) : request.strategy
        if !request.forDev, let sync, let written = sync.initialSync, written != strategy, let loaded {
            notes.append(
                "\(loaded.displayPath):\(sync.marks["initialSync"] ?? sync.mark): \(sync.key).initialSync: \(written.rawValue) is what slipway dev uses; slipway sync uses \(strategy.rawValue), as devspace sync does (--initial-sync chooses)"
            )
        }
        if let sync, let loaded {
            for note in sync.notes(file: loaded.displayPath) { notes.append(note.description) }
        }

        return SyncPlan.Target(
            container: container,
            origin: source.origin,
            localRoot: localRoot,
            remoteRoot: remoteRoot,
            excludePaths: excludes,
            uploadExcludePaths: uploadExcludes,
            downloadExcludePaths: downloadExcludes,
            upload: upload,
            download: download,
            initialSync: strategy,
            compareBy: sync?.initialSyncCompareBy ?? .mtime,
            watch: !(request.noWatch || (sync?.noWatch ?? false)),
            waitInitialSync: sync?.waitInitialSync ?? true,
            singleFile: singleFile,
            localRootExists: exists,
            syncKey: sync?.key
        )
    }

    /// `remote` in the container: absolute as written, else under its working directory;
    /// `.` and `..` resolved, no trailing `/`.
    public static func remotePath(_ remote: String, workingDirectory: String) -> String {
        let base = workingDirectory.hasPrefix("/") ? workingDirectory : "/" + workingDirectory
        let joined = remote.hasPrefix("/") ? remote : joinPath(base, remote)
        let clean = cleanPath(joined)
        return clean.hasPrefix("/") ? clean : "/" + clean
    }

    /// The pattern lines of an exclude file (`.dockerignore`'s syntax: comments and blank
    /// lines dropped); a missing or unreadable file is an error at its field.
    static func readExcludeFile(
        _ file: String?,
        key: String,
        base: String,
        place: (String) -> String
    ) throws(SyncPlanError) -> [String] {
        guard let file else { return [] }
        let path = ConfigLoader.absolute(file, in: base)
        let lines: [(text: String, line: Int)]?
        do {
            lines = try IgnoreMatcher.readIgnoreFile(path)
        } catch {
            throw .invalid("\(place(key)): \(error)")
        }
        guard let lines else { throw .invalid("\(place(key)): \(path): no such file") }
        return lines.map { $0.text.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
