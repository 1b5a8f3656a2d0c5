/// A pipeline, or one of its built-in functions, that cannot go on; one case per failure the
/// user reads. The description is the sentence printed after the function's name.
public enum PipelineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The run's state directory is missing or damaged (a function called outside a pipeline).
    case stateMissing(path: String)
    /// The run's state could not be written or locked.
    case stateFile(path: String, detail: String)
    /// `run-pipeline NAME` of a pipeline the config does not have.
    case noPipeline(config: String, name: String, known: [String])
    /// A pipeline that runs itself, directly or through others.
    case recursion(pipeline: String, stack: [String])
    /// bash is not installed, or could not start.
    case bashMissing
    case cannotRun(pipeline: String, detail: String)
    /// A name that is not a built-in function.
    case unknownFunction(String)
    /// A function's arguments are not of its form (`usage: …`, a value it refuses).
    case usage(String)
    /// A flag the function does not take.
    case unknownFlag(flag: String, function: String?, known: [String])
    case flagNeedsValue(flag: String)
    /// A name (image, deployment, pull secret) the config does not have.
    case noSuchItem(kind: String, name: String, known: [String])
    /// Neither names nor `--all`.
    case nothingSelected(kind: String, function: String)
    /// `get_flag` of a flag the pipeline does not declare.
    case noFlag(name: String, pipeline: String)
    /// Something DevSpace does that slipway does not do (yet), and what to do instead.
    case notSupported(String)
    /// The config did not load (every diagnostic, one per line).
    case config([ConfigDiagnostic])
    /// `build_images` could not start.
    case build([String])
    /// A deployment failed.
    case deploy(DeployError)
    /// Applying pull secrets failed (credentials, kubeconfig, kubectl).
    case pullSecrets(String)
    /// `start_dev` / `stop_dev` could not do their work.
    case dev(String)

    public var description: String {
        switch self {
        case .stateMissing(let path):
            return
                "\(path): the pipeline's state is missing or damaged; built-in functions run only inside `slipway run-pipeline`"
        case .stateFile(let path, let detail): return "\(path): \(detail)"
        case .noPipeline(let config, let name, let known):
            return "\(config): no pipeline named \"\(name)\" (pipelines: \(known.joined(separator: ", ")))"
        case .recursion(let pipeline, let stack):
            return "pipeline \(pipeline) runs itself (\(stack.joined(separator: " → "))); remove the loop"
        case .bashMissing: return "bash is not on PATH; pipelines run as bash scripts"
        case .cannotRun(let pipeline, let detail): return "pipeline \(pipeline): bash could not run: \(detail)"
        case .unknownFunction(let name): return "no built-in function \(name)"
        case .usage(let text): return text
        case .unknownFlag(let flag, let function, let known):
            guard let function else { return "unknown flag \(flag)" }
            return "unknown flag \(flag) (\(function) takes \(known.joined(separator: ", ")))"
        case .flagNeedsValue(let flag): return "--\(flag) needs a value"
        case .noSuchItem(let kind, let name, let known):
            return "no \(kind) named \"\(name)\" (\(kind)s: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case .nothingSelected(let kind, let function):
            return "name the \(kind)s, or pass --all (as in `\(function) --all`)"
        case .noFlag(let name, let pipeline):
            return "the pipeline has no flag \"\(name)\" (declare it under pipelines.\(pipeline).flags)"
        case .notSupported(let text): return text
        case .config(let diagnostics): return diagnostics.map(\.description).joined(separator: "\n")
        case .build(let lines): return lines.joined(separator: "\n")
        case .deploy(let error): return error.description
        case .pullSecrets(let text): return text
        case .dev(let text): return text
        }
    }

    /// The description (the name kept from the time this was a message struct).
    public var message: String { description }
}
