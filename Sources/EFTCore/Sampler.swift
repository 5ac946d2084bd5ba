import Foundation

/// xoshiro256** seeded through SplitMix64: a small, fast, documented generator, so that a seed
/// reproduces a run on every platform (Swift's SystemRandomNumberGenerator cannot be seeded).
/// Reference: https://prng.di.unimi.it/xoshiro256starstar.c
public struct SeededGenerator: RandomNumberGenerator, Sendable {
  private var s: (UInt64, UInt64, UInt64, UInt64)

  public init(seed: UInt64) {
    var x = seed
    func splitmix() -> UInt64 {
      x &+= 0x9E37_79B9_7F4A_7C15
      var z = x
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    s = (splitmix(), splitmix(), splitmix(), splitmix())
  }

  public mutating func next() -> UInt64 {
    let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
    let t = s.1 << 17
    s.2 ^= s.0
    s.3 ^= s.1
    s.1 ^= s.2
    s.0 ^= s.3
    s.2 ^= t
    s.3 = s.3 << 45 | s.3 >> 19
    return result
  }

  /// Uniform in [0, 1), 53 random bits.
  public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// Draws tokens from log-probabilities: temperature, then top-k, top-p, min-p (the order HF
/// transformers applies them), then renormalise and draw by inverse CDF in token-id order.
public enum Sampler {
  /// The probabilities a draw uses (sums to 1), or nil for greedy, or an error when every token
  /// is masked.
  public static func distribution(_ logProbs: [Float], _ options: SamplingOptions) throws -> [Double]? {
    guard options.temperature > 0 else { return nil }
    var x = logProbs
    var scratch = [Float](repeating: 0, count: x.count)
    func apply(_ op: (Operators.Vector, Operators.Output) -> Void) {
      x.withUnsafeBufferPointer { input in scratch.withUnsafeMutableBufferPointer { op(input, $0) } }
      swap(&x, &scratch)
    }
    if options.temperature != 1 { apply { Operators.temperature($0, Float(options.temperature), into: $1) } }
    if options.topK > 0 { apply { Operators.topK($0, options.topK, into: $1) } }
    if options.topP > 0, options.topP < 1 { apply { Operators.topP($0, options.topP, into: $1) } }
    if options.minP > 0 { apply { Operators.minP($0, options.minP, into: $1) } }
    let m = x.withUnsafeBufferPointer(Operators.maximum)
    guard m > -.infinity else { throw maskedEverything() }
    var p = x.map { Double(Foundation.exp($0 - m)) }
    let total = p.reduce(0, +)
    for i in p.indices { p[i] /= total }
    return p
  }

  /// One token.
  public static func sample(_ logProbs: [Float], _ options: SamplingOptions,
                            using rng: inout SeededGenerator) throws -> Int32 {
    guard let p = try distribution(logProbs, options) else { return try argmax(logProbs) }
    return draw(p, using: &rng)
  }

  /// A token drawn from weights `w` (non-negative, not all zero; need not sum to 1) by inverse
  /// CDF in token-id order: one uniform number per draw.
  static func draw(_ w: [Double], using rng: inout SeededGenerator) -> Int32 {
    let u = rng.nextUnit() * w.reduce(0, +)
    var cumulative = 0.0
    var last = 0
    for i in w.indices where w[i] > 0 {
      cumulative += w[i]
      last = i
      if u < cumulative { return Int32(i) }
    }
    return Int32(last)  // u within rounding of the total
  }

  /// The most probable token; ties go to the lowest id.
  public static func argmax(_ logProbs: [Float]) throws -> Int32 {
    try logProbs.withUnsafeBufferPointer { try argmax($0) }
  }

  public static func argmax(_ logProbs: UnsafeBufferPointer<Float>) throws -> Int32 {
    var best = -1
    var bestValue = -Float.infinity
    for (i, v) in logProbs.enumerated() where v > bestValue {
      best = i
      bestValue = v
    }
    guard best >= 0 else { throw maskedEverything() }
    return Int32(best)
  }

  /// The `k` likeliest tokens (finite log-probs only), most likely first, ties by lower id.
  static func top(_ k: Int, of logProbs: [Float]) -> [(token: Int32, logProb: Float)] {
    guard k > 0 else { return [] }
    var best: [(token: Int32, logProb: Float)] = []
    for (i, v) in logProbs.enumerated() where v > -.infinity && (best.count < k || v > best[best.count - 1].logProb) {
      // Insert after every entry at least as likely (so an earlier, lower id wins a tie).
      let at = best.firstIndex { $0.logProb < v } ?? best.count
      best.insert((Int32(i), v), at: at)
      if best.count > k { best.removeLast() }
    }
    return best
  }

  static func maskedEverything() -> RuntimeError {
    RuntimeError(.request, .failedPrecondition, "every token is masked (−inf) in the graph's output at this step; loosen the masks (top_k/top_p/min_p/plausibility) or check the graph")
  }
}
