internal import SystemPackage

/// DevSpace's custom builder (`images.X.custom`): the user's own command builds (and pushes)
/// the image.
///
/// As DevSpace (`pkg/devspace/build/builder/custom/custom.go`):
/// - `${runtime.images.NAME}` (`image:tag`), `${runtime.images.NAME.image}` and
///   `${runtime.images.NAME.tag}` in `command`, `args` and `appendArgs` are replaced by the
///   image and its first tag (other images' values come from ``otherImages``);
/// - the arguments are the resolved `args`, then, only when `skipImageArg` is explicitly
///   `false`, per tag `[imageFlag] image:tag` (just `tag` with `imageTagOnly`), then the
///   resolved `appendArgs`;
/// - with no arguments at all, `command` is a shell script: `/bin/sh -c` (with DevSpace's
///   `is_equal`-style helpers) in the config's directory; with arguments, `command` is
///   executed directly with them.
///
/// slipway also sets `SLIPWAY_IMAGE`, `SLIPWAY_TAG`, `SLIPWAY_TAGS` (space-separated) and
/// `SLIPWAY_IMAGE_KEY` in the command's environment, so a script can use `"$SLIPWAY_TAG"`.
/// Values are only ever spliced into the user's own script text (where DevSpace splices
/// them), and only when they are valid image names and tags, so a value can never smuggle
/// shell syntax in.
///
/// Presence: a custom build has no store slipway could look into — the command may push to a
/// registry, load into kind, or anything else — so ``imageID(_:)`` answers nil and the
/// rebuild decision for custom images rests on `onChange` and `rebuildStrategy: always`, as
/// in DevSpace. Re-tagging is not possible either.
public struct CustomEngine: BuildEngine {
    /// The value of one image's runtime variables.
    public typealias RuntimeImage = SlipwayCore.RuntimeImage

    /// Exactly what a custom build runs.
    public struct Invocation: Sendable, Equatable {
        /// The full argument vector; `argv[0]` is the program.
        public var argv: [String]
        /// In script mode, the user's script after runtime variables were replaced (`argv`
        /// holds it behind the helper prelude).
        public var script: String?
        /// Variables set on top of the inherited environment.
        public var environment: [String: String]
        public var workingDirectory: String
    }

    public var name: String { "custom" }
    public let custom: ImageConfig.Custom
    /// The directory of the config file: the command's working directory.
    public let configDirectory: String
    /// Extra environment for the command (the config's resolved `vars`, as DevSpace passes).
    public let environment: [String: String]
    /// Runtime values of the other images, for `${runtime.images.OTHER…}`.
    public let otherImages: [String: RuntimeImage]

    public init(
        custom: ImageConfig.Custom,
        configDirectory: String,
        environment: [String: String] = [:],
        otherImages: [String: RuntimeImage] = [:]
    ) {
        self.custom = custom
        self.configDirectory = configDirectory
        self.environment = environment
        self.otherImages = otherImages
    }

    // MARK: BuildEngine

    public func isAvailable() async -> Bool { true }

    /// Always nil: see the type's documentation.
    public func imageID(_ reference: String) async throws -> String? { nil }

    public func tag(existing: String, as references: [String]) async throws {
        throw EngineError.unsupported(
            engine: name,
            operation: "re-tag \(existing)",
            reason: "a custom build's command decides where the image goes; run the build again for new tags"
        )
    }

    public func build(_ request: BuildRequest, log: @Sendable (String) -> Void) async throws -> BuiltImage {
        var invocation = try Self.invocation(
            custom,
            imageKey: request.imageKey,
            imageName: request.imageName,
            tags: request.tags,
            configDirectory: configDirectory,
            otherImages: otherImages
        )
        invocation.environment.merge(environment) { ours, _ in ours }
        let outcome = try await EngineProcess.stream(
            engine: name,
            invocation.argv[0],
            Array(invocation.argv.dropFirst()),
            environment: invocation.environment,
            workingDirectory: invocation.workingDirectory,
            log: log
        )
        guard outcome.status == 0 else {
            throw EngineError.buildFailed(
                engine: name,
                image: request.imageKey,
                status: outcome.status,
                lastLines: outcome.lastLines
            )
        }
        return BuiltImage(references: request.references, id: nil)
    }

    // MARK: The command line

    /// The exact command a custom build of `imageKey` runs (pure: no I/O).
    ///
    /// `tags` empty means `latest`, as `${runtime.images.NAME.tag}` resolves without a tag.
    public static func invocation(
        _ custom: ImageConfig.Custom,
        imageKey: String,
        imageName: String,
        tags: [String],
        configDirectory: String,
        otherImages: [String: RuntimeImage] = [:]
    ) throws(EngineError) -> Invocation {
        let tags = tags.isEmpty ? ["latest"] : tags
        var images = otherImages
        images[imageKey] = RuntimeImage(image: imageName, tag: tags[0])
        let resolver = RuntimeResolver(imageKey: imageKey, images: images)

        var arguments: [String] = []
        for arg in custom.args { arguments.append(try resolver.resolve(arg, checked: false)) }
        if custom.skipImageArg == false {
            for tag in tags {
                if let flag = custom.imageFlag, !flag.isEmpty { arguments.append(flag) }
                arguments.append(custom.imageTagOnly ? tag : "\(imageName):\(tag)")
            }
        }
        for arg in custom.appendArgs { arguments.append(try resolver.resolve(arg, checked: false)) }

        guard !custom.command.isEmpty else {
            throw .invalidRequest(engine: "custom", image: imageKey, message: "custom.command is empty")
        }
        let environment = [
            "SLIPWAY_IMAGE": imageName, "SLIPWAY_TAG": tags[0], "SLIPWAY_TAGS": tags.joined(separator: " "),
            "SLIPWAY_IMAGE_KEY": imageKey,
        ]
        if arguments.isEmpty {
            let script = try resolver.resolve(custom.command, checked: true)
            return Invocation(
                argv: ["/bin/sh", "-c", Shell.prelude + script],
                script: script,
                environment: environment,
                workingDirectory: configDirectory
            )
        }
        var command = try resolver.resolve(custom.command, checked: false)
        // Go's exec resolves a relative path with a slash against the working directory.
        if command.contains("/") && !command.hasPrefix("/") {
            command = FilePath(configDirectory).pushing(FilePath(command)).lexicallyNormalized().string
        }
        return Invocation(
            argv: [command] + arguments,
            script: nil,
            environment: environment,
            workingDirectory: configDirectory
        )
    }
}

/// Replaces `${runtime.images.NAME}`, `${runtime.images.NAME.image}` and
/// `${runtime.images.NAME.tag}`.
struct RuntimeResolver {
    var imageKey: String
    var images: [String: CustomEngine.RuntimeImage]

    /// `checked`: the text is shell script, so every value spliced in must be a valid image
    /// name or tag (no quotes, spaces, `$`, `;`…).
    func resolve(_ text: String, checked: Bool) throws(EngineError) -> String {
        guard text.contains("${runtime.") else { return text }
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${runtime.") {
            out += rest[..<start.lowerBound]
            guard let close = rest[start.upperBound...].firstIndex(of: "}") else {
                throw .invalidRequest(
                    engine: "custom",
                    image: imageKey,
                    message: "unterminated ${runtime.… in \"\(text)\""
                )
            }
            let name = String(rest[start.upperBound..<close])
            let value = try value(of: name, in: text)
            if checked && !Self.isSafe(value) {
                throw .invalidRequest(
                    engine: "custom",
                    image: imageKey,
                    message: "${runtime.\(name)} is \"\(value)\", which is not a valid image name or tag; "
                        + "slipway does not splice it into the script"
                )
            }
            out += value
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return out
    }

    private func value(of name: String, in text: String) throws(EngineError) -> String {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, parts.count <= 3, parts[0] == "images" else {
            throw .invalidRequest(
                engine: "custom",
                image: imageKey,
                message: "${runtime.\(name)} is not resolved in custom builds; use ${runtime.images.NAME}, "
                    + "${runtime.images.NAME.image} or ${runtime.images.NAME.tag}"
            )
        }
        guard let image = images[parts[1]] else {
            throw .invalidRequest(
                engine: "custom",
                image: imageKey,
                message: "${runtime.\(name)}: no image \"\(parts[1])\" is known (images: "
                    + images.keys.sorted().joined(separator: ", ") + ")"
            )
        }
        if parts.count == 2 { return "\(image.image):\(image.tag)" }
        switch parts[2] {
        case "image": return image.image
        case "tag": return image.tag
        default:
            throw .invalidRequest(
                engine: "custom",
                image: imageKey,
                message: "${runtime.\(name)}: unknown field \"\(parts[2])\" (use .image or .tag)"
            )
        }
    }

    /// Characters of image references: `[A-Za-z0-9._/:@-]`, non-empty.
    static func isSafe(_ value: String) -> Bool {
        !value.isEmpty
            && value.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "/")
                    || c == UInt8(ascii: ":") || c == UInt8(ascii: "@") || c == UInt8(ascii: "-")
            }
    }
}
