internal import Foundation

/// A user name and secret for one registry. Its description never shows the secret.
public struct RegistryCredential: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The registry as the credential store names it (`https://index.docker.io/v1/`, `ghcr.io`).
    public var serverAddress: String
    public var username: String
    /// The password, or the identity token when the store gave one (Docker's `<token>` user).
    public var secret: String
    /// Whether `secret` is an identity token rather than a password.
    public var isIdentityToken: Bool

    public init(serverAddress: String, username: String, secret: String, isIdentityToken: Bool = false) {
        self.serverAddress = serverAddress
        self.username = username
        self.secret = secret
        self.isIdentityToken = isIdentityToken
    }

    public var description: String { "\(username) at \(serverAddress) (secret not shown)" }
    public var debugDescription: String { description }
}

/// A problem reading credentials: a broken `config.json` or a credential helper that failed.
/// Credentials or pull secrets slipway cannot get or apply; one case per failure the user
/// reads. No case ever holds a secret: helpers' and kubectl's output is redacted first.
public enum RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The Docker config file cannot be read or is not what Docker writes.
    case dockerConfig(path: String, problem: String)
    /// A credential helper named in the Docker config is not installed.
    case helperMissing(tool: String)
    /// A credential helper could not run, failed, or answered something else.
    case helperFailed(tool: String, server: String?, problem: String)
    /// kubectl is not installed (applying pull secrets).
    case kubectlMissing
    /// kubectl failed (its command line and last lines, secrets redacted).
    case kubectlFailed(command: String, status: Int32, lastLines: String)
    /// A pull secret's manifest could not be made.
    case manifest(String)

    public var description: String {
        switch self {
        case .dockerConfig(let path, let problem): return "\(path): \(problem)"
        case .helperMissing(let tool):
            return
                "credential helper \(tool) (named in the Docker config) is not on PATH; install it or remove it from config.json"
        case .helperFailed(let tool, let server, let problem):
            return "credential helper \(tool) \(server.map { "failed for \($0)" } ?? "failed"): \(problem)"
        case .kubectlMissing:
            return "kubectl is not on PATH; install it, or print the manifests with `slipway pull-secrets --render`"
        case .kubectlFailed(let command, let status, let lastLines):
            return
                "\(command) failed (exit status \(status)); is a cluster reachable on this kube context? `slipway pull-secrets --render` prints the manifests without one:\n\(lastLines)"
        case .manifest(let problem): return "pullSecrets: \(problem)"
        }
    }

    /// The description (the name kept from the time this was a message struct).
    public var message: String { description }
}

/// Registry names as Docker's CLI normalises them.
public enum RegistryName {
    /// The key Docker Hub's credentials are stored under.
    public static let dockerHub = "https://index.docker.io/v1/"

    /// The registry an image reference pushes to: its first component when that looks like a
    /// host (has a `.` or `:`, or is `localhost`), Docker Hub otherwise.
    public static func registry(ofImage image: String) -> String {
        guard let slash = image.firstIndex(of: "/") else { return dockerHub }
        let first = String(image[..<slash])
        guard first.contains(".") || first.contains(":") || first == "localhost" else { return dockerHub }
        return isDockerHub(first) ? dockerHub : first
    }

    /// `https://ghcr.io/v1/` → `ghcr.io`: the scheme and any path dropped (Docker's
    /// `ConvertToHostname`).
    public static func hostname(_ address: String) -> String {
        var rest = Substring(address)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        return String(rest)
    }

    /// Whether `address` names Docker Hub (`docker.io`, `index.docker.io`, its v1 URL, or "").
    public static func isDockerHub(_ address: String) -> Bool {
        let host = hostname(address)
        return host.isEmpty || host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io"
    }

    /// The key a registry's credentials are stored under: Docker Hub's URL, or the host.
    public static func key(_ address: String) -> String { isDockerHub(address) ? dockerHub : hostname(address) }
}

/// The Docker CLI's credential configuration: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`, with its `auths`, `credsStore` and `credHelpers`. Credential helpers
/// (`docker-credential-NAME`) are asked with their `get` protocol: the server address on stdin,
/// a JSON object with `Username` and `Secret` on stdout.
public struct DockerConfigFile: Sendable {
    /// The file read, or nil when there is none (then no registry has credentials).
    public var path: String?
    /// `auths`: server address → `auth` (base64 of `user:password`) or `username`/`password`,
    /// and `identitytoken`.
    var auths: [String: [String: String]] = [:]
    public var credsStore: String?
    public var credHelpers: [String: String] = [:]

    public init() {}

    /// Reads the config the Docker CLI would read in `environment`. A missing file is no
    /// credentials; a file that is not valid JSON is an error naming it.
    public static func load(environment: [String: String]) throws(RegistryError) -> DockerConfigFile {
        let directory: String
        if let custom = environment["DOCKER_CONFIG"], !custom.isEmpty {
            directory = custom
        } else if let home = environment["HOME"], !home.isEmpty {
            directory = home + "/.docker"
        } else {
            return DockerConfigFile()
        }
        let path = directory + "/config.json"
        guard FileManager.default.fileExists(atPath: path) else { return DockerConfigFile() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RegistryError.dockerConfig(path: path, problem: "cannot read it; check its permissions")
        }
        return try parse(data, path: path)
    }

    static func parse(_ data: Data, path: String) throws(RegistryError) -> DockerConfigFile {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw RegistryError.dockerConfig(
                path: path,
                problem: "not valid JSON (\(error.localizedDescription)); fix or remove the file"
            )
        }
        guard let root = object as? [String: Any] else {
            throw RegistryError.dockerConfig(
                path: path,
                problem: "expected a JSON object at the top; fix or remove the file"
            )
        }
        var config = DockerConfigFile()
        config.path = path
        if let auths = root["auths"] {
            guard let entries = auths as? [String: Any] else {
                throw RegistryError.dockerConfig(
                    path: path,
                    problem: "\"auths\" must be an object of registry → credentials"
                )
            }
            for (server, value) in entries {
                guard let fields = value as? [String: Any] else {
                    throw RegistryError.dockerConfig(path: path, problem: "auths.\"\(server)\" must be an object")
                }
                config.auths[server] = fields.compactMapValues { $0 as? String }
            }
        }
        if let store = root["credsStore"] {
            guard let name = store as? String else {
                throw RegistryError.dockerConfig(path: path, problem: "\"credsStore\" must be a string")
            }
            config.credsStore = name.isEmpty ? nil : name
        }
        if let helpers = root["credHelpers"] {
            guard let map = helpers as? [String: String] else {
                throw RegistryError.dockerConfig(
                    path: path,
                    problem: "\"credHelpers\" must map registries to helper names"
                )
            }
            config.credHelpers = map
        }
        return config
    }

    /// The credentials for `registry` (an address or host; Docker Hub in any spelling), from the
    /// helper named for it in `credHelpers`, else from `credsStore`, else from `auths`; nil when
    /// there are none.
    public func credential(
        for registry: String,
        environment: [String: String]
    ) async throws(RegistryError) -> RegistryCredential? {
        let key = RegistryName.key(registry)
        let host = RegistryName.hostname(key)
        if let helper = credHelpers[host] ?? credHelpers[key] ?? credsStore {
            return try await Self.ask(helper: helper, server: key, environment: environment)
        }
        for (server, fields) in auths where RegistryName.key(server) == key {
            if let credential = try Self.credential(server: server, fields: fields, path: path ?? "config.json") {
                return credential
            }
        }
        return nil
    }

    static func credential(
        server: String,
        fields: [String: String],
        path: String
    ) throws(RegistryError)
        -> RegistryCredential?
    {
        if let token = fields["identitytoken"], !token.isEmpty {
            return RegistryCredential(
                serverAddress: server,
                username: fields["username"] ?? "",
                secret: token,
                isIdentityToken: true
            )
        }
        if let auth = fields["auth"], !auth.isEmpty {
            guard let data = Data(base64Encoded: auth), let text = String(data: data, encoding: .utf8),
                let colon = text.firstIndex(of: ":")
            else {
                throw RegistryError.dockerConfig(
                    path: path,
                    problem:
                        "auths.\"\(server)\".auth is not base64 of user:password; run `docker login \(RegistryName.hostname(server))` again"
                )
            }
            return RegistryCredential(
                serverAddress: server,
                username: String(text[..<colon]),
                secret: String(text[text.index(after: colon)...])
            )
        }
        if let user = fields["username"], let password = fields["password"], !user.isEmpty {
            return RegistryCredential(serverAddress: server, username: user, secret: password)
        }
        return nil
    }

    /// `docker-credential-HELPER get` with `server` on stdin.
    static func ask(
        helper: String,
        server: String,
        environment: [String: String]
    ) async throws(RegistryError) -> RegistryCredential? {
        let tool = "docker-credential-" + helper
        guard helper.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }),
            let executable = findExecutable(tool, path: environment["PATH"])
        else {
            throw RegistryError.helperMissing(tool: tool)
        }
        let output: ProcessOutput
        do {
            output = try await ProcessRunner.run(
                executable,
                ["get"],
                environment: environment,
                input: server + "\n",
                limit: 1 << 20
            )
        } catch {
            throw RegistryError.helperFailed(
                tool: tool,
                server: nil,
                problem: "it could not run: \(error.standardError)"
            )
        }
        if output.status != 0 {
            // The helpers' way of saying "nothing stored for this server".
            if output.standardOutput.contains("credentials not found")
                || output.standardError.contains("credentials not found")
            {
                return nil
            }
            // Only the helper's exit status: its output could hold a secret.
            throw RegistryError.helperFailed(tool: tool, server: server, problem: "exit status \(output.status)")
        }
        guard let data = output.standardOutput.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let username = object["Username"] as? String, let secret = object["Secret"] as? String
        else {
            throw RegistryError.helperFailed(
                tool: tool,
                server: server,
                problem: "it answered with something other than {\"Username\", \"Secret\"}"
            )
        }
        if username == "<token>" {
            return RegistryCredential(serverAddress: server, username: "", secret: secret, isIdentityToken: true)
        }
        return RegistryCredential(serverAddress: server, username: username, secret: secret)
    }
}
