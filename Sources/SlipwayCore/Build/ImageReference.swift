/// One image as the pipelines and deployments see it at run time: what
/// `${runtime.images.NAME}`, `get_image` and tag injection answer (`image:tag`).
public struct RuntimeImage: Codable, Sendable, Equatable {
    public var image: String
    public var tag: String

    public init(image: String, tag: String) {
        self.image = image
        self.tag = tag
    }
}

/// Docker image references as text.
public enum ImageReference {
    /// `registry:5000/team/app:v1` → (`registry:5000/team/app`, `v1`): the tag is what follows
    /// the last `:` after the last `/`; nil when there is none. Digests are the caller's matter.
    public static func split(_ reference: String) -> (name: String, tag: String?) {
        let slash = reference.lastIndex(of: "/") ?? reference.startIndex
        guard let colon = reference[slash...].lastIndex(of: ":") else { return (reference, nil) }
        return (String(reference[..<colon]), String(reference[reference.index(after: colon)...]))
    }
}
