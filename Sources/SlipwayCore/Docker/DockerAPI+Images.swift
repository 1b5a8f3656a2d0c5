internal import Foundation

// MARK: - Images made and fetched, volumes

extension DockerAPI {
    /// `POST /images/create?fromSrc=-`: an image whose root filesystem is the tar `produce`
    /// writes (`docker import`), named `repository:tag`, with `changes` (Dockerfile
    /// instructions the import takes: `ENTRYPOINT`, `CMD`, `LABEL`, `ENV`…). The tar is sent
    /// while it is written; the engine's progress stream is read for its error.
    ///
    /// `produce` must not call ``TarWriter/finish()``: the archive is finished here.
    public func importImage(
        repository: String,
        tag: String,
        changes: [String] = [],
        stallTimeout: Duration = .seconds(60),
        _ produce: (TarWriter) throws -> Void
    ) throws(DockerAPIError) {
        var query = "fromSrc=-&repo=\(Self.queryEscaped(repository))&tag=\(Self.queryEscaped(tag))"
        for change in changes { query += "&changes=\(Self.queryEscaped(change))" }
        try withoutActuallyEscaping(produce) { produce throws(DockerAPIError) in
            let exchange = try DockerExchange(
                socketPath: socketPath,
                method: "POST",
                path: "/images/create?\(query)",
                label: "POST /images/create (import)",
                body: .stream(contentType: "application/x-tar", length: nil) { writer in
                    let tar = writer.tar()
                    try produce(tar)
                    try tar.finish()
                },
                deadline: .after(timeout),
                stallTimeout: stallTimeout,
                headDeadline: .after(stallTimeout)
            )
            try readProgress(exchange, stallTimeout: stallTimeout)
        }
    }

    /// `POST /images/create?fromImage=`: pulls `reference` (`name:tag` or `name@digest`) with
    /// `auth` as `X-Registry-Auth` (`{}` for none). A failure reported inside the progress
    /// stream is thrown as ``DockerAPIError/status(request:code:message:)``.
    public func pullImage(
        _ reference: String,
        auth: String = DockerAPI.registryAuth(nil),
        stallTimeout: Duration = .seconds(60)
    ) throws(DockerAPIError) {
        var query = "fromImage=\(Self.queryEscaped(reference))"
        let slash = reference.lastIndex(of: "/") ?? reference.startIndex
        if !reference.contains("@"), let colon = reference[slash...].lastIndex(of: ":") {
            query = "fromImage=\(Self.queryEscaped(String(reference[..<colon])))"
            query += "&tag=\(Self.queryEscaped(String(reference[reference.index(after: colon)...])))"
        }
        let exchange = try DockerExchange(
            socketPath: socketPath,
            method: "POST",
            path: "/images/create?\(query)",
            label: "POST /images/create (pull \(reference))",
            headers: [("X-Registry-Auth", auth)],
            deadline: .after(timeout),
            stallTimeout: stallTimeout,
            headDeadline: .after(stallTimeout)
        )
        try readProgress(exchange, stallTimeout: stallTimeout)
    }

    /// Reads a JSON-lines progress answer to its end; its `error` becomes a thrown status.
    private func readProgress(_ exchange: DockerExchange, stallTimeout: Duration) throws(DockerAPIError) {
        guard exchange.succeeded else {
            try exchange.response(deadline: .after(stallTimeout)).requireSuccess()
            return
        }
        var lines = JSONLineStream()
        var failure: String?
        let collect: ([UInt8]) -> Void = { line in
            if let message = try? JSONDecoder().decode(DockerStreamMessage.self, from: Data(line)),
                let error = message.error, !error.isEmpty
            {
                failure = error
            }
        }
        while let body = try exchange.nextBody(deadline: .after(stallTimeout)) {
            try lines.appendBody(body, request: exchange.request, collect)
        }
        lines.finish(collect)
        if let failure { throw .status(request: exchange.request, code: 200, message: failure) }
    }

    /// `GET /networks/{name}`: whether the engine has that network.
    public func networkExists(_ name: String) throws(DockerAPIError) -> Bool {
        let response = try send("GET", "/networks/\(Self.pathEscaped(name))")
        if response.code == 404 { return false }
        try response.requireSuccess()
        return true
    }

    /// `POST /volumes/create`: a named local volume with `labels`; one of that name that
    /// exists already is kept as it is.
    public func createVolume(_ name: String, labels: [String: String]) throws(DockerAPIError) {
        try call("POST", "/volumes/create", json: ["Name": .string(name), "Labels": .stringMap(labels)])
    }

    /// `DELETE /volumes/{name}`. Returns false when there was none.
    @discardableResult
    public func removeVolume(_ name: String, force: Bool = false) throws(DockerAPIError) -> Bool {
        let response = try send("DELETE", "/volumes/\(Self.pathEscaped(name))?force=\(force)")
        if response.code == 404 { return false }
        try response.requireSuccess()
        return true
    }

    /// `GET /volumes?filters=`: the names of the volumes carrying every label of `labels`.
    public func volumes(labels: [String]) throws(DockerAPIError) -> [String] {
        var path = "/volumes"
        if !labels.isEmpty { path += "?filters=" + Self.queryEscaped(Self.filtersJSON(["label": labels])) }
        let body = try call("GET", path).json()
        return (body["Volumes"]?.array ?? []).compactMap { $0["Name"]?.string }
    }
}

extension DockerAPI {
    /// `GET /images/{reference}/json`: the image's ID and its `Config` (`Entrypoint`, `Cmd`,
    /// `Env`, `WorkingDir`…), or nil when there is no such image.
    public func imageConfig(_ reference: String) throws(DockerAPIError) -> (id: String, config: JSONValue)? {
        let response = try send("GET", "/images/\(Self.pathEscaped(reference))/json")
        if response.code == 404 { return nil }
        try response.requireSuccess()
        let body = try response.json()
        return (body["Id"]?.string ?? "", body["Config"] ?? .object([:]))
    }
}
