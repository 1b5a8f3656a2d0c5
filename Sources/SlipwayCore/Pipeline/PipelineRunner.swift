internal import Foundation
internal import Subprocess
internal import SystemPackage

/// What a pipeline run hands to the built-in functions it calls: how to load the config the
/// same way (its path, profiles, and every variable's resolved value, so that `$(…)`, random
/// and time variables do not change between calls), the command line's defaults for the
/// functions' flags, the pipeline's own flags, and the images built so far in this run.
///
/// It lives in a private directory (mode 0700) named by `SLIPWAY_PIPELINE_STATE`; files are
/// replaced atomically, so parallel functions never read half a file.
public struct PipelineState: Codable, Sendable, Equatable {
    public var configPath: String
    public var workingDirectory: String
    public var profiles: [String]
    public var disableProfileActivation: Bool
    public var namespace: String?
    public var kubeContext: String?
    /// `--override-name`.
    public var overrideName: String?
    /// `--var` and every variable the parent resolved, as `K=V` (they win over predefined
    /// values, so the child sees the same ones).
    public var vars: [[String]]
    public var defaults: FunctionDefaults
    /// The pipeline's flags (`get_flag`), by name.
    public var flags: [String: String]
    /// The pipelines running, outermost first (to refuse a pipeline that runs itself).
    public var stack: [String]

    /// The command line's flags, the defaults of the functions' own flags, as in DevSpace.
    public struct FunctionDefaults: Codable, Sendable, Equatable {
        public var tags: [String] = []
        public var skipBuild = false
        public var forceRebuild = false
        public var skipPush = false
        public var skipPushLocalKube = true
        public var sequential = false
        public var maxConcurrent = 0
        public var pushTimeout: Double = 60
        public var forceRedeploy = false
        public var skipDeploy = false
        public var render = false
        public var branchEnv = false
        /// `--local`: component-chart deployments run on the local Docker engine.
        public var local = false
        /// `--silent`: the functions print only errors and their answers.
        public var silent = false
        /// `--debug`: `build_images` says how each context's digest was had.
        public var debug = false
        /// `--dependency` / `--skip-dependency`: which dependencies `run_dependencies` runs.
        public var dependencies: [String] = []
        public var skipDependencies: [String] = []
        /// The images a dev session's change asked to rebuild: `build_images
        /// --skip-dev-replaced` builds them even when a devImage stands in for them.
        public var devRebuild: [String] = []
        public init() {}
    }

    public init(
        configPath: String,
        workingDirectory: String,
        profiles: [String],
        disableProfileActivation: Bool,
        namespace: String?,
        kubeContext: String?,
        vars: [(String, String)],
        defaults: FunctionDefaults,
        flags: [String: String],
        stack: [String],
        overrideName: String? = nil
    ) {
        self.configPath = configPath
        self.workingDirectory = workingDirectory
        self.profiles = profiles
        self.disableProfileActivation = disableProfileActivation
        self.namespace = namespace
        self.kubeContext = kubeContext
        self.vars = vars.map { [$0.0, $0.1] }
        self.defaults = defaults
        self.flags = flags
        self.stack = stack
        self.overrideName = overrideName
    }

    /// One image built (or found up to date) in this run: what `get_image` answers.
    public typealias RuntimeImage = SlipwayCore.RuntimeImage

    // MARK: Files

    public static let environmentKey = "SLIPWAY_PIPELINE_STATE"

    public static func read(from directory: String) throws(PipelineError) -> PipelineState {
        guard let data = FileManager.default.contents(atPath: directory + "/state.json"),
            let state = try? JSONDecoder().decode(PipelineState.self, from: data)
        else {
            throw PipelineError.stateMissing(path: directory + "/state.json")
        }
        return state
    }

    public func write(to directory: String) throws(PipelineError) {
        try Self.writeJSON(self, to: directory + "/state.json")
    }

    public static func images(in directory: String) -> [String: RuntimeImage] {
        guard let data = FileManager.default.contents(atPath: directory + "/images.json") else { return [:] }
        return (try? JSONDecoder().decode([String: RuntimeImage].self, from: data)) ?? [:]
    }

    /// Adds `images` to the run's record, under a lock (functions may run in parallel).
    public static func record(images: [String: RuntimeImage], in directory: String) throws(PipelineError) {
        try underLock(directory, file: "images.json") {
            var all = Self.images(in: directory)
            all.merge(images) { $1 }
            return all
        }
    }

    /// One container `start_dev` prepared in this run: what `slipway dev` then keeps in sync.
    public typealias DevStarted = DevTarget

    /// The containers `start_dev` prepared in this run, in order.
    public static func devStarted(in directory: String) -> [DevStarted] {
        guard let data = FileManager.default.contents(atPath: directory + "/dev.json") else { return [] }
        return (try? JSONDecoder().decode([DevStarted].self, from: data)) ?? []
    }

    /// Adds `started` to the run's record (a later entry for the same container replaces the
    /// earlier), under the run's lock.
    public static func record(devStarted started: [DevStarted], in directory: String) throws(PipelineError) {
        try underLock(directory, file: "dev.json") {
            var all = Self.devStarted(in: directory)
            for entry in started {
                all.removeAll { $0.dev == entry.dev && $0.name == entry.name }
                all.append(entry)
            }
            return all
        }
    }

    /// Replaces `file` of the run's directory with what `update` makes of it, under the run's
    /// lock (`images.lock`): functions may run in parallel.
    static func underLock<T: Encodable>(
        _ directory: String,
        file: String,
        _ update: () -> T
    ) throws(PipelineError) {
        let lock = open(directory + "/images.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else {
            throw PipelineError.stateFile(
                path: directory + "/" + file,
                detail: "cannot lock it: \(String(cString: strerror(errno)))"
            )
        }
        defer { close(lock) }
        flock(lock, LOCK_EX)
        defer { flock(lock, LOCK_UN) }
        try writeJSON(update(), to: directory + "/" + file)
    }

    static func writeJSON<T: Encodable>(_ value: T, to path: String) throws(PipelineError) {
        let data: Data
        do { data = try JSONEncoder().encode(value) } catch {
            throw PipelineError.stateFile(path: path, detail: "cannot encode it: \(error)")
        }
        if case .failure(let failure) = AtomicFile.write(Array(data), to: path, mode: 0o600) {
            throw PipelineError.stateFile(path: path, detail: failure.message)
        }
    }
}

/// Runs one pipeline as a bash script in the config's directory, with the config's variables
/// in the environment and slipway's built-in functions defined; standard input, output and
/// error are the caller's. Returns the script's exit status.
public enum PipelineRunner {
    /// Creates the state directory for a top-level run (`$TMPDIR/slipway-pipeline-<pid>.<start>-XXXXXX`,
    /// named for this process so that the agent removes it when the process was killed); the
    /// caller removes it.
    public static func makeStateDirectory() throws(PipelineError) -> String {
        switch TempFiles.makeDirectory(kind: "pipeline") {
        case .success(let made): return made
        case .failure(let failure):
            throw PipelineError.stateFile(path: TempFiles.temporaryDirectory, detail: failure.message)
        }
    }

    /// Runs pipeline `name` of `loaded` with `state` in `stateDirectory`; with `defaultScript`,
    /// DevSpace's default script of that name even where the config has its own
    /// (`run_default_pipeline`, which a config's own pipeline of the same name may call).
    public static func run(
        _ name: String,
        loaded: LoadedConfig,
        state: PipelineState,
        stateDirectory: String,
        executable: String,
        environment: [String: String],
        defaultScript: Bool = false,
        output: (any PipelineOutput)? = nil,
        warm: WarmLookup? = nil
    ) async throws(PipelineError) -> Int32 {
        let found: (run: String, continueOnError: Bool)?
        if defaultScript {
            found = (PipelineScript.defaults[name] ?? PipelineScript.slipwayDefaults[name]).map { ($0, false) }
        } else {
            found = PipelineScript.script(name, in: loaded.config)
        }
        let stackName = defaultScript ? "default:\(name)" : name
        guard let (script, continueOnError) = found else {
            throw PipelineScript.missing(name, in: loaded)
                ?? PipelineError.noPipeline(config: loaded.displayPath, name: name, known: [])
        }
        if state.stack.contains(stackName) {
            throw PipelineError.recursion(pipeline: name, stack: state.stack + [stackName])
        }
        var state = state
        state.stack.append(stackName)
        try state.write(to: stateDirectory)
        defer {
            // Restore the caller's stack for the functions that run after a nested pipeline.
            state.stack.removeLast()
            try? state.write(to: stateDirectory)
        }

        var env = environment
        for (key, value) in loaded.variables where VariableResolver.isEnvName(key) {
            env[key] = VariableResolver.text(of: value)
        }
        env[PipelineState.environmentKey] = stateDirectory
        env["SLIPWAY_EXECUTABLE"] = executable
        env["SLIPWAY_PIPELINE"] = name
        // One of DevSpace's default scripts — a function call per line, nothing for a shell to
        // expand — runs its functions in this process when the caller renders their output:
        // no bash, no process and no config load per function (a dev session's rebuild, every
        // `slipway deploy`). The same functions, state and environment as through bash.
        if let output, loaded.config.pipeline(name) == nil || defaultScript,
            let calls = PipelineScript.plainCalls(script)
        {
            let functions = PipelineFunctions(
                state: state,
                directory: stateDirectory,
                environment: env,
                executable: executable,
                output: output,
                warm: warm
            )
            for (function, arguments) in calls {
                do {
                    let status = try await functions.call(function, arguments)
                    if status != 0 { return status }
                } catch {
                    output.note("\(function): \(error.message)")
                    return 1
                }
            }
            return 0
        }
        guard let bash = findExecutable("bash", path: env["PATH"]) else {
            throw PipelineError.bashMissing
        }
        let program = PipelineScript.program(script, continueOnError: continueOnError)
        var custom: [Environment.Key: String] = [:]
        for (key, value) in env {
            if let k = Environment.Key(rawValue: key) { custom[k] = value }
        }
        do {
            let result = try await Subprocess.run(
                .path(FilePath(bash)),
                arguments: ["-c", program, "pipeline:\(name)"],
                environment: .custom(custom),
                workingDirectory: FilePath(loaded.directory),
                input: .fileDescriptor(.standardInput, closeAfterSpawningProcess: false),
                output: .fileDescriptor(.standardOutput, closeAfterSpawningProcess: false),
                error: .fileDescriptor(.standardError, closeAfterSpawningProcess: false)
            )
            switch result.terminationStatus {
            case .exited(let code): return code
            case .signaled(let signal): return 128 + signal
            }
        } catch {
            throw PipelineError.cannotRun(pipeline: name, detail: "\(error)")
        }
    }
}
