internal import Foundation

/// One message of the daemon's progress stream (push, pull).
public struct DockerStreamMessage: Decodable, Sendable, Equatable {
    public var status: String?
    public var id: String?
    public var error: String?
    public var errorDetail: ErrorDetail?
    public var aux: Aux?

    public struct ErrorDetail: Decodable, Sendable, Equatable {
        public var message: String?
    }

    public struct Aux: Decodable, Sendable, Equatable {
        public var tag: String?
        public var digest: String?
        public var size: Int?

        enum CodingKeys: String, CodingKey {
            case tag = "Tag"
            case digest = "Digest"
            case size = "Size"
        }
    }

    /// The error the message reports, if any.
    public var errorMessage: String? {
        if let error, !error.isEmpty { return error }
        if let message = errorDetail?.message, !message.isEmpty { return message }
        return nil
    }
}
