/// DevSpace's semantic validation rules (`pkg/devspace/config/versions/validate.go`) plus the
/// rules of slipway's own `docker` deployment kind. Structure and types are the schema's job.
enum ConfigRules {
    static let supportedVersion = "v2beta1"

    static func check(_ root: Node, file: String) -> [ConfigDiagnostic] {
        var out: [ConfigDiagnostic] = []
        func fail(_ node: Node?, _ path: String, _ message: String) {
            out.append(ConfigDiagnostic(file: file, mark: node?.mark ?? root.mark, path: path, message: message))
        }

        if let nameNode = root["name"], let name = nameNode.text, !name.isEmpty, !isSafeName(name) {
            fail(
                nameNode,
                "name",
                "\"\(name)\" is not a valid project name: use lowercase letters, digits and '-' (at least 3 characters)"
            )
        }

        if let images = root["images"]?.pairs {
            var seenImages: [String: String] = [:]
            for pair in images {
                guard let key = pair.key.scalar else { continue }
                let path = "images.\(key)"
                if !isImageKey(key) {
                    fail(
                        pair.key,
                        path,
                        "image key \"\(key)\" is not allowed: use lowercase letters, digits and '-', starting and ending with a letter or digit"
                    )
                }
                let image = pair.value
                guard image.isMapping else {
                    fail(pair.key, path, "the image is empty; give it at least `image: REPOSITORY`")
                    continue
                }
                let name = image["image"]?.text ?? ""
                if !name.isEmpty, !name.contains("@"), !hasRuntimeReference(name),
                    let problem = DockerReference.repositoryProblem(name)
                {
                    fail(image["image"], path + ".image", "\"\(name)\": \(problem)")
                }
                if name.isEmpty {
                    fail(
                        image["image"] ?? pair.key,
                        path + ".image",
                        "image is required: name the repository to build, e.g. image: ghcr.io/org/\(key)"
                    )
                } else if let other = seenImages[name] {
                    fail(
                        image["image"],
                        path + ".image",
                        "images.\(other) already builds \"\(name)\"; two images must not share an image name"
                    )
                } else {
                    seenImages[name] = key
                }
                if let rs = image["rebuildStrategy"], let s = rs.text, !s.isEmpty,
                    ImageConfig.RebuildStrategy(rawValue: s) == nil
                {
                    fail(
                        rs,
                        path + ".rebuildStrategy",
                        "\"\(s)\" is not a rebuild strategy; use default, always or ignoreContextChanges"
                    )
                }
                if let custom = image["custom"], custom.isMapping {
                    let command = custom["command"]?.text ?? ""
                    let commands = custom["commands"]?.items ?? []
                    if command.isEmpty && commands.isEmpty {
                        fail(
                            image.keyNode("custom"),
                            path + ".custom.command",
                            "custom.command is required when custom is set: the command that builds the image"
                        )
                    }
                }
                for (i, tag) in (image["tags"]?.items ?? []).enumerated() {
                    let text = tag.text ?? ""
                    if text.isEmpty {
                        fail(tag, path + ".tags[\(i)]", "a tag must not be empty")
                    } else if !hasRuntimeReference(text),
                        !DockerReference.isValidTag(String(text.map { $0 == "#" ? "a" : $0 }))
                    {
                        fail(tag, path + ".tags[\(i)]", tagProblem(text))
                    }
                }
            }
        }

        if let deployments = root["deployments"]?.pairs {
            for pair in deployments {
                guard let name = pair.key.scalar else { continue }
                let path = "deployments.\(name)"
                let d = pair.value
                guard d.isMapping else {
                    fail(pair.key, path, "the deployment is empty; it needs one of helm, kubectl or docker")
                    continue
                }
                let kinds = ["helm", "kubectl", "docker"].filter { d[$0] != nil && !(d[$0]?.isNull ?? true) }
                if kinds.isEmpty {
                    fail(pair.key, path, "a deployment needs one of helm, kubectl or docker")
                } else if kinds.count > 1 {
                    fail(
                        pair.key,
                        path,
                        "a deployment uses exactly one of helm, kubectl or docker; this one has \(kinds.joined(separator: " and "))"
                    )
                }
                if let k = d["kubectl"], k.isMapping {
                    let manifests = k["manifests"]?.items ?? []
                    if manifests.isEmpty && (k["inlineManifest"]?.text ?? "").isEmpty {
                        fail(
                            d.keyNode("kubectl"),
                            path + ".kubectl.manifests",
                            "kubectl needs manifests or an inlineManifest"
                        )
                    }
                }
                if let dk = d["docker"], dk.isMapping {
                    let containers = dk["containers"]?.items ?? []
                    if containers.isEmpty {
                        fail(
                            d.keyNode("docker"),
                            path + ".docker.containers",
                            "a docker deployment needs at least one container"
                        )
                    }
                    var names: Set<String> = []
                    for (i, c) in containers.enumerated() {
                        if (c["image"]?.text ?? "").isEmpty {
                            fail(c, path + ".docker.containers[\(i)].image", "image is required")
                        }
                        if let n = c["name"]?.text {
                            if !names.insert(n).inserted {
                                fail(
                                    c["name"],
                                    path + ".docker.containers[\(i)].name",
                                    "container name \"\(n)\" is used twice"
                                )
                            }
                        }
                    }
                }
            }
        }

        if let dev = root["dev"]?.pairs {
            for pair in dev {
                guard let name = pair.key.scalar else { continue }
                guard pair.value.isMapping else {
                    fail(
                        pair.key,
                        "dev.\(name)",
                        "the dev entry is empty; it needs an imageSelector or a labelSelector"
                    )
                    continue
                }
                let hasImage = !(pair.value["imageSelector"]?.text ?? "").isEmpty
                let hasLabels = !(pair.value["labelSelector"]?.pairs ?? []).isEmpty
                if hasImage == hasLabels {
                    fail(
                        pair.key,
                        "dev.\(name)",
                        hasImage
                            ? "use either imageSelector or labelSelector, not both"
                            : "a dev entry needs an imageSelector or a labelSelector to find its container"
                    )
                }
                let containers = pair.value["containers"]?.pairs ?? []
                var places: [(String, Node)] = [("dev.\(name)", pair.value)]
                for c in containers {
                    if let key = c.key.scalar { places.append(("dev.\(name).containers.\(key)", c.value)) }
                }
                for (place, container) in places {
                    for (i, sync) in (container["sync"]?.items ?? []).enumerated() {
                        checkSync(sync, path: "\(place).sync[\(i)]", fail: fail)
                    }
                }
            }
        }

        if let pipelines = root["pipelines"]?.pairs {
            for pair in pipelines {
                guard let name = pair.key.scalar else { continue }
                for (i, flag) in (pair.value["flags"]?.items ?? []).enumerated() {
                    let path = "pipelines.\(name).flags[\(i)]"
                    if (flag["name"]?.text ?? "").isEmpty { fail(flag, path + ".name", "a flag needs a name") }
                    if let t = flag["type"], let s = t.text, !s.isEmpty,
                        !["bool", "int", "string", "stringArray"].contains(s)
                    {
                        fail(t, path + ".type", "\"\(s)\" is not a flag type; use bool, int, string or stringArray")
                    }
                }
            }
        }

        return out
    }

    /// DevSpace's rules on one `sync[]` entry (`validateDevContainer`), and slipway's on the
    /// values it acts on: the strategies, the compare mode, `onUpload.exec[].command`, no empty
    /// exclude pattern.
    static func checkSync(_ sync: Node, path: String, fail: (Node?, String, String) -> Void) {
        if let node = sync["initialSync"], let value = node.text, !value.isEmpty,
            SyncConfig.InitialSync(rawValue: value) == nil
        {
            let valid = SyncConfig.InitialSync.allCases.map(\.rawValue).joined(separator: ", ")
            fail(node, path + ".initialSync", "\"\(value)\" is not an initial sync strategy; use one of \(valid)")
        }
        if let node = sync["initialSyncCompareBy"], let value = node.text, !value.isEmpty,
            SyncConfig.CompareBy(rawValue: value) == nil
        {
            fail(node, path + ".initialSyncCompareBy", "\"\(value)\" is not a compare mode; use mtime or size")
        }
        for (j, exec) in (sync["onUpload"]?["exec"]?.items ?? []).enumerated()
        where (exec["command"]?.text ?? "").isEmpty {
            fail(exec, path + ".onUpload.exec[\(j)].command", "command is required")
        }
        for key in ["excludePaths", "uploadExcludePaths", "downloadExcludePaths"] {
            for (j, item) in (sync[key]?.items ?? []).enumerated() where (item.text ?? "").isEmpty {
                fail(
                    item,
                    "\(path).\(key)[\(j)]",
                    "the pattern is empty; this happens when !path is written without quotes: write '!path'"
                )
            }
        }
        if let node = sync["path"], let value = node.text, value.contains("\u{0}") {
            fail(node, path + ".path", "a path cannot hold a NUL character")
        }
    }

    /// The rules on `vars` definitions; they run on the file as written, before `vars` is used up.
    static func checkVars(_ root: Node, file: String) -> [ConfigDiagnostic] {
        var out: [ConfigDiagnostic] = []
        for pair in root["vars"]?.pairs ?? [] {
            guard let name = pair.key.scalar, pair.value.isMapping else { continue }
            if let s = pair.value["source"], let v = s.text, !v.isEmpty,
                !["all", "env", "input", "command", "none", "default"].contains(v)
            {
                out.append(
                    ConfigDiagnostic(
                        file: file,
                        mark: s.mark,
                        path: "vars.\(name).source",
                        message: "\"\(v)\" is not a variable source; use all, env, input, command or none"
                    )
                )
            }
            if let value = pair.value["value"], !value.isNull, let d = pair.value["default"], !d.isNull {
                _ = d
                out.append(
                    ConfigDiagnostic(
                        file: file,
                        mark: pair.key.mark,
                        path: "vars.\(name)",
                        message: "value and default cannot be used together (DevSpace refuses this too); keep one"
                    )
                )
            }
        }
        return out
    }

    /// `^(([a-z0-9][a-z0-9\-]*[a-z0-9])|([a-z0-9]))$`
    static func isImageKey(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard let first = u.first, let last = u.last else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        return alnum(first) && alnum(last) && u.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") }
    }

    /// DevSpace's (unanchored) project name check: somewhere a run of `[a-z0-9][a-z0-9-]+[a-z0-9]`;
    /// also one or two lowercase letters or digits (DevSpace's compose examples use `db`).
    /// `${runtime.…}` is resolved at use, so a value holding one cannot be checked at load.
    static func hasRuntimeReference(_ s: String) -> Bool {
        VariableSyntax.references(in: s).contains { $0.isReference && VariableSyntax.isRuntime($0.name) }
    }

    /// Why `tag` is not a valid image tag, with the fix for the usual causes.
    static func tagProblem(_ tag: String) -> String {
        let hint =
            tag.contains("/")
            ? "; for a branch name use ${SLIPWAY_BRANCH_TAG}, which makes it a valid tag"
            : tag.contains(" ") ? "; a tag cannot contain spaces" : ""
        return
            "\"\(tag)\" is not a valid image tag (letters, digits, '_', '.', '-'; at most 128 characters; not starting with '.' or '-')\(hint)"
    }

    static func isSafeName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        if (1...2).contains(u.count) && u.allSatisfy(alnum) { return true }
        var run = 0
        var lastAlnum = false
        for c in u {
            if alnum(c) || c == UInt8(ascii: "-") {
                if run == 0 && !alnum(c) { continue }
                run += 1
                lastAlnum = alnum(c)
                if run >= 3 && lastAlnum { return true }
            } else {
                run = 0
            }
        }
        return false
    }

    /// DevSpace's `encoding.Convert` of a directory name into a project name.
    static func convertName(_ s: String) -> String {
        var out = ""
        var pendingDash = false
        for ch in s.lowercased() {
            if ch == "@" || ch == "/" || ch == "." || ch == ":" || ch.isWhitespace {
                pendingDash = true
                continue
            }
            if pendingDash {
                out.append("-")
                pendingDash = false
            }
            if ch.isASCII && (ch.isLetter || ch.isNumber || ch == "-") { out.append(ch) }
        }
        if pendingDash { out.append("-") }
        return String(out.prefix(63))
    }
}
