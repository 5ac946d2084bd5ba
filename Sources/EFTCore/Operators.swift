import Foundation

/// The log-prob operators of a graph, over [vocab] vectors of natural-log scores.
///
/// −inf is a value: it means "masked". Every operator says what it does with it, and none ever
/// writes NaN (an input vector without NaN gives an output without NaN). Sums of exponentials
/// accumulate in Double; the max is subtracted first (kept strict: it is what makes exp safe).
/// Plain reference versions of each live in the tests (Tests/EFTCoreTests/OperatorTests.swift).
public enum Operators {
  public typealias Vector = UnsafeBufferPointer<Float>
  public typealias Output = UnsafeMutableBufferPointer<Float>

  /// The largest entry (−inf for an all-masked or empty vector).
  @inlinable
  public static func maximum(_ x: Vector) -> Float {
    var m = -Float.infinity
    for v in x where v > m { m = v }
    return m
  }

  /// log Σ exp(x), −inf when every entry is −inf.
  public static func logSumExp(_ x: Vector) -> Float {
    let m = maximum(x)
    guard m > -.infinity else { return -.infinity }
    var sum = 0.0
    for v in x { sum += Double(Foundation.exp(v - m)) }
    return m + Float(Foundation.log(sum))
  }

  /// x − logΣexp(x). −inf stays −inf; all −inf stays all −inf.
  public static func logSoftmax(_ x: Vector, into out: Output) {
    let lse = logSumExp(x)
    guard lse > -.infinity else {
      out.update(repeating: -.infinity)
      return
    }
    for i in x.indices { out[i] = x[i] - lse }
  }

  /// Σ wᵢ·xᵢ. Terms with w = 0 are skipped; a token that is −inf in any other term is −inf.
  public static func linear(_ terms: [(input: Vector, weight: Float)], into out: Output) {
    out.update(repeating: 0)
    var masked = [Bool](repeating: false, count: out.count)
    for (x, w) in terms where w != 0 {
      for i in x.indices {
        let v = x[i]
        if v == -.infinity { masked[i] = true } else { out[i] += w * v }
      }
    }
    for i in out.indices where masked[i] { out[i] = -.infinity }
  }

  /// x / t for t > 0. −inf stays −inf.
  public static func temperature(_ x: Vector, _ t: Float, into out: Output) {
    let inv = 1 / t
    for i in x.indices { out[i] = x[i] * inv }
  }

  /// Keeps entries ≥ the k-th largest (ties kept); others −inf. k ≥ number of entries keeps all.
  public static func topK(_ x: Vector, _ k: Int, into out: Output) {
    let threshold = kthLargest(x, k)
    for i in x.indices { out[i] = x[i] >= threshold ? x[i] : -.infinity }
  }

  /// The k-th largest value (−inf if k exceeds the count of entries).
  static func kthLargest(_ x: Vector, _ k: Int) -> Float {
    guard k >= 1, k <= x.count else { return -.infinity }
    if k <= 64 {
      // A sorted window of the k largest seen so far (descending): O(n·k) worst case, O(n) typical.
      var top = [Float](repeating: -.infinity, count: k)
      for v in x where v > top[k - 1] {
        var j = k - 1
        while j > 0, top[j - 1] < v {
          top[j] = top[j - 1]
          j -= 1
        }
        top[j] = v
      }
      return top[k - 1]
    }
    return x.sorted(by: >)[k - 1]
  }

  /// Nucleus mask: keeps the smallest set of top entries whose softmax mass is ≥ p (ties with
  /// the last kept entry kept); others −inf. p ≥ 1 keeps every entry.
  public static func topP(_ x: Vector, _ p: Double, into out: Output) {
    let lse = logSumExp(x)
    guard lse > -.infinity, p < 1 else {
      _ = out.initialize(from: x)
      return
    }
    let order = x.indices.filter { x[$0] > -.infinity }.sorted { x[$0] > x[$1] }
    var mass = 0.0
    var threshold = -Float.infinity
    for i in order {
      mass += Double(Foundation.exp(x[i] - lse))
      threshold = x[i]
      if mass >= p { break }
    }
    for i in x.indices { out[i] = x[i] >= threshold ? x[i] : -.infinity }
  }

  /// Keeps entries whose softmax probability is ≥ p × the largest probability; others −inf.
  public static func minP(_ x: Vector, _ p: Double, into out: Output) {
    mask(x, byReference: x, alpha: p, into: out)
  }

  /// Keeps `x` where the reference's softmax probability is ≥ alpha × its largest and the
  /// reference is finite; others −inf (the contrastive-decoding plausibility constraint).
  public static func mask(_ x: Vector, byReference reference: Vector, alpha: Double, into out: Output) {
    let m = maximum(reference)
    guard m > -.infinity else {
      out.update(repeating: -.infinity)
      return
    }
    // p_i ≥ α·p_max  ⇔  r_i − r_max ≥ log α   (α = 0: log α = −inf keeps every finite entry)
    let threshold = alpha > 0 ? Double(m) + Foundation.log(alpha) : -Double.infinity
    for i in x.indices {
      let r = reference[i]
      out[i] = (r > -.infinity && Double(r) >= threshold) ? x[i] : -.infinity
    }
  }

  /// Elementwise max: −inf only where every input is −inf.
  public static func maximum(_ inputs: [Vector], into out: Output) {
    out.update(repeating: -.infinity)
    for x in inputs {
      for i in x.indices where x[i] > out[i] { out[i] = x[i] }
    }
  }

  /// Elementwise min: −inf where any input is −inf.
  public static func minimum(_ inputs: [Vector], into out: Output) {
    out.update(repeating: .infinity)
    for x in inputs {
      for i in x.indices where x[i] < out[i] { out[i] = x[i] }
    }
  }
}
