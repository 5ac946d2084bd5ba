// What decides how a request decodes: a graph's defaults, a request's overrides resolved against
// them, and a graph's parameters.

/// How a token is drawn from the graph's output distribution (see `eft.v1.Sampling`).
public struct SamplingOptions: Sendable, Equatable {
  /// 0 = greedy. At most `maxTemperature`.
  public var temperature: Double = 1
  /// 0 = off.
  public var topK: Int = 0
  /// 0 or ≥ 1 = off.
  public var topP: Double = 0
  /// 0 = off.
  public var minP: Double = 0
  public var seed: UInt64 = 0

  public init(temperature: Double = 1, topK: Int = 0, topP: Double = 0, minP: Double = 0, seed: UInt64 = 0) {
    self.temperature = temperature
    self.topK = topK
    self.topP = topP
    self.minP = minP
    self.seed = seed
  }

  /// The largest temperature (sampling and the `temperature` operator): log-probs are divided by
  /// it in Float, where a larger one makes every finite log-prob 0 (uniform sampling) and turns
  /// a masked token's −inf into NaN once it overflows Float.
  public static let maxTemperature: Double = 10_000

  /// The error for an out-of-range field, naming it.
  public func validate() throws {
    func bad(_ field: String, _ value: Any, _ range: String) -> RuntimeError {
      RuntimeError(.request, .invalidArgument, "sampling.\(field) = \(value) is outside \(range)")
    }
    guard temperature >= 0, temperature <= Self.maxTemperature else { throw bad("temperature", temperature, "[0, \(Int(Self.maxTemperature))]") }
    guard topK >= 0 else { throw bad("top_k", topK, "[0, ∞)") }
    guard topP >= 0, topP <= 1 else { throw bad("top_p", topP, "[0, 1]") }
    guard minP >= 0, minP <= 1 else { throw bad("min_p", minP, "[0, 1]") }
  }
}

/// A named scalar a request may override.
public struct GraphParameter: Sendable, Equatable {
  public let name: String
  public let defaultValue: Double
  public let description: String

  public init(name: String, defaultValue: Double, description: String) {
    self.name = name
    self.defaultValue = defaultValue
    self.description = description
  }
}

/// Everything that decides how one request decodes, after request overrides.
public struct GenerationSettings: Sendable, Equatable {
  /// The most stop strings a request may give, and the longest one in UTF-8 bytes: every
  /// generated token is matched against all of them.
  public static let maxStopStrings = 16
  public static let maxStopBytes = 256

  public var sampling = SamplingOptions()
  public var maxTokens = 256
  public var stop: [String] = []
  public var stopAtEOS = true
  /// nil: plain decoding.
  public var speculation: SpeculationSettings?

  public init() {}
}

/// Speculative decoding of one request (see `eft.v1.Speculative`).
public struct SpeculationSettings: Sendable, Equatable {
  public static let defaultLookahead = 4
  public static let maxLookahead = 64
  /// The node that drafts.
  public let draft: String
  /// Tokens drafted per step (the most, when adaptive).
  public var lookahead: Int
  public var adaptive: Bool

  /// Settings as they are; `CompiledGraph.speculation(draft:lookahead:adaptive:)` makes checked ones.
  public init(draft: String, lookahead: Int, adaptive: Bool) {
    self.draft = draft
    self.lookahead = lookahead
    self.adaptive = adaptive
  }
}
