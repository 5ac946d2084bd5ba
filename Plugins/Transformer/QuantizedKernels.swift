#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// Products with block-quantized weights (Q8_0, Q4_0: `BlockFormat`). The activations are
/// quantized too, per block of 32 to Int16 with a Float scale (dx = max|x|/32767, 256 times finer
/// than llama.cpp's 8-bit activations), so that a block's products are exact integer sums. A
/// (row, token) output is Σ over blocks in order of (dw·dx)·Float(Σ qw·qx), each step one fused
/// multiply-add; the reference and the SIMD kernels compute exactly that, so they agree bit for
/// bit (tested).
@usableFromInline
struct Q16Activations {
  /// [n × cols] Int16, then [n × cols/32] Float scales, then per block −offset·Σqx (the
  /// correction the SIMD kernels start a block's sum from), in one buffer of `scratch`.
  @usableFromInline let q: UnsafeMutablePointer<Int16>
  @usableFromInline let d: UnsafeMutablePointer<Float>
  @usableFromInline let corrections: UnsafeMutablePointer<Int32>
  @usableFromInline let cols: Int

  /// Room for n rows of `cols` activations in `scratch`; `quantize` or `quantizeReference` fills it.
  init(n: Int, cols: Int, scratch: Scratch) {
    let blocks = cols / blockSize
    self.cols = cols
    // Int16s take half a Float each.
    let raw = UnsafeMutableRawPointer(scratch.floats(.q16, (n * cols + 1) / 2 + n * blocks * 2))
    q = raw.bindMemory(to: Int16.self, capacity: n * cols)
    d = (raw + (n * cols + 1) / 2 * 4).bindMemory(to: Float.self, capacity: n * blocks)
    corrections = (raw + ((n * cols + 1) / 2 + n * blocks) * 4).bindMemory(to: Int32.self, capacity: n * blocks)
  }

  /// The definition, one value at a time: blocks `range` of `x` (block b is x[32b..<32b+32]):
  /// dx = max|x|/32767, q = round(x·(1/dx)) (halves away from zero; NaN 0, clamped to ±32767),
  /// and the block's correction −offset·Σq.
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
      var sum: Int32 = 0
      for j in 0..<blockSize { sum += Int32(q[b * blockSize + j]) }
      corrections[b] = -offset * sum
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
        _mm256_max_ps(unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x7fff_ffff, to: __m256.self), m)
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
      corrections[b] = -offset * sum.wrappedSum()
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
    let t = _mm256_cvttps_epi32(c)
    let fraction = c - _mm256_cvtepi32_ps(t)
    var r = unsafeBitCast(t, to: SIMD8<Int32>.self)
    r = r.replacing(with: r &+ 1, where: fraction .>= 0.5)
    r = r.replacing(with: r &- 1, where: fraction .<= -0.5)
    return r.replacing(with: 0, where: c .!= c)
  }
  #endif

  /// Token t's block b: 32 Int16s, their scale, and the block's correction.
  @inlinable @inline(__always) func block(_ t: Int, _ b: Int) -> (UnsafeRawPointer, Float, Int32) {
    let i = t &* (cols / blockSize) &+ b
    return (UnsafeRawPointer(q + i &* blockSize), d[i], corrections[i])
  }
}

/// Weights per block of every block-quantized format.
@inlinable var blockSize: Int { 32 }

/// Rows a quantized weight interleaves (`BlockFormat`): a row's sums are one lane of a vector.
@inlinable var groupRows: Int { 8 }

/// A block-quantized weight format. A block is 32 weights of a row with one scale d (weight =
/// d·q), made as llama.cpp makes it (`quantize`, into llama.cpp's block layout: a Float16 scale,
/// then the quantized values). In memory the rows go in groups of eight (the last group padded
/// with zero rows), and each group's blocks one after another: a group-block of eight rows'
/// block b is their eight Float16 scales, then their quantized values interleaved so that one
/// vector of Int16 holds two consecutive weights of each of the eight rows (a "step"; 16 steps a
/// block). The kernels multiply a step by the token's two activations broadcast (vpmaddwd, or
/// vpdpwssd): lane k sums row k, with no horizontal sums, and one conversion, scale and
/// multiply-add per eight rows, token and block. Made at load (`Weight.quantized(to:)`), never
/// read from a file.
@usableFromInline
protocol BlockFormat: SendableMetatype {
  static var dtype: DType { get }
  /// Bytes of one row's block in llama.cpp's layout (a group-block takes eight times this).
  static var blockBytes: Int { get }
  /// What the kernels read each weight as, over its value (Q4_0: 8, the stored nibble); the
  /// activations' corrections take offset·Σqx back.
  static var offset: Int32 { get }
  /// Weight j of a block in llama.cpp's layout (its quantized values at `q`) as an integer.
  static func quant(_ q: UnsafeRawPointer, _ j: Int) -> Int32
  /// Writes the block of these 32 weights (scale, then quantized values) at `block`, as
  /// llama.cpp's quantize_row_*_ref does, in Float as it does.
  static func quantize(_ values: UnsafePointer<Float>, into block: UnsafeMutableRawPointer)
  /// Weight j of row k of a group-block whose interleaved values are at `q`, as `quant` gives it.
  static func interleavedQuant(_ q: UnsafeRawPointer, _ k: Int, _ j: Int) -> Int32
  /// Stores `quant` (as `quant` gives it) as weight j of row k at `q`.
  static func setInterleaved(_ q: UnsafeMutableRawPointer, _ k: Int, _ j: Int, _ quant: Int32)
  /// Steps 2m and 2m+1 of a group-block (weights 4m…4m+3 of each row; m in 0..<8) as Int16:
  /// lanes 2k and 2k+1 hold row k's two weights, plus `offset`.
  static func steps(_ q: UnsafeRawPointer, _ m: Int) -> (SIMD16<Int16>, SIMD16<Int16>)
}

extension BlockFormat {
  /// Bytes of a group-block: eight scales and eight rows' values.
  @inlinable static var groupBlockBytes: Int { groupRows &* blockBytes }

  /// Group g's block b of a weight with `blocks` blocks a row.
  @inlinable @inline(__always)
  static func groupBlock(_ w: UnsafeRawPointer, blocks: Int, _ g: Int, _ b: Int) -> UnsafeRawPointer {
    w + (g &* blocks &+ b) &* groupBlockBytes
  }

  /// A group-block's eight scales (Float16, as an f16 weight row's first eight: one vcvtph2ps).
  @inlinable @inline(__always)
  static func scales(_ gb: UnsafeRawPointer) -> SIMD8<Float> { F16Rows.load(gb, 0) }

  /// Row k's scale and weight j's integer in a group-block.
  @inlinable @inline(__always)
  static func weight(_ gb: UnsafeRawPointer, _ k: Int, _ j: Int) -> (d: Float, q: Int32) {
    (Float(Float16(bitPattern: gb.loadUnaligned(fromByteOffset: 2 &* k, as: UInt16.self))), interleavedQuant(gb + 16, k, j))
  }

  /// Writes the group-block of eight blocks in llama.cpp's layout, `blockBytes` apart at `blocks`.
  static func interleave(_ blocks: UnsafeRawPointer, into gb: UnsafeMutableRawPointer) {
    for k in 0..<groupRows {
      let block = blocks + k * blockBytes
      gb.storeBytes(of: block.loadUnaligned(as: UInt16.self), toByteOffset: 2 * k, as: UInt16.self)
      for j in 0..<blockSize { setInterleaved(gb + 16, k, j, quant(block + 2, j)) }
    }
  }

  /// The eight rows' exact Σ q·qx over a group-block for one token (`x`: its 32 Int16
  /// activations; `correction`: their −offset·Σqx), two sums of eight steps each.
  @inlinable @inline(__always)
  static func sums(_ gb: UnsafeRawPointer, _ x: UnsafeRawPointer, _ correction: Int32) -> SIMD8<Int32> {
    let q = gb + 16
    var a0 = SIMD8<Int32>(repeating: correction), a1 = SIMD8<Int32>()
    for m in 0..<8 {
      let (s0, s1) = steps(q, m)
      a0 &+= pairSums(s0, x, 2 &* m)
      a1 &+= pairSums(s1, x, 2 &* m &+ 1)
    }
    return a0 &+ a1
  }
}

/// Step `s` of a group-block (lanes 2k, 2k+1: row k's weights 2s, 2s+1) times the token's
/// activations 2s and 2s+1 (at `x`), pairs summed: lane k gets row k's two products.
@inlinable @inline(__always)
func pairSums(_ step: SIMD16<Int16>, _ x: UnsafeRawPointer, _ s: Int) -> SIMD8<Int32> {
  #if arch(x86_64)
  let pair = _mm256_set1_epi32(x.loadUnaligned(fromByteOffset: 4 &* s, as: Int32.self))
  return unsafeBitCast(_mm256_madd_epi16(unsafeBitCast(step, to: __m256i.self), pair), to: SIMD8<Int32>.self)
  #else
  let x0 = Int32(x.loadUnaligned(fromByteOffset: 4 &* s, as: Int16.self)), x1 = Int32(x.loadUnaligned(fromByteOffset: 4 &* s &+ 2, as: Int16.self))
  var out = SIMD8<Int32>()
  for k in 0..<8 { out[k] = Int32(step[2 &* k]) &* x0 &+ Int32(step[2 &* k &+ 1]) &* x1 }
  return out
  #endif
}

/// Each lane converted to Float, rounded to nearest even as Float(_: Int32) does (vcvtdq2ps).
@inlinable @inline(__always)
func floats(_ v: SIMD8<Int32>) -> SIMD8<Float> {
  #if arch(x86_64)
  _mm256_cvtepi32_ps(unsafeBitCast(v, to: __m256i.self))
  #else
  SIMD8<Float>(v)
  #endif
}

/// llama.cpp's Q8_0: 32 Int8 q a block (34 bytes, 8.5 bits a weight). Interleaved: step s is
/// bytes 16s..<16s+16 (row k's two weights at 2k, 2k+1).
@usableFromInline
enum Q8_0: BlockFormat {
  @usableFromInline static var dtype: DType { .q8_0 }
  @inlinable static var blockBytes: Int { 34 }
  @inlinable static var offset: Int32 { 0 }

  @inlinable @inline(__always)
  static func quant(_ q: UnsafeRawPointer, _ j: Int) -> Int32 { Int32(q.load(fromByteOffset: j, as: Int8.self)) }

  @inlinable @inline(__always)
  static func interleavedQuant(_ q: UnsafeRawPointer, _ k: Int, _ j: Int) -> Int32 {
    Int32(q.load(fromByteOffset: (j >> 1) &* 16 &+ 2 &* k &+ (j & 1), as: Int8.self))
  }

  @usableFromInline static func setInterleaved(_ q: UnsafeMutableRawPointer, _ k: Int, _ j: Int, _ quant: Int32) {
    q.storeBytes(of: Int8(quant), toByteOffset: (j >> 1) * 16 + 2 * k + (j & 1), as: Int8.self)
  }

  /// d = max|w|/127 stored as Float16, q = round(w/d) (halves away from zero); each weight is
  /// then within d/2 of its value plus d's own rounding (relative 2⁻¹¹).
  @usableFromInline static func quantize(_ values: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
    var amax: Float = 0
    for j in 0..<blockSize { amax = max(amax, abs(values[j])) }
    let d = amax / 127
    let inverse: Float = d != 0 ? 1 / d : 0
    block.storeBytes(of: Float16(d).bitPattern, as: UInt16.self)
    for j in 0..<blockSize {
      // |w·inverse| ≤ 127 up to rounding; clamped so that a NaN or the rounding cannot wrap.
      let q = (values[j] * inverse).rounded(.toNearestOrAwayFromZero)
      block.storeBytes(of: Int8(q.isNaN ? 0 : min(127, max(-127, q))), toByteOffset: 2 + j, as: Int8.self)
    }
  }

  /// Two vpmovsxbw.
  @inlinable @inline(__always)
  static func steps(_ q: UnsafeRawPointer, _ m: Int) -> (SIMD16<Int16>, SIMD16<Int16>) {
    let p = q + 32 &* m
    #if arch(x86_64)
    return (unsafeBitCast(_mm256_cvtepi8_epi16(_mm_loadu_si128(p.assumingMemoryBound(to: __m128i.self))), to: SIMD16<Int16>.self),
            unsafeBitCast(_mm256_cvtepi8_epi16(_mm_loadu_si128((p + 16).assumingMemoryBound(to: __m128i.self))), to: SIMD16<Int16>.self))
    #else
    return (SIMD16<Int16>(truncatingIfNeeded: p.loadUnaligned(as: SIMD16<Int8>.self)),
            SIMD16<Int16>(truncatingIfNeeded: (p + 16).loadUnaligned(as: SIMD16<Int8>.self)))
    #endif
  }
}

/// llama.cpp's Q4_0: 32 weights of 4 bits a block, byte j holding q_j + 8 in its low nibble and
/// q_{16+j} + 8 in its high one, q in -8...7 (18 bytes, 4.5 bits a weight). Interleaved: bytes
/// 16m..<16m+16 hold step 2m in their low nibbles and step 2m+1 in their high ones (row k's two
/// weights at bytes 2k, 2k+1), each + 8.
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

  @inlinable @inline(__always)
  static func interleavedQuant(_ q: UnsafeRawPointer, _ k: Int, _ j: Int) -> Int32 {
    let s = j >> 1
    let byte = q.load(fromByteOffset: (s >> 1) &* 16 &+ 2 &* k &+ (j & 1), as: UInt8.self)
    return Int32(s & 1 == 0 ? byte & 0x0F : byte >> 4) &- 8
  }

  @usableFromInline static func setInterleaved(_ q: UnsafeMutableRawPointer, _ k: Int, _ j: Int, _ quant: Int32) {
    let s = j >> 1, offset = (s >> 1) * 16 + 2 * k + (j & 1)
    let nibble = UInt8(quant + 8), old = q.load(fromByteOffset: offset, as: UInt8.self)
    q.storeBytes(of: s & 1 == 0 ? (old & 0xF0) | nibble : (old & 0x0F) | nibble << 4, toByteOffset: offset, as: UInt8.self)
  }

  /// m = the weight of largest magnitude, with its sign (the first of equals), d = m/−8 stored
  /// as Float16, q = min(15, trunc(w/d + 8.5)) − 8 in −8…7; each weight within d/2 of its
  /// value plus d's rounding (m itself exactly −8·d).
  @usableFromInline static func quantize(_ values: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
    var amax: Float = 0, m: Float = 0
    for j in 0..<blockSize where abs(values[j]) > amax { amax = abs(values[j]); m = values[j] }
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

  /// The 16 bytes widened (vpmovzxbw: word j = byte j), their low nibbles (vpand) and high ones
  /// (vpsrlw).
  @inlinable @inline(__always)
  static func steps(_ q: UnsafeRawPointer, _ m: Int) -> (SIMD16<Int16>, SIMD16<Int16>) {
    let p = q + 16 &* m
    #if arch(x86_64)
    let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.assumingMemoryBound(to: __m128i.self)))
    return (unsafeBitCast(_mm256_and_si256(v, _mm256_set1_epi16(0x0F)), to: SIMD16<Int16>.self),
            unsafeBitCast(_mm256_srli_epi16(v, 4), to: SIMD16<Int16>.self))
    #else
    let v = SIMD16<Int16>(truncatingIfNeeded: p.loadUnaligned(as: SIMD16<UInt8>.self))
    return (v & 0x0F, v &>> 4)
    #endif
  }
}

extension ReferenceKernels {
  /// The definition: per row and token, over blocks in order, sum = (dw·dx)·Float(Σ qw·qx) +
  /// sum, fused; the integer sum exact.
  func multiplyQuantized<F: BlockFormat>(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>, _: F.Type) {
    ScratchPool.with { scratch in
      let a = Q16Activations(n: n, cols: w.cols, scratch: scratch)
      a.quantizeReference(x, blocks: 0..<(n * w.cols / blockSize), offset: F.offset)
      let blocks = w.cols / blockSize
      for t in 0..<n {
        for r in 0..<w.rows {
          var sum: Float = 0
          for b in 0..<blocks {
            let gb = F.groupBlock(w.data, blocks: blocks, r / groupRows, b), k = r % groupRows
            let (qx, dx, _) = a.block(t, b)
            var dot = 0
            for j in 0..<blockSize {
              dot += Int(F.weight(gb, k, j).q) * Int(qx.loadUnaligned(fromByteOffset: 2 * j, as: Int16.self))
            }
            sum = sum.addingProduct(F.weight(gb, k, 0).d * dx, Float(dot))
          }
          y[t * w.rows + r] = sum
        }
      }
    }
  }
}

extension SIMDKernels {
  /// The activations quantized (in parallel parts), then the weight's groups of eight rows split
  /// into parts as `run` splits rows; per group, four tokens at a time (each group-block's steps
  /// widened once for the four), then one at a time. Each (row, token) output is formed by the
  /// same operations in the same order whatever the shape — the reference's — so results do not
  /// depend on the rows in the call and equal the reference's.
  func multiplyQuantized<F: BlockFormat>(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>, _: F.Type,
                                         _ part: @escaping ParallelJob) {
    ScratchPool.with { scratch in
      let a = Q16Activations(n: n, cols: w.cols, scratch: scratch)
      let blocks = n * w.cols / blockSize
      parallelFor(min(threads, blocks), work: 8 * n * w.cols, ActivationJob(a: a, x: x, blocks: blocks, parts: min(threads, blocks), offset: F.offset),
                  Self.quantizeActivations)
      let parts = productParts(rows: w.rows)
      let product = QuantizedProduct(w: w.data, rows: w.rows, cols: w.cols, n: n, a: a, y: y, parts: parts)
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
    @usableFromInline let rows: Int, cols: Int, n: Int
    @usableFromInline let a: Q16Activations
    @usableFromInline let y: UnsafeMutablePointer<Float>
    @usableFromInline let parts: Int
  }

  @inlinable @inline(__always)
  static func quantizedPart<F: BlockFormat, B: KernelBuild>(_ arguments: UnsafeRawPointer, _ part: Int, _: F.Type, _: B.Type) {
    let p = arguments.assumingMemoryBound(to: QuantizedProduct.self).pointee
    let rows = p.rows, n = p.n, y = p.y
    let blocks = p.cols / blockSize
    let (lo, hi, _) = SIMDKernels.partRows(part, of: p.parts, rows: rows)
    for g in (lo / groupRows)..<((hi + groupRows - 1) / groupRows) {
      let w = F.groupBlock(p.w, blocks: blocks, g, 0), r = g &* groupRows, count = min(groupRows, rows &- r)
      var t = 0
      while t + 4 <= n {
        let (s0, s1, s2, s3) = quantizedGroup4(w, blocks, p.a, t, F.self, B.self)
        storeLanes(s0, y + (t &* rows &+ r), count); storeLanes(s1, y + ((t &+ 1) &* rows &+ r), count)
        storeLanes(s2, y + ((t &+ 2) &* rows &+ r), count); storeLanes(s3, y + ((t &+ 3) &* rows &+ r), count)
        t += 4
      }
      while t < n {
        storeLanes(quantizedGroup1(w, blocks, p.a, t, F.self, B.self), y + (t &* rows &+ r), count)
        t += 1
      }
    }
  }

  /// The first `count` lanes of `s` at `y`.
  @inlinable @inline(__always)
  static func storeLanes(_ s: SIMD8<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
    if count == groupRows {
      UnsafeMutableRawPointer(y).storeBytes(of: s, as: SIMD8<Float>.self)
    } else {
      for k in 0..<count { y[k] = s[k] }
    }
  }

  /// A group's eight rows × token t: per block, the exact sums, converted, times dw·dx, added.
  @inlinable @inline(__always)
  static func quantizedGroup1<F: BlockFormat, B: KernelBuild>(_ w: UnsafeRawPointer, _ blocks: Int, _ a: Q16Activations, _ t: Int, _: F.Type, _: B.Type) -> SIMD8<Float> {
    var acc = SIMD8<Float>()
    for b in 0..<blocks {
      let gb = w + b &* F.groupBlockBytes
      let (x, dx, c) = a.block(t, b)
      acc = acc.addingProduct(F.scales(gb) * dx, floats(F.sums(gb, x, c)))
    }
    return acc
  }

  /// A group's eight rows × tokens t..<t+4: each step widened once for the four tokens.
  @inlinable @inline(__always)
  static func quantizedGroup4<F: BlockFormat, B: KernelBuild>(_ w: UnsafeRawPointer, _ blocks: Int, _ a: Q16Activations, _ t: Int, _: F.Type, _: B.Type)
    -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    var f0 = SIMD8<Float>(), f1 = SIMD8<Float>(), f2 = SIMD8<Float>(), f3 = SIMD8<Float>()
    for b in 0..<blocks {
      let gb = w + b &* F.groupBlockBytes, q = gb + 16
      let (x0, d0, c0) = a.block(t, b), (x1, d1, c1) = a.block(t &+ 1, b)
      let (x2, d2, c2) = a.block(t &+ 2, b), (x3, d3, c3) = a.block(t &+ 3, b)
      var a0 = SIMD8<Int32>(repeating: c0), a1 = SIMD8<Int32>(repeating: c1), a2 = SIMD8<Int32>(repeating: c2), a3 = SIMD8<Int32>(repeating: c3)
      var e0 = SIMD8<Int32>(), e1 = SIMD8<Int32>(), e2 = SIMD8<Int32>(), e3 = SIMD8<Int32>()
      for m in 0..<8 {
        let (s0, s1) = F.steps(q, m), even = 2 &* m, odd = even &+ 1
        a0 &+= pairSums(s0, x0, even); a1 &+= pairSums(s0, x1, even); a2 &+= pairSums(s0, x2, even); a3 &+= pairSums(s0, x3, even)
        e0 &+= pairSums(s1, x0, odd); e1 &+= pairSums(s1, x1, odd); e2 &+= pairSums(s1, x2, odd); e3 &+= pairSums(s1, x3, odd)
      }
      let scales = F.scales(gb)
      f0 = f0.addingProduct(scales * d0, floats(a0 &+ e0)); f1 = f1.addingProduct(scales * d1, floats(a1 &+ e1))
      f2 = f2.addingProduct(scales * d2, floats(a2 &+ e2)); f3 = f3.addingProduct(scales * d3, floats(a3 &+ e3))
    }
    return (f0, f1, f2, f3)
  }
}
