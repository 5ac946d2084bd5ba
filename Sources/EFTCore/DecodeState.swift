/// The sessions of one request and the tokens after the prompt that they read: the generated
/// tokens and, during a speculative step, the drafted ones. A session reads tokens lazily (when
/// its logits at a position are asked for), so a token that the next step drafts after, or
/// verifies together with its drafts, costs no call of its own.
final class DecodeState {
  let graph: CompiledGraph
  let sessions: [Session]
  /// Per session: its prompt's length in tokens (after its template).
  let promptLengths: [Int]
  /// The tokens after the prompt, common to every session.
  private(set) var tokens: [Int32] = []
  /// Per session: how many of `tokens` it has read.
  private var read: [Int]
  /// Per session: its logits after its last read token, when known.
  private var last: [ArraySlice<Float>?]
  /// Appends made to backends (prefill included).
  private(set) var modelCalls = 0

  /// Opens one session per session spec and prefills it with its templated prompt.
  convenience init(graph: CompiledGraph, prompt: String) throws {
    try self.init(graph: graph, prompts: graph.sessions.map {
      graph.tokenizer.encode($0.render(prompt), addSpecialTokens: $0.addSpecialTokens)
    })
  }

  /// Session i prefilled with prompts[i].
  init(graph: CompiledGraph, prompts: [[Int32]]) throws {
    self.graph = graph
    var sessions: [Session] = []
    var last: [ArraySlice<Float>?] = []
    for (spec, ids) in zip(graph.sessions, prompts) {
      guard !ids.isEmpty else {
        throw RuntimeError(.request, .invalidArgument, "the prompt is empty for model '\(spec.model.name)' (after its template, with no BOS token added); give a prompt")
      }
      guard ids.count < spec.model.contextLength else {
        throw RuntimeError(.request, .outOfRange, "the prompt is \(ids.count) tokens for model '\(spec.model.name)', which holds \(spec.model.contextLength)")
      }
      if let bad = ids.first(where: { $0 < 0 || Int($0) >= graph.vocabSize }) {
        throw RuntimeError(.request, .invalidArgument, "prompt token id \(bad) is outside the vocabulary [0, \(graph.vocabSize))")
      }
      let session = try spec.model.makeSession()
      last.append(try session.append(ids)[...])
      sessions.append(session)
    }
    self.sessions = sessions
    self.last = last
    self.promptLengths = prompts.map(\.count)
    self.read = Array(repeating: 0, count: sessions.count)
    self.modelCalls = sessions.count
  }

  /// Tokens that can still be added with every session able to read them all (negative when the
  /// last one can never be read).
  var room: Int {
    (zip(graph.sessions, promptLengths).map { $0.model.contextLength - $1 }.min() ?? 0) - tokens.count
  }

  func push(_ token: Int32) { tokens.append(token) }

  /// Session `s`'s logits at each position from `position` through `tokens.count` (position p:
  /// after the prompt and the first p tokens), reading the tokens it has not read in one call.
  /// `position` must not be before the last position the session read.
  func rows(_ s: Int, from position: Int) throws -> [ArraySlice<Float>] {
    precondition(position >= read[s] && position <= tokens.count, "rows(\(s), from: \(position)) with \(read[s]) read of \(tokens.count)")
    var out: [ArraySlice<Float>] = []
    if position == read[s] {
      guard let row = last[s] else { preconditionFailure("session \(s): logits at position \(position) are not known") }
      out.append(row)
    }
    let unread = Array(tokens[read[s]...])
    if !unread.isEmpty {
      let wanted = tokens.count - max(position, read[s] + 1) + 1  // rows needed from this call
      let all = try sessions[s].append(unread, allPositions: wanted > 1)
      modelCalls += 1
      let v = sessions[s].model.vocabSize
      let rowCount = all.count / v
      for r in (rowCount - wanted)..<rowCount { out.append(all[(r * v)..<((r + 1) * v)]) }
      read[s] = tokens.count
      last[s] = out.last
    }
    return out
  }

  /// Keeps the first `n` tokens; sessions that read more forget the rest.
  func truncate(to n: Int) throws {
    tokens.removeLast(tokens.count - n)
    for s in sessions.indices where read[s] > n {
      try sessions[s].truncate(to: promptLengths[s] + n)
      read[s] = n
      last[s] = nil
    }
  }
}
