internal import Foundation

/// What `${runtime.images.NAME}`, `get_image NAME` and tag injection answer for an image: the
/// image built in this run, else the last build the cache records, else the config's own
/// first tag (`#` as `x`) or `latest` — DevSpace's lookup order.
public enum RuntimeImages {
    public static func resolve(
        _ name: String,
        run: [String: RuntimeImage],
        loaded: LoadedConfig
    ) -> RuntimeImage? {
        // NAME is an image key, or an image name.
        guard
            let image = loaded.config.images.first(where: { $0.key == name })
                ?? loaded.config.images.first(where: { $0.image == name })
        else { return nil }
        if let built = run[image.key] { return built }
        if let cached = try? BuildCache(configPath: loaded.absolutePath).read()[image.key],
            cached.imageName == image.image,
            !cached.tag.isEmpty
        {
            return .init(image: image.image, tag: cached.tag)
        }
        let tag = image.tags.first.map { $0.replacingOccurrences(of: "#", with: "x") } ?? "latest"
        return .init(image: image.image, tag: tag)
    }
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
                : path.count > 1 && path[1] == "tag" ? found.tag : "\(found.image):\(found.tag)"
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
                let replacement = helper == "image" ? found.image : found.tag
                // Go on after the replacement: it is never scanned again.
                let offset = text.distance(from: text.startIndex, to: start.lowerBound) + replacement.count
                text.replaceSubrange(start.lowerBound...close, with: replacement)
                searchFrom = text.index(text.startIndex, offsetBy: offset)
            }
        }
        let bare = Self.stripTag(text)
        if let image = loaded.config.images.first(where: { $0.image == bare }),
            let found = RuntimeImages.resolve(image.key, run: run, loaded: loaded)
        {
            return "\(found.image):\(found.tag)"
        }
        return text
    }

    /// `repo:tag` → `repo` (a `:` after the last `/`); digests stay.
    static func stripTag(_ reference: String) -> String {
        reference.contains("@") ? reference : ImageReference.split(reference).name
    }
}
