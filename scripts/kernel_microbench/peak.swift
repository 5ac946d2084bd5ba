// One core's FMA peak in 8 lanes (AVX2): twelve independent accumulators, no memory traffic.
import Foundation

@inline(never) func fmas(_ count: Int, _ seed: Float) -> Float {
  let m = SIMD8<Float>(repeating: 0.999999), c = SIMD8<Float>(repeating: 1e-7)
  var a0 = SIMD8<Float>(repeating: seed), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5
  var a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11
  for _ in 0..<count {
    a0 = a0.addingProduct(m, c); a1 = a1.addingProduct(m, c); a2 = a2.addingProduct(m, c); a3 = a3.addingProduct(m, c)
    a4 = a4.addingProduct(m, c); a5 = a5.addingProduct(m, c); a6 = a6.addingProduct(m, c); a7 = a7.addingProduct(m, c)
    a8 = a8.addingProduct(m, c); a9 = a9.addingProduct(m, c); a10 = a10.addingProduct(m, c); a11 = a11.addingProduct(m, c)
  }
  return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).sum()
}

let count = 20_000_000
var best = Double.infinity, sink: Float = 0
for i in 0..<5 {
  let start = Date()
  sink += fmas(count, Float(i))
  best = min(best, Date().timeIntervalSince(start))
}
print(String(format: "FMA peak: %.1f GFLOP/s (checksum %g)", Double(count * 12 * 16) / best / 1e9, sink))
