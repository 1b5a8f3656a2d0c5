internal import Foundation

extension ConfigLoader {
    /// The config of dependency `path` of `loaded` (`devspace print --dependency dep1.dep2`):
    /// each name is looked up under `dependencies` of the config before it, and loaded as
    /// DevSpace loads a dependency — its own `devspace.yaml` (a `path` that is a directory
    /// holds one), with the dependency's `vars` as `--var`s (and the parent's resolved
    /// variables too with `overwriteVars: true`), its `profiles` and `disableProfileActivation`.
    ///
    /// slipway runs no dependencies yet, but their configs load: a `git` dependency is refused
    /// with a clear error (it needs a clone), as `imports` from git are.
    public static func loadDependency(
        _ path: String,
        of loaded: LoadedConfig,
        options: LoadOptions
    ) async throws(ConfigError) -> LoadedConfig {
        var current = loaded
        var currentOptions = options
        for name in path.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
            guard let dependency = current.tree["dependencies"]?[name], dependency.isMapping,
                dependency["disabled"]?.scalar != "true"
            else {
                throw ConfigError(
                    file: current.displayPath,
                    mark: current.tree["dependencies"]?.mark ?? .start,
                    path: "dependencies",
                    message:
                        "couldn't find dependency \(name): make sure it gets loaded correctly (DevSpace's message); \(known(current))"
                )
            }
            if let git = dependency["git"], !(git.text ?? "").isEmpty {
                throw ConfigError(
                    file: current.displayPath,
                    mark: git.mark,
                    path: "dependencies.\(name).git",
                    message:
                        "dependencies from git repositories are not supported by slipway yet; clone it and point `path` at the clone"
                )
            }
            guard let raw = dependency["path"], let relative = raw.text, !relative.isEmpty else {
                throw ConfigError(
                    file: current.displayPath,
                    mark: dependency.mark,
                    path: "dependencies.\(name)",
                    message: "the dependency needs a path (or git) naming its project"
                )
            }
            var target = absolute(relative, in: current.directory)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: target, isDirectory: &isDir), isDir.boolValue {
                target += "/devspace.yaml"
            }
            guard access(target, R_OK) == 0 else {
                throw ConfigError(
                    file: current.displayPath,
                    mark: raw.mark,
                    path: "dependencies.\(name).path",
                    message: "the dependency's config \(relative) does not exist (looked for \(target))"
                )
            }
            var vars: [(String, String)] = []
            if dependency["overwriteVars"]?.scalar == "true" {
                vars += current.variables.map { ($0.0, $0.1.environmentText) }
            }
            for pair in dependency["vars"]?.pairs ?? [] {
                guard let key = pair.key.scalar else { continue }
                vars.append((key, pair.value.text ?? ""))
            }
            currentOptions = LoadOptions(
                configPath: target,
                workingDirectory: (target as NSString).deletingLastPathComponent,
                environment: options.environment,
                vars: vars,
                profiles: dependency["profiles"]?.strings ?? [],
                disableProfileActivation: dependency["disableProfileActivation"]?.scalar == "true",
                namespace: dependency["namespace"]?.text ?? options.namespace,
                kubeContext: options.kubeContext,
                ask: options.ask
            )
            current = try await load(currentOptions)
        }
        return current
    }

    private static func known(_ loaded: LoadedConfig) -> String {
        let names = (loaded.tree["dependencies"]?.pairs ?? []).compactMap(\.key.scalar)
        return names.isEmpty
            ? "\(loaded.displayPath) has no dependencies" : "its dependencies: \(names.joined(separator: ", "))"
    }
}
