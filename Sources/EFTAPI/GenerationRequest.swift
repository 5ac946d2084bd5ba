/// What a client asks for. Every optional field overrides the graph's default when set.
public struct GenerationRequest: Sendable, Equatable {
  /// nil or empty: the config's default graph.
  public var graph: String?
  public var prompt: String
  /// Token ids to prefill every model node's session with instead of `prompt` (no template, no
  /// special tokens added).
  public var promptTokens: [Int32]?
  public var temperature: Double?
  public var topK: Int?
  public var topP: Double?
  public var minP: Double?
  public var seed: UInt64?
  public var maxTokens: Int?
  public var stop: [String]?
  public var stopAtEOS: Bool?
  /// Graph parameter overrides (β, λ, …); each name must be a parameter of the graph.
  public var parameters: [String: Double] = [:]
  /// Report every node's value at each chosen token.
  public var returnNodeValues = false
  /// Report this many of the likeliest tokens under the output at each chosen token (0: none;
  /// at most `GenerationRequest.maxTopLogProbs`).
  public var topLogProbs = 0
  public static let maxTopLogProbs = 20
  /// Speculative decoding: nil follows the graph's config; false turns it off; true needs a
  /// draft node (the config's or `draft`).
  public var speculative: Bool?
  /// Draft from this node instead of the config's (turns speculation on unless `speculative` is false).
  public var draft: String?
  /// Tokens drafted per step; 0 turns speculation off.
  public var lookahead: Int?
  public var adaptiveLookahead: Bool?

  public init(graph: String? = nil, prompt: String) {
    self.graph = graph
    self.prompt = prompt
  }
}
