internal import Foundation

/// One top-level pipeline run (`slipway deploy`, `render`, `purge`, `run-pipeline NAME`): a
/// private state directory for its functions (removed afterwards), the run's state — how the
/// config was loaded with every variable's resolved value, the command line's defaults, the
/// pipeline's flags — and, for slipway's own pipelines (`commit`, `push`, `gate`), the job
/// variables filled in from HEAD. Returns bash's exit status.
public enum PipelineSession {
    public static func run(
        _ name: String,
        loaded: LoadedConfig,
        options: LoadOptions,
        defaults: PipelineState.FunctionDefaults,
        flags: [String: String],
        executable: String,
        environment: [String: String],
        output: (any PipelineOutput)? = nil,
        warm: WarmLookup? = nil,
        finished: (_ stateDirectory: String) -> Void = { _ in }
    ) async throws(PipelineError) -> Int32 {
        // An agent's job tells the agent which environment variables the config reads.
        JobEnvironment.recordNames(of: loaded, environment: environment)
        let directory = try PipelineRunner.makeStateDirectory()
        defer {
            finished(directory)
            try? FileManager.default.removeItem(atPath: directory)
        }
        // The functions' loads see exactly the values this load resolved.
        var vars = options.vars
        for (key, value) in loaded.variables { vars.append((key, value.environmentText)) }
        let state = PipelineState(
            configPath: loaded.absolutePath,
            workingDirectory: options.workingDirectory,
            profiles: options.profiles,
            disableProfileActivation: options.disableProfileActivation,
            namespace: options.namespace,
            kubeContext: options.kubeContext,
            vars: vars,
            defaults: defaults,
            flags: flags,
            stack: [],
            overrideName: options.overrideName
        )
        let environment =
            PipelineScript.slipwayDefaults[name] != nil
            ? JobEnvironment.completed(environment, directory: loaded.directory) : environment
        return try await PipelineRunner.run(
            name,
            loaded: loaded,
            state: state,
            stateDirectory: directory,
            executable: executable,
            environment: environment,
            output: output,
            warm: warm
        )
    }
}
