/// Runs a user's shell snippet (a var's `command`, a `$(…)` expression) with `sh -c`.
///
/// The snippet is the user's own code from their config, run as DevSpace runs it; slipway
/// never splices other values (branch names, tags, paths) into it — those travel as
/// environment variables or arguments.
public enum Shell {
    /// DevSpace's basic commands that configs use inside expressions (`$(is_equal ${A} b)`).
    static let prelude = """
        is_equal() { [ "$1" = "$2" ]; }
        is_empty() { [ -z "$1" ]; }
        is_true() { [ "$1" = "true" ]; }
        is_in() { _v="$1"; shift; for _x in "$@"; do [ "$_x" = "$_v" ] && return 0; done; return 1; }
        is_os() { [ "$1" = "linux" ]; }

        """

    public static func run(
        _ script: String,
        in directory: String,
        environment: [String: String]
    ) async throws(ToolFailure)
        -> ProcessOutput
    {
        try await ProcessRunner.run(
            "/bin/sh",
            ["-c", prelude + script],
            environment: environment,
            workingDirectory: directory
        )
    }
}
