internal import Foundation

/// A deployment that could not be rendered, applied or recorded; one case per failure the
/// user reads. `place` is where in the config (`devspace.yaml: deployments.web.kubectl`).
public enum DeployError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The deployment's config is not usable as written.
    case invalid(place: String, message: String)
    /// A file the deployment names does not exist or cannot be read.
    case missingFile(place: String, file: String, detail: String)
    /// A manifest or values file is not valid YAML.
    case badYAML(source: String, mark: Mark, message: String)
    /// A tool the deployment needs is not on PATH.
    case toolMissing(tool: String, place: String, hint: String)
    /// A tool ran and failed (or could not start).
    case toolFailed(ToolFailure, place: String)
    /// kubectl or helm deployments, and no cluster to deploy them to (or purge them from).
    case noCluster(deployments: [String], purge: Bool)
    /// `--branch-env` outside a branch.
    case notOnBranch(directory: String)
    /// The image a container runs is not in the engine.
    case imageMissing(deployment: String, image: String)
    /// The deploy state file cannot be written.
    case stateFile(path: String, detail: String)
    /// The Docker engine (CLI or API) refused or failed.
    case engine(String)
    /// The output could not be written as YAML.
    case cannotEmit(String)
    /// A component-chart value the chart cannot render.
    case componentChart(ComponentChartError)
    /// `--local`: a pod cannot run on the local engine as configured.
    case local(deployment: String, message: String)

    public var description: String {
        switch self {
        case .invalid(let place, let message): return "\(place): \(message)"
        case .missingFile(let place, let file, let detail): return "\(place): \(file) \(detail)"
        case .badYAML(let source, let mark, let message): return "\(source):\(mark): \(message)"
        case .toolMissing(let tool, let place, let hint):
            return "\(place.isEmpty ? "" : "\(place): ")\(tool) is not on PATH; \(hint)"
        case .toolFailed(let failure, let place):
            let tail = failure.standardError.trimmingCharacters(in: .whitespacesAndNewlines)
            let command = ([failure.tool] + failure.arguments).map(shellQuoted).joined(separator: " ")
            return
                "\(place)\(place.isEmpty ? "" : ": ")\(command) failed (exit status \(failure.status))\(tail.isEmpty ? "" : ": \(tail)")"
        case .noCluster(let deployments, let purge):
            let names = deployments.joined(separator: ", ")
            let why = "no kubeconfig (KUBECONFIG, ~/.kube/config) or no current context"
            if purge {
                return
                    "there is no cluster to purge \(names) from: \(why); nothing was purged. Point KUBECONFIG (or --kube-context) at the cluster they were deployed to"
            }
            return
                "there is no cluster to deploy \(names) to: \(why); nothing was deployed. `slipway render` (or --render) prints what would be applied"
        case .notOnBranch(let directory):
            return "--branch-env: \(directory) is not on a git branch (detached HEAD, or not a repository)"
        case .imageMissing(let deployment, let image):
            return
                "deployments.\(deployment): the image \(image) is not in the Docker engine; build it first (build_images) or check the tag"
        case .stateFile(let path, let detail): return "\(path): \(detail)"
        case .engine(let message): return message
        case .cannotEmit(let message): return "cannot write YAML: \(message)"
        case .componentChart(let error): return error.description
        case .local(let deployment, let message): return "deployments.\(deployment) (--local): \(message)"
        }
    }

    /// The message alone (as the pipeline functions print it).
    public var message: String { description }
}
