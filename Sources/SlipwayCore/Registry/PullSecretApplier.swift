internal import Foundation

/// `ensure_pull_secrets` against a cluster, through `kubectl`: the rendered Secrets go to
/// `kubectl apply -f -` (on stdin, never on a command line), and each service account gets the
/// missing secret names added to its `imagePullSecrets` (`kubectl get` then `kubectl patch`
/// with the whole list, so names other tools put there stay; a missing account is created).
///
/// The Secrets are applied first, in one call: when no cluster answers, that call fails and
/// nothing has been changed.
public struct PullSecretApplier: Sendable {
    public var kubectl: String
    public var context: String?
    public var namespace: String?
    public var environment: [String: String]

    public init(kubectl: String = "kubectl", context: String?, namespace: String?, environment: [String: String]) {
        self.kubectl = kubectl
        self.context = context
        self.namespace = namespace
        self.environment = environment
    }

    /// Applies `rendered` (rendered with the real secrets); returns kubectl's line per object
    /// saying what happened. No password, token or encoded Secret data reaches a message.
    public func apply(_ rendered: PullSecretRenderer.Rendered) async throws(RegistryError) -> [String] {
        var lines: [String] = []
        let secrets = Self.secretValues(rendered.manifests)
        let secretManifests = rendered.manifests.filter { $0["kind"]?.text == "Secret" }
        let accounts = rendered.manifests.filter { $0["kind"]?.text == "ServiceAccount" }
        if !secretManifests.isEmpty {
            let text: String
            do { text = try YAMLEmitter().emit(secretManifests) } catch {
                throw RegistryError.manifest("cannot write the Secret manifests: \(error.message)")
            }
            let out = try await run(["apply", "-f", "-"], input: text, secrets: secrets)
            lines += out.standardOutput.split(separator: "\n").map(String.init)
        }
        for account in accounts {
            guard let name = account["metadata"]?["name"]?.text else { continue }
            let wanted = account["imagePullSecrets"]?.items?.compactMap { $0["name"]?.text } ?? []
            let got = try await run(
                ["get", "serviceaccount", name, "-o", "json"],
                secrets: secrets,
                allowFailure: true
            )
            if got.status != 0 {
                guard got.standardError.contains("NotFound") || got.standardError.contains("not found") else {
                    throw failure(["get", "serviceaccount", name], got, secrets: secrets)
                }
                let text: String
                do { text = try YAMLEmitter().emit(account) } catch {
                    throw RegistryError.manifest("cannot write the ServiceAccount \(name): \(error.message)")
                }
                let created = try await run(["create", "-f", "-"], input: text, secrets: secrets)
                lines += created.standardOutput.split(separator: "\n").map(String.init)
                continue
            }
            let existing = Self.pullSecretNames(inServiceAccountJSON: got.standardOutput)
            let missing = wanted.filter { !existing.contains($0) }
            if missing.isEmpty {
                lines.append("serviceaccount/\(name) unchanged (already pulls with \(wanted.joined(separator: ", ")))")
                continue
            }
            let list = (existing + missing).map { ["name": $0] }
            let patch =
                (try? JSONSerialization.data(withJSONObject: ["imagePullSecrets": list], options: [.sortedKeys]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            let patched = try await run(
                ["patch", "serviceaccount", name, "--type", "merge", "-p", patch],
                secrets: secrets
            )
            lines += patched.standardOutput.split(separator: "\n").map(String.init)
        }
        return lines
    }

    /// Every value in the Secrets that must not be shown: the encoded data, and the
    /// passwords and `auth` fields inside it.
    static func secretValues(_ manifests: [Node]) -> [String] {
        var out: [String] = []
        for manifest in manifests where manifest["kind"]?.text == "Secret" {
            guard let encoded = manifest["data"]?[".dockerconfigjson"]?.text else { continue }
            out.append(encoded)
            guard let data = Data(base64Encoded: encoded),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let auths = object["auths"] as? [String: [String: Any]]
            else { continue }
            for fields in auths.values {
                for key in ["password", "auth", "identitytoken"] {
                    if let value = fields[key] as? String, !value.isEmpty { out.append(value) }
                }
            }
        }
        return out.sorted { $0.count > $1.count }
    }

    /// The `imagePullSecrets[].name`s of `kubectl get serviceaccount -o json`'s answer.
    static func pullSecretNames(inServiceAccountJSON text: String) -> [String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let list = object["imagePullSecrets"] as? [[String: Any]]
        else { return [] }
        return list.compactMap { $0["name"] as? String }
    }

    /// `kubectl [--context C] [--namespace N] ARGS`.
    func arguments(_ args: [String]) -> [String] {
        var out: [String] = []
        if let context, !context.isEmpty { out += ["--context", context] }
        if let namespace, !namespace.isEmpty { out += ["--namespace", namespace] }
        return out + args
    }

    private func run(
        _ args: [String],
        input: String? = nil,
        secrets: [String],
        allowFailure: Bool = false
    ) async throws(RegistryError) -> ProcessOutput {
        guard let executable = findExecutable(kubectl, path: environment["PATH"]) else {
            throw RegistryError.kubectlMissing
        }
        let output: ProcessOutput
        do {
            output = try await ProcessRunner.run(executable, arguments(args), environment: environment, input: input)
        } catch {
            throw RegistryError.kubectlFailed(
                command: "kubectl",
                status: error.status,
                lastLines: Self.redact(error.standardError, secrets)
            )
        }
        if output.status != 0 && !allowFailure { throw failure(args, output, secrets: secrets) }
        return output
    }

    private func failure(_ args: [String], _ output: ProcessOutput, secrets: [String]) -> RegistryError {
        let tail = output.standardError.split(separator: "\n", omittingEmptySubsequences: true).suffix(5)
            .map { String($0) }.joined(separator: "\n")
        let shown = (["kubectl"] + arguments(args)).map { $0.hasPrefix("{") ? "'<patch>'" : $0 }.joined(separator: " ")
        return RegistryError.kubectlFailed(command: shown, status: output.status, lastLines: Self.redact(tail, secrets))
    }

    /// `text` with every secret (and its base64 forms) replaced by `<redacted>`.
    static func redact(_ text: String, _ secrets: [String]) -> String {
        var out = text
        for secret in secrets where secret.count >= 3 {
            out = out.replacingOccurrences(of: secret, with: PullSecretRenderer.redacted)
        }
        return out
    }
}
