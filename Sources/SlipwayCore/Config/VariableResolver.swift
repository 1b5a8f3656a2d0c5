internal import Foundation

/// One entry of the `vars` section.
public struct VariableDefinition: Sendable, Equatable {
    public var name: String
    public var mark: Mark
    public var value: Node?
    public var defaultValue: Node?
    public var question: String?
    public var source: String = "all"
    public var command: String?
    public var args: [String]?
    public var commands: [(os: String?, command: String, args: [String]?)] = []
    public var alwaysResolve: Bool = false
    /// `options`: the answer to the question is one of these (a choice on a terminal).
    public var options: [String] = []
    /// `password`: the answer is read without echo, never printed, and remembered only in a
    /// 0600 file.
    public var password: Bool = false
    /// `validationPattern` / `validationMessage`: an answer must match the pattern (a search,
    /// as Go's `MatchString`); otherwise the message is shown and the question asked again.
    public var validationPattern: String?
    public var validationMessage: String?
    /// `noCache`: the answer is not remembered in `.devspace/cache.yaml`; asked on every run.
    public var noCache: Bool = false
    /// Written as `NAME: $(…)`: an expression, with DevSpace's rules for its result
    /// (`true` for empty output, `false` for exit 1 with no output).
    public var isExpression: Bool = false
    /// Declared as `NAME: {}`: nothing to compute or default. On a terminal it is asked as
    /// DevSpace asks it ("Please enter a value for NAME"); without one slipway takes the empty
    /// string (DevSpace fails there).
    public var isEmpty: Bool = false

    public static func == (a: Self, b: Self) -> Bool {
        a.name == b.name && a.mark == b.mark && a.value == b.value && a.defaultValue == b.defaultValue
            && a.question == b.question && a.source == b.source && a.command == b.command && a.args == b.args
            && a.options == b.options && a.password == b.password && a.validationPattern == b.validationPattern
            && a.validationMessage == b.validationMessage && a.noCache == b.noCache
    }

    /// Keys of DevSpace's `Variable` struct; a map with none of them is a plain value.
    static let definitionKeys: Set<String> = [
        "name", "value", "default", "question", "options", "password", "validationPattern", "validationMessage",
        "noCache", "alwaysResolve", "source", "command", "args", "commands",
    ]

    /// Parses `vars.NAME`: a scalar or list is the value; a map with definition keys is a definition.
    static func parse(name: String, node: Node) -> VariableDefinition {
        var d = VariableDefinition(name: name, mark: node.mark)
        if let s = node.scalar, let expr = VariableSyntax.expression(in: s) {
            // DevSpace: a var written as `$(cmd)` is computed by the command.
            d.command = expr
            d.isExpression = true
            return d
        }
        guard let pairs = node.pairs,
            pairs.isEmpty || pairs.contains(where: { definitionKeys.contains($0.key.scalar ?? "") })
        else {
            d.value = node
            d.source = "none"
            return d
        }
        d.isEmpty = pairs.isEmpty
        d.value = node["value"].flatMap { $0.isNull ? nil : $0 }
        d.defaultValue = node["default"].flatMap { $0.isNull ? nil : $0 }
        d.question = node["question"]?.scalar
        if let s = node["source"]?.scalar, !s.isEmpty { d.source = s }
        d.command = node["command"]?.scalar.flatMap { $0.isEmpty ? nil : $0 }
        d.args = node["args"]?.items?.compactMap(\.scalar)
        d.alwaysResolve = node["alwaysResolve"]?.scalar == "true"
        d.options = node["options"]?.items?.compactMap(\.text) ?? []
        d.password = node["password"]?.scalar == "true"
        d.validationPattern = node["validationPattern"]?.text.flatMap { $0.isEmpty ? nil : $0 }
        d.validationMessage = node["validationMessage"]?.text.flatMap { $0.isEmpty ? nil : $0 }
        d.noCache = node["noCache"]?.scalar == "true"
        for c in node["commands"]?.items ?? [] {
            guard let cmd = c["command"]?.scalar else { continue }
            d.commands.append((os: c["os"]?.scalar, command: cmd, args: c["args"]?.items?.compactMap(\.scalar)))
        }
        if d.value != nil { d.source = "none" }
        return d
    }
}

/// Everything a variable may need from outside the file.
public struct VariableContext: Sendable {
    public var configPath: String
    public var configDirectory: String
    public var projectName: String
    public var environment: [String: String]
    public var cliVars: [(String, String)]
    public var profiles: [String]
    public var namespace: String
    public var kubeContext: String
    public var version: String
    /// Who answers questions; nil when nobody can (no terminal): defaults are taken.
    public var ask: VariableAsker?
    /// DevSpace's vars cache, read when a question first needs it (``VariablesCache``).
    public var cache: VariablesCache?
    /// The cache file as messages name it.
    public var cacheFile: String

    public init(
        configPath: String,
        configDirectory: String,
        projectName: String,
        environment: [String: String],
        cliVars: [(String, String)],
        profiles: [String],
        namespace: String,
        kubeContext: String,
        version: String,
        ask: VariableAsker? = nil,
        cache: VariablesCache? = nil,
        cacheFile: String = ".devspace/cache.yaml"
    ) {
        self.ask = ask
        self.cache = cache
        self.cacheFile = cacheFile
        self.configPath = configPath
        self.configDirectory = configDirectory
        self.projectName = projectName
        self.environment = environment
        self.cliVars = cliVars
        self.profiles = profiles
        self.namespace = namespace
        self.kubeContext = kubeContext
        self.version = version
    }
}

/// A failure to give a variable a value; the loader turns it into a diagnostic at the use site.
struct VariableFailure: Error {
    var message: String
    /// Where the problem lies when it is in a definition rather than at the use site.
    var mark: Mark? = nil
    var path: String? = nil

    /// The failure, placed at `mark` / `path` unless it already has a place of its own.
    func located(_ mark: Mark, _ path: String) -> VariableFailure {
        var copy = self
        if copy.mark == nil {
            copy.mark = mark
            copy.path = path
        }
        return copy
    }
}

/// Resolves `${NAME}` references and `$(…)` expressions the way DevSpace's loader does, lazily:
/// only variables that are used get a value.
///
/// **Which references are variables** (DevSpace v6, `variable/resolver.go`): a name defined
/// under `vars`, a predefined name (`DEVSPACE_NAME`, `devspace.git.branch`, …), a `--var`, or
/// an environment variable that is set and not empty. Any other `${NAME}` is not a variable and
/// stays as written (`${NAME}`), so a shell `${VAR}` in a value loads as it does in DevSpace.
///
/// **Questions**: a variable of source `all` or `input` without a value from `--var`, the
/// environment or DevSpace's vars cache is asked through ``VariableContext/ask`` — once per
/// load (the answer is kept in memory and, unless `noCache`, recorded in ``answers`` for the
/// cache). Without an asker the `default` is taken, as DevSpace does without a terminal; a
/// variable without one is an error naming it.
///
/// **Values are data; only the config's own text is code.** A `$(…)` runs only where it is
/// written in the config (a value, a variable's definition, a variable's `command`). A value
/// that came from git (a branch name), the environment, `--var`, a command's output or another
/// variable is never run, whatever it holds: inside a `$(…)` or a `command`, a `${NAME}`
/// reaches the shell as the environment variable's expansion, not as spliced text. DevSpace
/// splices values into the command text first and runs the result, so a branch named
/// `$(touch${IFS}x)` runs `touch` there; slipway differs on purpose.
final class VariableResolver {
    let context: VariableContext
    var definitions: [String: VariableDefinition]
    private(set) var resolved: [String: Node] = [:]
    private(set) var order: [String] = []
    private var inProgress: Set<String> = []
    /// Bytes of text produced by substitution so far, bounded by ``maxExpandedBytes``.
    private var expandedBytes = 0
    /// The flow-text size of non-scalar values, counted at each use.
    private var valueSizes: [String: Int] = [:]
    /// Variables a custom build's script reads under a name of slipway's (their own names are
    /// not environment names: `${devspace.name}`), exported with the config's variables.
    private(set) var scriptExports: [(String, Node)] = []
    /// Answers given to questions in this load, in order, for DevSpace's vars cache.
    private(set) var answers: [(name: String, value: String, password: Bool, noCache: Bool)] = []
    /// `${NAME}` references that are not variables (left as written), in the order first met.
    private(set) var undefined: [String] = []
    /// Notes for the caller (a vars cache that cannot be read).
    private(set) var notes: [String] = []
    /// The remembered answers, read once, when the first variable that could be asked needs
    /// them (most loads never read the file).
    private(set) lazy var cachedAnswers: VariablesCache.Contents = {
        guard let cache = context.cache else { return VariablesCache.Contents() }
        do throws(VariablesCache.Failure) { return try cache.read() } catch {
            notes.append("note: \(error.description); its remembered answers are ignored")
            return VariablesCache.Contents()
        }
    }()
    /// The names whose value was looked for in the environment (set or not): what a job of the
    /// agent must see as the shell that submitted it saw it (``LoadedConfig/environmentNames``).
    private(set) var environmentReads: Set<String> = []
    /// All substitution in one load produces at most this much text (4 MiB, the size limit of
    /// the file itself): `L1: ${L0}${L0}…`, `L2: ${L1}${L1}…` would otherwise double memory at
    /// every level.
    static let maxExpandedBytes = 4 << 20
    /// Git facts are read (through libgit2) only when a variable or expression needs them.
    private lazy var git: GitFacts? = GitFacts.load(from: context.configDirectory)
    /// Where kube work goes (``KubeTarget``), read only when `DEVSPACE_CONTEXT` or
    /// `DEVSPACE_NAMESPACE` is used (a kubeconfig that cannot be read counts as none).
    private lazy var kubeTarget: KubeTarget? = {
        try? KubeTarget.resolve(
            context: context.kubeContext,
            namespace: context.namespace,
            environment: context.environment
        )
    }()

    init(context: VariableContext, definitions: [VariableDefinition]) {
        self.context = context
        var defs: [String: VariableDefinition] = [:]
        defs.reserveCapacity(definitions.count)
        for d in definitions { defs[d.name] = d }
        self.definitions = defs
        for (k, v) in context.cliVars {
            resolved[k] = Self.convertString(v)
            order.append(k)
        }
    }

    /// The value of a variable, resolving it (and what its definition uses) on first use; a
    /// name that is not a variable reads as itself, `${NAME}`, as in DevSpace.
    func value(of rawName: String) async throws(VariableFailure) -> Node {
        let name = rawName.trimmingSpaces()
        if let v = try await lookup(name) { return v }
        return Node(.scalar("${\(name)}", .doubleQuoted))
    }

    /// The value of a variable, nil when `rawName` is not one (not defined, not predefined, no
    /// `--var`, no environment variable): such a reference stays as written.
    func lookup(_ rawName: String) async throws(VariableFailure) -> Node? {
        let name = rawName.trimmingSpaces()
        if let v = resolved[name] { return v }
        if let p = predefined(name) {
            remember(name, p)
            return p
        }
        guard !name.isEmpty else {
            throw VariableFailure(message: "an empty variable reference ${}: write a name between the braces")
        }
        guard !inProgress.contains(name) else {
            let def = definitions[name]
            throw VariableFailure(
                message: "variable ${\(name)} refers to itself through its definition",
                mark: def?.defaultValue?.mark ?? def?.value?.mark ?? def?.mark,
                path: def?.defaultValue != nil ? "vars.\(name).default" : "vars.\(name)"
            )
        }
        inProgress.insert(name)
        defer { inProgress.remove(name) }
        guard let v = try await fill(name) else {
            if !undefined.contains(name) { undefined.append(name) }
            return nil
        }
        remember(name, v)
        return v
    }

    private func remember(_ name: String, _ v: Node) {
        if resolved[name] == nil { order.append(name) }
        resolved[name] = v
    }

    /// Resolved variables in the order they were resolved, for pipelines' environment, then
    /// what custom build scripts read under slipway's names.
    var resolvedVariables: [(String, Node)] { order.compactMap { n in resolved[n].map { (n, $0) } } + scriptExports }

    private func fill(_ name: String) async throws(VariableFailure) -> Node? {
        let env = context.environment[name] ?? ""
        let def = definitions[name]
        if def.map({ ["env", "all", "default"].contains($0.source) && $0.command == nil && $0.commands.isEmpty })
            ?? true
        {
            environmentReads.insert(name)
        }
        guard let def else {
            // Not defined: a variable only when the environment sets it (DevSpace's
            // `getVariableDefinition`); otherwise not a variable at all.
            if !env.isEmpty { return Self.convertString(env) }
            return nil
        }
        let written = def.value ?? def.defaultValue
        // A plain `NAME: value` is the definition itself; a map has its `value` or `default`.
        let path =
            written?.mark == def.mark
            ? "vars.\(name)" : def.value != nil ? "vars.\(name).value" : "vars.\(name).default"
        // The written default, resolved only when it is the answer (its `$(…)` runs then).
        func defaultValue() async throws(VariableFailure) -> Node? {
            guard let written else { return nil }
            guard let text = written.scalar, text.contains("$") else { return written }
            do { return try await substitute(in: written) } catch { throw error.located(written.mark, path) }
        }
        // The type an environment value must have: the written default's, or (when that is
        // a reference) the referenced value's.
        func typeModel() async throws(VariableFailure) -> Node? {
            guard let written, let text = written.scalar, text.contains("$") else { return written }
            if VariableSyntax.expression(in: text) != nil { return Node(.scalar(text, .doubleQuoted)) }
            return try await defaultValue()
        }
        switch def.source {
        case "none":
            return try await defaultValue() ?? Node(.scalar("", .plain))
        case "env":
            if !env.isEmpty { return try Self.valueByType(env, await typeModel(), name: name) }
            if let d = try await defaultValue() { return d }
            throw VariableFailure(
                message:
                    "vars.\(name) reads the environment variable \(name), which is not set; set it or give the variable a default"
            )
        case "command":
            return try await runCommand(def)
        case "all", "input", "default":
            // DevSpace's `defaultVariable`: command, environment (not for `input`), the vars
            // cache (not with `noCache`), then the question — or, with nobody to ask, the default.
            if def.command != nil || !def.commands.isEmpty { return try await runCommand(def) }
            if def.source != "input" && !env.isEmpty { return try Self.valueByType(env, await typeModel(), name: name) }
            if !def.noCache, let cached = cachedAnswers.values[name] {
                do { return try Self.valueByType(cached, await typeModel(), name: name) } catch {
                    throw VariableFailure(
                        message: def.password
                            ? "the answer \(context.cacheFile) remembers for ${\(name)} does not fit its default's type; forget it with `slipway reset vars`"
                            : "the answer \(context.cacheFile) remembers for ${\(name)}: \(error.message); forget it with `slipway reset vars`"
                    )
                }
            }
            if let ask = context.ask {
                return try await self.ask(
                    def,
                    asker: ask,
                    defaultValue: await defaultValue(),
                    typeModel: await typeModel()
                )
            }
            if let d = try await defaultValue() { return d }
            if def.isEmpty { return Node(.scalar("", .doubleQuoted)) }
            let need = def.question.map { "needs an answer to \"\($0)\"" } ?? "has no value"
            throw VariableFailure(
                message:
                    "variable ${\(name)} \(need), has no default, and there is no terminal to ask on: pass --var \(name)=VALUE, set the environment variable \(name), or run slipway on a terminal to answer it"
            )
        default:
            throw VariableFailure(
                message: "vars.\(name).source \"\(def.source)\" is not one of all, env, input, command, none"
            )
        }
    }

    /// Asks `def`'s question (DevSpace's `askQuestion`): an empty answer takes the default; a
    /// choice must be one of the options; otherwise the answer must match `validationPattern`
    /// (asked again with `validationMessage` when it does not). The answer is recorded for the
    /// vars cache unless `noCache`.
    private func ask(
        _ def: VariableDefinition,
        asker: VariableAsker,
        defaultValue: Node?,
        typeModel: Node?
    ) async throws(VariableFailure) -> Node {
        let name = def.name
        // DevSpace preselects the first option when a choice has no default.
        let defaultText = defaultValue.map(Self.text(of:)) ?? def.options.first
        var pattern: NSRegularExpression?
        if def.options.isEmpty, let p = def.validationPattern {
            do { pattern = try NSRegularExpression(pattern: p) } catch {
                throw VariableFailure(
                    message: "\"\(p)\" is not a valid regular expression",
                    mark: def.mark,
                    path: "vars.\(name).validationPattern"
                )
            }
        }
        var question = VariableQuestion(
            variable: name,
            text: def.question ?? "Please enter a value for \(name)",
            defaultValue: defaultText,
            options: def.options,
            isPassword: def.password
        )
        for _ in 0..<Self.maxAttempts {
            guard var answer = await asker(question) else {
                throw VariableFailure(
                    message:
                        "the question for ${\(name)} (\"\(question.text)\") got no answer: the input ended; pass --var \(name)=VALUE or set the environment variable \(name)"
                )
            }
            if answer.isEmpty, let defaultText { answer = defaultText }
            if !def.options.isEmpty, !def.options.contains(answer) {
                question.problem = "choose one of: " + def.options.joined(separator: ", ")
                continue
            }
            if let pattern,
                pattern.firstMatch(in: answer, range: NSRange(answer.startIndex..., in: answer)) == nil
            {
                question.problem = def.validationMessage ?? "Answer has to match pattern: \(pattern.pattern)"
                continue
            }
            let value: Node
            do { value = try Self.valueByType(answer, typeModel, name: name) } catch {
                question.problem = def.password ? "the answer does not fit the default's type" : error.message
                continue
            }
            answers.append((name, answer, def.password, def.noCache))
            return value
        }
        throw VariableFailure(
            message:
                "the question for ${\(name)} got no acceptable answer in \(Self.maxAttempts) tries\(question.problem.map { " (\($0))" } ?? "")"
        )
    }

    /// How often a question is asked again after an answer that was not taken.
    static let maxAttempts = 5

    private func runCommand(_ def: VariableDefinition) async throws(VariableFailure) -> Node {
        var command = def.command
        var args = def.args
        if let c = def.commands.first(where: { $0.os == nil || $0.os == "linux" }) {
            command = c.command
            args = c.args
        }
        guard let command else {
            throw VariableFailure(message: "vars.\(def.name) has source command but no command")
        }
        if def.isExpression {
            do { return try await evaluate(expression: command) } catch {
                throw error.located(def.mark, "vars.\(def.name)")
            }
        }
        let out: ProcessOutput
        do {
            if let args, !args.isEmpty {
                // No shell: values become whole arguments, whatever they hold.
                let program = try await substituteText(command)
                var arguments: [String] = []
                for a in args { arguments.append(try await substituteText(a)) }
                out = try await ProcessRunner.run(
                    program,
                    arguments,
                    environment: commandEnvironment(),
                    workingDirectory: context.configDirectory
                )
            } else {
                let snippet = try await shellSnippet(command)
                out = try await Shell.run(snippet.text, in: context.configDirectory, environment: snippet.environment)
            }
        } catch let failure as VariableFailure {
            throw failure
        } catch let failure as ToolFailure {
            throw VariableFailure(message: "vars.\(def.name): cannot run \(command): \(failure.standardError)")
        } catch {
            throw VariableFailure(message: "vars.\(def.name): cannot run \(command): \(error)")
        }
        guard out.status == 0 else {
            let tail = Self.lastLines(out.standardError)
            throw VariableFailure(
                message:
                    "vars.\(def.name): the command exited with status \(out.status)\(tail.isEmpty ? "" : ": \(tail)")"
            )
        }
        return try Self.valueByType(out.standardOutput.trimmingSpaces(), def.defaultValue, name: def.name)
    }

    func commandEnvironment() -> [String: String] {
        var env = context.environment
        for (k, v) in resolvedVariables where Self.isEnvName(k) { env[k] = v.scalar ?? "" }
        return env
    }

    static func isEnvName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f == "_" || (f.isASCII && f.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy {
            $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)))
        }
    }

    /// A shell snippet from the config with its references resolved into environment
    /// variables (``VariableSyntax/shellText(_:references:variable:)``): the text to run and
    /// the environment to run it in.
    func shellSnippet(_ s: String) async throws(VariableFailure) -> (text: String, environment: [String: String]) {
        let refs = VariableSyntax.references(in: s)
        var values: [Int: (name: String, value: String)] = [:]
        for (i, r) in refs.enumerated() where r.isReference && !VariableSyntax.isRuntime(r.name) {
            // Not a variable: kept as written, for the shell to expand (as in DevSpace).
            guard let v = try await lookup(r.name) else { continue }
            values[i] = (Self.isEnvName(r.name) ? r.name : "SLIPWAY_VAR_\(i)", Self.text(of: v))
        }
        var env = commandEnvironment()
        for (_, entry) in values { env[entry.name] = entry.value }
        return (VariableSyntax.shellText(s, references: refs, variable: { values[$0]?.name }), env)
    }

    /// A custom build's script (`images.*.custom.command` without arguments), which runs in a
    /// shell at build time: references become expansions of exported variables, as in
    /// ``shellSnippet(_:)``; names that are not environment names are exported as
    /// `SLIPWAY_VAR_<name>` with other characters as `_`.
    func shellScript(_ s: String) async throws(VariableFailure) -> String {
        let refs = VariableSyntax.references(in: s)
        var names: [Int: String] = [:]
        for (i, r) in refs.enumerated() where r.isReference && !VariableSyntax.isRuntime(r.name) {
            guard let v = try await lookup(r.name) else { continue }
            if Self.isEnvName(r.name) {
                names[i] = r.name
            } else {
                let name =
                    "SLIPWAY_VAR_"
                    + String(
                        r.name.unicodeScalars.map {
                            Self.isEnvName(String($0)) || ("0"..."9").contains($0) ? Character($0) : "_"
                        }
                    )
                if !scriptExports.contains(where: { $0.0 == name }) { scriptExports.append((name, v)) }
                names[i] = name
            }
        }
        return VariableSyntax.shellText(s, references: refs, variable: { names[$0] })
    }

    // MARK: Substitution

    /// Resolves every reference in a scalar node. A value that is exactly one reference takes
    /// the variable's typed value; otherwise the result is text. A `$(…)` written as the whole
    /// value is run (its references reach it as environment variables); the result of a
    /// substitution is never run.
    func substitute(in node: Node) async throws(VariableFailure) -> Node {
        guard case .scalar(let s, let style) = node.kind else { return node }
        if let expr = VariableSyntax.expression(in: s) {
            var v = try await evaluate(expression: expr)
            v.mark = node.mark
            return v
        }
        let refs = VariableSyntax.references(in: s)
        guard !refs.isEmpty else { return node }
        let bytes = Array(s.utf8)
        if refs.count == 1, let r = refs.first, r.start == 0, r.end == bytes.count, r.isReference,
            !VariableSyntax.isRuntime(r.name)
        {
            // Not a variable: the value stays `${NAME}`, a string, as DevSpace leaves it.
            guard var v = try await lookup(r.name) else {
                return Node(.scalar("${\(r.name)}", style), tag: node.tag, mark: node.mark)
            }
            try count(v, name: r.name)
            if r.forceString, let text = v.scalar { v = Node(.scalar(text, .doubleQuoted)) }
            v.mark = node.mark
            return v
        }
        let text = try await substituteText(s, references: refs)
        return Node(.scalar(text, style), tag: node.tag, mark: node.mark)
    }

    func substituteText(_ s: String) async throws(VariableFailure) -> String {
        try await substituteText(s, references: VariableSyntax.references(in: s))
    }

    /// Counts a whole-value use of `value` against ``maxExpandedBytes``.
    private func count(_ value: Node, name: String) throws(VariableFailure) {
        let size: Int
        if let text = value.scalar {
            size = text.utf8.count
        } else if let known = valueSizes[name] {
            size = known
        } else {
            size = Self.text(of: value).utf8.count
            valueSizes[name] = size
        }
        try grow(by: size, at: name)
    }

    private func grow(by bytes: Int, at name: String) throws(VariableFailure) {
        expandedBytes += bytes
        guard expandedBytes <= Self.maxExpandedBytes else {
            throw VariableFailure(
                message:
                    "variables expand to more than \(Self.maxExpandedBytes >> 20) MiB of text (stopped while using ${\(name)}); is a variable used many times inside others? slipway stops here rather than fill the memory"
            )
        }
    }

    private func substituteText(
        _ s: String,
        references refs: [VariableSyntax.Reference]
    ) async throws(VariableFailure)
        -> String
    {
        guard !refs.isEmpty else { return s }
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        var pos = 0
        for r in refs {
            out.append(contentsOf: bytes[pos..<r.start])
            if !r.isReference {
                // `$${A}` → `${A}`: an escape loses one `$` and resolves nothing.
                out.append(contentsOf: bytes[(r.start + 1)..<r.end])
            } else if VariableSyntax.isRuntime(r.name) {
                out.append(contentsOf: bytes[r.start..<r.end])
            } else if let v = try await lookup(r.name) {
                let text = Self.text(of: v).utf8
                try grow(by: text.count, at: r.name)
                out.append(contentsOf: text)
            } else {
                out.append(contentsOf: "${\(r.name)}".utf8)
            }
            pos = r.end
        }
        out.append(contentsOf: bytes[pos...])
        return String(decoding: out, as: UTF8.self)
    }

    /// A `$(…)` expression written in the config. Common git questions are answered through
    /// libgit2; anything else runs in `sh` in the config's directory, with the references in
    /// it as environment variables. DevSpace's rule for the result
    /// (`variable/expression/expression.go`): empty output with exit 0 is `true`; exit 1 with
    /// neither output nor error output is `false`; any other failure is an error naming the
    /// expression, its exit status and its error output.
    func evaluate(expression: String) async throws(VariableFailure) -> Node {
        let words = expression.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if words.first == "git", !VariableSyntax.containsReference(expression), !expression.contains("$"),
            let answer = try gitExpression(words, expression)
        {
            return Node(.scalar(answer, .plain)).quotedIfNeeded()
        }
        let snippet = try await shellSnippet(expression)
        let out: ProcessOutput
        do {
            out = try await Shell.run(snippet.text, in: context.configDirectory, environment: snippet.environment)
        } catch {
            throw VariableFailure(message: "$(\(expression)) could not run: \(error.standardError)")
        }
        let text = out.standardOutput.trimmingSpaces()
        guard out.status == 0 else {
            let errors = out.standardError.trimmingSpaces()
            if out.status == 1 && text.isEmpty && errors.isEmpty { return Node(.scalar("false", .plain)) }
            throw VariableFailure(
                message: Self.expressionFailure(expression, status: out.status, errors: errors, output: text)
            )
        }
        if text.isEmpty { return Node(.scalar("true", .plain)) }
        return Node(.scalar(text, .plain)).quotedIfNeeded()
    }

    /// The sentence for a `$(…)` that failed, with what to do where it is clear.
    static func expressionFailure(_ expression: String, status: Int32, errors: String, output: String) -> String {
        var message = "$(\(expression)) failed with exit status \(status)"
        let tail = lastLines(errors.isEmpty ? output : errors)
        // git's "fatal: not a git repository (or any …)" is said once, below, with what to do.
        if !tail.isEmpty && !errors.contains("not a git repository") { message += ": \(tail)" }
        if status == 127 {
            message += " — the command was not found; install it or change the expression"
        } else if errors.contains("not a git repository") {
            message +=
                ": this directory is not in a git repository (a source archive, or a checkout without .git?); pass the value with --var or an environment variable"
        } else if errors.contains("unknown revision") || errors.contains("bad revision")
            || errors.contains("Needed a single revision") || errors.contains("does not have any commits")
        {
            message += " — the repository has no commit yet; commit first or pass the value with --var"
        }
        return message + ""
    }

    /// The last three lines of a tool's output, joined for one line of message.
    static func lastLines(_ text: String) -> String {
        text.trimmingSpaces().split(separator: "\n").suffix(3).joined(separator: " | ")
    }

    /// Git expressions slipway answers from libgit2 (no `git` process): nil when the
    /// expression is not one of them; an error when there is no repository or no commit.
    private func gitExpression(_ words: [String], _ expression: String) throws(VariableFailure) -> String? {
        let dirty = Self.dirtyDescribe(words)
        guard dirty != nil || Self.gitQuestions.contains(words) else { return nil }
        guard let git else {
            throw VariableFailure(
                message:
                    "$(\(expression)) failed: \(context.configDirectory) is not in a git repository (a source archive, or a checkout without .git?); pass the value with --var or an environment variable"
            )
        }
        if words == ["git", "branch", "--show-current"] || words == ["git", "rev-parse", "--abbrev-ref", "HEAD"] {
            // A detached HEAD: `rev-parse --abbrev-ref` prints HEAD; `branch --show-current`
            // prints nothing, which makes the expression `true`, as in DevSpace.
            return git.branch ?? (words.count == 3 ? "true" : "HEAD")
        }
        guard git.commit != nil else {
            throw VariableFailure(
                message:
                    "$(\(expression)) failed: the repository has no commit yet; commit first or pass the value with --var"
            )
        }
        if let dirty {
            do {
                return try GitRepository.discover(from: context.configDirectory).describe(
                    tags: dirty.tags,
                    always: true,
                    dirtySuffix: dirty.suffix
                )
            } catch {
                throw VariableFailure(message: "$(\(expression)) failed: \(error)")
            }
        }
        return Self.gitAnswer(words, git)
    }

    static let gitQuestions: Set<[String]> = [
        ["git", "describe", "--always"], ["git", "describe", "--tags", "--always"],
        ["git", "describe", "--always", "--tags"],
        ["git", "rev-parse", "HEAD"], ["git", "rev-parse", "--short", "HEAD"], ["git", "branch", "--show-current"],
        ["git", "rev-parse", "--abbrev-ref", "HEAD"],
    ]

    /// `git describe --always --dirty[=SUFFIX]` (with `--tags` or not, in any order): asked
    /// of libgit2 only when used, because telling "dirty" takes a status walk of the work tree.
    static func dirtyDescribe(_ words: [String]) -> (tags: Bool, suffix: String)? {
        guard words.count >= 4, words[0] == "git", words[1] == "describe" else { return nil }
        var always = false
        var tags = false
        var suffix: String?
        for word in words[2...] {
            switch word {
            case "--always": always = true
            case "--tags": tags = true
            case "--dirty": suffix = "-dirty"
            default:
                guard word.hasPrefix("--dirty="), suffix == nil else { return nil }
                suffix = String(word.dropFirst("--dirty=".count))
            }
        }
        guard always, let suffix else { return nil }
        return (tags, suffix)
    }

    static func gitAnswer(_ words: [String], _ git: GitFacts) -> String? {
        switch words {
        case ["git", "describe", "--always"]: return git.describe
        case ["git", "describe", "--tags", "--always"], ["git", "describe", "--always", "--tags"]:
            return git.describeTags
        case ["git", "rev-parse", "HEAD"]: return git.commit
        case ["git", "rev-parse", "--short", "HEAD"]: return git.shortCommit
        case ["git", "branch", "--show-current"], ["git", "rev-parse", "--abbrev-ref", "HEAD"]: return git.branch
        default: return nil
        }
    }

    // MARK: Predefined variables

    private func predefined(_ name: String) -> Node? {
        let key: String
        switch name {
        case "devspace.name": key = "DEVSPACE_NAME"
        case "devspace.version": key = "DEVSPACE_VERSION"
        case "devspace.random": key = "DEVSPACE_RANDOM"
        case "devspace.profile": key = "DEVSPACE_PROFILE"
        case "devspace.userHome": key = "DEVSPACE_USER_HOME"
        case "devspace.timestamp": key = "DEVSPACE_TIMESTAMP"
        case "devspace.git.branch": key = "DEVSPACE_GIT_BRANCH"
        case "devspace.git.commit": key = "DEVSPACE_GIT_COMMIT"
        case "devspace.context": key = "DEVSPACE_CONTEXT"
        case "devspace.namespace": key = "DEVSPACE_NAMESPACE"
        default: key = name
        }
        let text: String
        switch key {
        case "DEVSPACE_NAME": text = context.projectName
        case "DEVSPACE_EXECUTABLE": text = CommandLine.arguments.first ?? "slipway"
        case "DEVSPACE_KUBECTL_EXECUTABLE": text = findExecutable("kubectl", path: context.environment["PATH"]) ?? ""
        case "DEVSPACE_TMPDIR": text = context.environment["TMPDIR"] ?? "/tmp"
        case "DEVSPACE_VERSION": text = context.version
        case "DEVSPACE_RANDOM": text = RandomName.letters(6)
        case "DEVSPACE_PROFILE": text = context.profiles.last ?? ""
        case "DEVSPACE_PROFILES": text = context.profiles.joined(separator: " ")
        case "DEVSPACE_USER_HOME": text = context.environment["HOME"] ?? NSHomeDirectory()
        case "DEVSPACE_TIMESTAMP": text = String(Int(Date().timeIntervalSince1970))
        case "DEVSPACE_GIT_BRANCH": text = git?.branch ?? ""
        case "DEVSPACE_GIT_COMMIT": text = git?.commit.map { String($0.prefix(8)) } ?? ""
        case "SLIPWAY_GIT_DESCRIBE": text = git?.describe ?? ""
        case "SLIPWAY_BRANCH_TAG": text = git?.branch.map(BranchTag.tag(for:)) ?? ""
        case "DEVSPACE_CONTEXT": text = context.kubeContext.isEmpty ? kubeTarget?.context ?? "" : context.kubeContext
        case "DEVSPACE_NAMESPACE":
            text = context.namespace.isEmpty ? kubeTarget?.namespace ?? "" : context.namespace
        default: return nil
        }
        return Node(.scalar(text, .plain)).quotedIfNeeded()
    }

    // MARK: Conversions (DevSpace's convertStringValue / valueByType)

    /// `123` becomes a number, `true`/`false` (Go's ParseBool spellings) a boolean, else a string.
    static func convertString(_ s: String) -> Node {
        if let i = Int(s) { return Node(.scalar(String(i), .plain)) }
        switch s {
        case "1", "t", "T", "TRUE", "true", "True": return Node(.scalar("true", .plain))
        case "0", "f", "F", "FALSE", "false", "False": return Node(.scalar("false", .plain))
        default: return Node(.scalar(s, .plain)).quotedIfNeeded()
        }
    }

    static func valueByType(_ s: String, _ defaultValue: Node?, name: String) throws(VariableFailure) -> Node {
        guard let d = defaultValue else { return convertString(s) }
        switch d.resolved {
        case .int:
            guard let i = Int(s) else {
                throw VariableFailure(message: "vars.\(name) needs an integer (its default is one), got \"\(s)\"")
            }
            return Node(.scalar(String(i), .plain))
        case .bool:
            switch s {
            case "1", "t", "T", "TRUE", "true", "True": return Node(.scalar("true", .plain))
            case "0", "f", "F", "FALSE", "false", "False": return Node(.scalar("false", .plain))
            default:
                throw VariableFailure(
                    message: "vars.\(name) needs true or false (its default is a boolean), got \"\(s)\""
                )
            }
        default:
            return Node(.scalar(s, .doubleQuoted))
        }
    }

    /// How a value reads inside a longer string (`%v` in DevSpace).
    static func text(of node: Node) -> String {
        switch node.kind {
        case .scalar(let s, _): return node.isNull ? "" : s
        case .sequence, .mapping: return (try? YAMLEmitter().emitFlow(node)) ?? ""
        }
    }
}

/// Random letters, as DevSpace's `randutil.GenerateRandomString` makes them.
public enum RandomName {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

    public static func letters(_ n: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        return String((0..<n).map { _ in alphabet[Int(rng.next(upperBound: UInt(alphabet.count)))] })
    }
}

extension Node {
    /// The text of a resolved value, as a pipeline's environment (or a `--var`) carries it.
    public var environmentText: String { VariableResolver.text(of: self) }
}
