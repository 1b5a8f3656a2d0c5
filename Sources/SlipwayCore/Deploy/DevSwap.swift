/// How a dev container stands in for a deployed one on the local engine (`slipway dev`'s
/// `start_dev`), as far as the deployers need to know it.
///
/// The deployed container (the *original*) is stopped and renamed `NAME` +
/// ``originalSuffix``; the dev container runs under the original's name with the original's
/// labels (the spec digest among them, so an unchanged deployment stays unchanged) and these:
/// ``devLabel`` (the dev entry's name), ``originalLabel`` (the original's ID) and
/// ``imageLabel`` (the image the original runs, which image selectors are matched against).
/// `stop_dev` removes the dev container, renames the original back and starts it: the same
/// container, with the same ID, `Config` and `HostConfig`.
public enum DevSwap {
    /// On a dev container: the `dev.<name>` entry it was made for.
    public static let devLabel = "\(DockerDeployer.label).dev"
    /// On a dev container: the ID of the original it stands in for.
    public static let originalLabel = "\(DockerDeployer.label).dev-original"
    /// On a dev container: the image the original runs.
    public static let imageLabel = "\(DockerDeployer.label).dev-image"
    /// On a dev container: a digest of what it was made from (the original's ID, the dev
    /// entry's fields, the dev image's ID); an equal digest leaves it running.
    public static let specLabel = "\(DockerDeployer.label).dev-spec"
    /// Appended to an original's name while a dev container stands in for it.
    public static let originalSuffix = ".slipway-dev-original"

    /// Part of the name a container gets while it is replaced by a new one of the same name: a
    /// dev container is renamed out of the way at once, stopped while its successor is created
    /// and removed once that one runs; a swapped-out original that `create_deployments`
    /// replaces is removed while its successor is created. A retired container left by an
    /// interruption is removed by the next `start_dev`, `stop_dev` or `purge`, and is never
    /// selected.
    public static let retiredInfix = ".slipway-dev-retired-"

    /// The name a container `id` of `name` has while it is replaced.
    public static func retiredName(_ name: String, id: String) -> String {
        name + retiredInfix + id.prefix(12)
    }

    /// Whether `name` is a retired container's.
    public static func isRetired(_ name: String) -> Bool { name.contains(retiredInfix) }

    /// The name an original has while swapped out.
    public static func swappedName(_ name: String) -> String { name + originalSuffix }

    /// The deployed name of a swapped-out original; nil for any other name.
    public static func deployedName(_ name: String) -> String? {
        guard name.hasSuffix(originalSuffix), name.count > originalSuffix.count else { return nil }
        return String(name.dropLast(originalSuffix.count))
    }
}
