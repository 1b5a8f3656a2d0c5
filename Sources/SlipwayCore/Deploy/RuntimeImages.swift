internal import Foundation

/// What `${runtime.images.NAME}`, `get_image NAME` and tag injection answer for an image: the
/// image built in this run, else the last build the cache records, else the config's own
/// first tag (`#` as `x`), else no tag — DevSpace's lookup order (`runtime.GetImage`,
/// `legacy.resolveImage`). With no tag at all the name stays as written (`app`, not
/// `app:latest`); only a question for the tag alone answers `latest`.
public enum RuntimeImages {
    public static func resolve(
        _ name: String,
        run: [String: RuntimeImage],
        loaded: LoadedConfig
    ) -> RuntimeImage? {
        guard let image = image(named: name, in: loaded) else { return nil }
        if let built = built(image, run: run, loaded: loaded) { return built }
        let tag = image.tags.first.map { $0.replacingOccurrences(of: "#", with: "x") } ?? ""
        return .init(image: image.image, tag: tag)
    }

    /// NAME is an image key, or an image name.
    static func image(named name: String, in loaded: LoadedConfig) -> ImageConfig? {
        loaded.config.images.first(where: { $0.key == name })
            ?? loaded.config.images.first(where: { $0.image == name })
    }

    /// The image built in this run, else the last build the cache records.
    static func built(_ image: ImageConfig, run: [String: RuntimeImage], loaded: LoadedConfig) -> RuntimeImage? {
        if let built = run[image.key] { return built }
        if let cached = try? BuildCache(configPath: loaded.absolutePath).read()[image.key],
            cached.imageName == image.image,
            !cached.tag.isEmpty
        {
            return .init(image: image.image, tag: cached.tag)
        }
        return nil
    }
}

extension RuntimeImage {
    /// `image:tag`, or the image alone when no tag is known (DevSpace's `BuildImageString`).
    public var reference: String { tag.isEmpty ? image : "\(image):\(tag)" }
    /// The tag, `latest` when none is known (what DevSpace answers for `.tag` and `tag(X)`).
    public var tagOrLatest: String { tag.isEmpty ? "latest" : tag }
}

/// DevSpace's image-tag injection (`legacy.Replace`) for one string value: a value that, with
/// its tag stripped, names a configured image becomes `image:tag` of the last build; `image(X)`
/// and `tag(X)` inside the value become the image or the tag; `${runtime.images.X…}` resolve.
public struct TagInjector: Sendable {
    public let loaded: LoadedConfig
    public let run: [String: RuntimeImage]

    public init(loaded: LoadedConfig, run: [String: RuntimeImage]) {
        self.loaded = loaded
        self.run = run
    }

    /// `value` with the tags injected.
    public func inject(_ value: String) -> String {
        var text = value
        // ${runtime.images.X}, .image, .tag
        while let start = text.range(of: "${runtime.images.") {
            guard let close = text[start.upperBound...].firstIndex(of: "}") else { break }
            let path = text[start.upperBound..<close].split(separator: ".").map(String.init)
            guard let name = path.first, let found = RuntimeImages.resolve(name, run: run, loaded: loaded) else {
                break
            }
            let replacement =
                path.count > 1 && path[1] == "image"
                ? found.image
                : path.count > 1 && path[1] == "tag" ? found.tagOrLatest : found.reference
            text.replaceSubrange(start.lowerBound...close, with: replacement)
        }
        for helper in ["image", "tag"] {
            var searchFrom = text.startIndex
            while let start = text.range(of: helper + "(", range: searchFrom..<text.endIndex) {
                guard let close = text[start.upperBound...].firstIndex(of: ")") else { break }
                let name = text[start.upperBound..<close].trimmingCharacters(in: .whitespaces)
                guard let found = RuntimeImages.resolve(name, run: run, loaded: loaded) else {
                    searchFrom = start.upperBound
                    continue
                }
                let replacement = helper == "image" ? found.image : found.tagOrLatest
                // Go on after the replacement: it is never scanned again.
                let offset = text.distance(from: text.startIndex, to: start.lowerBound) + replacement.count
                text.replaceSubrange(start.lowerBound...close, with: replacement)
                searchFrom = text.index(text.startIndex, offsetBy: offset)
            }
        }
        let bare = Self.stripTag(text)
        if let image = loaded.config.images.first(where: { $0.image == bare }) {
            // The last build, else the value's own tag, else the config's first tag, else the
            // name as written (`legacy.resolveImage`).
            if let built = RuntimeImages.built(image, run: run, loaded: loaded) { return built.reference }
            if !text.contains("@"), let own = ImageReference.split(text).tag, !own.isEmpty { return text }
            return RuntimeImage(
                image: image.image,
                tag: image.tags.first.map { $0.replacingOccurrences(of: "#", with: "x") } ?? ""
            ).reference
        }
        return text
    }

    /// `repo:tag` → `repo` (a `:` after the last `/`); digests stay.
    static func stripTag(_ reference: String) -> String {
        reference.contains("@") ? reference : ImageReference.split(reference).name
    }
}
