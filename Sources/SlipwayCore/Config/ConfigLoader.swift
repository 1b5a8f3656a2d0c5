internal import Foundation

/// How to find and load a configuration.
public struct LoadOptions: Sendable {
    /// `--config`; nil means `DEVSPACE_CONFIG`, then `devspace.yaml` here or in a parent directory.
    public var configPath: String?
    public var workingDirectory: String
    public var environment: [String: String]
    /// `--var K=V`, in order.
    public var vars: [(String, String)]
    public var profiles: [String]
    public var disableProfileActivation: Bool
    public var namespace: String?
    public var kubeContext: String?
    /// Who answers variables' questions (the CLI: the terminal); nil when nobody can, and
    /// defaults are taken (``VariableQuestion``).
    public var ask: VariableAsker?
    /// `--override-name`: the project's name instead of the config's `name` (DevSpace sets it
    /// before profiles and variables, so `${DEVSPACE_NAME}` and everything else see it).
    public var overrideName: String?

    public init(
        configPath: String? = nil,
        workingDirectory: String,
        environment: [String: String],
        vars: [(String, String)] = [],
        profiles: [String] = [],
        disableProfileActivation: Bool = false,
        namespace: String? = nil,
        kubeContext: String? = nil,
        ask: VariableAsker? = nil,
        overrideName: String? = nil
    ) {
        self.ask = ask
        self.configPath = configPath
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.vars = vars
        self.profiles = profiles
        self.disableProfileActivation = disableProfileActivation
        self.namespace = namespace
        self.kubeContext = kubeContext
        self.overrideName = overrideName
    }
}

/// A loaded configuration: the adjusted, resolved tree, its typed view and where it came from.
public struct LoadedConfig: Sendable {
    /// The path as the user named it, for messages.
    public var displayPath: String
    public var absolutePath: String
    public var directory: String
    /// The adjusted, variable-resolved tree without `vars`, `profiles` and `imports`.
    public var tree: Node
    public var config: DevSpaceConfig
    /// Variables that were resolved, in order (for pipelines' environment).
    public var variables: [(String, Node)]
    /// Profiles applied, in order.
    public var appliedProfiles: [String]
    /// Values of `password: true` variables: never to be printed (``ConfigPrinter`` masks them).
    public var secretValues: [String] = []
    /// Things the caller should tell once (a vars cache that could not be written, answers
    /// DevSpace encrypted); the core never prints.
    public var notes: [String] = []
    /// The environment variables the variables read (set or not), sorted: the agent's jobs
    /// get them as the hook that submitted the job saw them.
    public var environmentNames: [String] = []
}

/// Loads `devspace.yaml`: parse (libyaml) → version → imports → profiles → variables →
/// DevSpace's adjustments → schema and rule validation → typed view. Reports every problem it
/// can find, then fails once. Questions go to ``LoadOptions/ask``; it writes nothing but the
/// answers given to them (DevSpace's vars cache, ``VariablesCache``).
public enum ConfigLoader {
    /// Largest configuration file read; larger files are refused before parsing.
    public static let maxFileSize = 4 << 20
    public static let version = "0.1.0"
    /// The DevSpace release line whose config format slipway reads (`DEVSPACE_VERSION`).
    public static let devspaceCompatVersion = "6.3.12"

    public static func locate(_ options: LoadOptions) -> (display: String, absolute: String) {
        let named = options.configPath ?? options.environment["DEVSPACE_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        if let named {
            return (named, absolute(named, in: options.workingDirectory))
        }
        // DevSpace looks in the working directory, then in its parents (not in $HOME).
        var dir = options.workingDirectory
        let home = options.environment["HOME"]
        while true {
            let candidate = dir == "/" ? "/devspace.yaml" : dir + "/devspace.yaml"
            if dir != home, access(candidate, F_OK) == 0 {
                return (dir == options.workingDirectory ? "devspace.yaml" : candidate, candidate)
            }
            let parent = (dir as NSString).deletingLastPathComponent
            if parent == dir || parent.isEmpty { break }
            dir = parent
        }
        return ("devspace.yaml", absolute("devspace.yaml", in: options.workingDirectory))
    }

    public static func load(_ options: LoadOptions) async throws(ConfigError) -> LoadedConfig {
        let (display, path) = locate(options)
        let directory = (path as NSString).deletingLastPathComponent
        var root = try readDocument(display: display, path: path)

        guard root.isMapping else {
            throw ConfigError(
                file: display,
                mark: root.mark,
                message: "the file must be a map of sections (version, name, images, …), found \(root.typeDescription)"
            )
        }
        // The version first: an old config's keys are not v2beta1's, and its type errors would
        // hide the one thing to do. Then structure, on the file as written: unknown keys and
        // wrong types, all of them.
        try checkVersion(root, file: display)
        let early = SchemaValidator.validate(root, file: display) + ConfigRules.checkVars(root, file: display)
        if !early.isEmpty { throw ConfigError(early) }

        var name = root["name"]?.text ?? ""
        if let override = options.overrideName, !override.isEmpty {
            guard ConfigRules.isSafeName(override) else {
                throw ConfigError(
                    file: display,
                    mark: root["name"]?.mark ?? .start,
                    path: "name",
                    message:
                        "--override-name \(override): not a valid project name: use lowercase letters, digits and '-' (at least 3 characters)"
                )
            }
            name = override
            root["name"] = Node.string(name)
        } else if name.isEmpty {
            let dirName = (directory as NSString).lastPathComponent
            name = dirName.count > 2 ? ConfigRules.convertName(dirName) : "devspace"
            root["name"] = Node.string(name)
        } else if !VariableSyntax.containsReference(name) && !ConfigRules.isSafeName(name) {
            throw ConfigError(
                file: display,
                mark: root["name"]?.mark ?? .start,
                path: "name",
                message:
                    "\"\(name)\" is not a valid project name: use lowercase letters, digits and '-' (at least 3 characters)"
            )
        }

        var notes: [String] = []
        let cache = VariablesCache(configPath: path)
        let cacheDisplay = relativeCachePath(cache.path, directory: directory)
        let context = VariableContext(
            configPath: path,
            configDirectory: directory,
            projectName: name,
            environment: options.environment,
            cliVars: options.vars,
            profiles: options.profiles,
            namespace: options.namespace ?? "",
            kubeContext: options.kubeContext ?? "",
            version: devspaceCompatVersion,
            ask: options.ask,
            cache: cache,
            cacheFile: cacheDisplay
        )
        let resolver = VariableResolver(context: context, definitions: definitions(root))

        if root["imports"] != nil {
            root = try await resolveImports(root, file: display, directory: directory, resolver: resolver, seen: [path])
            root["imports"] = nil
            resolver.definitions = Dictionary(definitions(root).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        }

        // Profiles: explicit ones (-p) and those whose activation matches.
        let badPatterns = checkActivations(root, file: display)
        if !badPatterns.isEmpty { throw ConfigError(badPatterns) }
        let applier = ProfileApplier(file: display, root: root)
        let selected: [Node]
        do {
            selected = try await applier.selection(explicit: options.profiles) { profile in
                guard !options.disableProfileActivation else { return false }
                return await activationMatches(profile, resolver: resolver, environment: options.environment)
            }
            for p in selected { root = try ProfileApplier.apply(p, to: root) }
        } catch {
            throw ConfigError(file: display, mark: error.mark, path: error.path, message: error.message)
        }
        root["profiles"] = nil
        if !selected.isEmpty {
            try checkVersion(root, file: display)
            let rules = ConfigRules.checkVars(root, file: display)
            if !rules.isEmpty { throw ConfigError(rules) }
            resolver.definitions = Dictionary(definitions(root).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        }

        // Variables: used ones (and alwaysResolve ones) get values; every failure is reported.
        var diagnostics: [ConfigDiagnostic] = []
        for def in resolver.definitions.values.filter(\.alwaysResolve).sorted(by: { $0.mark.line < $1.mark.line }) {
            do { _ = try await resolver.value(of: def.name) } catch {
                diagnostics.append(
                    ConfigDiagnostic(
                        file: display,
                        mark: error.mark ?? def.mark,
                        path: error.path ?? "vars.\(def.name)",
                        message: error.message
                    )
                )
            }
        }
        root["vars"] = nil
        root = await substituteAll(root, resolver: resolver, file: display, diagnostics: &diagnostics)
        // Answers are remembered even when the config has other problems: the person is not
        // asked again after fixing them.
        notes += resolver.notes
        notes += remember(resolver.answers, in: cache, display: cacheDisplay)
        let asked = resolver.answers.map(\.name)
        let unreadable = asked.isEmpty ? [] : resolver.cachedAnswers.encrypted.filter { asked.contains($0) }
        if !unreadable.isEmpty {
            notes.append(
                "note: \(cacheDisplay) holds DevSpace's encrypted answers for \(unreadable.joined(separator: ", ")), which slipway cannot read, so they were asked again; DEVSPACE_DISABLE_VARS_ENCRYPTION=true makes DevSpace store answers both tools read"
            )
        }
        if !diagnostics.isEmpty { throw ConfigError(hinted(diagnostics, undefined: resolver.undefined)) }

        root = adjust(root)
        diagnostics = SchemaValidator.validate(root, file: display) + ConfigRules.check(root, file: display)
        if !diagnostics.isEmpty { throw ConfigError(hinted(diagnostics, undefined: resolver.undefined)) }

        var loaded = LoadedConfig(
            displayPath: display,
            absolutePath: path,
            directory: directory,
            tree: root,
            config: DevSpaceConfig(decoding: root),
            variables: resolver.resolvedVariables,
            appliedProfiles: selected.compactMap { $0["name"]?.scalar },
            environmentNames: resolver.environmentReads.sorted()
        )
        loaded.secretValues = resolver.resolvedVariables.compactMap { name, value in
            guard resolver.definitions[name]?.password == true else { return nil }
            let text = VariableResolver.text(of: value)
            return text.isEmpty ? nil : text
        }
        loaded.notes = notes
        return loaded
    }

    /// The vars cache's path as messages show it: relative to the config's directory.
    static func relativeCachePath(_ path: String, directory: String) -> String {
        path.hasPrefix(directory + "/") ? String(path.dropFirst(directory.count + 1)) : path
    }

    /// Writes the answers given in this load to DevSpace's vars cache (not those of `noCache`
    /// variables); a failure is a note, not an error: the answers still hold for this run.
    static func remember(
        _ answers: [(name: String, value: String, password: Bool, noCache: Bool)],
        in cache: VariablesCache,
        display: String
    ) -> [String] {
        let kept = answers.filter { !$0.noCache }
        guard !kept.isEmpty else { return [] }
        do {
            let skipped = try cache.record(
                kept.map { ($0.name, $0.value) },
                secret: kept.contains(where: \.password)
            )
            guard !skipped.isEmpty else { return [] }
            return [
                "note: the answers for \(skipped.joined(separator: ", ")) were not remembered: \(display) holds DevSpace's encrypted answers, and they would read as encrypted"
            ]
        } catch {
            return ["note: the answers were not remembered (\(error.description)); they are asked again next time"]
        }
    }

    /// Diagnostics about a value that holds a `${NAME}` which is not a variable say so: the
    /// reference was left as written, as DevSpace leaves it.
    static func hinted(_ diagnostics: [ConfigDiagnostic], undefined: [String]) -> [ConfigDiagnostic] {
        guard !undefined.isEmpty else { return diagnostics }
        return diagnostics.map { d in
            guard let name = undefined.first(where: { d.message.contains("${\($0)}") }) else { return d }
            var copy = d
            copy.message +=
                " (${\(name)} is not a variable — not under vars, not predefined, no --var, no environment variable — so it was left as written)"
            return copy
        }
    }

    // MARK: Steps

    static func absolute(_ p: String, in dir: String) -> String {
        let joined = p.hasPrefix("/") ? p : (dir as NSString).appendingPathComponent(p)
        return (joined as NSString).standardizingPath
    }

    /// Reads and parses one file into its single document, with clear errors for every way a
    /// file can be unreadable.
    static func readDocument(display: String, path: String) throws(ConfigError) -> Node {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let reason = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
            throw ConfigError(
                file: display,
                message:
                    "cannot read the config: \(reason); create a devspace.yaml (version: v2beta1) here or point --config (or DEVSPACE_CONFIG) at one"
            )
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ConfigError(file: display, message: "the config path is not a regular file")
        }
        guard Int(st.st_size) <= maxFileSize else {
            throw ConfigError(
                file: display,
                message:
                    "the file is \(st.st_size) bytes; slipway reads configs of at most \(maxFileSize) bytes — is this really a devspace.yaml?"
            )
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: display, message: "cannot read the file: \(String(cString: strerror(errno)))")
        }
        let bytes = [UInt8](data)
        if bytes.contains(0) {
            let offset = bytes.firstIndex(of: 0) ?? 0
            let line = bytes[..<offset].reduce(1) { $0 + ($1 == 10 ? 1 : 0) }
            throw ConfigError(
                file: display,
                mark: Mark(line: line, column: 1),
                message: "the file contains a NUL byte at offset \(offset); is it a binary file?"
            )
        }
        let docs: [(start: Mark, root: Node)]
        do {
            docs = try YAMLParser().parseDocuments(bytes)
        } catch {
            throw ConfigError(file: display, mark: error.mark, message: error.message)
        }
        guard let first = docs.first?.root, !(docs.count == 1 && first.isNull) else {
            throw ConfigError(
                file: display,
                message: "the file is empty; a devspace.yaml starts with `version: v2beta1`"
            )
        }
        if docs.count > 1 {
            throw ConfigError(
                file: display,
                mark: docs[1].start,
                message:
                    "a second YAML document starts here; a devspace.yaml holds exactly one (DevSpace ignores the rest) — remove the `---` or move it to its own file"
            )
        }
        return first
    }

    static func checkVersion(_ root: Node, file: String) throws(ConfigError) {
        guard let v = root["version"] else {
            throw ConfigError(
                file: file,
                mark: root.mark,
                path: "version",
                message: "version is missing; add `version: v2beta1` at the top"
            )
        }
        // A list or map is the schema's to report (it runs next).
        guard v.scalar != nil else { return }
        let s = v.text ?? ""
        guard s == ConfigRules.supportedVersion else {
            throw ConfigError(file: file, mark: v.mark, path: "version", message: versionMessage(s))
        }
    }

    /// The config versions before v2beta1 that DevSpace 6 still reads, converting them in
    /// memory as it loads them (`pkg/devspace/config/versions`).
    static let oldVersions: Set<String> = Set((1...11).map { "v1beta\($0)" })

    /// What to do about a `version` that is not v2beta1. An old version is DevSpace 5's format:
    /// DevSpace 6 converts it on every load, and `devspace print` shows the result. Any other
    /// is DevSpace's own message for a version it does not know.
    static func versionMessage(_ version: String) -> String {
        if oldVersions.contains(version) {
            return
                "version \(version) is DevSpace 5's config format; slipway reads only v2beta1 (DevSpace 6's). DevSpace 6 converts the file in memory each time it loads it: run `devspace print --skip-info` and start the new v2beta1 devspace.yaml from its output (its variables are filled in: put the ${…} references back). `devspace upgrade` updates the DevSpace CLI itself, not the file"
        }
        return
            "Unrecognized config version \(version). Please upgrade devspace with `devspace upgrade` (DevSpace's message); slipway reads v2beta1"
    }

    static func definitions(_ root: Node) -> [VariableDefinition] {
        (root["vars"]?.pairs ?? []).compactMap { p in
            p.key.scalar.map { VariableDefinition.parse(name: $0, node: p.value) }
        }
    }

    /// Local `imports` are read and merged under the importing config (its own entries win);
    /// git imports need a clone and are refused with a clear message.
    static func resolveImports(
        _ root: Node,
        file: String,
        directory: String,
        resolver: VariableResolver,
        seen: Set<String>
    ) async throws(ConfigError) -> Node {
        guard let imports = root["imports"]?.items else { return root }
        var result = root
        for (i, item) in imports.enumerated() {
            let path = "imports[\(i)]"
            if let enabled = item["enabled"] {
                let value: Node
                do { value = try await resolver.substitute(in: enabled) } catch {
                    throw ConfigError(file: file, mark: enabled.mark, path: path + ".enabled", message: error.message)
                }
                if value.bool == false || value.scalar == "false" { continue }
            }
            if item["git"] != nil {
                throw ConfigError(
                    file: file,
                    mark: item["git"]?.mark ?? item.mark,
                    path: path + ".git",
                    message:
                        "imports from git repositories are not supported by slipway yet; clone it and import the local path instead"
                )
            }
            guard let raw = item["path"] else {
                throw ConfigError(file: file, mark: item.mark, path: path, message: "an import needs a path")
            }
            let relative: String
            do { relative = try await resolver.substituteText(raw.text ?? "") } catch {
                throw ConfigError(file: file, mark: raw.mark, path: path + ".path", message: error.message)
            }
            var target = absolute(relative, in: directory)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: target, isDirectory: &isDir), isDir.boolValue {
                target += "/devspace.yaml"
            }
            guard access(target, R_OK) == 0 else {
                throw ConfigError(
                    file: file,
                    mark: raw.mark,
                    path: path + ".path",
                    message: "the imported file \(relative) does not exist (looked for \(target))"
                )
            }
            guard !seen.contains(target) else {
                throw ConfigError(
                    file: file,
                    mark: raw.mark,
                    path: path + ".path",
                    message: "\(relative) imports itself (an import cycle)"
                )
            }
            let display = relative
            var imported = try readDocument(display: display, path: target)
            let diags = SchemaValidator.validate(imported, file: display)
            if !diags.isEmpty { throw ConfigError(diags) }
            imported = try await resolveImports(
                imported,
                file: display,
                directory: (target as NSString).deletingLastPathComponent,
                resolver: resolver,
                seen: seen.union([target])
            )
            result = merge(imported: imported, into: result)
        }
        return result
    }

    /// Sections that are maps take the imported entries the importer lacks; lists are appended;
    /// other keys are taken only when absent.
    static func merge(imported: Node, into base: Node) -> Node {
        var result = base
        for pair in imported.pairs ?? [] {
            guard let key = pair.key.scalar, !["version", "name", "imports"].contains(key) else { continue }
            guard let existing = result[key] else {
                result[key] = pair.value
                continue
            }
            if var ours = existing.pairs, let theirs = pair.value.pairs {
                for p in theirs where !ours.contains(where: { $0.key.scalar == p.key.scalar }) { ours.append(p) }
                result[key] = Node(.mapping(ours), tag: existing.tag, mark: existing.mark)
            } else if let ours = existing.items, let theirs = pair.value.items {
                result[key] = Node(.sequence(ours + theirs), tag: existing.tag, mark: existing.mark)
            }
        }
        return result
    }

    static func activationMatches(
        _ profile: Node,
        resolver: VariableResolver,
        environment: [String: String]
    ) async
        -> Bool
    {
        for rule in profile["activation"]?.items ?? [] {
            var all = true
            for p in rule["env"]?.pairs ?? [] {
                guard let k = p.key.scalar, let pattern = p.value.text else { continue }
                if !fullMatch(pattern, environment[k] ?? "") { all = false }
            }
            for p in rule["vars"]?.pairs ?? [] {
                guard let k = p.key.scalar, let pattern = p.value.text else { continue }
                let value = (try? await resolver.value(of: k)).map { VariableResolver.text(of: $0) } ?? ""
                if !fullMatch(pattern, value) { all = false }
            }
            if all { return true }
        }
        return false
    }

    /// Every `activation` pattern must be a regular expression; one that is not is an error at
    /// its place (not a literal: DevSpace refuses it too).
    static func checkActivations(_ root: Node, file: String) -> [ConfigDiagnostic] {
        var out: [ConfigDiagnostic] = []
        for (i, profile) in (root["profiles"]?.items ?? []).enumerated() {
            for (j, rule) in (profile["activation"]?.items ?? []).enumerated() {
                for section in ["env", "vars"] {
                    for pair in rule[section]?.pairs ?? [] {
                        guard let key = pair.key.scalar, let pattern = pair.value.text, !pattern.contains("${") else {
                            continue
                        }
                        do {
                            _ = try NSRegularExpression(pattern: "^(?:\(pattern))$")
                        } catch {
                            out.append(
                                ConfigDiagnostic(
                                    file: file,
                                    mark: pair.value.mark,
                                    path: "profiles[\(i)].activation[\(j)].\(section).\(key)",
                                    message:
                                        "\"\(pattern)\" is not a valid regular expression; escape special characters such as ( [ * with \\ to match them literally"
                                )
                            )
                        }
                    }
                }
            }
        }
        return out
    }

    static func fullMatch(_ pattern: String, _ value: String) -> Bool {
        guard let re = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else { return pattern == value }
        return re.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)) != nil
    }

    /// Resolves variables in every scalar (keys included), recording failures at their marks.
    ///
    /// `customScript` is set below `images.X.custom` when its command runs as a shell script
    /// (no `args`, no `appendArgs`, no image argument): the command's references then reach
    /// the shell as exported variables, never as spliced text.
    static func substituteAll(
        _ node: Node,
        resolver: VariableResolver,
        file: String,
        path: String = "",
        customScript: Bool = false,
        diagnostics: inout [ConfigDiagnostic]
    ) async -> Node {
        switch node.kind {
        case .scalar(let s, let style):
            guard s.contains("$") else { return node }
            do {
                if customScript, path.hasSuffix(".command") {
                    let text = try await resolver.shellScript(s)
                    return Node(.scalar(text, style), tag: node.tag, mark: node.mark)
                }
                if isScript(path) {
                    // Scripts keep their text: the pipeline shell expands `${NAME}` from the
                    // environment (vars are exported there), and `${arr[0]}` is the shell's own.
                    // Defined variables they use are still resolved, as DevSpace does.
                    for r in VariableSyntax.references(in: s)
                    where r.isReference && resolver.definitions[r.name] != nil {
                        _ = try await resolver.value(of: r.name)
                    }
                    return node
                }
                return try await resolver.substitute(in: node)
            } catch {
                diagnostics.append(
                    ConfigDiagnostic(
                        file: file,
                        mark: error.mark ?? node.mark,
                        path: error.path ?? path,
                        message: error.message
                    )
                )
                return node
            }
        case .sequence(let items):
            var out: [Node] = []
            out.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                out.append(
                    await substituteAll(
                        item,
                        resolver: resolver,
                        file: file,
                        path: "\(path)[\(i)]",
                        customScript: customScript,
                        diagnostics: &diagnostics
                    )
                )
            }
            var copy = node
            copy.kind = .sequence(out)
            return copy
        case .mapping(let pairs):
            var out: [Node.Pair] = []
            out.reserveCapacity(pairs.count)
            let script = customScript || isCustomScript(node, path: path)
            for p in pairs {
                let key = p.key.scalar ?? ""
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                var newKey = p.key
                if key.contains("$") {
                    newKey = await substituteAll(
                        p.key,
                        resolver: resolver,
                        file: file,
                        path: childPath,
                        diagnostics: &diagnostics
                    )
                    if newKey.scalar == nil {
                        newKey = Node.string(VariableResolver.text(of: newKey), mark: p.key.mark)
                    }
                }
                let value = await substituteAll(
                    p.value,
                    resolver: resolver,
                    file: file,
                    path: childPath,
                    customScript: script,
                    diagnostics: &diagnostics
                )
                out.append(Node.Pair(key: newKey, value: value))
            }
            var copy = node
            copy.kind = .mapping(out)
            return copy
        }
    }

    /// `images.X.custom` whose command runs as a shell script (``CustomEngine``'s script mode),
    /// and a `dev` entry's `onUpload.exec[i]` without `args` (its command runs with `sh -c`): in
    /// both, a `${NAME}` reaches the shell as an expansion of an environment variable, never
    /// spliced into the text (values are data).
    static func isCustomScript(_ node: Node, path: String) -> Bool {
        if path.hasPrefix("dev."), path.contains(".onUpload.exec["), path.hasSuffix("]") {
            return node["args"].map(\.isNull) ?? true
        }
        let parts = path.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "images", parts[2] == "custom" else { return false }
        return (node["args"]?.items ?? []).isEmpty && (node["appendArgs"]?.items ?? []).isEmpty
            && node["skipImageArg"]?.scalar != "false"
    }

    /// Shell scripts run later by the pipeline engine: `pipelines.X` (string form),
    /// `pipelines.X.run`, `functions.X`, `commands.X.command`, `hooks[i].command`.
    static func isScript(_ path: String) -> Bool {
        let parts = path.split(separator: ".", omittingEmptySubsequences: false)
        guard let head = parts.first else { return false }
        switch head {
        case "pipelines": return parts.count == 2 || (parts.count == 3 && parts[2] == "run")
        case "functions": return parts.count == 2
        case "commands": return parts.count == 2 || (parts.count == 3 && parts[2] == "command")
        default: return head.hasPrefix("hooks[") && parts.count == 2 && parts[1] == "command"
        }
    }

    /// DevSpace's `adjust.go` for images: a tag written in `image:` moves to the front of
    /// `tags`. The defaults of `dockerfile` and `context` are not written into the tree (DevSpace
    /// does not write them either; ``ImageConfig`` applies them).
    static func adjust(_ root: Node) -> Node {
        guard var images = root["images"]?.pairs else { return root }
        for i in images.indices {
            var image = images[i].value
            guard image.isMapping else { continue }
            if let imageNode = image["image"], let name = imageNode.text {
                let (repo, tag) = splitImageTag(name)
                if let tag {
                    let stripped = stripDockerHub(repo)
                    image["image"] = Node.string(stripped, mark: imageNode.mark)
                    var tags = image["tags"]?.items ?? []
                    tags.insert(Node.string(tag, mark: imageNode.mark), at: 0)
                    image["tags"] = Node(.sequence(tags), mark: image["tags"]?.mark ?? imageNode.mark)
                }
            }
            images[i].value = image
        }
        var out = root
        out["images"] = Node(.mapping(images), mark: root["images"]?.mark ?? root.mark)
        return out
    }

    /// Splits `repo:tag` (a `:` after the last `/`, so `localhost:5000/app` has no tag).
    public static func splitImageTag(_ s: String) -> (String, String?) {
        var name = s
        if let at = name.firstIndex(of: "@") { name = String(name[..<at]) }
        guard let colon = name.lastIndex(of: ":") else { return (s, nil) }
        let after = name[name.index(after: colon)...]
        if after.contains("/") { return (s, nil) }
        return (String(name[..<colon]), String(after))
    }

    static func stripDockerHub(_ repo: String) -> String {
        for prefix in ["docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"]
        where repo.hasPrefix(prefix) {
            return String(repo.dropFirst(prefix.count))
        }
        return repo
    }
}
