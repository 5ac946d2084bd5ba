import Foundation

extension Runtime {
  /// Continuation tokens a score reads per step.
  static let scoreChunk = 64

  /// The log-likelihood of `continuation` after `prompt` under a graph: per token and total.
  /// The continuation is tokenized alone (no special tokens) and appended to every model node's
  /// templated prompt. Sampling settings (temperature, top-k, …) do not apply; the graph's own
  /// operators do.
  public func score(graph name: String?, prompt: String, continuation: String,
                    parameters: [String: Double] = [:], cancellation: (any CancellationSignal)? = nil) throws -> ScoreResult {
    try score(graph: name, prompt: prompt, continuation: continuation, parameters: parameters, cancellation: cancellation, chunk: Runtime.scoreChunk)
  }

  /// `score` reading `chunk` continuation tokens per step (tests vary it).
  func score(graph name: String?, prompt: String, continuation: String, parameters: [String: Double],
             cancellation: (any CancellationSignal)?, chunk: Int) throws -> ScoreResult {
    let graph = try graph(named: name)
    let evaluator = try GraphEvaluator(graph: graph, parameters: try parameterValues(parameters, graph: graph))
    let tokens = graph.tokenizer.encode(continuation, addSpecialTokens: false, limit: graph.contextLength)
    guard !tokens.isEmpty else { throw RuntimeError(.request, .invalidArgument, "the continuation is empty (no tokens to score)") }
    let state = try DecodeState(graph: graph, prompt: prompt, scheduler: scheduler, cancellation: cancellation)
    guard state.room >= tokens.count - 1 else {
      throw RuntimeError(.request, .outOfRange, "prompt and continuation (\(tokens.count > graph.contextLength ? "over \(graph.contextLength)" : "\(tokens.count)") tokens) exceed the context length \(graph.contextLength)")
    }
    // The continuation is read in chunks: each session reads up to `chunk` tokens a step, the
    // output is evaluated at each of their positions and the logits are dropped before the next
    // chunk (so a call holds chunk × vocab logits per session, whatever the continuation's
    // length), and a cancelled call stops between chunks.
    let sessions = Array(state.sessions.indices)
    var logProbs: [Double] = []
    var position = 0
    while position < tokens.count {
      if cancellation?.isCancelled == true { throw RuntimeError(.request, .cancelled, "the score was cancelled") }
      let end = min(position + chunk, tokens.count)
      while state.tokens.count < end - 1 { state.push(tokens[state.tokens.count]) }
      let rows = try state.rows(sessions, from: position)
      for p in position..<end {
        try evaluator.evaluate(logits: { rows[$0][p - position] })
        logProbs.append(Double(evaluator.outputLogProbs()[Int(tokens[p])]))
      }
      position = end
    }
    state.finishModelWork()
    return ScoreResult(tokens: tokens, logProbs: logProbs)
  }
}
