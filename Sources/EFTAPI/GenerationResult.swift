import Foundation

/// One generated token.
public struct TokenEvent: Sendable {
  public init(token: Int32, text: String, logProb: Float, nodeValues: [Float]?, topLogProbs: [(token: Int32, logProb: Float)] = []) {
    self.token = token
    self.text = text
    self.logProb = logProb
    self.nodeValues = nodeValues
    self.topLogProbs = topLogProbs
  }

  public let token: Int32
  /// Text that became complete with this token (may be empty: a split UTF-8 character, or text
  /// held back because it could be the start of a stop string).
  public let text: String
  /// The token's log-probability under the graph's (renormalised) output.
  public let logProb: Float
  /// Per node, in `CompiledGraph.nodeNames` order, when the request asked for them.
  public let nodeValues: [Float]?
  /// The likeliest tokens under the output at this position, most likely first, when the request
  /// asked for them (`GenerationRequest.topLogProbs`).
  public var topLogProbs: [(token: Int32, logProb: Float)] = []
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

public struct GenerationResult: Sendable, Equatable {
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
  /// Per model, seconds of the backend calls that carried this request's appends, prefill
  /// included (a call batched with other requests counts whole for each).
  public var modelSeconds: [String: Double] = [:]

  public init(tokens: [Int32], text: String, finishReason: FinishReason, promptTokens: [Int], prefillSeconds: Double,
              decodeSeconds: Double, stats: DecodeStats, speculation: SpeculationSettings?, modelSeconds: [String: Double] = [:]) {
    self.tokens = tokens
    self.text = text
    self.finishReason = finishReason
    self.promptTokens = promptTokens
    self.prefillSeconds = prefillSeconds
    self.decodeSeconds = decodeSeconds
    self.stats = stats
    self.speculation = speculation
    self.modelSeconds = modelSeconds
  }

  /// Generated tokens per second of decoding (excludes prefill).
  public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(tokens.count) / decodeSeconds : 0 }
}

/// Counters of one generation.
public struct DecodeStats: Sendable, Equatable {
  /// Decoding steps (one per token without speculation).
  public var steps = 0
  /// Tokens the draft proposed, and how many of them the output accepted.
  public var drafted = 0
  public var accepted = 0
  /// Appends made to the backends, prefill included.
  public var modelCalls = 0

  public init(steps: Int = 0, drafted: Int = 0, accepted: Int = 0, modelCalls: Int = 0) {
    self.steps = steps
    self.drafted = drafted
    self.accepted = accepted
    self.modelCalls = modelCalls
  }

  public var acceptanceRate: Double { drafted > 0 ? Double(accepted) / Double(drafted) : 0 }
}
