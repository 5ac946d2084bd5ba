// The prefill product's register tile, alone: y[n × rows] = x[n × cols] · Wᵀ with f16 weights,
// the shape of the 82M bench model's MLP up-projection (2048 × 768) and a 128-token prompt, one
// thread, the fastest of 7 runs. run.sh builds it three times: with -target-cpu haswell, the
// AVX2 build's tile (two weight rows × four tokens in 8 lanes: SIMDKernels.block2x4's loop); with
// -target-cpu cascadelake -D ROWS4, the AVX-512 build's (four rows × four tokens in 8 lanes:
// block4x4, sixteen accumulators in 32 registers); with -target-cpu znver4 -D AVX512, four rows
// × four tokens in 16 lanes (512-bit registers).
import Foundation

#if AVX512
typealias V = SIMD16<Float>
let rowsPerTile = 4
@inline(__always) func loadW(_ p: UnsafeRawPointer, _ c: Int) -> V {
  let h = p.loadUnaligned(fromByteOffset: c &* 2, as: SIMD16<UInt16>.self)
  // Lane by lane, as F16Rows.load writes it: one vcvtph2ps.
  return V(Float(Float16(bitPattern: h[0])), Float(Float16(bitPattern: h[1])), Float(Float16(bitPattern: h[2])), Float(Float16(bitPattern: h[3])),
           Float(Float16(bitPattern: h[4])), Float(Float16(bitPattern: h[5])), Float(Float16(bitPattern: h[6])), Float(Float16(bitPattern: h[7])),
           Float(Float16(bitPattern: h[8])), Float(Float16(bitPattern: h[9])), Float(Float16(bitPattern: h[10])), Float(Float16(bitPattern: h[11])),
           Float(Float16(bitPattern: h[12])), Float(Float16(bitPattern: h[13])), Float(Float16(bitPattern: h[14])), Float(Float16(bitPattern: h[15])))
}
#else
typealias V = SIMD8<Float>
#if ROWS4
let rowsPerTile = 4
#else
let rowsPerTile = 2
#endif
@inline(__always) func loadW(_ p: UnsafeRawPointer, _ c: Int) -> V {
  let h = p.loadUnaligned(fromByteOffset: c &* 2, as: SIMD8<UInt16>.self)
  return V(Float(Float16(bitPattern: h[0])), Float(Float16(bitPattern: h[1])), Float(Float16(bitPattern: h[2])), Float(Float16(bitPattern: h[3])),
           Float(Float16(bitPattern: h[4])), Float(Float16(bitPattern: h[5])), Float(Float16(bitPattern: h[6])), Float(Float16(bitPattern: h[7])))
}
#endif

@inline(__always) func loadX(_ p: UnsafePointer<Float>, _ c: Int) -> V { UnsafeRawPointer(p + c).loadUnaligned(as: V.self) }

@inline(never) func product(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, n: Int) {
  for r in stride(from: 0, to: rows, by: rowsPerTile) {
    let p0 = w + r * cols * 2, p1 = p0 + cols * 2
    #if AVX512 || ROWS4
    let p2 = p1 + cols * 2, p3 = p2 + cols * 2
    #endif
    for t in stride(from: 0, to: n, by: 4) {
      let x0 = x + t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols
      var a00 = V(), a01 = V(), a02 = V(), a03 = V(), a10 = V(), a11 = V(), a12 = V(), a13 = V()
      #if AVX512 || ROWS4
      var a20 = V(), a21 = V(), a22 = V(), a23 = V(), a30 = V(), a31 = V(), a32 = V(), a33 = V()
      #endif
      var c = 0
      while c &+ V.scalarCount <= cols {
        let u0 = loadX(x0, c), u1 = loadX(x1, c), u2 = loadX(x2, c), u3 = loadX(x3, c)
        let w0 = loadW(p0, c)
        a00 = a00.addingProduct(w0, u0); a01 = a01.addingProduct(w0, u1); a02 = a02.addingProduct(w0, u2); a03 = a03.addingProduct(w0, u3)
        let w1 = loadW(p1, c)
        a10 = a10.addingProduct(w1, u0); a11 = a11.addingProduct(w1, u1); a12 = a12.addingProduct(w1, u2); a13 = a13.addingProduct(w1, u3)
        #if AVX512 || ROWS4
        let w2 = loadW(p2, c)
        a20 = a20.addingProduct(w2, u0); a21 = a21.addingProduct(w2, u1); a22 = a22.addingProduct(w2, u2); a23 = a23.addingProduct(w2, u3)
        let w3 = loadW(p3, c)
        a30 = a30.addingProduct(w3, u0); a31 = a31.addingProduct(w3, u1); a32 = a32.addingProduct(w3, u2); a33 = a33.addingProduct(w3, u3)
        #endif
        c &+= V.scalarCount
      }
      let yt = y + t * rows + r
      yt[0] = a00.sum(); yt[rows] = a01.sum(); yt[2 * rows] = a02.sum(); yt[3 * rows] = a03.sum()
      yt[1] = a10.sum(); yt[rows + 1] = a11.sum(); yt[2 * rows + 1] = a12.sum(); yt[3 * rows + 1] = a13.sum()
      #if AVX512 || ROWS4
      yt[2] = a20.sum(); yt[rows + 2] = a21.sum(); yt[2 * rows + 2] = a22.sum(); yt[3 * rows + 2] = a23.sum()
      yt[3] = a30.sum(); yt[rows + 3] = a31.sum(); yt[2 * rows + 3] = a32.sum(); yt[3 * rows + 3] = a33.sum()
      #endif
    }
  }
}

let rows = 2048, cols = 768, n = 128
let w = UnsafeMutableRawPointer.allocate(byteCount: rows * cols * 2, alignment: 64)
for i in 0..<rows * cols { w.storeBytes(of: Float16(Float((i * 7919) % 1000) / 1000 - 0.5).bitPattern, toByteOffset: i * 2, as: UInt16.self) }
let x = UnsafeMutablePointer<Float>.allocate(capacity: n * cols)
for i in 0..<n * cols { x[i] = Float((i * 104729) % 1000) / 1000 - 0.5 }
let y = UnsafeMutablePointer<Float>.allocate(capacity: n * rows)
var best = Double.infinity
for _ in 0..<7 {
  let start = Date()
  product(UnsafeRawPointer(w), x, y, rows: rows, cols: cols, n: n)
  best = min(best, Date().timeIntervalSince(start))
}
print(String(format: "%@ tile: %.1f GFLOP/s (checksum %.3f)", rowsPerTile == 2 ? "8-lane 2×4" : V.scalarCount == 8 ? "8-lane 4×4" : "16-lane 4×4", Double(2 * rows * cols * n) / best / 1e9,
             (0..<(n * rows)).reduce(0.0) { $0 + Double(y[$1]) }))
