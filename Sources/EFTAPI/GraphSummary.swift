/// What a graph is, as `eft check` prints it and `DescribeGraph` sends it: its nodes, parameters,
/// defaults and models.
public struct GraphSummary: Sendable, Equatable {
  public struct Node: Sendable, Equatable {
    public var name: String
    /// The operator and its inputs, e.g. "linear(large_base·1 + small_ft·beta)".
    public var operation: String

    public init(name: String, operation: String) {
      self.name = name
      self.operation = operation
    }
  }

  public struct ModelSummary: Sendable, Equatable {
    public var name: String
    /// The plugin's own name ("cpu").
    public var plugin: String
    /// What the backend reports ("llama", "bigram").
    public var architecture: String
    public var vocabSize: Int
    public var contextLength: Int

    public init(name: String, plugin: String, architecture: String, vocabSize: Int, contextLength: Int) {
      self.name = name
      self.plugin = plugin
      self.architecture = architecture
      self.vocabSize = vocabSize
      self.contextLength = contextLength
    }
  }

  public var name: String
  public var description: String
  public var parameters: [GraphParameter]
  /// In evaluation order.
  public var nodes: [Node]
  /// The node that is sampled.
  public var output: String
  /// What a request that sets nothing decodes with (`defaults.speculation` nil: plainly).
  public var defaults: GenerationSettings
  public var vocabSize: Int
  public var contextLength: Int
  /// The models the graph reads, in session order.
  public var models: [ModelSummary]

  public init(name: String, description: String, parameters: [GraphParameter], nodes: [Node], output: String,
              defaults: GenerationSettings, vocabSize: Int, contextLength: Int, models: [ModelSummary]) {
    self.name = name
    self.description = description
    self.parameters = parameters
    self.nodes = nodes
    self.output = output
    self.defaults = defaults
    self.vocabSize = vocabSize
    self.contextLength = contextLength
    self.models = models
  }
}
