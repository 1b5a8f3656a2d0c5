/// A question the loader needs a person to answer: a variable of source `all` / `input`
/// (DevSpace's default) that has no value from `--var`, the environment or the vars cache.
///
/// The loader never reads a terminal itself: it hands the question to the ``VariableAsker`` its
/// caller passed in ``LoadOptions/ask`` (the CLI asks on the controlling terminal). Without an
/// asker there is nobody to ask, and the loader does what DevSpace does without a terminal: it
/// takes the variable's `default`, or fails with a message that names the variable.
public struct VariableQuestion: Sendable, Equatable {
    /// The variable's name (`vars.NAME`).
    public var variable: String
    /// What to show: the variable's `question`, else DevSpace's "Please enter a value for NAME".
    public var text: String
    /// Taken for an empty answer, and shown; nil when the variable has none. For a choice
    /// without a default DevSpace preselects the first option, which is given here too.
    public var defaultValue: String?
    /// `options`: the answer is one of these.
    public var options: [String]
    /// `password: true`: read without echo; the answer is never printed.
    public var isPassword: Bool
    /// Set when the question is asked again: why the last answer was not taken
    /// (`validationMessage`, or the pattern it must match).
    public var problem: String?

    public init(
        variable: String,
        text: String,
        defaultValue: String? = nil,
        options: [String] = [],
        isPassword: Bool = false,
        problem: String? = nil
    ) {
        self.variable = variable
        self.text = text
        self.defaultValue = defaultValue
        self.options = options
        self.isPassword = isPassword
        self.problem = problem
    }
}

/// Asks one ``VariableQuestion`` and returns the text typed (an empty string for a bare Enter,
/// which the loader turns into the default), or nil when no answer can be had (end of input).
public typealias VariableAsker = @Sendable (VariableQuestion) async -> String?
