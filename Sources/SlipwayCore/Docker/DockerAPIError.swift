internal import Foundation

/// A failure talking to the Docker Engine API.
public enum DockerAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `DOCKER_HOST` names a transport this client does not speak (only `unix://` for now).
    case unsupportedHost(String)
    /// Nothing accepts connections on the socket: the daemon is not running, or the socket is
    /// not ours to open.
    case unreachable(socket: String, reason: String)
    /// The daemon accepted the connection but did not answer within the time limit.
    case timedOut(request: String, after: Duration)
    /// The connection broke in the middle of a request.
    case connectionLost(request: String, reason: String)
    /// The answer was not the HTTP (or JSON) the API promises.
    case malformedResponse(request: String, detail: String)
    /// The daemon answered with an error status; `message` is its JSON `message`.
    case status(request: String, code: Int, message: String)

    public var description: String {
        switch self {
        case .unsupportedHost(let host):
            return "DOCKER_HOST=\(host) is not supported: slipway talks to the Docker engine over a unix socket "
                + "(unix:///var/run/docker.sock), or through the docker CLI for tcp:// and ssh://; unset DOCKER_HOST or use one of those"
        case .unreachable(let socket, let reason):
            return "no Docker engine answers at unix://\(socket) (\(reason)); start one with "
                + "`./install.sh --deps-only` or `sudo dockerd --bridge=none --iptables=false`"
        case .timedOut(let request, let after):
            return "the Docker engine did not answer \(request) within \(after)"
        case .connectionLost(let request, let reason):
            return "the connection to the Docker engine broke during \(request): \(reason)"
        case .malformedResponse(let request, let detail):
            return "the Docker engine's answer to \(request) is not valid: \(detail)"
        case .status(let request, let code, let message):
            return "the Docker engine refused \(request) (HTTP \(code)): \(message)"
        }
    }
}
