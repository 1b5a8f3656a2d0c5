/// One problem found in a configuration file: where, which key, what is wrong and what to do.
///
/// Renders as `FILE:LINE:COL: path.to.key: message`, the form editors and CI annotators parse.
public struct ConfigDiagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as the user named it (relative paths stay relative).
    public var file: String
    public var mark: Mark
    /// Dotted key path (`images.app.dockerfile`); empty for file-level problems.
    public var path: String
    public var message: String

    public init(file: String, mark: Mark, path: String, message: String) {
        self.file = file
        self.mark = mark
        self.path = path
        self.message = message
    }

    public var description: String {
        path.isEmpty ? "\(file):\(mark): \(message)" : "\(file):\(mark): \(path): \(message)"
    }
}

/// Every problem found while loading a configuration; loading reports them all, then fails once.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var diagnostics: [ConfigDiagnostic]

    public init(_ diagnostics: [ConfigDiagnostic]) {
        self.diagnostics = diagnostics
    }

    public init(file: String, mark: Mark = .start, path: String = "", message: String) {
        self.diagnostics = [ConfigDiagnostic(file: file, mark: mark, path: path, message: message)]
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
