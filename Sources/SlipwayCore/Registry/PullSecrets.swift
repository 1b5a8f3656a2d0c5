internal import Foundation

/// The manifests DevSpace's `ensure_pull_secrets` applies, made from the top-level
/// `pullSecrets`: one `kubernetes.io/dockerconfigjson` Secret per secret name (default
/// `devspace-pull-secrets`, entries merged per registry, Docker Hub under
/// `https://index.docker.io/v1/`), and the listed service accounts (default `default`) with the
/// secret in their `imagePullSecrets`.
///
/// Credentials come from the entry (`username`, `password`), else from the Docker credential
/// store for the registry (an identity token is used as the password; Azure's registries then
/// get the user `00000000-0000-0000-0000-000000000000`, as in DevSpace). An entry without
/// credentials is left out with a warning, as DevSpace warns.
public struct PullSecretRenderer: Sendable {
    /// The namespace written into every manifest; nil leaves it to `kubectl`'s context.
    public var namespace: String?
    /// Whether the Secret's data holds the real credentials (otherwise every password and
    /// token is replaced with `<redacted>`, and the data still decodes to the same shape).
    public var showSecrets: Bool

    public init(namespace: String? = nil, showSecrets: Bool = false) {
        self.namespace = namespace
        self.showSecrets = showSecrets
    }

    public static let redacted = "<redacted>"

    /// What ``render(_:credentials:)`` made: the manifests in order (Secrets, then service
    /// accounts) and a warning per entry left out.
    public struct Rendered: Sendable {
        public var manifests: [Node]
        public var warnings: [String]
    }

    /// Renders `entries`; `credentials` answers for a registry without credentials in the config.
    public func render(
        _ entries: [PullSecretConfig],
        credentials: (String) async throws(RegistryError) -> RegistryCredential?
    ) async throws(RegistryError) -> Rendered {
        // secret name → registry key → fields; secret name → service accounts (ordered, unique).
        var secrets: [(name: String, auths: [String: [String: String]])] = []
        var accounts: [(name: String, secrets: [String])] = []
        var warnings: [String] = []
        for entry in entries {
            let key = RegistryName.key(entry.registry)
            var username = entry.username
            var password = entry.password
            if username == nil || password == nil,
                let stored = try await credentials(entry.registry.isEmpty ? RegistryName.dockerHub : entry.registry)
            {
                if stored.isIdentityToken {
                    password = password ?? stored.secret
                    let host = RegistryName.hostname(key)
                    username =
                        username
                        ?? (host.hasSuffix(".azurecr.io") ? "00000000-0000-0000-0000-000000000000" : stored.username)
                } else {
                    username = username ?? stored.username
                    password = password ?? stored.secret
                }
            }
            guard let user = username, !user.isEmpty, let secret = password, !secret.isEmpty else {
                warnings.append(
                    "pullSecrets.\(entry.name): no username or password for \(RegistryName.hostname(key)) in the config or the Docker credential store; skipped (run `docker login \(RegistryName.hostname(key))`)"
                )
                continue
            }
            let shown = showSecrets ? secret : Self.redacted
            let fields = [
                "auth": Data("\(user):\(shown)".utf8).base64EncodedString(), "username": user, "password": shown,
                "email": entry.email,
            ]
            if let index = secrets.firstIndex(where: { $0.name == entry.secret }) {
                secrets[index].auths[key] = fields
            } else {
                secrets.append((entry.secret, [key: fields]))
            }
            for account in entry.serviceAccounts where !account.isEmpty {
                if let index = accounts.firstIndex(where: { $0.name == account }) {
                    if !accounts[index].secrets.contains(entry.secret) { accounts[index].secrets.append(entry.secret) }
                } else {
                    accounts.append((account, [entry.secret]))
                }
            }
        }

        var manifests: [Node] = []
        for (name, auths) in secrets {
            let json: Data
            do {
                json = try JSONSerialization.data(withJSONObject: ["auths": auths], options: [.sortedKeys])
            } catch {
                throw RegistryError.manifest("cannot encode the credentials of \(name): \(error)")
            }
            manifests.append(
                .mapping([
                    ("apiVersion", .string("v1")),
                    ("kind", .string("Secret")),
                    ("metadata", metadata(name, labels: true)),
                    ("type", .string("kubernetes.io/dockerconfigjson")),
                    ("data", .mapping([(".dockerconfigjson", .string(json.base64EncodedString()))])),
                ])
            )
        }
        for (name, names) in accounts {
            manifests.append(
                .mapping([
                    ("apiVersion", .string("v1")),
                    ("kind", .string("ServiceAccount")),
                    ("metadata", metadata(name, labels: false)),
                    ("imagePullSecrets", .sequence(names.map { .mapping([("name", .string($0))]) })),
                ])
            )
        }
        return Rendered(manifests: manifests, warnings: warnings)
    }

    private func metadata(_ name: String, labels: Bool) -> Node {
        var pairs: [(String, Node)] = [("name", .string(name))]
        if let namespace, !namespace.isEmpty { pairs.append(("namespace", .string(namespace))) }
        if labels { pairs.append(("labels", .mapping([("app.kubernetes.io/managed-by", .string("slipway"))]))) }
        return .mapping(pairs)
    }
}
