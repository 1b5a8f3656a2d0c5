import ArgumentParser
import Foundation
import SlipwayCore

/// Which running containers a command means: `sync`, `enter` and `logs` (`dev` later;
/// ``ContainerSelector`` in the core does the matching).
struct ContainerSelectionOptions: ParsableArguments {
    @Option(
        name: .customLong("container"),
        help: ArgumentHelp(
            "An engine container, by name or ID (any container, not only slipway's).",
            valueName: "name|id"
        )
    )
    var container: String?

    @Option(
        name: [.customShort("c"), .customLong("container-name")],
        help: ArgumentHelp(
            "A container's name inside its deployment (a docker deployment's containers[].name, a pod's container).",
            valueName: "name"
        )
    )
    var containerName: String?

    @Option(
        name: [.customShort("l"), .customLong("label-selector")],
        help: ArgumentHelp(
            "Labels the deployment gave: key=value, key!=value, key, !key (comma-separated, repeatable).",
            valueName: "selector"
        )
    )
    var labelSelectors: [String] = []

    @Option(
        name: .customLong("image-selector"),
        help: ArgumentHelp(
            "The image the container runs (nginx, nginx:1.27, ${runtime.images.app}; a configured image: its last build).",
            valueName: "image"
        )
    )
    var imageSelector: String?

    @Flag(name: .customLong("pick"), help: "Choose one container on the terminal when several match.")
    var pick = false

    @Flag(name: .customLong("wait"), help: "Wait until a matching container runs.")
    var wait = false

    @Option(
        name: .customLong("wait-timeout"),
        help: ArgumentHelp(
            "With --wait: give up after this many seconds (default: wait until interrupted).",
            valueName: "seconds"
        )
    )
    var waitTimeout: Int?

    @Option(
        name: .customLong("branch-env"),
        help: ArgumentHelp(
            "The containers of this branch's environment (deploy --branch-env) instead of the plain one.",
            valueName: "branch"
        )
    )
    var branchEnv: String?

    @Option(name: .customLong("pod"), help: ArgumentHelp("A Kubernetes pod: not supported yet.", valueName: "name"))
    var pod: String?

    func validate() throws {
        for (flag, value) in [
            ("--container", container), ("--container-name", containerName), ("--image-selector", imageSelector),
            ("--branch-env", branchEnv),
        ] {
            if let value, value.trimmingCharacters(in: .whitespaces).isEmpty {
                throw ValidationError("\(flag) needs a value")
            }
        }
        if let container {
            var others: [String] = []
            if containerName != nil { others.append("--container-name") }
            if !labelSelectors.isEmpty { others.append("--label-selector") }
            if imageSelector != nil { others.append("--image-selector") }
            if branchEnv != nil { others.append("--branch-env") }
            if !others.isEmpty {
                throw ValidationError(
                    "--container \(container) names one engine container; it cannot be combined with \(others.joined(separator: ", "))"
                )
            }
        }
        do {
            for text in labelSelectors { _ = try LabelRequirement.parse(text) }
        } catch {
            throw ValidationError(error.description)
        }
        if let waitTimeout {
            if !wait { throw ValidationError("--wait-timeout goes with --wait") }
            if waitTimeout < 1 { throw ValidationError("--wait-timeout must be 1 second or more") }
        }
    }

    /// The selector the flags give (the image selector still as written).
    func selector() -> ContainerSelector {
        ContainerSelector(
            container: container,
            containerName: containerName,
            labels: labelSelectors.flatMap { (try? LabelRequirement.parse($0)) ?? [] },
            imageAsWritten: imageSelector,
            branch: branchEnv.map { BranchTag.tag(for: $0) }
        )
    }

    /// What of the command line asks for a Kubernetes pod (`--pod`, `-n`, `--kube-context`);
    /// nil when nothing does.
    func kubernetesRequest(_ global: GlobalOptions) -> String? {
        if let pod { return "--pod \(pod)" }
        if let namespace = global.namespace { return "--namespace \(namespace)" }
        if let context = global.kubeContext { return "--kube-context \(context)" }
        return nil
    }

    /// The flags that take a value here but are switches elsewhere (`deploy --branch-env`).
    static let valued: Set<String> = ["branch-env"]
}

extension ContainerSelectionOptions {
    /// The one running container the flags mean, for `enter` and `logs`: the config found here
    /// or above (or named) scopes the search, and `ContainerResolver.one` applies the defaults
    /// `sync` shares. Every failure is printed here and ends the command with exit 1.
    func one(_ global: GlobalOptions) async throws -> (ContainerResolver, SelectedContainer) {
        if let given = kubernetesRequest(global) {
            Terminal.error("slipway: \(ContainerSelectionError.kubernetesNotSupported(given: given))")
            throw ExitCode.failure
        }
        let environment = try global.environment()
        let options = try global.loadOptions()
        let configNamed = global.config != nil || !(environment["DEVSPACE_CONFIG"] ?? "").isEmpty
        let found = FileManager.default.fileExists(atPath: ConfigLoader.locate(options).absolute)
        var loaded: LoadedConfig?
        if configNamed || (found && container == nil) {
            loaded = try await global.load()
        }
        let resolver: ContainerResolver
        do {
            resolver = try ContainerResolver(environment: environment)
        } catch {
            Terminal.error("slipway: \(error)")
            throw ExitCode.failure
        }
        do {
            let chosen = try await resolver.one(
                selector(),
                loaded: loaded,
                wait: wait,
                timeout: waitTimeout.map { .seconds($0) },
                choose: SlipwayCommand.Sync.chooser(silent: global.silent)
            )
            return (resolver, chosen)
        } catch {
            let lines = error.description.split(separator: "\n", omittingEmptySubsequences: false)
            Terminal.error("slipway: " + (lines.first.map(String.init) ?? ""))
            for line in lines.dropFirst() { Terminal.error(String(line)) }
            throw ExitCode.failure
        }
    }
}
