/// The loaded config in `devspace print`'s form (`cmd/print.go`): DevSpace prints
/// `yaml.Marshal` (go-yaml v3) of its typed `latest.Config`, so its output follows the Go
/// structs, not the file as written:
///
/// - a struct's keys come in declaration order (``Schema``'s order), a map's keys sorted as
///   go-yaml sorts them (helm `values` included: they are a `map[string]interface{}`);
/// - a value takes its field's type: a string field prints a string (`port: "8080"`, a `$(true)`
///   tag as `"true"`), a boolean or integer field its value;
/// - empty fields are left out (`omitempty`): `""`, `false`, `0`, empty lists and maps — but a
///   pointer field (`createPullSecret: false`, `updateImageTags: false`) and the few fields
///   without `omitempty` (`version`, `name`, `images.*.image`, `ports[].port`…) are printed;
/// - `adjust.go` fills in names: `name:` of each image, deployment, pipeline, dev config, pull
///   secret, command and dependency, `container:` of `dev.*.containers.*`;
/// - a pipeline (or command) written as a string is the struct it decodes to:
///   `{name, run}` (`{name, command}`).
///
/// Defaults DevSpace applies later (`dockerfile: ./Dockerfile`, `context: ./`) are not printed,
/// as DevSpace does not print them. Values of `password` variables are masked.
public enum ConfigPrinter {
    /// What a masked secret prints as.
    public static let mask = "********"

    /// `devspace print`'s form of `loaded.tree`.
    public static func devspaceForm(_ loaded: LoadedConfig) -> Node {
        let secrets = loaded.secretValues.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
        return render(loaded.tree, as: Schema.config, path: [], secrets: secrets)
    }

    // MARK: Rendering

    static func render(_ node: Node, as type: SchemaType, path: [String], secrets: [String]) -> Node {
        switch type {
        case .string:
            guard case .scalar(let s, _) = node.kind, !node.isNull else { return node }
            return Node.string(masked(s, secrets), mark: node.mark)
        case .bool, .int, .number:
            guard case .scalar(let s, _) = node.kind else { return node }
            return Node(.scalar(s, .plain), mark: node.mark)
        case .any:
            return sortedMaps(node, secrets: secrets)
        case .list(let element):
            guard let items = node.items else { return node }
            let last = (path.last ?? "") + "[]"
            let itemPath = path.dropLast() + [last]
            return Node(
                .sequence(items.map { render($0, as: element, path: Array(itemPath), secrets: secrets) }),
                mark: node.mark
            )
        case .map(let value):
            guard var pairs = node.pairs else { return node }
            pairs.sort { goLess($0.key.scalar ?? "", $1.key.scalar ?? "") }
            return Node(
                .mapping(
                    pairs.map { pair in
                        let key = pair.key.scalar ?? ""
                        var child = pair.value
                        if let field = nameField(path) {
                            // A pipeline written as a script is the struct it decodes to.
                            if let form = stringFormField(path + [key]), child.scalar != nil, !child.isNull {
                                child = Node(.mapping([Node.Pair(key: .string(form), value: child)]), mark: child.mark)
                            }
                            if child.isMapping { child[field] = Node.string(key) }
                        }
                        return Node.Pair(
                            key: Node.string(key, mark: pair.key.mark),
                            value: render(child, as: value, path: path + [key], secrets: secrets)
                        )
                    }
                ),
                mark: node.mark
            )
        case .object(let schema):
            guard let pairs = node.pairs else { return node }
            var out: [Node.Pair] = []
            for key in fieldOrder(schema, path: path) {
                guard let pair = pairs.first(where: { $0.key.scalar == key }), let fieldType = schema[key] else {
                    continue
                }
                let childPath = path + [key]
                let value = render(pair.value, as: fieldType, path: childPath, secrets: secrets)
                if omitted(value, type: fieldType, key: key, path: path) { continue }
                out.append(Node.Pair(key: Node.string(key, mark: pair.key.mark), value: value))
            }
            // Keys the schema does not know (none after validation) are kept, in their order.
            for pair in pairs where schema[pair.key.scalar ?? ""] == nil {
                out.append(pair)
            }
            return Node(.mapping(out), mark: node.mark)
        case .oneOf(let types):
            // A script written as a string is the struct it decodes to.
            if node.scalar != nil, !node.isNull,
                let structType = types.first(where: {
                    if case .object = unwrapped($0) { return true } else { return false }
                }),
                let field = stringFormField(path)
            {
                let asStruct = Node(.mapping([Node.Pair(key: .string(field), value: node)]), mark: node.mark)
                return render(asStruct, as: structType, path: path, secrets: secrets)
            }
            let chosen =
                types.first(where: { t in
                    switch unwrapped(t) {
                    case .object, .map: return node.isMapping
                    case .list: return node.isSequence
                    default: return node.scalar != nil
                    }
                }) ?? .any
            return render(node, as: chosen, path: path, secrets: secrets)
        case .jsonDecoded(let inner):
            return render(node, as: inner, path: path, secrets: secrets)
        }
    }

    static func unwrapped(_ type: SchemaType) -> SchemaType {
        if case .jsonDecoded(let inner) = type { return inner }
        return type
    }

    /// A `map[string]interface{}` (or any value under one) as go-yaml writes it: map keys
    /// sorted, scalars as they are.
    static func sortedMaps(_ node: Node, secrets: [String]) -> Node {
        switch node.kind {
        case .scalar(let s, let style):
            guard node.resolved == .string, !secrets.isEmpty else { return node }
            return Node(.scalar(masked(s, secrets), style), tag: node.tag, mark: node.mark)
        case .sequence(let items):
            return Node(.sequence(items.map { sortedMaps($0, secrets: secrets) }), tag: node.tag, mark: node.mark)
        case .mapping(let pairs):
            let sorted = pairs.sorted { goLess($0.key.scalar ?? "", $1.key.scalar ?? "") }
            return Node(
                .mapping(sorted.map { Node.Pair(key: $0.key, value: sortedMaps($0.value, secrets: secrets)) }),
                tag: node.tag,
                mark: node.mark
            )
        }
    }

    static func masked(_ s: String, _ secrets: [String]) -> String {
        var text = s
        for secret in secrets where text.contains(secret) {
            // A very short secret is masked only where it is the whole value: masking every
            // "ab" in the config would say more about it than it hides.
            if secret.count < 4 && text != secret { continue }
            text = text.replacingOccurrences(of: secret, with: mask)
        }
        return text
    }

    // MARK: go-yaml's rules

    /// The key `adjust.go` fills with the map key, for the maps it adjusts.
    static func nameField(_ path: [String]) -> String? {
        if path.count == 1 {
            switch path[0] {
            case "images", "deployments", "pipelines", "dev", "pullSecrets", "commands", "dependencies":
                return "name"
            default: return nil
            }
        }
        if path.count == 3, path[0] == "dev", path[2] == "containers" { return "container" }
        return nil
    }

    /// The struct field a string form decodes into (`Pipeline.UnmarshalYAML`,
    /// `CommandConfig.UnmarshalYAML`).
    static func stringFormField(_ path: [String]) -> String? {
        guard path.count == 2 else { return nil }
        switch path[0] {
        case "pipelines": return "run"
        case "commands": return "command"
        default: return nil
        }
    }

    /// A struct's keys in Go declaration order. ``Schema`` appends an inlined struct's keys;
    /// Go has `DevPod`'s `DevContainer` and `DependencyConfig`'s `SourceConfig` in the middle.
    static func fieldOrder(_ schema: ObjectSchema, path: [String]) -> [String] {
        func inlined(_ inner: ObjectSchema, after key: String) -> [String] {
            let own = schema.keys.filter { !inner.keys.contains($0) }
            guard let i = own.firstIndex(of: key) else { return schema.keys }
            return Array(own[...i]) + inner.keys + own[(i + 1)...]
        }
        if path.count == 2 && path[0] == "dev" { return inlined(Schema.devContainer, after: "namespace") }
        if path.count == 2 && path[0] == "dependencies" { return inlined(Schema.sourceConfig, after: "disabled") }
        return schema.keys
    }

    /// Whether go-yaml leaves the field out (`omitempty` and a zero value, not a pointer).
    static func omitted(_ value: Node, type: SchemaType, key: String, path: [String]) -> Bool {
        // slipway's own deployment kind is printed as written.
        if path.count >= 3, path[0] == "deployments", path[2] == "docker" { return false }
        if !omitsEmpty(key, path: path) { return false }
        if value.isNull { return true }
        switch unwrapped(type) {
        case .string:
            return value.scalar == ""
        case .bool:
            return !isPointer(key, path: path) && value.scalar == "false"
        case .int, .number:
            return !isPointer(key, path: path) && Double(value.scalar ?? "") == 0
        case .list:
            return value.items?.isEmpty ?? false
        case .map:
            return value.pairs?.isEmpty ?? false
        case .object:
            // Struct fields are pointers but for `require`, a struct value: left out when empty.
            return key == "require" && path.isEmpty && (value.pairs?.isEmpty ?? false)
        case .any:
            return false
        case .oneOf, .jsonDecoded:
            return false
        }
    }

    /// Fields written without `omitempty` in DevSpace's schema.
    static func omitsEmpty(_ key: String, path: [String]) -> Bool {
        let parent = path.last ?? ""
        switch (parent, key) {
        case ("", "version"), ("", "name"): return !path.isEmpty
        case ("ports[]", "port"), ("reversePorts[]", "port"): return false
        case ("env[]", "name"), ("env[]", "value"): return path.first != "dev"
        case ("hooks[]", "events"): return false
        case ("patches[]", "op"), ("patches[]", "path"), ("patches[]", "target"): return false
        case ("target", "apiVersion"), ("target", "kind"), ("target", "name"): return false
        case ("items[]", "key"), ("items[]", "path"), ("secret", "name"): return false
        case ("plugins[]", "name"), ("plugins[]", "version"), ("commands[]", "name"): return path.first != "require"
        default: break
        }
        if path.count == 2, path[0] == "images", key == "image" { return false }
        if path.count == 2, path[0] == "commands", key == "command" { return false }
        return true
    }

    /// Pointer fields (`*bool`, `*int`): printed when present, even as `false` or `0`.
    static func isPointer(_ key: String, path: [String]) -> Bool {
        switch key {
        case "createPullSecret", "disableFallback", "preferMinikube", "insecure", "defaultMode", "mode",
            "skipImageArg", "updateImageTags", "disableDependencyUpdate", "kustomize", "runJsonnetBundlerInstall",
            "runJsonnetBundlerUpdate", "waitInitialSync", "download", "upload", "inject", "terminatedWithCode",
            "tailLines", "alwaysResolve", "wait":
            return true
        case "enabled": return path.last != "ssh"
        case "once": return path.last == "container"
        case "port": return path == ["localRegistry"]
        default: return false
        }
    }

    /// go-yaml v3's order of map keys (`sorter.go`): letters compare as runes, runs of digits
    /// as numbers, a letter before a non-letter.
    static func goLess(_ a: String, _ b: String) -> Bool {
        let ar = Array(a.unicodeScalars)
        let br = Array(b.unicodeScalars)
        func isDigit(_ c: Unicode.Scalar) -> Bool { c.properties.numericType == .decimal }
        func isLetter(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic }
        var digits = false
        var i = 0
        while i < ar.count && i < br.count {
            if ar[i] == br[i] {
                digits = isDigit(ar[i])
                i += 1
                continue
            }
            let al = isLetter(ar[i])
            let bl = isLetter(br[i])
            if al && bl { return ar[i].value < br[i].value }
            if al || bl { return digits ? al : bl }
            var an: Int64 = 0
            var bn: Int64 = 0
            if ar[i] == "0" || br[i] == "0" {
                var j = i - 1
                while j >= 0 && isDigit(ar[j]) {
                    if ar[j] != "0" {
                        an = 1
                        bn = 1
                        break
                    }
                    j -= 1
                }
            }
            var ai = i
            while ai < ar.count && isDigit(ar[ai]) {
                an = an &* 10 &+ Int64(ar[ai].properties.numericValue ?? 0)
                ai += 1
            }
            var bi = i
            while bi < br.count && isDigit(br[bi]) {
                bn = bn &* 10 &+ Int64(br[bi].properties.numericValue ?? 0)
                bi += 1
            }
            if an != bn { return an < bn }
            if ai != bi { return ai < bi }
            return ar[i].value < br[i].value
        }
        return ar.count < br.count
    }
}
