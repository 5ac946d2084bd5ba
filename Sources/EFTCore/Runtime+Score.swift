import Foundation

public struct ScoreResult: Sendable {
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

extension Runtime {
  /// The log-likelihood of `continuation` after `prompt` under a graph: per token and total.
  /// The continuation is tokenized alone (no special tokens) and appended to every model node's
  /// templated prompt. Sampling settings (temperature, top-k, …) do not apply; the graph's own
  /// operators do.
  public func score(graph name: String?, prompt: String, continuation: String,
                    parameters: [String: Double] = [:], cancellation: (any CancellationSignal)? = nil) throws -> ScoreResult {
    let graph = try graph(named: name)
    let evaluator = try GraphEvaluator(graph: graph, parameters: try parameterValues(parameters, graph: graph))
    let tokens = graph.tokenizer.encode(continuation, addSpecialTokens: false)
    guard !tokens.isEmpty else { throw RuntimeError(.request, .invalidArgument, "the continuation is empty (no tokens to score)") }
    let state = try DecodeState(graph: graph, prompt: prompt, scheduler: scheduler, cancellation: cancellation)
    guard state.room >= tokens.count - 1 else {
      throw RuntimeError(.request, .outOfRange, "prompt and continuation (\(tokens.count) tokens) exceed the context length \(graph.contextLength)")
    }
    // Every session reads the continuation but its last token in one call; the output is
    // evaluated at each position.
    for token in tokens.dropLast() { state.push(token) }
    let rows = try state.rows(Array(state.sessions.indices), from: 0)
    state.finishModelWork()
    var logProbs: [Double] = []
    for (position, token) in tokens.enumerated() {
      try evaluator.evaluate(logits: { rows[$0][position] })
      logProbs.append(Double(evaluator.outputLogProbs()[Int(token)]))
    }
    return ScoreResult(tokens: tokens, logProbs: logProbs)
  }
}
