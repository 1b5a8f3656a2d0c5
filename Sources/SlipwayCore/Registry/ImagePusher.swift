internal import Foundation

/// How pushes are tried: attempts, the pause between them, and how long a push may go without
/// any progress before it is stopped.
///
/// Defaults: 3 attempts, 1 s then 2 s apart (each pause twice the one before), and 60 s
/// without progress. A push stopped for lack of progress counts as a failed attempt. An
/// authentication failure or a permanent refusal (an invalid name, an image missing locally)
/// is not retried.
public struct PushPolicy: Sendable, Equatable {
    public var attempts: Int
    public var firstBackoff: Duration
    public var stallTimeout: Duration

    public init(attempts: Int = 3, firstBackoff: Duration = .seconds(1), stallTimeout: Duration = .seconds(60)) {
        self.attempts = max(1, attempts)
        self.firstBackoff = firstBackoff
        self.stallTimeout = stallTimeout
    }

    /// The pause after failed attempt `attempt` (1-based): 1 s, 2 s, 4 s… by default.
    public func backoff(after attempt: Int) -> Duration {
        firstBackoff * (1 << min(max(attempt - 1, 0), 16))
    }
}

/// Why one push attempt failed, as the engine reports it.
public enum PushFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The registry refused the credentials (or wanted some): not retried.
    case authentication(String)
    /// Worth another attempt: the registry did not answer, the connection broke, a 5xx.
    case transient(String)
    /// Another attempt cannot help: the image is not in the engine, the name is invalid.
    case permanent(String)
    /// Nothing arrived for this long; the push was stopped.
    case stalled(Duration)

    public var description: String {
        switch self {
        case .authentication(let m), .transient(let m), .permanent(let m): return m
        case .stalled(let after): return "no progress for \(PushFailure.seconds(after))"
        }
    }

    /// Sorts a registry's or engine's error message.
    public static func classify(_ message: String) -> PushFailure {
        let text = message.lowercased()
        let authentication = [
            "unauthorized", "authentication required", "no basic auth credentials", "denied",
            "incorrect username or password", "authorization failed", "requested access to the resource",
        ]
        if authentication.contains(where: text.contains) { return .authentication(message) }
        let permanent = [
            "does not exist locally", "an image does not exist", "invalid reference format", "manifest invalid",
            "name invalid", "tag invalid", "repository name must", "no such image",
        ]
        if permanent.contains(where: text.contains) { return .permanent(message) }
        return .transient(message)
    }

    static func seconds(_ duration: Duration) -> String {
        let (s, atto) = duration.components
        let value = Double(s) + Double(atto) / 1e18
        return value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }
}

/// A push that did not happen, in words for the user: which reference, which registry, what
/// went wrong and what to do.
public struct PushError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reference: String
    public var registry: String
    public var message: String
    public var description: String { message }
}

/// The credentials for each registry a run pushes to, looked up once per registry (a helper is
/// a process start) and never printed.
public actor RegistryCredentials {
    private let config: Result<DockerConfigFile, RegistryError>
    private let environment: [String: String]
    private var found: [String: Result<RegistryCredential?, RegistryError>] = [:]

    public init(environment: [String: String]) {
        self.environment = environment
        do throws(RegistryError) {
            config = .success(try DockerConfigFile.load(environment: environment))
        } catch {
            config = .failure(error)
        }
    }

    /// The credential for `registry` (a key from ``RegistryName/registry(ofImage:)``), or nil.
    public func credential(for registry: String) async throws(RegistryError) -> RegistryCredential? {
        let key = RegistryName.key(registry)
        if let known = found[key] { return try known.get() }
        let result: Result<RegistryCredential?, RegistryError>
        do throws(RegistryError) {
            result = .success(try await config.get().credential(for: key, environment: environment))
        } catch {
            result = .failure(error)
        }
        found[key] = result
        return try result.get()
    }

    /// Where the credential for `registry` comes from, for messages ("the credential helper
    /// docker-credential-x", "auths in /root/.docker/config.json").
    public func source(for registry: String) -> String {
        guard case .success(let file) = config, let path = file.path else {
            let directory =
                environment["DOCKER_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
                ?? ((environment["HOME"] ?? "~") + "/.docker")
            return "\(directory)/config.json (it does not exist)"
        }
        let host = RegistryName.hostname(RegistryName.key(registry))
        if let helper = file.credHelpers[host] ?? file.credHelpers[RegistryName.key(registry)] {
            return "the credential helper docker-credential-\(helper) (credHelpers in \(path))"
        }
        if let store = file.credsStore {
            return "the credential store docker-credential-\(store) (credsStore in \(path))"
        }
        return "auths in \(path)"
    }
}

/// What pushes one image: the engine that holds it. Throws ``PushFailure`` for what the
/// registry or the transfer said (one attempt; ``ImagePusher`` retries), and an error that
/// conforms to ``PermanentPushError`` for what retrying cannot fix (the engine's own trouble).
public protocol ImagePushing: Sendable {
    func push(
        _ reference: String,
        credential: RegistryCredential?,
        stallTimeout: Duration,
        log: @escaping @Sendable (String) -> Void
    ) async throws -> String?
}

/// An error of the pushing side that a second attempt would meet again.
public protocol PermanentPushError: Error, CustomStringConvertible {}

/// Pushes one reference with ``PushPolicy``'s retries, turning the last failure into a
/// ``PushError`` that names the registry and, for an authentication failure, how to log in.
public enum ImagePusher {
    /// `docker login HOST` (just `docker login` for Docker Hub).
    public static func loginCommand(_ registry: String) -> String {
        RegistryName.isDockerHub(registry) ? "docker login" : "docker login \(RegistryName.hostname(registry))"
    }

    /// The registry as people write it: `docker.io` for Docker Hub, else the host.
    public static func displayName(_ registry: String) -> String {
        RegistryName.isDockerHub(registry) ? "docker.io" : RegistryName.hostname(registry)
    }

    /// Pushes `reference` with `engine`; returns the manifest digest the registry gave, when the
    /// engine says.
    public static func push(
        _ reference: String,
        engine: any ImagePushing,
        credentials: RegistryCredentials,
        policy: PushPolicy,
        log: @escaping @Sendable (String) -> Void
    ) async -> Result<String?, PushError> {
        let registry = RegistryName.registry(ofImage: reference)
        let shown = displayName(registry)
        func failure(_ message: String) -> Result<String?, PushError> {
            .failure(PushError(reference: reference, registry: shown, message: message))
        }
        let credential: RegistryCredential?
        do {
            credential = try await credentials.credential(for: registry)
        } catch {
            return failure("pushing \(reference) to \(shown): cannot get its credentials: \(error)")
        }
        var attempt = 1
        while true {
            let last: PushFailure
            do {
                let digest = try await engine.push(
                    reference,
                    credential: credential,
                    stallTimeout: policy.stallTimeout,
                    log: log
                )
                return .success(digest)
            } catch let error as PushFailure {
                last = error
            } catch let error as any PermanentPushError {
                return failure("pushing \(reference) to \(shown) failed: \(error)")
            } catch {
                last = .transient("\(error)")
            }
            switch last {
            case .authentication(let message):
                let source = await credentials.source(for: registry)
                guard let credential else {
                    let none =
                        source.hasSuffix("(it does not exist)")
                        ? "there are none: \(source.dropLast(" (it does not exist)".count)) does not exist"
                        : "\(source) has none for \(shown)"
                    return failure(
                        "pushing \(reference): \(shown) wants credentials (\(message)), and \(none); "
                            + "log in with `\(loginCommand(registry))`, or set skipPush: true (or --skip-push) to build without pushing"
                    )
                }
                return failure(
                    "pushing \(reference): \(shown) refused the credentials of \(credential.username.isEmpty ? "the identity token" : "user \(credential.username)") "
                        + "from \(source) (\(message)); log in again with `\(loginCommand(registry))`"
                )
            case .permanent(let message):
                return failure("pushing \(reference) to \(shown) failed: \(message)")
            case .transient, .stalled:
                guard attempt < policy.attempts else {
                    let pauses = (1..<policy.attempts).map { PushFailure.seconds(policy.backoff(after: $0)) }
                    let spacing = pauses.isEmpty ? "" : " (\(pauses.joined(separator: ", ")) apart)"
                    let what: String
                    if case .stalled(let after) = last {
                        what =
                            "no progress for \(PushFailure.seconds(after)), so it was stopped; raise the limit with --push-timeout SECONDS if the registry is just slow"
                    } else {
                        what = last.description
                    }
                    return failure(
                        "pushing \(reference) to \(shown) failed after \(policy.attempts) attempt\(policy.attempts == 1 ? "" : "s")\(spacing): \(what)"
                    )
                }
                log(
                    "push attempt \(attempt) of \(policy.attempts) failed (\(last)); trying again in \(PushFailure.seconds(policy.backoff(after: attempt)))"
                )
                try? await Task.sleep(for: policy.backoff(after: attempt))
                attempt += 1
            }
        }
    }
}
