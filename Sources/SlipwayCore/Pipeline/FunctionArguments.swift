/// The arguments of a built-in function, parsed as DevSpace's functions take them: flags
/// (`--x`, `--x=v`, `--x v` for those that take a value, `-t v`, `-tv`) and names.
public struct FunctionArguments: Sendable, Equatable {
    public var flags: [String: [String]] = [:]
    public var names: [String] = []

    public func has(_ flag: String) -> Bool { flags[flag] != nil }
    public func value(_ flag: String) -> String? { flags[flag]?.last }
    public func values(_ flag: String) -> [String] { flags[flag] ?? [] }

    /// `valued`: flags that take a value; `bools`: the others. Short forms map to long ones.
    public init(
        _ args: [String],
        function: String,
        valued: Set<String>,
        bools: Set<String>,
        short: [String: String] = [:]
    ) throws(PipelineError) {
        var i = 0
        while i < args.count {
            let arg = args[i]
            var flag: String
            if arg.hasPrefix("--") {
                flag = String(arg.dropFirst(2))
            } else if arg.hasPrefix("-") && arg.count >= 2 {
                let s = String(arg.dropFirst().prefix(1))
                guard let long = short[s] else { throw PipelineError.unknownFlag(flag: arg, function: nil, known: []) }
                flag = long + (arg.count > 2 ? "=" + arg.dropFirst(2) : "")
            } else {
                names.append(arg)
                i += 1
                continue
            }
            var inline: String?
            if let eq = flag.firstIndex(of: "=") {
                inline = String(flag[flag.index(after: eq)...])
                flag = String(flag[..<eq])
            }
            if valued.contains(flag) {
                guard let value = inline ?? (i + 1 < args.count ? args[i + 1] : nil) else {
                    throw PipelineError.flagNeedsValue(flag: flag)
                }
                if inline == nil { i += 1 }
                flags[flag, default: []].append(value)
            } else if bools.contains(flag) {
                flags[flag, default: []].append(inline ?? "true")
            } else {
                let known = valued.union(bools).sorted().map { "--\($0)" }
                throw PipelineError.unknownFlag(flag: "--\(flag)", function: function, known: known)
            }
            i += 1
        }
    }

    public func bool(_ flag: String, default value: Bool) -> Bool {
        guard let v = flags[flag]?.last else { return value }
        return v != "false" && v != "0"
    }

    /// DevSpace's selection: `--all` (minus `--except X…`) or names, checked against `all`;
    /// the selected keys in config order.
    public func select(from all: [String], kind: String, function: String) throws(PipelineError) -> [String] {
        for name in names + values("except") where !all.contains(name) {
            throw PipelineError.noSuchItem(kind: kind, name: name, known: all)
        }
        if has("all") {
            let except = Set(values("except"))
            return all.filter { !except.contains($0) }
        }
        guard !names.isEmpty else { throw PipelineError.nothingSelected(kind: kind, function: function) }
        return all.filter { names.contains($0) }
    }
}
