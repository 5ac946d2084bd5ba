/// The sessions of one request and the tokens after the prompt that they read: the generated
/// tokens and, during a speculative step, the drafted ones. A session reads tokens lazily (when
/// its logits at a position are asked for), so a token that the next step drafts after, or
/// verifies together with its drafts, costs no call of its own. Every append goes through the
/// runtime's `StepScheduler`, which batches it with other requests' appends to the same model.
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
  /// The scheduler that runs the appends, and this request's place in its steps.
  private let scheduler: StepScheduler
  private let member: StepScheduler.Member

  /// Opens one session per session spec and prefills it with its templated prompt.
  convenience init(graph: CompiledGraph, prompt: String, scheduler: StepScheduler,
                   cancellation: (any CancellationSignal)? = nil) throws {
    // Tokenizing stops once a prompt is past its model's context (refused below).
    try self.init(graph: graph, prompts: graph.sessions.map {
      graph.tokenizer.encode($0.render(prompt), addSpecialTokens: $0.addSpecialTokens, limit: $0.model.contextLength)
    }, scheduler: scheduler, cancellation: cancellation)
  }

  /// Session i prefilled with prompts[i] (all sessions in one scheduler step, long prompts in
  /// chunks). `cancellation` is polled while the request waits for its appends.
  init(graph: CompiledGraph, prompts: [[Int32]], scheduler: StepScheduler,
       cancellation: (any CancellationSignal)? = nil) throws {
    self.graph = graph
    var sessions: [Session] = []
    for (spec, ids) in zip(graph.sessions, prompts) {
      guard !ids.isEmpty else {
        throw RuntimeError(.request, .invalidArgument, "the prompt is empty for model '\(spec.model.name)' (after its template, with no BOS token added); give a prompt")
      }
      guard ids.count < spec.model.contextLength else {
        let length = ids.count > spec.model.contextLength ? "over \(spec.model.contextLength)" : "\(ids.count)"
        throw RuntimeError(.request, .outOfRange, "the prompt is \(length) tokens for model '\(spec.model.name)', which holds \(spec.model.contextLength)")
      }
      if let bad = ids.first(where: { $0 < 0 || Int($0) >= graph.vocabSize }) {
        throw RuntimeError(.request, .invalidArgument, "prompt token id \(bad) is outside the vocabulary [0, \(graph.vocabSize))")
      }
      let session = try spec.model.makeSession()
      if let deadline = cancellation?.deadline { session.setDeadline(deadline) }
      sessions.append(session)
    }
    let member = scheduler.join(cancellation: cancellation)
    let prefilled: [[Float]]
    do {
      prefilled = try scheduler.run(zip(sessions, prompts).map { Append($0, $1, .last) }, for: member)
    } catch {
      member.leave()
      throw error
    }
    self.scheduler = scheduler
    self.member = member
    self.sessions = sessions
    self.last = prefilled.map { $0[...] }
    self.promptLengths = prompts.map(\.count)
    self.read = Array(repeating: 0, count: sessions.count)
    self.modelCalls = sessions.count
  }

  deinit { member.leave() }

  /// Per model, the time of the backend calls that carried this request's appends.
  var modelSeconds: [String: Double] { member.modelSeconds }

  /// Done with the models: the scheduler stops waiting for this request before its steps.
  func finishModelWork() { member.leave() }

  /// Tokens that can still be added with every session able to read them all (negative when the
  /// last one can never be read).
  var room: Int {
    (zip(graph.sessions, promptLengths).map { $0.model.contextLength - $1 }.min() ?? 0) - tokens.count
  }

  func push(_ token: Int32) { tokens.append(token) }

  /// Per session of `sessions`: its logits at each position from `position` through
  /// `tokens.count` (position p: after the prompt and the first p tokens). The sessions read the
  /// tokens they have not read in one scheduler step, one append each. `position` must not be
  /// before the last position a session read.
  func rows(_ sessions: [Int], from position: Int) throws -> [[ArraySlice<Float>]] {
    var out: [[ArraySlice<Float>]] = []
    var appends: [Append] = [], reading: [(session: Int, wanted: Int)] = []
    for s in sessions {
      precondition(position >= read[s] && position <= tokens.count, "rows(\(s), from: \(position)) with \(read[s]) read of \(tokens.count)")
      var rows: [ArraySlice<Float>] = []
      if position == read[s] {
        guard let row = last[s] else { preconditionFailure("session \(s): logits at position \(position) are not known") }
        rows.append(row)
      }
      out.append(rows)
      if read[s] < tokens.count {
        let wanted = tokens.count - max(position, read[s] + 1) + 1  // rows needed from this call
        appends.append(Append(self.sessions[s], Array(tokens[read[s]...]), wanted > 1 ? .all : .last))
        reading.append((out.count - 1, wanted))
      }
    }
    guard !appends.isEmpty else { return out }
    let results = try scheduler.run(appends, for: member)
    modelCalls += appends.count
    for ((i, wanted), all) in zip(reading, results) {
      let s = sessions[i]
      let v = self.sessions[s].model.vocabSize
      let rowCount = all.count / v
      for r in (rowCount - wanted)..<rowCount { out[i].append(all[(r * v)..<((r + 1) * v)]) }
      read[s] = tokens.count
      last[s] = out[i].last
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
