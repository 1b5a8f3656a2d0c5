/// A pipeline's own flags (`pipelines.NAME.flags`), given after its name on the command line:
/// `--name value`, `--name=value`, `-n value`, and bool `--name`.
public enum PipelineFlagParser {
    /// The arguments that name the pipeline's declared flags (with their values), and the rest.
    public static func split(_ args: [String], declared: [PipelineConfig.Flag]) -> (own: [String], others: [String]) {
        var own: [String] = []
        var others: [String] = []
        var i = 0
        while i < args.count {
            let arg = args[i]
            let body =
                arg.hasPrefix("--") ? String(arg.dropFirst(2)) : arg.hasPrefix("-") ? String(arg.dropFirst()) : nil
            let name = body.map { String($0.prefix { $0 != "=" }) }
            let flag = name.flatMap { n in
                declared.first { arg.hasPrefix("--") ? $0.name == n : ($0.short == n && arg.count == 2) }
            }
            guard let flag else {
                others.append(arg)
                i += 1
                continue
            }
            own.append(arg)
            if flag.type != "bool", !arg.contains("="), i + 1 < args.count {
                own.append(args[i + 1])
                i += 1
            }
            i += 1
        }
        return (own, others)
    }

    /// `--pipeline NAME` / `--pipeline=NAME` among the arguments after a pipeline's name (before
    /// `--`): the last one's value, and the other arguments.
    public static func extractPipelineOption(
        _ args: [String]
    ) throws(PipelineError) -> (pipeline: String?, rest: [String]) {
        var pipeline: String?
        var rest: [String] = []
        var i = 0
        while i < args.count {
            let arg = args[i]
            if arg == "--" {
                rest += args[i...]
                break
            }
            if arg == "--pipeline" {
                guard i + 1 < args.count else {
                    throw PipelineError.usage(CommandFlags.pipelineNameProblem("") ?? "--pipeline needs a value")
                }
                pipeline = args[i + 1]
                i += 2
            } else if arg.hasPrefix("--pipeline=") {
                pipeline = String(arg.dropFirst("--pipeline=".count))
                i += 1
            } else {
                rest.append(arg)
                i += 1
                continue
            }
            if let pipeline, let problem = CommandFlags.pipelineNameProblem(pipeline) {
                throw PipelineError.usage(problem)
            }
        }
        return (pipeline, rest)
    }

    /// The values of the declared flags (defaults filled in); anything else is a usage error.
    public static func parse(
        _ args: [String],
        declared: [PipelineConfig.Flag],
        pipeline: String
    ) throws(PipelineError) -> [String: String] {
        var values: [String: String] = [:]
        for flag in declared {
            if let d = flag.defaultValue {
                values[flag.name] = d.environmentText
            } else if flag.type == "bool" {
                values[flag.name] = "false"
            } else {
                values[flag.name] = ""
            }
        }
        var i = 0
        while i < args.count {
            let arg = args[i]
            var name: String
            var inline: String?
            if arg.hasPrefix("--") {
                name = String(arg.dropFirst(2))
            } else if arg.hasPrefix("-"), arg.count == 2 {
                name = String(arg.dropFirst())
                guard let long = declared.first(where: { $0.short == name })?.name else {
                    throw PipelineError.usage("unknown option \(arg) for pipeline \(pipeline)")
                }
                name = long
            } else {
                throw PipelineError.usage("unexpected argument \"\(arg)\" for pipeline \(pipeline)")
            }
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let flag = declared.first(where: { $0.name == name }) else {
                let known = declared.map { "--\($0.name)" }.joined(separator: ", ")
                throw PipelineError.usage(
                    "unknown option --\(name) for pipeline \(pipeline)"
                        + (known.isEmpty ? "" : " (its flags: \(known))")
                )
            }
            if flag.type == "bool" {
                guard let inline else {
                    values[name] = "true"
                    i += 1
                    continue
                }
                guard let value = CommandFlags.booleanValue(inline) else {
                    throw PipelineError.usage(
                        "option --\(name)=\(inline) of pipeline \(pipeline): a bool flag takes true or false (or nothing, for true)"
                    )
                }
                values[name] = value ? "true" : "false"
            } else {
                guard let value = inline ?? (i + 1 < args.count ? args[i + 1] : nil) else {
                    throw PipelineError.usage("option --\(name) of pipeline \(pipeline) needs a value")
                }
                if inline == nil { i += 1 }
                if flag.type == "stringArray", let old = values[name], !old.isEmpty {
                    values[name] = old + " " + value
                } else {
                    values[name] = value
                }
            }
            i += 1
        }
        return values
    }

    /// The declared flags as help rows: `-w, --who <string>` and its description, with the
    /// default (as `slipway run-pipeline NAME --help` lists them, like DevSpace's).
    public static func helpRows(_ declared: [PipelineConfig.Flag]) -> [(label: String, help: String)] {
        declared.filter { !$0.name.isEmpty }.map { flag in
            let short = flag.short.flatMap { $0.isEmpty ? nil : "-\($0), " } ?? ""
            let value = flag.type == "bool" ? "" : " <\(flag.type)>"
            var help = flag.description.flatMap { $0.isEmpty ? nil : $0 } ?? "Flag \(flag.name)"
            if let d = flag.defaultValue, !d.isNull {
                help += " (default: \(d.environmentText))"
            }
            return (short + "--" + flag.name + value, help)
        }
    }
}
