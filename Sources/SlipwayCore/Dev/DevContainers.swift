internal import Foundation

/// A failure of dev mode, in a sentence that says what to do.
public enum DevError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The dev entry selects what slipway cannot make a dev container of (a Kubernetes
    /// deployment, no container at all).
    case unsupported(String)
    /// The engine refused or could not be reached.
    case engine(String)
    /// The config says something dev mode cannot do (located).
    case invalid(String)

    public var description: String {
        switch self {
        case .unsupported(let message), .engine(let message), .invalid(let message): message
        }
    }
}

/// What `start_dev` did to one container.
public struct DevSwapResult: Sendable, Equatable {
    public enum Outcome: String, Sendable, Equatable {
        /// The dev container was made and started; the original is stopped and renamed.
        case replaced
        /// The dev container already stood in for it, made from the same things.
        case unchanged
        /// Made again: the original or the dev entry changed since it was made.
        case recreated
        /// Nothing to replace (no field asks for a dev container): the running container is
        /// the session's.
        case kept
    }

    /// The dev entry.
    public var dev: String
    /// The deployed container's name (the dev container's too).
    public var name: String
    public var outcome: Outcome
    /// The container the session works with (the dev container, or the kept one).
    public var containerID: String
}

/// The dev containers of the local engine: `start_dev` puts one in place of each container a
/// dev entry selects (when the entry asks for one: `devImage`, `command`, `args`,
/// `workingDir`, `env`, the restart helper, `terminal`, `attach`), `stop_dev` puts the
/// originals back (``DevSwap``). Every step can be interrupted (a killed agent): the next
/// `start_dev` or `stop_dev` finds the pieces by name and label and finishes the job.
public struct DevContainers: Sendable {
    public let api: DockerAPI
    /// `slipway-helper`, copied into dev containers that run the restart helper.
    public let helperProgram: String?

    public init(api: DockerAPI, helperProgram: String?) {
        self.api = api
        self.helperProgram = helperProgram
    }

    /// The one container of an original and its dev container, by deployed name.
    struct Pair {
        var name: String
        var original: SelectedContainer?
        /// The original's whole inspection.
        var inspected: DockerContainer?
        var dev: SelectedContainer?
    }

    /// The containers `selector` matches (running or not), paired by deployed name. Retired dev
    /// containers an interruption left in its scope (``DevSwap/retiredName(_:id:)``) are
    /// removed.
    func pairs(_ selector: ContainerSelector) throws(DevError) -> [Pair] {
        let found: [DockerContainer]
        let retired: [String]
        do {
            (found, retired) = try ContainerResolver(api: api).inspectedMatches(selector)
        } catch {
            throw .engine("\(error)")
        }
        for id in retired { try remove(id) }
        var byName: [String: Pair] = [:]
        for inspected in found {
            let container = SelectedContainer(inspected)
            let isDev = container.labels[DevSwap.devLabel] != nil
            let name = isDev ? container.name : (DevSwap.deployedName(container.name) ?? container.name)
            var pair = byName[name] ?? Pair(name: name)
            if isDev {
                pair.dev = container
            } else {
                pair.original = container
                pair.inspected = inspected
            }
            byName[name] = pair
        }
        // A dev container made from an earlier original (an older tag, which an image selector
        // with the new tag does not match) still holds the name.
        for (name, pair) in byName where pair.dev == nil && pair.original != nil {
            if let holder = try? api.inspectContainer(name), holder.labels[DevSwap.devLabel] != nil {
                byName[name]?.dev = SelectedContainer(holder)
            }
        }
        return byName.values.sorted { $0.name < $1.name }
    }

    /// Puts a dev container in place of each container `selector` selects for `config` (of the
    /// dev entry `dev`). `devImage` is the resolved `devImage` (nil: the original's image).
    public func start(
        dev: String,
        config: DevContainerConfig,
        selector: ContainerSelector,
        devImage: String?
    ) throws(DevError) -> [DevSwapResult] {
        var results: [DevSwapResult] = []
        for pair in try pairs(selector) {
            guard let original = pair.original else {
                // A dev container whose original is gone (removed by hand): nothing to stand in
                // for.
                if let dev = pair.dev { try remove(dev.id) }
                continue
            }
            guard config.needsReplacement else {
                // Nothing to change: the deployed container is the session's, if it runs.
                if pair.dev != nil || DevSwap.deployedName(original.name) != nil {
                    try restore(pair)
                }
                if original.running || DevSwap.deployedName(original.name) != nil {
                    results.append(DevSwapResult(dev: dev, name: pair.name, outcome: .kept, containerID: original.id))
                }
                continue
            }
            let swapped = DevSwap.deployedName(original.name) != nil
            // A stopped original that was never swapped is not running: nothing to develop in.
            guard original.running || swapped || pair.dev != nil else { continue }
            // The old dev container is renamed out of the way and stopped while the new one is
            // made (its removal took ~60 ms before the create could start): at once when it is
            // certainly made again (it stands in for another original), else once the digest says
            // so. The new one starts once the old one no longer runs (it may hold the same host
            // port), and the old one is removed after that.
            var retiring: Retiring?
            if let existing = pair.dev, devImage == nil, existing.labels[DevSwap.originalLabel] != original.id {
                retiring = try retire(existing, of: pair.name)
            }
            let created: DockerCreatedContainer
            do throws(DevError) {
                let inspected: DockerContainer
                if let known = pair.inspected { inspected = known } else { inspected = try inspect(original.id) }
                let imageReference = devImage ?? inspected.image
                guard let (devImageID, devImageConfig) = try imageConfig(imageReference) else {
                    throw .invalid(
                        "dev.\(dev): the image \(imageReference) is not on the engine; build it first (slipway build) or name an image that is"
                    )
                }
                let originalImageConfig = devImage == nil ? devImageConfig : (try imageConfig(inspected.image))?.config
                // With a devImage the dev container does not run the original's image: a new
                // original that differs only in its image (a rebuild of it) leaves it alone.
                // The restart helper is mounted from beside slipway (read-only), not copied in: the
                // copy took ~55 ms of every rebuild's replacement.
                var helper: (path: String, digest: String)?
                if config.needsRestartHelper {
                    guard let helperProgram else {
                        throw .unsupported(
                            "dev.\(dev) restarts its process after uploads, which needs slipway-helper beside the slipway binary; reinstall slipway (./install.sh)"
                        )
                    }
                    do {
                        let digest = try SyncHelperProgram.digest(helperProgram)
                        let path =
                            helperProgram.hasPrefix("/")
                            ? helperProgram : FileManager.default.currentDirectoryPath + "/" + helperProgram
                        helper = (path, digest.map { String(format: "%02x", $0) }.joined())
                    } catch {
                        throw .engine("cannot read the restart helper \(helperProgram): \(error)")
                    }
                }
                var spec = Self.devSpec(
                    original: inspected,
                    originalImageConfig: originalImageConfig,
                    devImage: devImage,
                    devImageConfig: devImageConfig,
                    config: config,
                    dev: dev,
                    digest: "",
                    helperProgram: helper?.path
                )
                let identity = devImage == nil ? inspected.id : Self.settingsDigest(spec)
                // A new helper (slipway reinstalled) makes the dev container again: the mount holds
                // the file it was made with.
                let digest = Self.digest(
                    original: identity + (helper.map { "\u{1F}helper=" + $0.digest } ?? ""),
                    devImageID: devImageID.isEmpty ? imageReference : devImageID,
                    config: config
                )
                spec.labels[DevSwap.specLabel] = digest
                if let existing = pair.dev, existing.labels[DevSwap.specLabel] == digest,
                    devImage != nil || existing.labels[DevSwap.originalLabel] == original.id
                {
                    if !existing.running { try startContainer(existing.id) }
                    if !swapped { try swapOut(original) }
                    results.append(
                        DevSwapResult(dev: dev, name: pair.name, outcome: .unchanged, containerID: existing.id)
                    )
                    continue
                }
                if retiring == nil, let existing = pair.dev { retiring = try retire(existing, of: pair.name) }
                if !swapped { try swapOut(original) }
                do {
                    created = try api.createContainer(name: pair.name, spec: spec)
                } catch {
                    throw .engine("cannot create the dev container \(pair.name) for dev.\(dev): \(error)")
                }
                if let retiring { try retiring.stopped.wait().get() }
            } catch {
                if let retiring {
                    // Put back as it was where that can be: the old dev container under its name,
                    // running (the next start_dev removes it if it stays retired).
                    _ = retiring.stopped.wait()
                    if (try? api.renameContainer(retiring.id, to: pair.name)) != nil {
                        _ = try? api.startContainer(retiring.id)
                    }
                }
                throw error
            }
            try startContainer(created.id)
            if let retiring { try remove(retiring.id) }
            results.append(
                DevSwapResult(
                    dev: dev,
                    name: pair.name,
                    outcome: pair.dev == nil ? .replaced : .recreated,
                    containerID: created.id
                )
            )
        }
        return results
    }

    /// Puts the originals back for every dev container `selector` selects: the dev container
    /// removed, the original renamed back and started. Returns the deployed names restored.
    @discardableResult
    public func stop(selector: ContainerSelector) throws(DevError) -> [String] {
        var restored: [String] = []
        for pair in try pairs(selector) where pair.dev != nil || pair.original.map(isSwapped) == true {
            try restore(pair)
            restored.append(pair.name)
        }
        return restored
    }

    /// Puts the originals back for the containers named `names` in `scope` (the config and
    /// branch environment): what ending a dev session does.
    @discardableResult
    public func stop(names: Set<String>, scope: ContainerSelector) throws(DevError) -> [String] {
        var restored: [String] = []
        for pair in try pairs(scope) where names.contains(pair.name) {
            guard pair.dev != nil || pair.original.map(isSwapped) == true else { continue }
            try restore(pair)
            restored.append(pair.name)
        }
        return restored
    }

    /// A dev container being replaced: renamed out of the way, stopped on a thread of its own.
    struct Retiring {
        var id: String
        var stopped: ThreadCall<Result<Void, DevError>>
    }

    /// Renames the dev container `existing` of `name` out of the way
    /// (``DevSwap/retiredName(_:id:)``) and starts stopping it.
    func retire(_ existing: SelectedContainer, of name: String) throws(DevError) -> Retiring {
        let retired = DevSwap.retiredName(name, id: existing.id)
        do {
            try api.renameContainer(existing.id, to: retired)
        } catch {
            throw .engine("cannot rename the dev container \(name) out of the way: \(error)")
        }
        let (api, id) = (self.api, existing.id)
        return Retiring(
            id: id,
            stopped: ThreadCall {
                Result { () throws(DevError) in
                    do {
                        _ = try api.stopContainer(id, timeout: 0)
                    } catch {
                        throw .engine("cannot stop the old dev container \(retired): \(error)")
                    }
                }
            }
        )
    }

    func isSwapped(_ container: SelectedContainer) -> Bool { DevSwap.deployedName(container.name) != nil }

    /// The dev container removed, the original back under its name and started.
    func restore(_ pair: Pair) throws(DevError) {
        if let dev = pair.dev { try remove(dev.id) }
        guard let original = pair.original else { return }
        if isSwapped(original) {
            do {
                try api.renameContainer(original.id, to: pair.name)
            } catch {
                throw .engine("cannot rename \(original.name) back to \(pair.name): \(error)")
            }
        }
        try startContainer(original.id)
    }

    /// The original renamed out of the way (first, so that an interruption leaves a name
    /// `start_dev`/`stop_dev` recognise), then stopped.
    func swapOut(_ original: SelectedContainer) throws(DevError) {
        do {
            try api.renameContainer(original.id, to: DevSwap.swappedName(original.name))
            _ = try api.stopContainer(original.id, timeout: 10)
        } catch {
            throw .engine("cannot stop \(original.name) to put a dev container in its place: \(error)")
        }
    }

    func inspect(_ id: String) throws(DevError) -> DockerContainer {
        do {
            guard let found = try api.inspectContainer(id) else {
                throw DevError.engine("the container \(id.prefix(12)) went away while dev mode started")
            }
            return found
        } catch let error as DevError {
            throw error
        } catch {
            throw .engine("cannot inspect the container \(id.prefix(12)): \(error)")
        }
    }

    func imageConfig(_ reference: String) throws(DevError) -> (id: String, config: JSONValue)? {
        do {
            return try api.imageConfig(reference)
        } catch {
            throw .engine("cannot look up the image \(reference): \(error)")
        }
    }

    func startContainer(_ id: String) throws(DevError) {
        do {
            try api.startContainer(id)
        } catch {
            throw .engine("cannot start the container \(id.prefix(12)): \(error)")
        }
    }

    func remove(_ id: String) throws(DevError) {
        do {
            try api.removeContainer(id, force: true)
        } catch {
            throw .engine("cannot remove the dev container \(id.prefix(12)): \(error)")
        }
    }

    // MARK: The dev container's spec

    /// Where slipway's helper is in a dev container.
    public static let helperPath = "/.slipway/helper"

    /// The dev container's settings but what names its original (ID, hostname, image, the
    /// deployer's digest): with a `devImage` that is all it depends on.
    static func settingsDigest(_ spec: DockerContainerSpec) -> String {
        var config = spec.config
        // `docker create` attaches stdout and stderr where `docker run --detach` does not: the
        // deployer creates a new original in dev mode, and runs it otherwise.
        for key in ["Hostname", "AttachStdout", "AttachStderr"] { config[key] = nil }
        var labels = spec.labels
        for key in ["\(DockerDeployer.label).spec", DevSwap.originalLabel, DevSwap.specLabel, DevSwap.imageLabel] {
            labels[key] = nil
        }
        config["Labels"] = .stringMap(labels)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let value = JSONValue.object([
            "Config": .object(config), "HostConfig": .object(spec.hostConfig), "Networks": .object(spec.networks),
        ])
        let bytes = (try? encoder.encode(value)).map { Array($0) } ?? []
        return sha256Hex(bytes: bytes)
    }

    /// What the dev container is made from, as one digest: equal digests mean nothing changed.
    static func digest(original: String, devImageID: String, config: DevContainerConfig) -> String {
        var parts = [original, devImageID]
        parts.append("command=" + (config.command?.joined(separator: "\u{1F}") ?? "-"))
        parts.append("args=" + (config.args?.joined(separator: "\u{1F}") ?? "-"))
        parts.append("workingDir=" + (config.workingDir ?? "-"))
        parts.append("env=" + config.env.map { "\($0.name)=\($0.value)" }.joined(separator: "\u{1F}"))
        parts.append("helper=\(config.needsRestartHelper) start=\(config.sync.contains { $0.startContainer })")
        if let t = config.terminal { parts.append("terminal=\(t.enabled) \(t.disableReplace) \(t.disableTTY)") }
        if let a = config.attach { parts.append("attach=\(a.enabled) \(a.disableReplace) \(a.disableTTY)") }
        return sha256Hex(parts.joined(separator: "\u{1E}"))
    }

    /// The dev container: everything the original was created with (``DockerContainerSpec``'s
    /// `init(inspected:)`), then the dev entry's changes — the image (the original's defaults
    /// for entrypoint, cmd, env and working directory give way to the dev image's), `command`
    /// as the entrypoint and `args` as the cmd (a pod's semantics: `command` without `args`
    /// runs no cmd), `workingDir`, `env`, `terminal` (the process becomes `sleep`, as
    /// DevSpace's replacement does, unless `command` is given), `attach` (a TTY and open stdin),
    /// the restart helper as the first process, no health check (DevSpace removes probes) —
    /// and the labels that say what it is.
    static func devSpec(
        original: DockerContainer,
        originalImageConfig: JSONValue?,
        devImage: String?,
        devImageConfig: JSONValue,
        config: DevContainerConfig,
        dev: String,
        digest: String,
        helperProgram: String? = nil
    ) -> DockerContainerSpec {
        var spec = DockerContainerSpec(inspected: original)
        if let devImage {
            spec.image = devImage
            // What the original has only because its image said so gives way to the dev image's.
            let old = originalImageConfig ?? .object([:])
            for key in ["Entrypoint", "Cmd", "WorkingDir", "User"] where spec.config[key] == old[key] {
                spec.config[key] = nil
            }
            if let env = spec.config["Env"]?.strings {
                let inherited = Set(old["Env"]?.strings ?? [])
                var kept = env.filter { !inherited.contains($0) }
                let keys = Set(kept.map { $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? $0 })
                // The dev image's own environment is the engine's default; spelled out only
                // where the original set none of it.
                for entry in devImageConfig["Env"]?.strings ?? [] {
                    let key = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
                    if !keys.contains(key) { kept.append(entry) }
                }
                spec.config["Env"] = .strings(kept)
            }
        }
        if let command = config.command {
            spec.config["Entrypoint"] = .strings(command)
            spec.config["Cmd"] = .strings(config.args ?? [])
        } else if let args = config.args {
            spec.config["Cmd"] = .strings(args)
        } else if let terminal = config.terminal, terminal.enabled, !terminal.disableReplace {
            spec.config["Entrypoint"] = .strings(["sleep"])
            spec.config["Cmd"] = .strings(["1000000000"])
        }
        if let dir = config.workingDir { spec.config["WorkingDir"] = .string(dir) }
        if !config.env.isEmpty {
            var env = spec.config["Env"]?.strings ?? []
            for (name, value) in config.env {
                env.removeAll { $0 == name || $0.hasPrefix(name + "=") }
                env.append("\(name)=\(value)")
            }
            spec.config["Env"] = .strings(env)
        }
        if let attach = config.attach, attach.enabled, !attach.disableReplace {
            spec.config["Tty"] = .bool(!attach.disableTTY)
            spec.config["OpenStdin"] = true
            spec.config["AttachStdin"] = true
            spec.config["StdinOnce"] = false
        } else if let terminal = config.terminal, terminal.enabled, !terminal.disableReplace {
            spec.config["Tty"] = .bool(!terminal.disableTTY)
        }
        if config.needsRestartHelper {
            let entrypoint = spec.config["Entrypoint"]?.strings ?? devImageConfig["Entrypoint"]?.strings ?? []
            let cmd = spec.config["Cmd"]?.strings ?? devImageConfig["Cmd"]?.strings ?? []
            var helper = [helperPath, "run"]
            if config.sync.contains(where: \.startContainer) { helper.append("--wait-start") }
            spec.config["Entrypoint"] = .strings(helper + ["--"] + entrypoint + cmd)
            spec.config["Cmd"] = .strings([])
            if let helperProgram {
                var binds = spec.hostConfig["Binds"]?.strings ?? []
                binds.append("\(helperProgram):\(helperPath):ro")
                spec.hostConfig["Binds"] = .strings(binds)
            }
        }
        spec.config["Healthcheck"] = ["Test": .strings(["NONE"])]
        var labels = spec.labels
        labels[DevSwap.devLabel] = dev
        labels[DevSwap.originalLabel] = original.id
        labels[DevSwap.imageLabel] = original.image
        labels[DevSwap.specLabel] = digest
        spec.labels = labels
        spec.hostConfig["AutoRemove"] = false
        return spec
    }
}
