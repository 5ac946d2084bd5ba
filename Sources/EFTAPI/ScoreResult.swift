/// The log-likelihood of a continuation after a prompt, per token.
public struct ScoreResult: Sendable, Equatable {
  /// The continuation's token ids (tokenized alone, without special tokens).
  public let tokens: [Int32]
  /// log p(token | prompt, earlier tokens) under the graph's renormalised output; −inf when the
  /// graph masks the token.
  public let logProbs: [Double]

  public init(tokens: [Int32], logProbs: [Double]) {
    self.tokens = tokens
    self.logProbs = logProbs
  }

  public var total: Double { logProbs.reduce(0, +) }
}
