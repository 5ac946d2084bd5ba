#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// Products with block-quantized weights (Q8_0, Q4_0: `BlockFormat`). The activations are
/// quantized too, per block of 32 to Int16 with a Float scale (dx = max|x|/32767, 256 times finer
/// than llama.cpp's 8-bit activations), so that a block's products are exact integer sums:
/// Σ_blocks (dw·dx)·Σ qw·qx. The reference and the SIMD kernels compute exactly that; they differ
/// only in how the Float sum over blocks is associated.
@usableFromInline
struct Q16Activations {
  /// [n × cols] Int16, then [n × cols/32] Float scales, then per block eight Int32 lanes holding
  /// −offset·Σqx in lane 0 (the correction `Q4_0.dot` adds; not written for offset 0), in one
  /// buffer of `scratch`.
  @usableFromInline let q: UnsafeMutablePointer<Int16>
  @usableFromInline let d: UnsafeMutablePointer<Float>
  @usableFromInline let corrections: UnsafeMutablePointer<Int32>
  @usableFromInline let cols: Int

  /// Room for n rows of `cols` activations in `scratch`; `quantize` or `quantizeReference` fills it.
  init(n: Int, cols: Int, scratch: Scratch) {
    let blocks = cols / blockSize
    self.cols = cols
    // Int16s take half a Float each.
    let raw = UnsafeMutableRawPointer(scratch.floats(.q16, (n * cols + 1) / 2 + n * blocks * 9))
    q = raw.bindMemory(to: Int16.self, capacity: n * cols)
    d = (raw + (n * cols + 1) / 2 * 4).bindMemory(to: Float.self, capacity: n * blocks)
    corrections = (raw + ((n * cols + 1) / 2 + n * blocks) * 4).bindMemory(to: Int32.self, capacity: n * blocks * 8)
  }

  /// The definition, one value at a time: blocks `range` of `x` (block b is x[32b..<32b+32]):
  /// dx = max|x|/32767, q = round(x·(1/dx)) (halves away from zero; NaN 0, clamped to ±32767),
  /// and for a format with an offset, −offset·Σq in lane 0 of the block's correction lanes.
  func quantizeReference(_ x: UnsafePointer<Float>, blocks range: Range<Int>, offset: Int32) {
    for b in range {
      let values = x + b * blockSize
      var amax: Float = 0
      for j in 0..<blockSize { amax = max(amax, abs(values[j])) }
      let scale = amax / 32767
      let inverse: Float = scale != 0 ? 1 / scale : 0
      d[b] = scale
      for j in 0..<blockSize {
        let v = (values[j] * inverse).rounded(.toNearestOrAwayFromZero)
        q[b * blockSize + j] = Int16(v.isNaN ? 0 : min(32767, max(-32767, v)))
      }
      if offset != 0 {
        var sum: Int32 = 0
        for j in 0..<blockSize { sum += Int32(q[b * blockSize + j]) }
        (corrections + b * 8).initialize(repeating: 0, count: 8)
        corrections[b * 8] = -offset * sum
      }
    }
  }

  /// `quantizeReference`, eight values at a time: the same scales, values and corrections (tested).
  func quantize(_ x: UnsafePointer<Float>, blocks range: Range<Int>, offset: Int32) {
    #if arch(x86_64)
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
    for b in range {
      let values = x + b * blockSize
      let v0 = load(values), v1 = load(values + 8), v2 = load(values + 16), v3 = load(values + 24)
      // vmaxps returns its second operand when either is NaN: NaNs are skipped, as max(_:_:) does.
      @inline(__always) func absMax(_ v: SIMD8<Float>, _ m: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(_mm256_max_ps(unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x7fff_ffff, to: __m256.self), unsafeBitCast(m, to: __m256.self)), to: SIMD8<Float>.self)
      }
      let m = absMax(v3, absMax(v2, absMax(v1, absMax(v0, SIMD8()))))
      var amax: Float = 0
      for j in 0..<8 { amax = max(amax, m[j]) }
      let scale = amax / 32767
      let inverse: Float = scale != 0 ? 1 / scale : 0
      d[b] = scale
      let factor = SIMD8<Float>(repeating: inverse)
      // (No local function capturing `sum`: the capture put it in a heap box per block.)
      let out = q + b * blockSize
      let r0 = Self.store(v0 * factor, out), r1 = Self.store(v1 * factor, out + 8)
      let r2 = Self.store(v2 * factor, out + 16), r3 = Self.store(v3 * factor, out + 24)
      let sum = r0 &+ r1 &+ r2 &+ r3
      if offset != 0 {
        (corrections + b * 8).initialize(repeating: 0, count: 8)
        corrections[b * 8] = -offset * sum.wrappedSum()
      }
    }
    #else
    quantizeReference(x, blocks: range, offset: offset)
    #endif
  }

  #if arch(x86_64)
  /// Eight activations times 1/dx rounded (`roundClamped`) and stored as Int16 at `out`; returns
  /// them as Int32 (for the block's Σq).
  @inline(__always)
  static func store(_ v: SIMD8<Float>, _ out: UnsafeMutablePointer<Int16>) -> SIMD8<Int32> {
    let r = roundClamped(v)
    UnsafeMutableRawPointer(out).storeBytes(of: SIMD8<Int16>(truncatingIfNeeded: r), as: SIMD8<Int16>.self)
    return r
  }

  /// v rounded to the nearest integer, halves away from zero, clamped to ±32767; NaN 0. Clamped
  /// first (so the truncating conversion sees no value past ±2³¹), then truncated, then moved one
  /// away from zero where the dropped fraction is at least a half (it is exact: |v| < 2²³).
  @inline(__always)
  static func roundClamped(_ v: SIMD8<Float>) -> SIMD8<Int32> {
    var c = v.replacing(with: 32767, where: v .> 32767)
    c = c.replacing(with: -32767, where: c .< -32767)
    let t = _mm256_cvttps_epi32(unsafeBitCast(c, to: __m256.self))
    let fraction = c - unsafeBitCast(_mm256_cvtepi32_ps(t), to: SIMD8<Float>.self)
    var r = unsafeBitCast(t, to: SIMD8<Int32>.self)
    r = r.replacing(with: r &+ 1, where: fraction .>= 0.5)
    r = r.replacing(with: r &- 1, where: fraction .<= -0.5)
    return r.replacing(with: 0, where: c .!= c)
  }
  #endif

  /// Token t's block b: 32 Int16s, their scale, and the block's correction lanes.
  @inlinable @inline(__always) func block(_ t: Int, _ b: Int) -> (UnsafeRawPointer, Float, UnsafeRawPointer) {
    let i = t &* (cols / blockSize) &+ b
    return (UnsafeRawPointer(q + i &* blockSize), d[i], UnsafeRawPointer(corrections + i &* 8))
  }
}

/// Weights per block of every block-quantized format.
@inlinable var blockSize: Int { 32 }

/// A block-quantized weight format, as llama.cpp lays it out: each row is blocks of 32 weights,
/// each block a Float16 scale d then the quantized values q (weight = d·q). Made at load
/// (`Weight.quantized(to:)`), never read from a file.
@usableFromInline
protocol BlockFormat {
  static var dtype: DType { get }
  static var blockBytes: Int { get }
  /// What the SIMD `dot` reads each weight as, over its value (Q4_0: 8, the stored nibble); the
  /// activations' correction lanes take offset·Σqx back.
  static var offset: Int32 { get }
  /// Weight j of a block (its quantized values at `q`) as an integer, d·q giving the weight.
  static func quant(_ q: UnsafeRawPointer, _ j: Int) -> Int32
  /// Weights c..<c+8 of a block (c a multiple of 8) as `quant` gives them.
  static func quants(_ q: UnsafeRawPointer, _ c: Int) -> SIMD8<Int8>
  /// Writes the block of these 32 weights (scale, then quantized values) at `block`, as
  /// llama.cpp's quantize_row_*_ref does, in Float as it does.
  static func quantize(_ values: [Float], into block: UnsafeMutableRawPointer)
  /// Σ qw·qx over one block (the quantized weights at `w`, 32 Int16 activations at `x`, the
  /// activations' `Q16Activations` correction lanes at `c`) as eight Int32 partial sums,
  /// converted to Float. Exact (|sum| ≤ 32·127·32767 < 2³¹).
  /// `dot` of the block's weights as `widen` gives them (blocks of several tokens widen a
  /// block's weights once).
  static func dot(_ w: (SIMD16<Int16>, SIMD16<Int16>), _ x: UnsafeRawPointer, _ c: UnsafeRawPointer) -> SIMD8<Float>
  /// A block's weights 0–15 and 16–31 as Int16, as `dot` reads them (`quant` + `offset`).
  static func widen(_ w: UnsafeRawPointer) -> (SIMD16<Int16>, SIMD16<Int16>)
}

extension BlockFormat {
  /// A row's block b: its quantized values and scale.
  @inlinable @inline(__always)
  static func weights(_ row: UnsafeRawPointer, _ b: Int) -> (UnsafeRawPointer, Float) {
    let p = row + b &* blockBytes
    return (p + 2, Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self))))
  }

  @inlinable @inline(__always)
  static func dot(_ w: UnsafeRawPointer, _ x: UnsafeRawPointer, _ c: UnsafeRawPointer) -> SIMD8<Float> { dot(widen(w), x, c) }

  #if !arch(x86_64)
  @inlinable @inline(__always)
  static func widen(_ w: UnsafeRawPointer) -> (SIMD16<Int16>, SIMD16<Int16>) {
    var w0 = SIMD16<Int16>(), w1 = SIMD16<Int16>()
    for j in 0..<16 {
      w0[j] = Int16(quant(w, j) + offset)
      w1[j] = Int16(quant(w, 16 + j) + offset)
    }
    return (w0, w1)
  }

  /// The portable form: lane j holds elements {2j, 2j+1, 16+2j, 17+2j}, less offset·Σqx (lane 0
  /// of the correction lanes).
  @inlinable @inline(__always)
  static func dot(_ w: (SIMD16<Int16>, SIMD16<Int16>), _ x: UnsafeRawPointer, _ c: UnsafeRawPointer) -> SIMD8<Float> {
    var lanes = SIMD8<Float>()
    for j in 0..<8 {
      // Correction lanes are written only for a format with an offset (Q16Activations).
      var s: Int32 = offset == 0 ? 0 : c.load(fromByteOffset: 4 * j, as: Int32.self)
      for e in [2 * j, 2 * j + 1] {
        s &+= Int32(w.0[e]) &* Int32(x.loadUnaligned(fromByteOffset: 2 * e, as: Int16.self))
        s &+= Int32(w.1[e]) &* Int32(x.loadUnaligned(fromByteOffset: 2 * (16 + e), as: Int16.self))
      }
      lanes[j] = Float(s)
    }
    return lanes
  }
  #endif


}

/// llama.cpp's Q8_0: 32 Int8 q a block (34 bytes, 8.5 bits a weight).
@usableFromInline
enum Q8_0: BlockFormat {
  @usableFromInline static var dtype: DType { .q8_0 }
  @inlinable static var blockBytes: Int { 34 }
  @inlinable static var offset: Int32 { 0 }

  @inlinable @inline(__always)
  static func quant(_ q: UnsafeRawPointer, _ j: Int) -> Int32 { Int32(q.load(fromByteOffset: j, as: Int8.self)) }

  @inlinable @inline(__always)
  static func quants(_ q: UnsafeRawPointer, _ c: Int) -> SIMD8<Int8> { q.loadUnaligned(fromByteOffset: c, as: SIMD8<Int8>.self) }

  /// d = max|w|/127 stored as Float16, q = round(w/d) (halves away from zero); each weight is
  /// then within d/2 of its value plus d's own rounding (relative 2⁻¹¹).
  @usableFromInline static func quantize(_ values: [Float], into block: UnsafeMutableRawPointer) {
    let d = values.reduce(0) { max($0, abs($1)) } / 127
    let inverse: Float = d != 0 ? 1 / d : 0
    block.storeBytes(of: Float16(d).bitPattern, as: UInt16.self)
    for j in 0..<blockSize {
      // |w·inverse| ≤ 127 up to rounding; clamped so that a NaN or the rounding cannot wrap.
      let q = (values[j] * inverse).rounded(.toNearestOrAwayFromZero)
      block.storeBytes(of: Int8(q.isNaN ? 0 : min(127, max(-127, q))), toByteOffset: 2 + j, as: Int8.self)
    }
  }

  #if arch(x86_64)
  /// vpmovsxbw of each 16 bytes.
  @inlinable @inline(__always)
  static func widen(_ w: UnsafeRawPointer) -> (SIMD16<Int16>, SIMD16<Int16>) {
    (unsafeBitCast(_mm256_cvtepi8_epi16(_mm_loadu_si128(w.assumingMemoryBound(to: __m128i.self))), to: SIMD16<Int16>.self),
     unsafeBitCast(_mm256_cvtepi8_epi16(_mm_loadu_si128((w + 16).assumingMemoryBound(to: __m128i.self))), to: SIMD16<Int16>.self))
  }

  /// Lane j holds elements {2j, 2j+1, 16+2j, 17+2j}: vpmaddwd, vpaddd (or vpdpwssd), vcvtdq2ps.
  @inlinable @inline(__always)
  static func dot(_ w: (SIMD16<Int16>, SIMD16<Int16>), _ x: UnsafeRawPointer, _: UnsafeRawPointer) -> SIMD8<Float> {
    _mm256_cvtepi32_ps(pairSums(unsafeBitCast(w.0, to: __m256i.self), unsafeBitCast(w.1, to: __m256i.self), x))
  }
  #endif
}

/// llama.cpp's Q4_0: 32 weights of 4 bits a block, byte j holding q_j + 8 in its low nibble and
/// q_{16+j} + 8 in its high one, q in -8...7 (18 bytes, 4.5 bits a weight).
@usableFromInline
enum Q4_0: BlockFormat {
  @usableFromInline static var dtype: DType { .q4_0 }
  @inlinable static var blockBytes: Int { 18 }
  @inlinable static var offset: Int32 { 8 }

  @inlinable @inline(__always)
  static func quant(_ q: UnsafeRawPointer, _ j: Int) -> Int32 {
    let byte = q.load(fromByteOffset: j & 15, as: UInt8.self)
    return Int32(j < 16 ? byte & 0x0F : byte >> 4) - 8
  }

  /// Weights c..<c+8: the low nibbles of bytes c..<c+8 (c < 16), else the high nibbles of c−16.
  @inlinable @inline(__always)
  static func quants(_ q: UnsafeRawPointer, _ c: Int) -> SIMD8<Int8> {
    let bytes = q.loadUnaligned(fromByteOffset: c & 15, as: SIMD8<UInt8>.self)
    return SIMD8<Int8>(truncatingIfNeeded: c < 16 ? bytes & 0x0F : bytes &>> 4) &- 8
  }

  /// m = the weight of largest magnitude, with its sign (the first of equals), d = m/−8 stored
  /// as Float16, q = min(15, trunc(w/d + 8.5)) − 8 in −8…7; each weight within d/2 of its
  /// value plus d's rounding (m itself exactly −8·d).
  @usableFromInline static func quantize(_ values: [Float], into block: UnsafeMutableRawPointer) {
    var amax: Float = 0, m: Float = 0
    for v in values where abs(v) > amax { amax = abs(v); m = v }
    let d = m / -8
    let inverse: Float = d != 0 ? 1 / d : 0
    block.storeBytes(of: Float16(d).bitPattern, as: UInt16.self)
    func nibble(_ w: Float) -> UInt8 {
      // Clamped so that a NaN or the rounding cannot wrap.
      let v = w * inverse + 8.5
      return UInt8(v.isNaN ? 8 : min(15, max(0, v.rounded(.towardZero))))
    }
    for j in 0..<16 {
      block.storeBytes(of: nibble(values[j]) | nibble(values[16 + j]) << 4, toByteOffset: 2 + j, as: UInt8.self)
    }
  }

  #if arch(x86_64)
  /// The 16 bytes widened to Int16 (vpmovzxbw: word j = byte j), whose low nibbles (vpand) are
  /// weights 0–15 + 8 and whose high ones (vpsrlw) weights 16–31 + 8.
  @inlinable @inline(__always)
  static func widen(_ w: UnsafeRawPointer) -> (SIMD16<Int16>, SIMD16<Int16>) {
    let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(w.assumingMemoryBound(to: __m128i.self)))
    return (unsafeBitCast(_mm256_and_si256(v, _mm256_set1_epi16(0x0F)), to: SIMD16<Int16>.self),
            unsafeBitCast(_mm256_srli_epi16(v, 4), to: SIMD16<Int16>.self))
  }

  /// Q8_0's products with the widened weights (vpmaddwd, vpaddd), and the 8·Σqx they add too
  /// much taken from lane 0 (vpaddd of the activations' correction lanes): 13 vector operations
  /// a block and row with the scale's, against 17 with the nibbles split bytewise and 8
  /// subtracted from each weight.
  @inlinable @inline(__always)
  static func dot(_ w: (SIMD16<Int16>, SIMD16<Int16>), _ x: UnsafeRawPointer, _ c: UnsafeRawPointer) -> SIMD8<Float> {
    let correction = _mm256_loadu_si256(c.assumingMemoryBound(to: __m256i.self))
    return _mm256_cvtepi32_ps(_mm256_add_epi32(pairSums(unsafeBitCast(w.0, to: __m256i.self), unsafeBitCast(w.1, to: __m256i.self), x), correction))
  }
  #endif
}

#if arch(x86_64)
/// A block's weights 0–15 and 16–31 as Int16 (w0, w1) times its 32 Int16 activations at `x`:
/// pairs summed (vpmaddwd), the two halves added; lane j holds elements {2j, 2j+1, 16+2j, 17+2j}.
@inlinable @inline(__always)
func pairSums(_ w0: __m256i, _ w1: __m256i, _ x: UnsafeRawPointer) -> __m256i {
  let x0 = _mm256_loadu_si256(x.assumingMemoryBound(to: __m256i.self))
  let x1 = _mm256_loadu_si256((x + 32).assumingMemoryBound(to: __m256i.self))
  return _mm256_add_epi32(_mm256_madd_epi16(w0, x0), _mm256_madd_epi16(w1, x1))
}
#endif

extension ReferenceKernels {
  /// The definition: per row and token, Σ over blocks in order of Float(dw·dx) · Float(Σ qw·qx),
  /// the integer sum exact.
  func multiplyQuantized<F: BlockFormat>(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>, _: F.Type) {
    ScratchPool.with { scratch in
      let a = Q16Activations(n: n, cols: w.cols, scratch: scratch)
      a.quantizeReference(x, blocks: 0..<(n * w.cols / blockSize), offset: F.offset)
      let rowBytes = F.dtype.rowBytes(w.cols)
      for t in 0..<n {
        for r in 0..<w.rows {
          var sum: Float = 0
          for b in 0..<(w.cols / blockSize) {
            let (qw, dw) = F.weights(w.data + r * rowBytes, b)
            let (qx, dx, _) = a.block(t, b)
            var dot = 0
            for j in 0..<blockSize {
              dot += Int(F.quant(qw, j)) * Int(qx.loadUnaligned(fromByteOffset: 2 * j, as: Int16.self))
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
  /// others four at a time (two rows × four tokens twice, or in a `wide` build four rows × four
  /// tokens: each weight block is widened once for four tokens), then one at a time. Every
  /// (row, token) pair runs the same operations in the same order whichever shape computes it —
  /// per block one `F.dot`, times the Float dw·dx, added lane-wise; the lanes summed at the end —
  /// so results do not depend on the rows in the call.
  func multiplyQuantized<F: BlockFormat>(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>, _: F.Type,
                                         _ part: @escaping ParallelJob) {
    ScratchPool.with { scratch in
      let a = Q16Activations(n: n, cols: w.cols, scratch: scratch)
      let blocks = n * w.cols / blockSize
      parallelFor(min(threads, blocks), work: 8 * n * w.cols, ActivationJob(a: a, x: x, blocks: blocks, parts: min(threads, blocks), offset: F.offset),
                  Self.quantizeActivations)
      let parts = productParts(rows: w.rows)
      let product = QuantizedProduct(w: w.data, rows: w.rows, cols: w.cols, rowBytes: w.dtype.rowBytes(w.cols), n: n, a: a, y: y, parts: parts)
      parallelFor(parts, work: w.rows * w.cols * max(1, n), product, part)
    }
  }

  /// The activations of a quantized product, quantized in parallel parts (equal shares of the
  /// blocks).
  struct ActivationJob {
    let a: Q16Activations
    let x: UnsafePointer<Float>
    let blocks: Int, parts: Int
    let offset: Int32
  }

  static let quantizeActivations: ParallelJob = { arguments, part in
    let j = arguments.assumingMemoryBound(to: ActivationJob.self).pointee
    j.a.quantize(j.x, blocks: (j.blocks * part / j.parts)..<(j.blocks * (part + 1) / j.parts), offset: j.offset)
  }

  /// A quantized product's arguments, for its parallel parts.
  @usableFromInline
  struct QuantizedProduct {
    @usableFromInline let w: UnsafeRawPointer
    @usableFromInline let rows: Int, cols: Int, rowBytes: Int, n: Int
    @usableFromInline let a: Q16Activations
    @usableFromInline let y: UnsafeMutablePointer<Float>
    @usableFromInline let parts: Int
  }

  @inlinable @inline(__always)
  static func quantizedPart<F: BlockFormat>(_ arguments: UnsafeRawPointer, _ part: Int, _: F.Type, wide: Bool) {
    let p = arguments.assumingMemoryBound(to: QuantizedProduct.self).pointee
    let w = p.w, rows = p.rows, n = p.n, a = p.a, y = p.y
    let blocks = p.cols / blockSize, rowBytes = p.rowBytes
    let (lo, hi, q) = SIMDKernels.partRows(part, of: p.parts, rows: rows)
    let stride = q * rowBytes
    for r in lo..<(lo + q) {
      // The first token reads the four rows from memory together (four streams); the rest find
      // them in L1.
      SIMDKernels.quantizedRows4x1(w + r * rowBytes, stride, blocks, a, 0, y + r, q, F.self)
      var t = 1
      while t + 4 <= n {
        if wide {
          SIMDKernels.quantizedRows4x4(w + r * rowBytes, stride, blocks, a, t, y + t * rows + r, rows, q, F.self)
        } else {
          SIMDKernels.quantizedRows2x4(w + r * rowBytes, stride, blocks, a, t, y + t * rows + r, rows, q, F.self)
          SIMDKernels.quantizedRows2x4(w + (r + 2 * q) * rowBytes, stride, blocks, a, t, y + t * rows + r + 2 * q, rows, q, F.self)
        }
        t += 4
      }
      while t < n {
        SIMDKernels.quantizedRows4x1(w + r * rowBytes, stride, blocks, a, t, y + t * rows + r, q, F.self)
        t += 1
      }
    }
    for r in (lo + 4 * q)..<hi {
      for t in 0..<n { y[t * rows + r] = SIMDKernels.quantizedDot(w + r * rowBytes, blocks, a, t, F.self) }
    }
  }

  @inlinable @inline(__always)
  static func quantizedDot<F: BlockFormat>(_ row: UnsafeRawPointer, _ blocks: Int, _ a: Q16Activations, _ t: Int, _: F.Type) -> Float {
    var acc = SIMD8<Float>()
    for b in 0..<blocks {
      let (qw, dw) = F.weights(row, b), (qx, dx, qc) = a.block(t, b)
      acc = acc.addingProduct(F.dot(qw, qx, qc), SIMD8(repeating: dw * dx))
    }
    return acc.sum()
  }

  /// Four rows `stride` bytes apart × one token; writes y[k·yStep] for k in 0..<4.
  @inlinable @inline(__always)
  static func quantizedRows4x1<F: BlockFormat>(_ w: UnsafeRawPointer, _ stride: Int, _ blocks: Int, _ a: Q16Activations, _ t: Int,
                                               _ y: UnsafeMutablePointer<Float>, _ yStep: Int, _: F.Type) {
    var acc = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
    @inline(__always) func step(_ acc: inout SIMD8<Float>, _ k: Int, _ b: Int, _ qx: UnsafeRawPointer, _ dx: Float, _ qc: UnsafeRawPointer) {
      let (qw, dw) = F.weights(w + k &* stride, b)
      acc = acc.addingProduct(F.dot(qw, qx, qc), SIMD8(repeating: dw * dx))
    }
    for b in 0..<blocks {
      let (qx, dx, qc) = a.block(t, b)
      step(&acc.0, 0, b, qx, dx, qc); step(&acc.1, 1, b, qx, dx, qc); step(&acc.2, 2, b, qx, dx, qc); step(&acc.3, 3, b, qx, dx, qc)
    }
    y[0] = acc.0.sum(); y[yStep] = acc.1.sum(); y[2 &* yStep] = acc.2.sum(); y[3 &* yStep] = acc.3.sum()
  }

  /// Two rows `rowBytes` apart × four tokens t..<t+4; writes y[u·stride] and y[u·stride + yStep]
  /// for u in 0..<4.
  @inlinable @inline(__always)
  static func quantizedRows2x4<F: BlockFormat>(_ w: UnsafeRawPointer, _ rowBytes: Int, _ blocks: Int, _ a: Q16Activations, _ t: Int,
                                               _ y: UnsafeMutablePointer<Float>, _ stride: Int, _ yStep: Int, _: F.Type) {
    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
    var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
    for b in 0..<blocks {
      let (q0, d0) = F.weights(w, b), (q1, d1) = F.weights(w + rowBytes, b)
      let (x0, e0, c0) = a.block(t, b), (x1, e1, c1) = a.block(t &+ 1, b)
      let (x2, e2, c2) = a.block(t &+ 2, b), (x3, e3, c3) = a.block(t &+ 3, b)
      a00 = a00.addingProduct(F.dot(q0, x0, c0), SIMD8(repeating: d0 * e0))
      a01 = a01.addingProduct(F.dot(q0, x1, c1), SIMD8(repeating: d0 * e1))
      a02 = a02.addingProduct(F.dot(q0, x2, c2), SIMD8(repeating: d0 * e2))
      a03 = a03.addingProduct(F.dot(q0, x3, c3), SIMD8(repeating: d0 * e3))
      a10 = a10.addingProduct(F.dot(q1, x0, c0), SIMD8(repeating: d1 * e0))
      a11 = a11.addingProduct(F.dot(q1, x1, c1), SIMD8(repeating: d1 * e1))
      a12 = a12.addingProduct(F.dot(q1, x2, c2), SIMD8(repeating: d1 * e2))
      a13 = a13.addingProduct(F.dot(q1, x3, c3), SIMD8(repeating: d1 * e3))
    }
    y[0] = a00.sum(); y[stride] = a01.sum(); y[2 &* stride] = a02.sum(); y[3 &* stride] = a03.sum()
    y[yStep] = a10.sum(); y[stride &+ yStep] = a11.sum(); y[2 &* stride &+ yStep] = a12.sum(); y[3 &* stride &+ yStep] = a13.sum()
  }

  /// Four rows `stride` bytes apart × four tokens t..<t+4 (sixteen accumulators: for builds with
  /// 32 vector registers): each row's block is widened once for the four tokens, each token's
  /// activations loaded once for the four rows. Writes y[u·yStride + k·yStep].
  @inlinable @inline(__always)
  static func quantizedRows4x4<F: BlockFormat>(_ w: UnsafeRawPointer, _ stride: Int, _ blocks: Int, _ a: Q16Activations, _ t: Int,
                                               _ y: UnsafeMutablePointer<Float>, _ yStride: Int, _ yStep: Int, _: F.Type) {
    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
    var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
    var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a22 = SIMD8<Float>(), a23 = SIMD8<Float>()
    var a30 = SIMD8<Float>(), a31 = SIMD8<Float>(), a32 = SIMD8<Float>(), a33 = SIMD8<Float>()
    for b in 0..<blocks {
      let (q0, d0) = F.weights(w, b), (q1, d1) = F.weights(w + stride, b)
      let (q2, d2) = F.weights(w + 2 &* stride, b), (q3, d3) = F.weights(w + 3 &* stride, b)
      let w0 = F.widen(q0), w1 = F.widen(q1), w2 = F.widen(q2), w3 = F.widen(q3)
      var (x, e, c) = a.block(t, b)
      a00 = a00.addingProduct(F.dot(w0, x, c), SIMD8(repeating: d0 * e)); a10 = a10.addingProduct(F.dot(w1, x, c), SIMD8(repeating: d1 * e))
      a20 = a20.addingProduct(F.dot(w2, x, c), SIMD8(repeating: d2 * e)); a30 = a30.addingProduct(F.dot(w3, x, c), SIMD8(repeating: d3 * e))
      (x, e, c) = a.block(t &+ 1, b)
      a01 = a01.addingProduct(F.dot(w0, x, c), SIMD8(repeating: d0 * e)); a11 = a11.addingProduct(F.dot(w1, x, c), SIMD8(repeating: d1 * e))
      a21 = a21.addingProduct(F.dot(w2, x, c), SIMD8(repeating: d2 * e)); a31 = a31.addingProduct(F.dot(w3, x, c), SIMD8(repeating: d3 * e))
      (x, e, c) = a.block(t &+ 2, b)
      a02 = a02.addingProduct(F.dot(w0, x, c), SIMD8(repeating: d0 * e)); a12 = a12.addingProduct(F.dot(w1, x, c), SIMD8(repeating: d1 * e))
      a22 = a22.addingProduct(F.dot(w2, x, c), SIMD8(repeating: d2 * e)); a32 = a32.addingProduct(F.dot(w3, x, c), SIMD8(repeating: d3 * e))
      (x, e, c) = a.block(t &+ 3, b)
      a03 = a03.addingProduct(F.dot(w0, x, c), SIMD8(repeating: d0 * e)); a13 = a13.addingProduct(F.dot(w1, x, c), SIMD8(repeating: d1 * e))
      a23 = a23.addingProduct(F.dot(w2, x, c), SIMD8(repeating: d2 * e)); a33 = a33.addingProduct(F.dot(w3, x, c), SIMD8(repeating: d3 * e))
    }
    @inline(__always) func store(_ k: Int, _ s0: SIMD8<Float>, _ s1: SIMD8<Float>, _ s2: SIMD8<Float>, _ s3: SIMD8<Float>) {
      let yk = y + k &* yStep
      yk[0] = s0.sum(); yk[yStride] = s1.sum(); yk[2 &* yStride] = s2.sum(); yk[3 &* yStride] = s3.sum()
    }
    store(0, a00, a01, a02, a03); store(1, a10, a11, a12, a13); store(2, a20, a21, a22, a23); store(3, a30, a31, a32, a33)
  }
}
