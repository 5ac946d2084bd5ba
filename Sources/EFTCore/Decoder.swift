/// A token a decoding step chose, with what a `TokenEvent` reports about it.
struct ChosenToken {
  let token: Int32
  /// Under the graph's renormalised output at the token's position.
  let logProb: Float
  let nodeValues: [Float]?
  var top: [(token: Int32, logProb: Float)] = []
}

/// Chooses tokens for one request, step by step. Without speculation a step evaluates the graph
/// once and draws one token. With it, the draft node proposes tokens one at a time from its own
/// distribution q (after the request's sampling settings), the sessions the draft does not read
/// take them all in one call, and the output's distribution p is evaluated at each position:
/// token x is kept with probability min(1, p(x)/q(x)); the first rejected one is replaced by a
/// draw from norm(max(0, p − q)); when all are kept one more is drawn from p (Leviathan et al.,
/// 2023, Algorithm 1). The tokens therefore follow p exactly. Greedy decoding keeps a draft token
/// while it is the output's argmax. A step with no drafts is plain decoding.
struct Decoder {
  let state: DecodeState
  let evaluator: GraphEvaluator
  let sampling: SamplingOptions
  let nodeValues: Bool
  /// The draft node's subgraph (evaluation order), the sessions it reads and the others.
  private let draftNodes: [Int]
  private let draftNode: Int
  private let draftSessions: [Int]
  private let verifySessions: [Int]
  private let maxLookahead: Int
  private let adaptive: Bool
  /// Tokens the next step drafts.
  private(set) var lookahead: Int
  private var rng: SeededGenerator
  private(set) var stats = DecodeStats()

  /// How many of the likeliest tokens each chosen token reports.
  let topLogProbs: Int

  init(state: DecodeState, evaluator: GraphEvaluator, settings: GenerationSettings, nodeValues: Bool, topLogProbs: Int = 0) throws {
    self.topLogProbs = topLogProbs
    self.state = state
    self.evaluator = evaluator
    self.sampling = settings.sampling
    self.nodeValues = nodeValues
    rng = SeededGenerator(seed: settings.sampling.seed)
    let graph = state.graph
    if let spec = settings.speculation {
      guard let node = graph.nodeIndex(spec.draft) else {
        throw RuntimeError(.request, .invalidArgument, "speculative.draft '\(spec.draft)' is not a node of graph '\(graph.name)'")
      }
      draftNode = node
      draftNodes = graph.subgraph(of: node)
      let read = Set(draftNodes.compactMap { if case .model(let s) = graph.operations[$0] { return s } else { return nil } })
      draftSessions = read.sorted()
      verifySessions = graph.sessions.indices.filter { !read.contains($0) }
      maxLookahead = spec.lookahead
      adaptive = spec.adaptive
    } else {
      draftNode = graph.output
      draftNodes = []
      draftSessions = []
      verifySessions = Array(graph.sessions.indices)
      maxLookahead = 0
      adaptive = false
    }
    lookahead = maxLookahead
  }

  /// The next tokens: at least one, at most `limit`. Needs `state.room >= 0`.
  mutating func step(limit: Int) throws -> [ChosenToken] {
    let start = state.tokens.count
    let k = max(0, min(lookahead, limit - 1, state.room))
    let greedy = sampling.temperature == 0
    // Per session, its logits at positions start, start + 1, …
    var rows = [[ArraySlice<Float>]](repeating: [], count: state.sessions.count)

    // Draft k tokens, one at a time, from the draft node's distribution q.
    var drafts: [Int32] = []
    var q: [[Double]] = []
    for i in 0..<k {
      for (s, r) in zip(draftSessions, try state.rows(draftSessions, from: start + i)) { rows[s] += r }
      try evaluator.evaluate(draftNodes, logits: { rows[$0][i] })
      let token: Int32
      if greedy {
        token = try Sampler.argmax(evaluator.logProbs(of: draftNode))
      } else {
        let distribution = try Sampler.distribution(evaluator.logProbs(of: draftNode), sampling)!
        token = Sampler.draw(distribution, using: &rng)
        q.append(distribution)
      }
      drafts.append(token)
      state.push(token)
    }

    // Verify: the other sessions read every drafted token at once; the output is evaluated at
    // each position until a draft token is rejected.
    for (s, r) in zip(verifySessions, try state.rows(verifySessions, from: start)) { rows[s] = r }
    var chosen: [ChosenToken] = []
    func choose(_ token: Int32, _ logProbs: [Float]) {
      chosen.append(ChosenToken(token: token, logProb: logProbs[Int(token)],
                                nodeValues: nodeValues ? evaluator.nodeValues(at: token) : nil,
                                top: Sampler.top(topLogProbs, of: logProbs)))
    }
    stats.steps += 1
    stats.drafted += k
    defer {
      stats.accepted += max(0, chosen.count - 1)
      stats.modelCalls = state.modelCalls
    }
    for (j, draft) in drafts.enumerated() {
      try evaluator.evaluate(logits: { rows[$0][j] })
      let logProbs = evaluator.outputLogProbs()
      let replacement: Int32?
      if greedy {
        let best = try Sampler.argmax(logProbs)
        replacement = best == draft ? nil : best
      } else {
        let p = try Sampler.distribution(logProbs, sampling)!
        let d = Int(draft)
        if rng.nextUnit() < p[d] / q[j][d] {
          replacement = nil
        } else {
          var residual = zip(p, q[j]).map { Swift.max(0, $0 - $1) }
          if residual.reduce(0, +) <= 0 { residual = p }  // p == q up to rounding
          replacement = Sampler.draw(residual, using: &rng)
        }
      }
      guard let replacement else {
        choose(draft, logProbs)
        continue
      }
      choose(replacement, logProbs)
      try state.truncate(to: start + j)
      state.push(replacement)
      if adaptive { lookahead = Swift.max(1, lookahead - 1) }
      return chosen
    }

    // Every draft token kept (or none drafted): one more token from the output at the next position.
    for (s, r) in zip(draftSessions, try state.rows(draftSessions, from: start + k)) { rows[s] += r }
    try evaluator.evaluate(logits: { rows[$0][k] })
    let logProbs = evaluator.outputLogProbs()
    let token = try Sampler.sample(logProbs, sampling, using: &rng)
    choose(token, logProbs)
    state.push(token)
    if adaptive, k > 0 { lookahead = Swift.min(maxLookahead, lookahead + 1) }
    return chosen
  }
}
