import EFTTokenizer
import Foundation

/// What a client asks for. Every optional field overrides the graph's default when set.
public struct GenerationRequest: Sendable {
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
  public let stats: DecodeStats
  /// The speculation the request decoded with; nil when off.
  public let speculation: SpeculationSettings?
  /// Generated tokens per second of decoding (excludes prefill).
  public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(tokens.count) / decodeSeconds : 0 }
}

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
    if let draft = request.draft {
      s.speculation = try graph.speculation(draft: draft, lookahead: s.speculation?.lookahead ?? SpeculationSettings.defaultLookahead,
                                            adaptive: s.speculation?.adaptive ?? false)
    }
    if request.speculative == true, s.speculation == nil {
      throw RuntimeError(.request, .invalidArgument, "graph '\(graph.name)' has no speculative section; name a draft node (--draft NODE)")
    }
    if request.speculative == false || request.lookahead == 0 { s.speculation = nil }
    if let k = request.lookahead, k != 0, request.speculative != false {
      guard let spec = s.speculation else {
        throw RuntimeError(.request, .invalidArgument, "lookahead = \(k) but graph '\(graph.name)' has no speculative section; name a draft node (--draft NODE)")
      }
      s.speculation = try graph.speculation(draft: spec.draft, lookahead: k, adaptive: spec.adaptive)
    }
    if let adaptive = request.adaptiveLookahead { s.speculation?.adaptive = adaptive }
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
  /// returns false to stop (finish reason `.cancelled`). Runs on the calling thread; its model
  /// appends run in the scheduler's steps, batched with other requests' (so `onToken` should
  /// return quickly: the others' next step waits for it). `cancellation` is polled while the
  /// request waits for a step (a cancelled prefill throws `.cancelled`).
  public func generate(_ request: GenerationRequest, cancellation: (any CancellationSignal)? = nil,
                       onToken: (TokenEvent) throws -> Bool = { _ in true }) throws -> GenerationResult {
    let graph = try graph(named: request.graph)
    let settings = try settings(for: request, graph: graph)
    let evaluator = try GraphEvaluator(graph: graph, parameters: try parameterValues(request.parameters, graph: graph))

    let start = DispatchTime.now()
    let state: DecodeState
    do {
      if let ids = request.promptTokens {
        state = try DecodeState(graph: graph, prompts: graph.sessions.map { _ in ids }, scheduler: scheduler, cancellation: cancellation)
      } else {
        state = try DecodeState(graph: graph, prompt: request.prompt, scheduler: scheduler, cancellation: cancellation)
      }
    } catch let error as RuntimeError where error.code == .cancelled {
      // Cancelled while waiting for its prefill: a generation of no tokens.
      return GenerationResult(tokens: [], text: "", finishReason: .cancelled, promptTokens: [],
                              prefillSeconds: Timing.seconds(since: start), decodeSeconds: 0, stats: DecodeStats(),
                              speculation: settings.speculation)
    }
    let prefillEnd = DispatchTime.now()

    var decoder = Decoder(state: state, evaluator: evaluator, settings: settings, nodeValues: request.returnNodeValues)
    var tokens: [Int32] = []
    var text = ""
    var streaming = StreamingDecoder(tokenizer: graph.tokenizer)
    var stops = StopMatcher(stops: settings.stop)
    var finish = FinishReason.length
    decoding: while tokens.count < settings.maxTokens {
      guard state.room >= 0 else {
        finish = .context
        break
      }
      let chosenTokens: [ChosenToken]
      do {
        chosenTokens = try decoder.step(limit: settings.maxTokens - tokens.count)
      } catch let error as RuntimeError where error.code == .cancelled {
        finish = .cancelled  // while waiting for a step
        break decoding
      }
      for chosen in chosenTokens {
        if settings.stopAtEOS, graph.eosTokens.contains(chosen.token) {
          finish = .eos
          break decoding
        }
        tokens.append(chosen.token)
        let (piece, stopped) = stops.push(streaming.push(chosen.token))
        text += piece
        let event = TokenEvent(token: chosen.token, text: piece, logProb: chosen.logProb, nodeValues: chosen.nodeValues)
        if stopped {
          _ = try onToken(event)
          finish = .stop
          break decoding
        }
        guard try onToken(event) else {
          finish = .cancelled
          break decoding
        }
      }
    }
    state.finishModelWork()
    if finish != .stop {
      // Flush what the UTF-8 decoder and the stop matcher held back.
      let (tail, stoppedInTail) = stops.push(streaming.finish())
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
      decodeSeconds: Double(end.uptimeNanoseconds - prefillEnd.uptimeNanoseconds) / 1e9,
      stats: decoder.stats, speculation: settings.speculation)
  }

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
