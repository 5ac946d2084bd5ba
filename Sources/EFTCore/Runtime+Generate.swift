import EFTTokenizer
import Foundation

/// What a client asks for. Every optional field overrides the graph's default when set.
public struct GenerationRequest: Sendable {
  /// nil or empty: the config's default graph.
  public var graph: String?
  public var prompt: String
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

  public init(graph: String? = nil, prompt: String) {
    self.graph = graph
    self.prompt = prompt
  }
}

/// One generated token.
public struct TokenEvent: Sendable {
  public let token: Int32
  /// Text that became complete with this token (may be empty: a split UTF-8 character, or text
  /// held back because it could be the start of a stop string).
  public let text: String
  /// The token's log-probability under the graph's (renormalised) output.
  public let logProb: Float
  /// Per node, in `CompiledGraph.nodeNames` order, when the request asked for them.
  public let nodeValues: [Float]?
}

public enum FinishReason: String, Sendable {
  /// The model's end-of-sequence token.
  case eos
  /// A stop string.
  case stop
  /// max_tokens reached.
  case length
  /// A model's context is full.
  case context
  /// The caller stopped it.
  case cancelled
}

public struct GenerationResult: Sendable {
  public let tokens: [Int32]
  public let text: String
  public let finishReason: FinishReason
  /// Prompt tokens per session (model node view), after templating.
  public let promptTokens: [Int]
  public let prefillSeconds: Double
  public let decodeSeconds: Double
  /// Generated tokens per second of decoding (excludes prefill).
  public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(tokens.count) / decodeSeconds : 0 }
}

public struct ScoreResult: Sendable {
  /// The continuation's token ids (tokenized alone, without special tokens).
  public let tokens: [Int32]
  /// log p(token | prompt, earlier tokens) under the graph's renormalised output; −inf when the
  /// graph masks the token.
  public let logProbs: [Double]
  public var total: Double { logProbs.reduce(0, +) }
}

extension Runtime {
  /// The settings a request decodes with: the graph's defaults, overridden by the request.
  public func settings(for request: GenerationRequest, graph: CompiledGraph) throws -> GenerationSettings {
    var s = graph.defaults
    if let v = request.temperature { s.sampling.temperature = v }
    if let v = request.topK { s.sampling.topK = v }
    if let v = request.topP { s.sampling.topP = v }
    if let v = request.minP { s.sampling.minP = v }
    if let v = request.seed { s.sampling.seed = v }
    if let v = request.maxTokens { s.maxTokens = v }
    if let v = request.stop { s.stop = v }
    if let v = request.stopAtEOS { s.stopAtEOS = v }
    try s.sampling.validate()
    guard s.maxTokens >= 0 else { throw RuntimeError(.request, .invalidArgument, "max_tokens = \(s.maxTokens) is negative") }
    guard !s.stop.contains("") else { throw RuntimeError(.request, .invalidArgument, "stop holds an empty string") }
    return s
  }

  /// The parameter values of a request: defaults, overridden by the request's (names checked).
  public func parameterValues(_ overrides: [String: Double], graph: CompiledGraph) throws -> [String: Double] {
    var values = Dictionary(uniqueKeysWithValues: graph.parameters.map { ($0.name, $0.defaultValue) })
    for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
      guard values[name] != nil else {
        let known = graph.parameters.map(\.name)
        throw RuntimeError(.request, .invalidArgument, "graph '\(graph.name)' has no parameter '\(name)' (parameters: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
      }
      guard value.isFinite else { throw RuntimeError(.request, .invalidArgument, "parameter '\(name)' = \(value) is not finite") }
      values[name] = value
    }
    return values
  }

  /// Generates from `request`, calling `onToken` for each token as it is chosen; `onToken`
  /// returns false to stop (finish reason `.cancelled`). Runs on the calling thread.
  public func generate(_ request: GenerationRequest,
                       onToken: (TokenEvent) throws -> Bool = { _ in true }) throws -> GenerationResult {
    let graph = try graph(named: request.graph)
    let settings = try settings(for: request, graph: graph)
    let evaluator = try GraphEvaluator(graph: graph, parameters: try parameterValues(request.parameters, graph: graph))
    var rng = SeededGenerator(seed: settings.sampling.seed)

    let start = DispatchTime.now()
    let state = try DecodeState(graph: graph, prompt: request.prompt)
    let prefillEnd = DispatchTime.now()

    var tokens: [Int32] = []
    var text = ""
    var decoder = StreamingDecoder(tokenizer: graph.tokenizer)
    var stops = StopMatcher(stops: settings.stop)
    var finish = FinishReason.length
    while tokens.count < settings.maxTokens {
      try evaluator.evaluate(logits: state.lastLogits)
      let logProbs = evaluator.outputLogProbs()
      let token = try Sampler.sample(logProbs, settings.sampling, using: &rng)
      if settings.stopAtEOS, graph.eosTokens.contains(token) {
        finish = .eos
        break
      }
      tokens.append(token)
      let (piece, stopped) = stops.push(decoder.push(token))
      text += piece
      let event = TokenEvent(token: token, text: piece, logProb: logProbs[Int(token)],
                             nodeValues: request.returnNodeValues ? evaluator.nodeValues(at: token) : nil)
      if stopped {
        _ = try onToken(event)
        finish = .stop
        break
      }
      guard try onToken(event) else {
        finish = .cancelled
        break
      }
      if tokens.count == settings.maxTokens { break }
      guard state.room > 0 else {
        finish = .context
        break
      }
      try state.append(token)
    }
    if finish != .stop {
      // Flush what the UTF-8 decoder and the stop matcher held back.
      let (tail, stoppedInTail) = stops.push(decoder.finish())
      let rest = stoppedInTail ? tail : tail + stops.finish()
      if stoppedInTail { finish = .stop }
      if !rest.isEmpty {
        text += rest
        if finish != .cancelled {
          _ = try onToken(TokenEvent(token: -1, text: rest, logProb: 0, nodeValues: nil))
        }
      }
    }
    let end = DispatchTime.now()
    return GenerationResult(
      tokens: tokens, text: text, finishReason: finish, promptTokens: state.promptLengths,
      prefillSeconds: Double(prefillEnd.uptimeNanoseconds - start.uptimeNanoseconds) / 1e9,
      decodeSeconds: Double(end.uptimeNanoseconds - prefillEnd.uptimeNanoseconds) / 1e9)
  }

  /// The log-likelihood of `continuation` after `prompt` under a graph: per token and total.
  /// The continuation is tokenized alone (no special tokens) and appended to every model node's
  /// templated prompt. Sampling settings (temperature, top-k, …) do not apply; the graph's own
  /// operators do.
  public func score(graph name: String?, prompt: String, continuation: String,
                    parameters: [String: Double] = [:]) throws -> ScoreResult {
    let graph = try graph(named: name)
    let evaluator = try GraphEvaluator(graph: graph, parameters: try parameterValues(parameters, graph: graph))
    let tokens = graph.tokenizer.encode(continuation, addSpecialTokens: false)
    guard !tokens.isEmpty else { throw RuntimeError(.request, .invalidArgument, "the continuation is empty (no tokens to score)") }
    let state = try DecodeState(graph: graph, prompt: prompt)
    guard state.room >= tokens.count - 1 else {
      throw RuntimeError(.request, .outOfRange, "prompt and continuation (\(tokens.count) tokens) exceed the context length \(graph.contextLength)")
    }
    var logProbs: [Double] = []
    try evaluator.evaluate(logits: state.lastLogits)
    logProbs.append(Double(evaluator.outputLogProbs()[Int(tokens[0])]))
    if tokens.count > 1 {
      let rows = try state.appendAll(Array(tokens.dropLast()))
      for position in 0..<(tokens.count - 1) {
        try evaluator.evaluate(logits: { rows[$0][position] })
        logProbs.append(Double(evaluator.outputLogProbs()[Int(tokens[position + 1])]))
      }
    }
    return ScoreResult(tokens: tokens, logProbs: logProbs)
  }
}

/// The sessions of one request, and each one's latest logits.
final class DecodeState {
  let graph: CompiledGraph
  let sessions: [Session]
  private(set) var logits: [[Float]]
  let promptLengths: [Int]

  /// Opens one session per session spec and prefills it with its templated prompt.
  convenience init(graph: CompiledGraph, prompt: String) throws {
    try self.init(graph: graph, prompts: graph.sessions.map {
      graph.tokenizer.encode($0.render(prompt), addSpecialTokens: $0.addSpecialTokens)
    })
  }

  /// Every session prefilled with the same token ids (no templates; for benchmarks).
  convenience init(graph: CompiledGraph, promptTokens: [Int32]) throws {
    try self.init(graph: graph, prompts: graph.sessions.map { _ in promptTokens })
  }

  /// Session i prefilled with prompts[i].
  init(graph: CompiledGraph, prompts: [[Int32]]) throws {
    self.graph = graph
    var sessions: [Session] = []
    var logits: [[Float]] = []
    var lengths: [Int] = []
    for (spec, ids) in zip(graph.sessions, prompts) {
      guard !ids.isEmpty else {
        throw RuntimeError(.request, .invalidArgument, "the prompt is empty for model '\(spec.model.name)' (after its template, with no BOS token added); give a prompt")
      }
      guard ids.count < spec.model.contextLength else {
        throw RuntimeError(.request, .outOfRange, "the prompt is \(ids.count) tokens for model '\(spec.model.name)', which holds \(spec.model.contextLength)")
      }
      let session = try spec.model.makeSession()
      logits.append(try session.append(ids))
      sessions.append(session)
      lengths.append(ids.count)
    }
    self.sessions = sessions
    self.logits = logits
    self.promptLengths = lengths
  }

  /// Session `s`'s logits after its last token.
  func lastLogits(_ s: Int) -> ArraySlice<Float> { logits[s][...] }

  /// Tokens every session can still take.
  var room: Int { zip(sessions, graph.sessions).map { $1.model.contextLength - $0.count }.min() ?? 0 }

  /// Appends one token to every session.
  func append(_ token: Int32) throws {
    for (s, session) in sessions.enumerated() { logits[s] = try session.append([token]) }
  }

  /// Appends tokens to every session; per session, the logits rows after each token.
  func appendAll(_ tokens: [Int32]) throws -> [[ArraySlice<Float>]] {
    try sessions.map { session in
      let all = try session.append(tokens, allPositions: true)
      let v = session.model.vocabSize
      return (0..<tokens.count).map { all[($0 * v)..<(($0 + 1) * v)] }
    }
  }
}
