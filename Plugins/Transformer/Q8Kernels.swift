#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// Products with Q8_0 weights. The activations are quantized too, per block of 32 to Int16 with
/// a Float scale (dx = max|x|/32767, 256 times finer than llama.cpp's 8-bit activations), so
/// that a block's products are exact integer sums: Σ_blocks (dw·dx)·Σ qw·qx. The reference and
/// the SIMD kernels compute exactly that; they differ only in how the Float sum over blocks is
/// associated.
struct Q16Activations {
  /// [n × cols] Int16, then [n × cols/32] Float scales, in one buffer of `scratch`.
  let q: UnsafeMutablePointer<Int16>
  let d: UnsafeMutablePointer<Float>
  let cols: Int

  init(_ x: UnsafePointer<Float>, n: Int, cols: Int, scratch: Scratch) {
    let blocks = cols / Q8_0.blockSize
    self.cols = cols
    // Int16s take half a Float each.
    let raw = UnsafeMutableRawPointer(scratch.floats(.q16, (n * cols + 1) / 2 + n * blocks))
    q = raw.bindMemory(to: Int16.self, capacity: n * cols)
    d = (raw + (n * cols + 1) / 2 * 4).bindMemory(to: Float.self, capacity: n * blocks)
    for b in 0..<(n * blocks) {
      let values = x + b * Q8_0.blockSize
      var amax: Float = 0
      for j in 0..<Q8_0.blockSize { amax = max(amax, abs(values[j])) }
      let scale = amax / 32767
      let inverse: Float = scale != 0 ? 1 / scale : 0
      d[b] = scale
      for j in 0..<Q8_0.blockSize {
        let v = (values[j] * inverse).rounded(.toNearestOrAwayFromZero)
        q[b * Q8_0.blockSize + j] = Int16(v.isNaN ? 0 : min(32767, max(-32767, v)))
      }
    }
  }

  /// Token t's block b: 32 Int16s and their scale.
  @inline(__always) func block(_ t: Int, _ b: Int) -> (UnsafeRawPointer, Float) {
    let i = t &* (cols / Q8_0.blockSize) &+ b
    return (UnsafeRawPointer(q + i &* Q8_0.blockSize), d[i])
  }
}

enum Q8Dot {
  /// Σ qw·qx over one block (32 Int8 weights at `w`, 32 Int16 activations at `x`) as eight
  /// Int32 partial sums, lane j holding elements {2j, 2j+1, 16+2j, 17+2j}, converted to Float.
  /// On x86-64: vpmovsxbw, vpmaddwd, vpaddd, vcvtdq2ps (|sum| ≤ 32·127·32767 < 2³¹).
  @inline(__always)
  static func block(_ w: UnsafeRawPointer, _ x: UnsafeRawPointer) -> SIMD8<Float> {
    #if arch(x86_64)
    let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.assumingMemoryBound(to: __m128i.self)))
    let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((w + 16).assumingMemoryBound(to: __m128i.self)))
    let x0 = _mm256_loadu_si256(x.assumingMemoryBound(to: __m256i.self))
    let x1 = _mm256_loadu_si256((x + 32).assumingMemoryBound(to: __m256i.self))
    let sum = _mm256_add_epi32(_mm256_madd_epi16(w0, x0), _mm256_madd_epi16(w1, x1))
    return unsafeBitCast(_mm256_cvtepi32_ps(sum), to: SIMD8<Float>.self)
    #else
    var lanes = SIMD8<Float>()
    for j in 0..<8 {
      var s: Int32 = 0
      for e in [2 * j, 2 * j + 1, 16 + 2 * j, 17 + 2 * j] {
        s &+= Int32(w.load(fromByteOffset: e, as: Int8.self)) &* Int32(x.loadUnaligned(fromByteOffset: 2 * e, as: Int16.self))
      }
      lanes[j] = Float(s)
    }
    return lanes
    #endif
  }

  /// A Q8_0 row's block b: its Int8s and scale.
  @inline(__always)
  static func weights(_ row: UnsafeRawPointer, _ b: Int) -> (UnsafeRawPointer, Float) {
    let p = row + b &* Q8_0.blockBytes
    return (p + 2, Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self))))
  }
}

extension ReferenceKernels {
  /// The definition: per row and token, Σ over blocks in order of Float(dw·dx) · Float(Σ qw·qx),
  /// the integer sum exact.
  func multiplyQ8(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) {
    ScratchPool.with { scratch in
      let a = Q16Activations(x, n: n, cols: w.cols, scratch: scratch)
      let rowBytes = DType.q8_0.rowBytes(w.cols)
      for t in 0..<n {
        for r in 0..<w.rows {
          var sum: Float = 0
          for b in 0..<(w.cols / Q8_0.blockSize) {
            let (qw, dw) = Q8Dot.weights(w.data + r * rowBytes, b)
            let (qx, dx) = a.block(t, b)
            var dot = 0
            for j in 0..<Q8_0.blockSize {
              dot += Int(qw.load(fromByteOffset: j, as: Int8.self)) * Int(qx.loadUnaligned(fromByteOffset: 2 * j, as: Int16.self))
            }
            sum += dw * dx * Float(dot)
          }
          y[t * w.rows + r] = sum
        }
      }
    }
  }
}

extension SIMDKernels {
  /// Rows split over the threads as in `run`, and within a thread's range taken four at a time
  /// a quarter of the range apart, as `multiplyPart` takes them (four sequential streams from
  /// memory); per four rows, the first token (four rows × one token: the four streams), then the
  /// others four at a time (two rows × four tokens: each weight block is widened once for four
  /// tokens), then one at a time. Every (row, token) pair runs the same operations in the same
  /// order whichever shape computes it — per block one `Q8Dot.block`, converted, times the Float
  /// dw·dx, added lane-wise; the lanes summed at the end — so results do not depend on the rows
  /// in the call.
  func multiplyQ8(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) {
    ScratchPool.with { scratch in
      let a = Q16Activations(x, n: n, cols: w.cols, scratch: scratch)
      let parts = min(threads, (w.rows + 7) / 8)
      parallelFor(parts, work: w.rows * w.cols * max(1, n), Q8Product(w: w.data, rows: w.rows, cols: w.cols, n: n, a: a, y: y, parts: parts),
                  Self.q8ProductPart)
    }
  }

  /// A Q8_0 product's arguments, for its parallel parts.
  struct Q8Product {
    let w: UnsafeRawPointer
    let rows: Int, cols: Int, n: Int
    let a: Q16Activations
    let y: UnsafeMutablePointer<Float>
    let parts: Int
  }

  static let q8ProductPart: ParallelJob = { arguments, part in
    let p = arguments.assumingMemoryBound(to: Q8Product.self).pointee
    let w = p.w, rows = p.rows, n = p.n, a = p.a, y = p.y
    let blocks = p.cols / Q8_0.blockSize, rowBytes = DType.q8_0.rowBytes(p.cols)
    let (lo, hi, q) = SIMDKernels.partRows(part, of: p.parts, rows: rows)
    let stride = q * rowBytes
    for r in lo..<(lo + q) {
      // The first token reads the four rows from memory together (four streams); the rest find
      // them in L1.
      SIMDKernels.q8Rows4x1(w + r * rowBytes, stride, blocks, a, 0, y + r, q)
      var t = 1
      while t + 4 <= n {
        SIMDKernels.q8Rows2x4(w + r * rowBytes, stride, blocks, a, t, y + t * rows + r, rows, q)
        SIMDKernels.q8Rows2x4(w + (r + 2 * q) * rowBytes, stride, blocks, a, t, y + t * rows + r + 2 * q, rows, q)
        t += 4
      }
      while t < n {
        SIMDKernels.q8Rows4x1(w + r * rowBytes, stride, blocks, a, t, y + t * rows + r, q)
        t += 1
      }
    }
    for r in (lo + 4 * q)..<hi {
      for t in 0..<n { y[t * rows + r] = SIMDKernels.q8Dot(w + r * rowBytes, blocks, a, t) }
    }
  }

  @inline(__always)
  static func q8Dot(_ row: UnsafeRawPointer, _ blocks: Int, _ a: Q16Activations, _ t: Int) -> Float {
    var acc = SIMD8<Float>()
    for b in 0..<blocks {
      let (qw, dw) = Q8Dot.weights(row, b), (qx, dx) = a.block(t, b)
      acc = acc.addingProduct(Q8Dot.block(qw, qx), SIMD8(repeating: dw * dx))
    }
    return acc.sum()
  }

  /// Four rows `stride` bytes apart × one token; writes y[k·yStep] for k in 0..<4.
  @inline(__always)
  static func q8Rows4x1(_ w: UnsafeRawPointer, _ stride: Int, _ blocks: Int, _ a: Q16Activations, _ t: Int,
                        _ y: UnsafeMutablePointer<Float>, _ yStep: Int) {
    var acc = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
    @inline(__always) func step(_ acc: inout SIMD8<Float>, _ k: Int, _ b: Int, _ qx: UnsafeRawPointer, _ dx: Float) {
      let (qw, dw) = Q8Dot.weights(w + k &* stride, b)
      acc = acc.addingProduct(Q8Dot.block(qw, qx), SIMD8(repeating: dw * dx))
    }
    for b in 0..<blocks {
      let (qx, dx) = a.block(t, b)
      step(&acc.0, 0, b, qx, dx); step(&acc.1, 1, b, qx, dx); step(&acc.2, 2, b, qx, dx); step(&acc.3, 3, b, qx, dx)
    }
    y[0] = acc.0.sum(); y[yStep] = acc.1.sum(); y[2 &* yStep] = acc.2.sum(); y[3 &* yStep] = acc.3.sum()
  }

  /// Two rows `rowBytes` apart × four tokens t..<t+4; writes y[u·stride] and y[u·stride + yStep]
  /// for u in 0..<4.
  @inline(__always)
  static func q8Rows2x4(_ w: UnsafeRawPointer, _ rowBytes: Int, _ blocks: Int, _ a: Q16Activations, _ t: Int,
                        _ y: UnsafeMutablePointer<Float>, _ stride: Int, _ yStep: Int) {
    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
    var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
    for b in 0..<blocks {
      let (q0, d0) = Q8Dot.weights(w, b), (q1, d1) = Q8Dot.weights(w + rowBytes, b)
      let (x0, e0) = a.block(t, b), (x1, e1) = a.block(t &+ 1, b)
      let (x2, e2) = a.block(t &+ 2, b), (x3, e3) = a.block(t &+ 3, b)
      a00 = a00.addingProduct(Q8Dot.block(q0, x0), SIMD8(repeating: d0 * e0))
      a01 = a01.addingProduct(Q8Dot.block(q0, x1), SIMD8(repeating: d0 * e1))
      a02 = a02.addingProduct(Q8Dot.block(q0, x2), SIMD8(repeating: d0 * e2))
      a03 = a03.addingProduct(Q8Dot.block(q0, x3), SIMD8(repeating: d0 * e3))
      a10 = a10.addingProduct(Q8Dot.block(q1, x0), SIMD8(repeating: d1 * e0))
      a11 = a11.addingProduct(Q8Dot.block(q1, x1), SIMD8(repeating: d1 * e1))
      a12 = a12.addingProduct(Q8Dot.block(q1, x2), SIMD8(repeating: d1 * e2))
      a13 = a13.addingProduct(Q8Dot.block(q1, x3), SIMD8(repeating: d1 * e3))
    }
    y[0] = a00.sum(); y[stride] = a01.sum(); y[2 &* stride] = a02.sum(); y[3 &* stride] = a03.sum()
    y[yStep] = a10.sum(); y[stride &+ yStep] = a11.sum(); y[2 &* stride &+ yStep] = a12.sum(); y[3 &* stride &+ yStep] = a13.sum()
  }
}
