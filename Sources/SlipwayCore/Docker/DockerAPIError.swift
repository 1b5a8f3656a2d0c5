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
    /// The body of a streamed request could not be produced (a file of a tar being sent could
    /// not be read): the request was abandoned half-sent.
    case requestBodyFailed(request: String, reason: String)
    /// A process's output is larger than the caller asked to collect.
    case outputTooLarge(request: String, limit: Int)
    /// The engine did not finish a container's process in time to report its exit status.
    case exitCodeUnavailable(request: String, after: Duration)

    public var description: String {
        switch self {
        case .unsupportedHost(let host):
            return "DOCKER_HOST=\(host) is not supported: slipway talks to the Docker engine over a unix socket "
                + "(unix:///var/run/docker.sock), or through the docker CLI for tcp:// and ssh://; unset DOCKER_HOST or use one of those"
        case .unreachable(let socket, let reason):
            return "no Docker engine answers at unix://\(socket) (\(reason)); start one with "
                + "`./install.sh --deps-only` or `sudo dockerd --bridge=none --iptables=false`"
        case .timedOut(let request, let after):
            return "the Docker engine did not answer \(request) within \(after); "
                + "check that dockerd is not stuck (`docker info`) and try again"
        case .connectionLost(let request, let reason):
            return "the connection to the Docker engine broke during \(request): \(reason); "
                + "check that dockerd is still running (`docker info`) and try again"
        case .malformedResponse(let request, let detail):
            return "the Docker engine's answer to \(request) is not valid: \(detail); "
                + "is the socket a Docker engine's (`docker version`)?"
        case .status(let request, let code, let message):
            return "the Docker engine refused \(request) (HTTP \(code)): \(message)" + Self.hint(code)
        case .requestBodyFailed(let request, let reason):
            return "slipway could not send the body of \(request): \(reason); the request was abandoned "
                + "(the engine may have applied part of it), send it again once that is fixed"
        case .outputTooLarge(let request, let limit):
            return "the output of \(request) is larger than \(limit) bytes, more than was asked for; "
                + "read it as a stream instead"
        case .exitCodeUnavailable(let request, let after):
            return "the Docker engine did not report the exit status of \(request) within \(after) "
                + "after its output ended; check the container (`docker ps --all`)"
        }
    }

    /// What to do about an error status, where the status alone says it.
    private static func hint(_ code: Int) -> String {
        switch code {
        case 404: return " (`docker ps --all` and `docker images` list what the engine has)"
        case 409: return " (the container's state does not allow it: `docker ps --all` shows it)"
        case 500...: return " (the engine's own log, e.g. `journalctl -u docker`, may say more)"
        default: return ""
        }
    }
}
