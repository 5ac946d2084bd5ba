/// What a request will hold in memory, estimated before it runs (for a server's admission).
extension Runtime {
  /// Special tokens a tokenizer's post-processor may add to a prompt (BOS, EOS, separators).
  static let specialTokenAllowance = 8

  /// An upper bound of the memory `request` holds while it generates: per model node's session,
  /// the tokens it can hold (prompt + max_tokens + the speculative lookahead, at most the
  /// model's context) × the model's `sessionBytesPerToken`, plus the logits rows it keeps. A
  /// prompt given as text counts as many tokens as its templated UTF-8 bytes (+ special tokens):
  /// no tokenizer makes more tokens than bytes (byte fallback and unknown tokens included), and
  /// nothing is tokenized to know it. Throws what `settings(for:graph:)` throws.
  public func memoryEstimate(for request: GenerationRequest, graph: CompiledGraph) throws -> Int {
    let settings = try settings(for: request, graph: graph)
    let drafted = settings.speculation?.lookahead ?? 0
    return graph.sessions.reduce(0) { total, spec in
      let prompt = request.promptTokens?.count ?? spec.render(request.prompt).utf8.count + Runtime.specialTokenAllowance
      let tokens = prompt.addingSaturated(settings.maxTokens).addingSaturated(drafted + 1)
      return total.addingSaturated(Runtime.sessionBytes(spec.model, tokens: tokens, logitRows: drafted + 2))
    }
  }

  /// The same for a score of `continuation` after `prompt` (read `scoreChunk` tokens a step).
  public func scoreMemoryEstimate(graph: CompiledGraph, prompt: String, continuation: String) -> Int {
    graph.sessions.reduce(0) { total, spec in
      let tokens = (spec.render(prompt).utf8.count + Runtime.specialTokenAllowance).addingSaturated(continuation.utf8.count)
      return total.addingSaturated(Runtime.sessionBytes(spec.model, tokens: tokens, logitRows: Runtime.scoreChunk + 1))
    }
  }

  static func sessionBytes(_ model: Model, tokens: Int, logitRows: Int) -> Int {
    let cache = min(tokens, model.contextLength).multipliedSaturated(by: model.sessionBytesPerToken)
    return cache.addingSaturated(model.vocabSize.multipliedSaturated(by: MemoryLayout<Float>.size * logitRows))
  }
}

extension Int {
  func addingSaturated(_ other: Int) -> Int {
    let (sum, overflow) = addingReportingOverflow(other)
    return overflow ? .max : sum
  }

  func multipliedSaturated(by other: Int) -> Int {
    let (product, overflow) = multipliedReportingOverflow(by: other)
    return overflow ? .max : product
  }
}
