internal import Foundation

/// DevSpace's pipelines as bash scripts: the default ones, the user's `pipelines:`, and the
/// text slipway runs (a prelude that defines the built-in functions, then the script).
public enum PipelineScript {
    /// DevSpace's default pipelines (`pkg/devspace/pipeline/types/default.go`), verbatim but for
    /// `dev`'s `build_images --skip-dev-replaced`: an image a `devImage` stands in for is not
    /// built when it is already present (docs/dev.md).
    public static let defaults: [String: String] = [
        "deploy": "run_dependencies --all\nensure_pull_secrets --all\nbuild_images --all\ncreate_deployments --all",
        "dev":
            "run_dependencies --all\nensure_pull_secrets --all\nbuild_images --all --skip-dev-replaced\ncreate_deployments --all\nstart_dev --all",
        "purge": "stop_dev --all\npurge_deployments --all\nrun_dependencies --all --pipeline purge",
        "build": "run_dependencies --all --pipeline build\nbuild_images --all",
    ]

    /// `script` as function calls, one per line, when it is only that: words of letters, digits
    /// and `-_=.:/,` (DevSpace's default scripts); nil when a shell is needed (quotes, `$`,
    /// operators) or a line names no built-in function.
    static func plainCalls(_ script: String) -> [(String, [String])]? {
        var calls: [(String, [String])] = []
        for line in script.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            guard let first = words.first else { continue }
            let plain = words.allSatisfy { word in
                word.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_=.:/,".contains($0)) }
            }
            guard plain, functions.contains(first) else { return nil }
            calls.append((first, Array(words.dropFirst())))
        }
        return calls
    }

    /// slipway's own pipelines, which the agent runs (a config's `pipelines.commit`, `.push`
    /// or `.gate` replaces them). The agent sets `SLIPWAY_JOB_DESCRIBE` (the commit's
    /// `git describe --always`, made a valid tag), `SLIPWAY_JOB_BRANCH` and
    /// `SLIPWAY_JOB_BRANCH_TAG`; `slipway run-pipeline` sets them from HEAD when they are unset.
    public static let slipwayDefaults: [String: String] = [
        "commit": "build_images --all --skip-push --tag \"$SLIPWAY_JOB_DESCRIBE\"",
        "gate": "build_images --all --skip-push --tag \"$SLIPWAY_JOB_DESCRIBE\"",
        "push": """
        run_dependencies --all
        ensure_pull_secrets --all
        build_images --all --tag "$SLIPWAY_JOB_BRANCH_TAG" --tag "$SLIPWAY_JOB_DESCRIBE"
        create_deployments --all --branch-env
        """,
    ]

    /// The functions slipway answers by running itself (`slipway __pipeline-function NAME`).
    public static let functions = [
        "build_images", "create_deployments", "purge_deployments", "ensure_pull_secrets", "start_dev", "stop_dev",
        "run_pipelines", "run_default_pipeline", "run_dependencies", "run_dependency_pipelines", "get_image",
        "get_flag",
    ]

    /// The script of pipeline `name`: the config's (when its `run` is not empty), else
    /// DevSpace's default; nil when neither exists.
    /// The error for running pipeline `name` of `loaded` when there is no such pipeline (in the
    /// config, or a default of DevSpace's or slipway's); nil when there is one.
    public static func missing(_ name: String, in loaded: LoadedConfig) -> PipelineError? {
        guard script(name, in: loaded.config) == nil else { return nil }
        let known = Set(defaults.keys).union(slipwayDefaults.keys).union(loaded.config.pipelines.map(\.name)).sorted()
        return PipelineError.noPipeline(config: loaded.displayPath, name: name, known: known)
    }

    public static func script(_ name: String, in config: DevSpaceConfig) -> (run: String, continueOnError: Bool)? {
        if let own = config.pipeline(name), !own.run.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return (own.run, own.continueOnError)
        }
        if let run = defaults[name] ?? slipwayDefaults[name] {
            return (run, config.pipeline(name)?.continueOnError ?? false)
        }
        return nil
    }

    /// `${runtime.images.NAME}`, `.image` and `.tag` become `$(get_image …)`: bash expands them
    /// when the line runs, after an earlier `build_images` in the same script (as DevSpace's
    /// interpreter does), and cannot parse the dotted names anyway.
    public static func rewriteRuntimeReferences(_ script: String) -> String {
        var out = ""
        var rest = Substring(script)
        let marker = "${runtime.images."
        while let start = rest.range(of: marker) {
            out += rest[..<start.lowerBound]
            let after = rest[start.upperBound...]
            guard let close = after.firstIndex(of: "}") else {
                out += rest[start.lowerBound...]
                return out
            }
            let path = after[..<close].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            let name = path.first ?? ""
            let valid = !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
            if valid && path.count == 1 {
                out += "$(get_image \(name))"
            } else if valid && path.count == 2 && (path[1] == "image" || path[1] == "tag") {
                out += "$(get_image --only=\(path[1]) \(name))"
            } else {
                out += rest[start.lowerBound...close]
            }
            rest = after[after.index(after: close)...]
        }
        out += rest
        return out
    }

    /// The bash text that runs `script`: `set -e` unless `continueOnError`, the built-in
    /// functions (each also with DevSpace's `__` prefix), then the script with its runtime
    /// references rewritten.
    public static func program(_ script: String, continueOnError: Bool) -> String {
        var lines = [continueOnError ? "set +e" : "set -e"]
        for name in functions {
            lines.append("\(name)() { \"$SLIPWAY_EXECUTABLE\" __pipeline-function \(name) \"$@\"; }")
            lines.append("__\(name)() { \(name) \"$@\"; }")
        }
        lines += [
            // DevSpace's basic commands, in bash: exit 0 for "yes".
            #"is_equal() { if [ "$#" -eq 1 ]; then [ -z "${1//[[:space:]]/}" ]; else [ "$1" = "$2" ]; fi; }"#,
            #"is_empty() { [ -z "${1-}" ]; }"#,
            #"is_true() { [ "${1-}" = "true" ]; }"#,
            #"is_in() { local v="$1"; shift; local x; for x in "$@"; do [ "$v" = "$x" ] && return 0; done; return 1; }"#,
            #"is_os() { case "$1" in linux|"$(uname -s | tr '[:upper:]' '[:lower:]')") return 0;; *) return 1;; esac; }"#,
            "devspace() { \"$SLIPWAY_EXECUTABLE\" \"$@\"; }",
        ]
        for name in ["is_equal", "is_empty", "is_true", "is_in", "is_os"] {
            lines.append("__\(name)() { \(name) \"$@\"; }")
        }
        lines.append(rewriteRuntimeReferences(script))
        return lines.joined(separator: "\n") + "\n"
    }
}
