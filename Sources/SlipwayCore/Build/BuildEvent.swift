/// What a build run does with one image.
public enum BuildAction: String, Sendable, Equatable {
    /// Build it (the digest changed, the image is missing, or a rebuild was asked for).
    case build
    /// Give the existing image new tags: same content, new names.
    case retag
    /// Nothing to do: the image with these tags is there.
    case skip
}

/// How one image ended.
public enum BuildOutcome: String, Sendable, Equatable {
    case built, retagged, skipped, failed
}

/// The result of one image in a build run: what happened, why, and how long it took.
public struct ImageResult: Sendable, Equatable {
    public var key: String
    public var imageName: String
    public var tags: [String]
    public var outcome: BuildOutcome
    /// One line: why it was built, re-tagged or skipped (or why it failed).
    public var reason: String
    public var seconds: Double
    public var imageID: String?
    public var engine: String
    /// For failures: the error, with the engine's last lines.
    public var error: String?
    /// True for `--dry-run`: `outcome` is what would happen; nothing was built.
    public var dryRun: Bool
    /// The references pushed to their registry in this run (`name:tag`).
    public var pushed: [String] = []
    /// The references loaded into a kind cluster in this run (`name:tag (kind cluster NAME)`).
    public var loaded: [String] = []
    /// Why a delivery failed; the build itself succeeded and is recorded.
    public var pushError: String? = nil
    /// Files that changed while the image was built (recorded as unknown: built again next run).
    public var changedDuringBuild: [String] = []
}

/// Progress of a build run, rendered by the caller (a terminal, a log file, a socket).
public enum BuildEvent: Sendable {
    /// A note that concerns the whole run (an engine fallback, say).
    case note(String)
    /// How a context's digest was had: `warm (…)` from the agent, or `walked: REASON` (shown
    /// with `--debug`).
    case context(path: String, origin: String)
    /// The decision for one image, before any build starts.
    case decided(image: String, action: BuildAction, reason: String, tags: [String])
    case started(image: String, action: BuildAction)
    /// One line of a build's output.
    case log(image: String, line: String)
    case finished(ImageResult)
    /// One line of a push's (or `kind load`'s) output.
    case pushLog(image: String, line: String)
    /// `reference` reached the registry `destination`; `digest` is the manifest digest the
    /// registry gave, when known.
    case pushed(image: String, reference: String, destination: String, digest: String?)
    /// `reference` was loaded into kind cluster `cluster` (`kind load docker-image`).
    case loaded(image: String, reference: String, cluster: String)
}
