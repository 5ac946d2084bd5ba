import Foundation
import Testing

@testable import EFTCore

/// Each operator against a plain Double computation written from its definition in
/// proto/eft/v1/config.proto, on random vectors with masked (−inf) entries. Tolerance 1e-5
/// (Float32 operators against Double references).
@Suite struct OperatorTests {
  static let n = 37

  /// A vector of random scores with a few −inf entries (deterministic for `seed`).
  static func vector(_ seed: UInt64, masked: Int = 4) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    var v = (0..<n).map { _ in Float(rng.nextUnit() * 8 - 6) }
    for _ in 0..<masked { v[Int(rng.next() % UInt64(n))] = -.infinity }
    return v
  }

  static let allMasked = [Float](repeating: -.infinity, count: n)

  func run(_ inputs: [[Float]], _ op: ([Operators.Vector], Operators.Output) -> Void) -> [Float] {
    var out = [Float](repeating: .nan, count: inputs[0].count)
    func nest(_ i: Int, _ acc: [Operators.Vector]) {
      if i == inputs.count {
        out.withUnsafeMutableBufferPointer { op(acc, $0) }
        return
      }
      inputs[i].withUnsafeBufferPointer { nest(i + 1, acc + [$0]) }
    }
    nest(0, [])
    return out
  }

  func expectClose(_ got: [Float], _ want: [Double], _ what: String) {
    #expect(got.count == want.count)
    for (i, (g, w)) in zip(got, want).enumerated() {
      #expect(!g.isNaN, "\(what)[\(i)] is NaN")
      if w == -.infinity || w == .infinity {
        #expect(Double(g) == w, "\(what)[\(i)]: \(g) vs \(w)")
      } else {
        #expect(abs(Double(g) - w) <= 1e-5 * max(1, abs(w)), "\(what)[\(i)]: \(g) vs \(w)")
      }
    }
  }

  @Test(arguments: [1, 2, 3] as [UInt64])
  func logSoftmax(seed: UInt64) {
    let x = Self.vector(seed)
    expectClose(run([x]) { Operators.logSoftmax($0[0], into: $1) }, Reference.logSoftmax(x.map(Double.init)), "logSoftmax")
    let p = Reference.softmax(x.map(Double.init)).reduce(0, +)
    #expect(abs(p - 1) < 1e-12)
  }

  @Test func logSoftmaxOfAllMaskedIsAllMasked() {
    let out = run([Self.allMasked]) { Operators.logSoftmax($0[0], into: $1) }
    #expect(out.allSatisfy { $0 == -.infinity })
  }

  @Test(arguments: [4, 5] as [UInt64])
  func linear(seed: UInt64) {
    let a = Self.vector(seed), b = Self.vector(seed + 100), c = Self.vector(seed + 200)
    let weights: [Float] = [1, 0.5, -0.5]
    let got = run([a, b, c]) { Operators.linear(zip($0, weights).map { ($0, $1) }, into: $1) }
    let want = (0..<Self.n).map { i -> Double in
      let xs = [a[i], b[i], c[i]]
      if xs.contains(-.infinity) { return -.infinity }  // masked in any nonzero-weight input
      return zip(xs, weights).map { Double($0) * Double($1) }.reduce(0, +)
    }
    expectClose(got, want, "linear")
  }

  @Test func linearDefinesMinusInfMinusMinusInfAsMasked() {
    let a: [Float] = [-.infinity, 0, -.infinity, -1]
    let b: [Float] = [-.infinity, -.infinity, 0, -2]
    let got = run([a, b]) { Operators.linear([($0[0], 1), ($0[1], -1)], into: $1) }
    #expect(got == [-.infinity, -.infinity, -.infinity, 1])
  }

  @Test func linearSkipsZeroWeightTerms() {
    let a: [Float] = [-1, -2]
    let b: [Float] = [-.infinity, -3]
    let got = run([a, b]) { Operators.linear([($0[0], 2), ($0[1], 0)], into: $1) }
    #expect(got == [-2, -4])
  }

  @Test func temperature() {
    let x = Self.vector(6)
    expectClose(run([x]) { Operators.temperature($0[0], 0.5, into: $1) }, x.map { Double($0) / 0.5 }, "temperature")
  }

  @Test(arguments: [1, 3, 10, 33, 36, 37, 100])
  func topK(k: Int) {
    let x = Self.vector(7)
    let sorted = x.map(Double.init).sorted(by: >)
    let threshold = k <= x.count ? sorted[k - 1] : -.infinity
    let want = x.map { Double($0) >= threshold ? Double($0) : -.infinity }
    expectClose(run([x]) { Operators.topK($0[0], k, into: $1) }, want, "topK(\(k))")
  }

  @Test func topKKeepsTies() {
    let x: [Float] = [0, -1, 0, -2, 0]
    #expect(run([x]) { Operators.topK($0[0], 2, into: $1) } == [0, -.infinity, 0, -.infinity, 0])
  }

  @Test(arguments: [0.1, 0.5, 0.9, 0.999, 1.0])
  func topP(p: Double) {
    let x = Self.vector(8)
    let probs = Reference.softmax(x.map(Double.init))
    // Smallest prefix of the descending order with mass ≥ p; ties with the last one kept.
    let order = probs.indices.sorted { probs[$0] > probs[$1] }
    var mass = 0.0
    var threshold = -Double.infinity
    for i in order where probs[i] > 0 {
      mass += probs[i]
      threshold = Double(x[i])
      if mass >= p { break }
    }
    let want = x.map { Double($0) >= threshold ? Double($0) : -.infinity }
    expectClose(run([x]) { Operators.topP($0[0], p, into: $1) }, want, "topP(\(p))")
  }

  @Test(arguments: [0.0, 0.05, 0.3, 1.0])
  func minP(p: Double) {
    let x = Self.vector(9)
    let probs = Reference.softmax(x.map(Double.init))
    let best = probs.max()!
    let want = x.indices.map { probs[$0] > 0 && probs[$0] >= p * best * (1 - 1e-12) ? Double(x[$0]) : -.infinity }
    expectClose(run([x]) { Operators.minP($0[0], p, into: $1) }, want, "minP(\(p))")
  }

  @Test(arguments: [0.0, 0.1, 0.5])
  func plausibility(alpha: Double) {
    let x = Self.vector(10), reference = Self.vector(11)
    let probs = Reference.softmax(reference.map(Double.init))
    let best = probs.max()!
    let want = x.indices.map { probs[$0] > 0 && probs[$0] >= alpha * best * (1 - 1e-12) ? Double(x[$0]) : -.infinity }
    expectClose(run([x, reference]) { Operators.mask($0[0], byReference: $0[1], alpha: alpha, into: $1) }, want, "plausibility(\(alpha))")
  }

  @Test func maxAndMin() {
    let a = Self.vector(12), b = Self.vector(13)
    expectClose(run([a, b]) { Operators.maximum($0, into: $1) }, zip(a, b).map { Double(max($0, $1)) }, "max")
    expectClose(run([a, b]) { Operators.minimum($0, into: $1) }, zip(a, b).map { Double(min($0, $1)) }, "min")
    // max is −inf only where both are; min wherever either is.
    for i in a.indices {
      let mx = run([a, b]) { Operators.maximum($0, into: $1) }[i]
      #expect((mx == -.infinity) == (a[i] == -.infinity && b[i] == -.infinity))
    }
  }

  @Test func masksOfAnAllMaskedVectorNeverProduceNaN() {
    let m = Self.allMasked
    let outs = [
      run([m]) { Operators.topK($0[0], 3, into: $1) },
      run([m]) { Operators.topP($0[0], 0.5, into: $1) },
      run([m]) { Operators.minP($0[0], 0.1, into: $1) },
      run([Self.vector(1), m]) { Operators.mask($0[0], byReference: $0[1], alpha: 0.1, into: $1) },
      run([m]) { Operators.temperature($0[0], 0.7, into: $1) },
      run([m, m]) { Operators.linear([($0[0], 1), ($0[1], -1)], into: $1) },
    ]
    for out in outs { #expect(out.allSatisfy { $0 == -.infinity }) }
  }
}

@Suite struct WeightExpressionTests {
  @Test func parsesAndEvaluates() throws {
    let values = ["beta": 0.5, "lambda": 0.25]
    let cases: [(String, Double)] = [
      ("beta", 0.5), ("-beta", -0.5), ("1 - lambda", 0.75), ("0.5 * (1 + beta)", 0.75),
      ("2*beta/4", 0.25), ("--beta", 0.5), ("1e-1 + 1", 1.1), ("1 - 2 - 3", -4),
    ]
    for (text, want) in cases {
      #expect(abs(try WeightExpression.parse(text).evaluate(values) - want) < 1e-12, "\(text)")
    }
    #expect(try WeightExpression.parse("1 - lambda * beta").parameters == ["lambda", "beta"])
  }

  @Test(arguments: ["", "1 +", "(beta", "beta)", "2 $ 3", "1..2"])
  func malformedExpressionsThrow(text: String) {
    #expect(throws: WeightExpression.ParseError.self) { try WeightExpression.parse(text) }
  }
}
