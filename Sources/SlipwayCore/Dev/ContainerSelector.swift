internal import Foundation

/// Which containers of the local engine a command means: `slipway sync`, `enter` and `logs`
/// (`dev` later). Every field narrows the choice; none given means every container the scope
/// holds.
///
/// slipway's deployers label what they start (``DockerDeployer``, ``LocalPod``):
/// `dev.slipway.config` (the config's absolute path), `.project`, `.deployment`, `.container`
/// (the container's name in its deployment or pod), `.branch` (the branch environment, empty for
/// the plain one), `.role` for a `--local` pod's members, and `dev.slipway.user.KEY` for the
/// labels the deployment gave (a docker deployment's `labels`, a component chart pod's labels).
public struct ContainerSelector: Sendable, Equatable, Codable {
    /// `--container NAME|ID`: one engine container, by name or ID (prefix), whoever made it;
    /// no scope applies.
    public var container: String?
    /// `-c/--container-name`: a container's name inside its deployment.
    public var containerName: String?
    /// `-l/--label-selector`: matched against the labels the deployment gave.
    public var labels: [LabelRequirement]
    /// `--image-selector`, resolved (runtime variables and the built tag filled in): matched
    /// against the image the container was created with, as DevSpace matches pods.
    public var image: String?
    /// The image selector as the user wrote it, for messages.
    public var imageAsWritten: String?
    /// The branch environment's tag (`--branch-env`); nil for the plain environment.
    public var branch: String?
    /// The config whose containers are meant (`dev.slipway.config`); nil: any slipway-made
    /// container.
    public var configPath: String?

    public init(
        container: String? = nil,
        containerName: String? = nil,
        labels: [LabelRequirement] = [],
        image: String? = nil,
        imageAsWritten: String? = nil,
        branch: String? = nil,
        configPath: String? = nil
    ) {
        self.container = container
        self.containerName = containerName
        self.labels = labels
        self.image = image
        self.imageAsWritten = imageAsWritten
        self.branch = branch
        self.configPath = configPath
    }

    public static let label = DockerDeployer.label

    /// Whether nothing narrows the choice beyond the scope.
    public var isEmpty: Bool { container == nil && containerName == nil && labels.isEmpty && image == nil }

    /// The selector as the user gave it: `--container-name api -l tier=web`.
    public var description: String {
        var parts: [String] = []
        if let container { parts.append("--container \(container)") }
        if let containerName { parts.append("--container-name \(containerName)") }
        if !labels.isEmpty { parts.append("--label-selector " + labels.map(\.description).joined(separator: ",")) }
        if let image {
            let written = imageAsWritten.flatMap { $0 == image ? nil : $0 }
            parts.append("--image-selector \(image)" + (written.map { " (from \($0))" } ?? ""))
        }
        if parts.isEmpty { parts.append("any container") }
        return parts.joined(separator: " ")
    }

    /// Where it looks: `the containers of /p/devspace.yaml (branch environment feature-x)`.
    public var scopeDescription: String {
        if container != nil { return "the Docker engine" }
        var text = configPath.map { "the containers slipway deployed for \($0)" } ?? "the containers slipway deployed"
        text += branch.map { " in the branch environment \($0)" } ?? " in the plain environment (no --branch-env)"
        return text
    }

    /// The engine's label filters for the scope.
    var scopeLabels: [String] {
        var labels = ["\(Self.label).container"]
        if let configPath { labels.append("\(Self.label).config=\(configPath)") }
        labels.append("\(Self.label).branch=\(branch ?? "")")
        return labels
    }

    /// Whether `container` (inspected) is one this selector means, scope aside.
    func matches(_ container: SelectedContainer) -> Bool {
        // A pod's infra container only holds its namespaces; init containers have finished.
        if let role = container.labels["\(Self.label).role"], role != LocalPod.Role.app.rawValue { return false }
        if let containerName, container.labels["\(Self.label).container"] != containerName { return false }
        for requirement in labels where !requirement.matches(container.labels) { return false }
        // A dev container is matched by the image of the container it stands in for.
        let containerImage = container.labels[DevSwap.imageLabel] ?? container.image
        if let image, !Self.imageMatches(selector: image, image: containerImage) { return false }
        return true
    }

    /// DevSpace's `CompareImageNames`: a selector with a tag names exactly that `image:tag`
    /// (`:latest` also an untagged image); without one, any tag of the image. Docker Hub's
    /// spellings (`docker.io/library/x`, `index.docker.io/x`) are one name.
    public static func imageMatches(selector: String, image: String) -> Bool {
        let selectorName = familiar(TagInjector.stripTag(selector))
        let imageName = familiar(TagInjector.stripTag(image))
        guard selectorName != familiar(selector) else { return selectorName == imageName }
        let selectorTag = ImageReference.split(selector).tag ?? ""
        let imageTag = image.contains("@") ? nil : ImageReference.split(image).tag
        if selectorTag.contains("#") {
            // `#` in a tag is any letter (DevSpace's random tag placeholder).
            guard selectorName == imageName, let imageTag, imageTag.count == selectorTag.count else { return false }
            return zip(selectorTag, imageTag).allSatisfy { s, i in s == "#" ? i.isLetter && i.isASCII : s == i }
        }
        if selectorTag == "latest" && imageTag == nil && !image.contains("@") { return selectorName == imageName }
        return selectorName == imageName && selectorTag == (imageTag ?? "")
    }

    /// A reference in Docker's short form: `docker.io/library/nginx` → `nginx`.
    static func familiar(_ reference: String) -> String {
        var name = reference
        for prefix in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] where name.hasPrefix(prefix) {
            name.removeFirst(prefix.count)
            break
        }
        if name.hasPrefix("library/"), !name.dropFirst("library/".count).contains("/") {
            name.removeFirst("library/".count)
        }
        return name
    }
}

/// One term of a label selector (Kubernetes' equality-based syntax): `key=value`,
/// `key==value`, `key!=value`, `key` (present), `!key` (absent).
///
/// A key is looked up among the labels the deployment gave (`dev.slipway.user.KEY`); a key
/// that starts with `dev.slipway.` is looked up as written, so slipway's own labels can be
/// selected too (`-l dev.slipway.deployment=api`).
public struct LabelRequirement: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Operation: String, Sendable, Equatable, Codable {
        case equals, notEquals, exists, absent
    }

    public var key: String
    public var operation: Operation
    public var value: String

    public init(key: String, operation: Operation, value: String = "") {
        self.key = key
        self.operation = operation
        self.value = value
    }

    /// The label the engine holds for ``key``.
    public var engineKey: String {
        key.hasPrefix(ContainerSelector.label + ".") ? key : "\(ContainerSelector.label).user.\(key)"
    }

    public var description: String {
        switch operation {
        case .equals: return "\(key)=\(value)"
        case .notEquals: return "\(key)!=\(value)"
        case .exists: return key
        case .absent: return "!\(key)"
        }
    }

    func matches(_ labels: [String: String]) -> Bool {
        let found = labels[engineKey]
        switch operation {
        case .equals: return found == value
        case .notEquals: return found != value
        case .exists: return found != nil
        case .absent: return found == nil
        }
    }

    /// The terms of a comma-separated selector (`-l` may be given several times).
    public static func parse(_ text: String) throws(ContainerSelectionError) -> [LabelRequirement] {
        if text.contains("(") || text.contains(")") {
            throw .invalidLabelSelector(
                "\(text): set-based terms (key in (a,b), key notin (…)) are not supported; write key=value terms separated by commas"
            )
        }
        var out: [LabelRequirement] = []
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let term = raw.trimmingCharacters(in: .whitespaces)
            guard !term.isEmpty else {
                throw .invalidLabelSelector("\(text): an empty term; write key=value terms separated by commas")
            }
            let requirement: LabelRequirement
            if let range = term.range(of: "!=") {
                requirement = .init(
                    key: String(term[..<range.lowerBound]),
                    operation: .notEquals,
                    value: String(term[range.upperBound...])
                )
            } else if let range = term.range(of: "==") {
                requirement = .init(
                    key: String(term[..<range.lowerBound]),
                    operation: .equals,
                    value: String(term[range.upperBound...])
                )
            } else if let eq = term.firstIndex(of: "=") {
                requirement = .init(
                    key: String(term[..<eq]),
                    operation: .equals,
                    value: String(term[term.index(after: eq)...])
                )
            } else if term.hasPrefix("!") {
                requirement = .init(key: String(term.dropFirst()), operation: .absent)
            } else {
                requirement = .init(key: term, operation: .exists)
            }
            let key = requirement.key.trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, !key.contains(where: { $0.isWhitespace || $0 == "=" || $0 == "!" }) else {
                throw .invalidLabelSelector("\(text): \"\(term)\" has no valid key; write key=value")
            }
            out.append(
                .init(
                    key: key,
                    operation: requirement.operation,
                    value: requirement.value.trimmingCharacters(in: .whitespaces)
                )
            )
        }
        return out
    }
}

/// A container a selector found, as its inspection describes it.
public struct SelectedContainer: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    /// The image it was created with (`Config.Image`).
    public var image: String
    /// `created`, `running`, `paused`, `restarting`, `exited`…
    public var state: String
    /// Its working directory (`Config.WorkingDir`), `/` when the image sets none: relative
    /// remote paths start there.
    public var workingDirectory: String
    /// `Config.User` (empty: root).
    public var user: String
    public var labels: [String: String]

    public init(
        id: String,
        name: String,
        image: String,
        state: String,
        workingDirectory: String,
        user: String = "",
        labels: [String: String] = [:]
    ) {
        self.id = id
        self.name = name
        self.image = image
        self.state = state
        self.workingDirectory = workingDirectory
        self.user = user
        self.labels = labels
    }

    init(_ inspected: DockerContainer) {
        let dir = inspected.config["WorkingDir"]?.string ?? ""
        self.init(
            id: inspected.id,
            name: inspected.name,
            image: inspected.image,
            state: inspected.state.status,
            workingDirectory: dir.isEmpty ? "/" : dir,
            user: inspected.config["User"]?.string ?? "",
            labels: inspected.labels
        )
    }

    public var running: Bool { state == "running" }
    public var shortID: String { String(id.prefix(12)) }
    public var deployment: String? { labels["\(ContainerSelector.label).deployment"] }
    /// Its name in its deployment.
    public var containerName: String? { labels["\(ContainerSelector.label).container"] }
    /// Its branch environment; nil for the plain one or a container slipway did not make.
    public var branch: String? { labels["\(ContainerSelector.label).branch"].flatMap { $0.isEmpty ? nil : $0 } }

    /// One line: `proj-api-main (3f2a1b9c0d1e, app:v1, deployment api, container main, running)`.
    public var summary: String {
        var parts = [shortID, image]
        if let deployment { parts.append("deployment \(deployment)") }
        if let containerName { parts.append("container \(containerName)") }
        if let branch { parts.append("branch \(branch)") }
        parts.append(state)
        return "\(name) (\(parts.joined(separator: ", ")))"
    }
}

/// Why no container (or no single one) could be chosen.
public enum ContainerSelectionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `--pod`, `-n` or a kube context: Kubernetes pods are not reachable yet.
    case kubernetesNotSupported(given: String)
    /// A `-l` selector that does not parse.
    case invalidLabelSelector(String)
    /// The engine could not be asked.
    case engine(String)
    /// Nothing matches; `nearby` says what almost did (stopped containers, other environments).
    case noMatch(selector: String, scope: String, nearby: [String], hint: String)
    /// `--wait` gave up.
    case timedOut(selector: String, scope: String, seconds: Int)
    /// Several match where one is needed, and there is no terminal to choose on.
    case ambiguous(selector: String, candidates: [String], hint: String)
    /// An `--image-selector` (or a dev entry's `imageSelector`) that cannot be resolved.
    case invalidImageSelector(String)

    public var description: String {
        switch self {
        case .kubernetesNotSupported(let given):
            return
                "Kubernetes pods are not supported yet (\(given)): slipway reaches containers on the local Docker engine; select one with --container, --container-name, --label-selector or --image-selector"
        case .invalidLabelSelector(let text):
            return "--label-selector \(text)"
        case .engine(let text):
            return text
        case .noMatch(let selector, let scope, let nearby, let hint):
            var text = "no running container matches \(selector) among \(scope)"
            if !nearby.isEmpty { text += "; close: " + nearby.joined(separator: "; ") }
            return text + "; " + hint
        case .timedOut(let selector, let scope, let seconds):
            return "no running container matched \(selector) among \(scope) within \(seconds) s"
        case .ambiguous(let selector, let candidates, let hint):
            return "\(candidates.count) containers match \(selector):\n"
                + candidates.map { "  \($0)" }.joined(separator: "\n") + "\n" + hint
        case .invalidImageSelector(let text):
            return text
        }
    }
}

/// Finds the containers a ``ContainerSelector`` means, over the engine's API.
public struct ContainerResolver: Sendable {
    public let api: DockerAPI

    public init(api: DockerAPI) {
        self.api = api
    }

    /// The engine of `environment` (`DOCKER_HOST` a unix socket, or the default one).
    public init(environment: [String: String]) throws(ContainerSelectionError) {
        do {
            api = try DockerAPI.fromEnvironment(environment)
        } catch {
            throw .engine(
                "selecting containers needs the Docker engine's API on a unix socket (\(error)); sync works with a local engine"
            )
        }
    }

    /// Every container `selector` means, running or not, sorted by name.
    public func matches(_ selector: ContainerSelector) throws(ContainerSelectionError) -> [SelectedContainer] {
        try inspectedMatches(selector).matches.map(SelectedContainer.init)
    }

    /// ``matches(_:)``, each with its whole inspection; and the IDs of the dev containers in
    /// the selector's scope that are being replaced (``DevSwap/retiredName(_:id:)``), which are
    /// never among the matches.
    public func inspectedMatches(
        _ selector: ContainerSelector
    ) throws(ContainerSelectionError) -> (matches: [DockerContainer], retired: [String]) {
        do {
            if let wanted = selector.container {
                guard let inspected = try api.inspectContainer(wanted) else { return ([], []) }
                return ([inspected], [])
            }
            var found: [DockerContainer] = []
            var retired: [String] = []
            for summary in try api.containers(all: true, labels: selector.scopeLabels) {
                if DevSwap.isRetired(summary.name) {
                    retired.append(summary.id)
                    continue
                }
                // The list's image is an ID once its tag moved; the inspection keeps the name.
                guard let inspected = try api.inspectContainer(summary.id) else { continue }
                if selector.matches(SelectedContainer(inspected)) { found.append(inspected) }
            }
            return (found.sorted { $0.name < $1.name }, retired)
        } catch {
            throw .engine("cannot list the engine's containers: \(error)")
        }
    }

    /// The running containers `selector` means. Without `wait`, none is an error that says what
    /// came close; with it, the engine's events are followed until one runs (or `timeout`).
    public func running(
        _ selector: ContainerSelector,
        wait: Bool,
        timeout: Duration? = nil
    ) throws(ContainerSelectionError) -> [SelectedContainer] {
        guard wait else {
            let found = try matches(selector)
            let running = found.filter(\.running)
            if !running.isEmpty { return running }
            throw noMatch(selector, stopped: found)
        }
        let start = ContinuousClock.now
        // Subscribed before looking, so that a container started in between is not missed.
        let events: DockerEventStream
        do {
            events = try api.events(filters: ["type": ["container"], "event": ["start", "unpause", "restart"]])
        } catch {
            throw .engine("cannot follow the engine's events: \(error)")
        }
        defer { events.cancel() }
        while true {
            let running = try matches(selector).filter(\.running)
            if !running.isEmpty { return running }
            var slice = Duration.seconds(2)
            if let timeout {
                let left = timeout - (ContinuousClock.now - start)
                guard left > .zero else {
                    throw .timedOut(
                        selector: selector.description,
                        scope: selector.scopeDescription,
                        seconds: Int(timeout.components.seconds)
                    )
                }
                slice = min(slice, left)
            }
            do {
                // An event or two seconds, whichever comes first: then look again (the event
                // may be another container's).
                _ = try events.next(timeout: slice)
            } catch .timedOut {
                continue
            } catch {
                throw .engine("cannot follow the engine's events: \(error)")
            }
        }
    }

    /// The error for a selector that found nothing running: what was close, and what to do.
    func noMatch(_ selector: ContainerSelector, stopped: [SelectedContainer]) -> ContainerSelectionError {
        var nearby = stopped.map { "\($0.summary) is not running" }
        var hint = "deploy it first (slipway deploy), or wait for it with --wait"
        if selector.container != nil {
            if stopped.isEmpty {
                hint = "the engine has no container of that name or ID (docker ps -a lists them)"
                var byName = selector
                byName.container = nil
                byName.containerName = selector.container
                if let named = try? matches(byName), !named.isEmpty {
                    hint +=
                        "; --container-name \(selector.container ?? "") (-c) names a container inside a deployment: "
                        + named.map(\.name).joined(separator: ", ")
                }
            } else {
                hint = "start it (docker start \(selector.container ?? "")), or wait for it with --wait"
            }
            return .noMatch(
                selector: selector.description,
                scope: selector.scopeDescription,
                nearby: nearby,
                hint: hint
            )
        }
        // The same selector in the other environments.
        if let everywhere = try? otherEnvironments(selector), !everywhere.isEmpty {
            for c in everywhere {
                nearby.append(
                    "\(c.name) is in "
                        + (c.branch.map { "the branch environment \($0) (--branch-env \($0))" }
                            ?? "the plain environment (without --branch-env)")
                )
            }
        }
        return .noMatch(selector: selector.description, scope: selector.scopeDescription, nearby: nearby, hint: hint)
    }

    /// Matches of `selector` in every environment but its own.
    func otherEnvironments(_ selector: ContainerSelector) throws(ContainerSelectionError) -> [SelectedContainer] {
        var labels = ["\(ContainerSelector.label).container"]
        if let configPath = selector.configPath { labels.append("\(ContainerSelector.label).config=\(configPath)") }
        do {
            var found: [SelectedContainer] = []
            for summary in try api.containers(all: true, labels: labels)
            where summary.labels["\(ContainerSelector.label).branch"] ?? "" != selector.branch ?? "" {
                guard let inspected = try api.inspectContainer(summary.id) else { continue }
                let container = SelectedContainer(inspected)
                if selector.matches(container) { found.append(container) }
            }
            return found.sorted { $0.name < $1.name }
        } catch {
            throw .engine("cannot list the engine's containers: \(error)")
        }
    }
}

// MARK: - One selection for every command

extension ContainerSelector {
    /// The flags' selector limited to the containers slipway deployed for `loaded` (none: the
    /// scope stays as it is — any slipway-made container from the command line);
    /// `--container` names one engine container, whoever made it.
    public func scoped(to loaded: LoadedConfig?) -> ContainerSelector {
        var selector = self
        if container == nil, let loaded { selector.configPath = loaded.absolutePath }
        return selector
    }

    /// This selector with a dev entry's filling what the flags leave empty (DevSpace's
    /// `ApplyConfigParameter`, then the flags): a label or image selector given on the command
    /// line replaces the entry's.
    public func merged(pod: DevPodConfig, container: DevContainerConfig?) -> ContainerSelector {
        var selector = self
        if self.container != nil { return selector }
        if selector.containerName == nil { selector.containerName = container?.container }
        if labels.isEmpty && imageAsWritten == nil {
            selector.labels = pod.labelSelector.map {
                LabelRequirement(key: $0.key, operation: .equals, value: $0.value)
            }
            selector.imageAsWritten = pod.imageSelector
        }
        return selector
    }

    /// An image selector with its runtime variables and the built tag filled in (DevSpace's
    /// `FillRuntimeVariablesAsImageSelector` and the legacy image-name replacement).
    public static func resolvedImage(
        _ written: String?,
        loaded: LoadedConfig?
    ) throws(ContainerSelectionError) -> String? {
        guard let written else { return nil }
        guard let loaded else {
            if written.contains("${runtime.") {
                throw .invalidImageSelector(
                    "--image-selector \(written): runtime variables need a config (devspace.yaml) that defines the images"
                )
            }
            return written
        }
        let resolved = TagInjector(loaded: loaded, run: [:]).inject(written)
        if resolved.contains("${runtime.images.") {
            let names = loaded.config.images.map(\.key)
            throw .invalidImageSelector(
                "--image-selector \(written): the runtime variable names no image of \(loaded.displayPath)"
                    + (names.isEmpty ? "" : " (it has: \(names.joined(separator: ", ")))")
            )
        }
        return resolved
    }

    /// The selector of a command that acts on one container (`enter`, `logs`): the flags',
    /// scoped to `loaded`; when the flags narrow nothing and the config has exactly one dev
    /// entry, that entry's selector (its first container's name), as `devspace enter` uses the
    /// one dev configuration there is. The image selector is resolved.
    public static func forOneContainer(
        _ flags: ContainerSelector,
        loaded: LoadedConfig?
    ) throws(ContainerSelectionError) -> ContainerSelector {
        var selector = flags.scoped(to: loaded)
        if flags.isEmpty, flags.imageAsWritten == nil, let pods = loaded?.config.devPods, pods.count == 1 {
            selector = selector.merged(pod: pods[0], container: pods[0].containers.first)
        }
        selector.image = try resolvedImage(selector.imageAsWritten, loaded: loaded)
        return selector
    }
}

extension ContainerResolver {
    /// Asks the user to choose one of `options` (`question` says what for); nil when there is
    /// no terminal. Returns the index chosen.
    public typealias Chooser = @Sendable (_ question: String, _ options: [String]) -> Int?

    /// One of `containers` (several matched `selector`): the one the user chooses, else
    /// ``ContainerSelectionError/ambiguous(selector:candidates:hint:)`` with `hint`.
    public static func chooseOne(
        _ containers: [SelectedContainer],
        selector: ContainerSelector,
        choose: Chooser?,
        hint: String
    ) throws(ContainerSelectionError) -> SelectedContainer {
        if containers.count == 1 { return containers[0] }
        let options = containers.map(\.summary)
        guard
            let index = choose?("Several containers match \(selector.description). Which one?", options),
            options.indices.contains(index)
        else {
            throw .ambiguous(selector: selector.description, candidates: options, hint: hint)
        }
        return containers[index]
    }

    /// The one running container `flags` mean for a command that acts on one (`enter`,
    /// `logs`), with ``ContainerSelector/forOneContainer(_:loaded:)``'s defaults. A stopped
    /// container never counts, so in dev mode the dev container (running under the original's
    /// name and labels) is the one found, not the stopped original. Several: `choose` asks,
    /// else an error lists them.
    public func one(
        _ flags: ContainerSelector,
        loaded: LoadedConfig?,
        wait: Bool = false,
        timeout: Duration? = nil,
        choose: Chooser? = nil
    ) throws(ContainerSelectionError) -> SelectedContainer {
        let selector = try ContainerSelector.forOneContainer(flags, loaded: loaded)
        let found = try running(selector, wait: wait, timeout: timeout)
        return try Self.chooseOne(
            found,
            selector: selector,
            choose: choose,
            hint:
                "name one with --container NAME, or narrow with -c, -l or --image-selector (--pick chooses on a terminal)"
        )
    }

    /// ``one(_:loaded:wait:timeout:choose:)`` on a thread of its own (it blocks on the engine).
    public func one(
        _ flags: ContainerSelector,
        loaded: LoadedConfig?,
        wait: Bool = false,
        timeout: Duration? = nil,
        choose: Chooser? = nil
    ) async throws(ContainerSelectionError) -> SelectedContainer {
        let result = await onOwnThread {
            Result { () throws(ContainerSelectionError) in
                try self.one(flags, loaded: loaded, wait: wait, timeout: timeout, choose: choose)
            }
        }
        return try result.get()
    }
}
