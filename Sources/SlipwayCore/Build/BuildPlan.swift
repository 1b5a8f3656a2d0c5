internal import Foundation

/// Everything needed to decide about and build one image, resolved from the config.
public struct ImagePlan: Sendable {
    public var key: String
    /// The repository, e.g. `ghcr.io/acme/app`.
    public var image: String
    /// Tags as configured (`-t` > `images.X.tags`); empty means "derive from the digest".
    public var requestedTags: [String]
    public var dockerfilePath: String
    /// The Dockerfile path as written in the config, for messages.
    public var dockerfileDisplay: String
    public var contextPath: String
    /// The Dockerfile's path relative to the context, when it lies inside it.
    public var dockerfileInContext: String?
    public var dockerfile: String
    /// The rewritten Dockerfile (entrypoint / cmd / appended instructions), nil when unchanged.
    public var rewrittenDockerfile: String?
    public var buildArgs: [(String, String)]
    public var target: String?
    public var network: String?
    public var config: ImageConfig
    /// The Dockerfile as it was just before it was read (to tell whether it changed while
    /// the image was built).
    public var dockerfileStamp: FileStamp? = nil

    /// Tags with each `#` replaced by a random letter, as DevSpace does.
    static func fillHashes(_ tag: String) -> String {
        guard tag.contains("#") else { return tag }
        return String(tag.map { $0 == "#" ? Character(RandomName.letters(1)) : $0 })
    }
}

/// Options of one `build_images` call (the CLI's flags become these).
public struct BuildOptions: Sendable {
    /// Images to build; empty means all.
    public var images: [String] = []
    /// `-t/--tag`: replaces every image's tags.
    public var tags: [String] = []
    /// `-b/--force-build` (`build_images --force-rebuild`).
    public var forceRebuild = false
    /// `--build-sequential` (`--sequential`).
    public var sequential = false
    /// `--max-concurrent-builds N` (`--max-concurrent`); 0 = no limit, as DevSpace.
    public var maxConcurrent = 0
    /// `--engine`: docker (default) or buildah; nil = docker, falling back to buildah when no
    /// Docker engine answers and `docker.disableFallback` is not set.
    public var engine: String?
    /// Decide and report, build nothing, record nothing (the stat index is still kept).
    public var dryRun = false
    /// `--skip-push`: push nothing (a kind cluster still gets `kind load`).
    public var skipPush = false
    /// `--skip-push-local-kube` (default on, as DevSpace): no push when the kube context is a
    /// local cluster; `kind load` on kind.
    public var skipPushOnLocalCluster = true
    /// `--kube-context`; nil: the kubeconfig's current context.
    public var kubeContext: String?
    /// Attempts, backoff and the no-progress limit (`--push-timeout`).
    public var pushPolicy = PushPolicy()
    public var environment: [String: String] = [:]
    /// The repository agent's warm digests, as the caller got them just before the build
    /// (nil: not asked; an agent's job has them in `SLIPWAY_WARM_DIGESTS`).
    public var warm: WarmAnswer?

    public init() {}
}

/// Turns the loaded config into image plans, reporting every missing Dockerfile or bad
/// context with its place in the config.
public enum BuildPlanner {
    public static func plan(_ loaded: LoadedConfig, options: BuildOptions) throws(ConfigError) -> [ImagePlan] {
        var diagnostics: [ConfigDiagnostic] = []
        let all = loaded.config.images
        for name in options.images where !all.contains(where: { $0.key == name }) {
            let known = all.map(\.key).joined(separator: ", ")
            diagnostics.append(
                ConfigDiagnostic(
                    file: loaded.displayPath,
                    mark: .start,
                    path: "images",
                    message: "no image named \"\(name)\""
                        + (known.isEmpty ? "; the config defines no images" : " (images: \(known))")
                )
            )
        }
        let selected = options.images.isEmpty ? all : all.filter { options.images.contains($0.key) }
        let root = projectRoot(loaded.directory)
        var plans: [ImagePlan] = []
        for image in selected {
            let node = loaded.tree["images"]?[image.key]
            func fail(_ field: String, _ message: String) {
                diagnostics.append(
                    ConfigDiagnostic(
                        file: loaded.displayPath,
                        mark: node?[field]?.mark ?? image.mark,
                        path: "images.\(image.key).\(field)",
                        message: message
                    )
                )
            }
            let context = ConfigLoader.absolute(image.context, in: loaded.directory)
            let dockerfile = ConfigLoader.absolute(image.dockerfile, in: loaded.directory)
            var isDir: ObjCBool = false
            // Both the context and the Dockerfile are checked, so every problem is reported at once.
            var contextOK = true
            if !FileManager.default.fileExists(atPath: context, isDirectory: &isDir) || !isDir.boolValue {
                fail("context", "\(image.context) does not exist or is not a directory")
                contextOK = false
            } else if !(context == root || context.hasPrefix(root + "/")) {
                fail("context", "\(image.context) is outside the project (\(root)); keep build contexts inside it")
                contextOK = false
            }
            if image.custom != nil {
                guard contextOK else { continue }
                plans.append(
                    ImagePlan(
                        key: image.key,
                        image: image.image,
                        requestedTags: options.tags.isEmpty ? image.tags : options.tags,
                        dockerfilePath: dockerfile,
                        dockerfileDisplay: image.dockerfile,
                        contextPath: context,
                        dockerfileInContext: nil,
                        dockerfile: "",
                        rewrittenDockerfile: nil,
                        buildArgs: [],
                        target: image.target,
                        network: image.network,
                        config: image
                    )
                )
                continue
            }
            let stamp = FileStamp.of(dockerfile)
            guard let data = FileManager.default.contents(atPath: dockerfile), !isDirectory(dockerfile) else {
                fail("dockerfile", "\(image.dockerfile) does not exist")
                continue
            }
            let text = String(decoding: data, as: UTF8.self)
            if let problem = DockerfileRewriter.targetProblem(text, target: image.target, named: image.dockerfile) {
                fail("target", problem)
                continue
            }
            guard contextOK else { continue }
            var rewritten: String?
            do {
                rewritten = try DockerfileRewriter.rewrite(
                    text,
                    target: image.target,
                    entrypoint: image.entrypoint,
                    cmd: image.cmd,
                    append: image.appendDockerfileInstructions
                )
            } catch {
                fail("target", "\(error.message) in \(image.dockerfile)")
                continue
            }
            let inContext = dockerfile.hasPrefix(context + "/") ? String(dockerfile.dropFirst(context.count + 1)) : nil
            plans.append(
                ImagePlan(
                    key: image.key,
                    image: image.image,
                    requestedTags: options.tags.isEmpty ? image.tags : options.tags,
                    dockerfilePath: dockerfile,
                    dockerfileDisplay: image.dockerfile,
                    contextPath: context,
                    dockerfileInContext: inContext,
                    dockerfile: text,
                    rewrittenDockerfile: rewritten,
                    buildArgs: image.buildArgs.compactMap { a in a.value.map { (a.name, $0) } },
                    target: image.target,
                    network: image.network,
                    config: image,
                    dockerfileStamp: stamp
                )
            )
        }
        if !diagnostics.isEmpty { throw ConfigError(diagnostics) }
        return plans
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    /// The project: the git work tree holding the config, or the config's directory.
    ///
    /// Found as git does without `GIT_DIR`: the nearest directory at or above the config's
    /// that holds `.git` (a directory, or the file a linked worktree or submodule has). No
    /// libgit2 here: opening a repository loads its TLS certificates, which costs a no-op
    /// build several milliseconds.
    static func projectRoot(_ configDirectory: String) -> String {
        var directory = (configDirectory as NSString).standardizingPath
        while true {
            var info = stat()
            if lstat(directory == "/" ? "/.git" : directory + "/.git", &info) == 0,
                info.st_mode & S_IFMT == S_IFDIR || info.st_mode & S_IFMT == S_IFREG
            {
                return directory
            }
            if directory == "/" || directory.isEmpty { return configDirectory }
            directory = (directory as NSString).deletingLastPathComponent
        }
    }
}
