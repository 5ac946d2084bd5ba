import Dispatch
import Foundation

/// The matrix products of a forward pass — the one piece that differs between backends.
public protocol MatrixKernels: Sendable {
  /// y = x·Wᵀ: `x` is [n × w.cols] row-major, `y` is [n × w.rows].
  func multiply(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>)
  /// Worker threads for the parts of the forward pass outside `multiply` (attention heads).
  var threads: Int { get }
  /// Runs `body(arguments, i)` for every i in 0..<count, possibly in parallel; `work` estimates
  /// the total cost (multiply-adds) so that small loops stay on the calling thread.
  func parallelFor(_ count: Int, work: Int, arguments: UnsafeRawPointer, _ body: @escaping ParallelJob)
}

/// A parallel loop's body, `(arguments, index)`: a `static let`, made once, with the loop's
/// arguments in a struct on the caller's stack, so that starting a loop allocates nothing (a
/// closure capturing them would be boxed on the heap to reach the worker threads, on every
/// matrix product).
public typealias ParallelJob = @Sendable (UnsafeRawPointer, Int) -> Void

extension MatrixKernels {
  /// `body(pointer to arguments, i)` for every i in 0..<count, possibly in parallel.
  @inline(__always)
  func parallelFor<Arguments>(_ count: Int, work: Int, _ arguments: Arguments, _ body: @escaping ParallelJob) {
    withUnsafePointer(to: arguments) { parallelFor(count, work: work, arguments: UnsafeRawPointer($0), body) }
  }

  /// The default: GCD's concurrentPerform over `threads` when `work` pays for the handoff.
  public func parallelFor(_ count: Int, work: Int, arguments: UnsafeRawPointer, _ body: @escaping ParallelJob) {
    if threads <= 1 || count <= 1 || work < 1 << 16 {
      for i in 0..<count { body(arguments, i) }
      return
    }
    let workers = min(threads, count)
    // concurrentPerform returns only when every iteration has run, so the arguments outlive the
    // loop; callers hand each index disjoint output rows (the reason it is safe to share).
    let shared = UncheckedSendable((body, arguments))
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
      var i = worker
      while i < count {
        shared.value.0(shared.value.1, i)
        i += workers
      }
    }
  }
}

struct UncheckedSendable<T>: @unchecked Sendable {
  let value: T
  init(_ value: T) { self.value = value }
}

/// The plain reference: one scalar loop per output, accumulating in Float in index order. What
/// the fast kernels are tested against.
public struct ReferenceKernels: MatrixKernels {
  public init() {}
  public var threads: Int { 1 }

  public func multiply(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) {
    if let format = w.dtype.blockFormat { return multiplyQuantized(w, x, n: n, into: y, format) }
    for t in 0..<n {
      for r in 0..<w.rows {
        var sum: Float = 0
        for c in 0..<w.cols { sum += w.value(r * w.cols + c) * x[t * w.cols + c] }
        y[t * w.rows + r] = sum
      }
    }
  }
}

/// Pure-Swift SIMD kernels. Every output is formed in the same order whichever block computes
/// it, so results are row-invariant: a row's products do not depend on the number of rows in
/// the call (tested bit for bit). Register-blocked: each 8-float weight vector is loaded and
/// converted once for four input rows (prefill, batches, verification: two weight rows × four
/// tokens), two (four weight rows × two tokens) or one (decode: four weight rows × one token);
/// four weight rows stay in cache while every input row passes, so each weight is read from
/// memory once per call, as four sequential streams per thread (`multiplyPart`; 16-bit weights
/// are upcast in registers: F16C for f16, a shift for bf16). Rows are split into one contiguous
/// range per thread. Sums are reassociated
/// (eight lanes, then a horizontal add): results differ from the reference by rounding only
/// (tested at 1e-4 absolute on O(1) data).
public struct SIMDKernels: MatrixKernels {
  public let threads: Int
  /// The build of the kernels that runs the products (`KernelSet.best` picks the widest this
  /// CPU has; every build gives the same bits).
  public let kernels: KernelSet
  let pool: WorkerPool

  public init(threads: Int, kernels: KernelSet = .avx2) {
    self.threads = max(1, threads)
    self.kernels = kernels
    pool = WorkerPool.shared(size: self.threads)
  }

  /// Spreads the indices over the worker pool (each participant claims the next free index).
  public func parallelFor(_ count: Int, work: Int, arguments: UnsafeRawPointer, _ body: @escaping ParallelJob) {
    if threads <= 1 || count <= 1 || work < 1 << 15 {
      for i in 0..<count { body(arguments, i) }
      return
    }
    pool.run(count: count, arguments: arguments, body)
  }

  public func multiply(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) {
    switch w.dtype {
    case .f32: run(F32Rows(w), w, x, n, y, kernels.f32)
    case .f16: run(F16Rows(w), w, x, n, y, kernels.f16)
    case .bf16: run(BF16Rows(w), w, x, n, y, kernels.bf16)
    case .q8_0: multiplyQuantized(w, x, n: n, into: y, Q8_0.self, kernels.q8_0)
    case .q4_0: multiplyQuantized(w, x, n: n, into: y, Q4_0.self, kernels.q4_0)
    }
  }

  /// A matrix product's arguments, for its parallel parts (`multiplyPart`).
  @usableFromInline
  struct Product<R: RowLoader> {
    @usableFromInline let loader: R
    @usableFromInline let rows: Int, cols: Int, n: Int
    @usableFromInline let x: UnsafePointer<Float>
    @usableFromInline let y: UnsafeMutablePointer<Float>
    @usableFromInline let parts: Int
  }

  /// Parts a product of `rows` rows is split into: several per thread, claimed as threads come
  /// free (`WorkerPool`), so that a thread that starts late or is preempted (a busy machine)
  /// leaves its remaining parts to the others instead of making them wait; at least 32 rows a
  /// part (eight a stream).
  func productParts(rows: Int) -> Int {
    threads == 1 ? 1 : max(1, min(threads * 4, rows / 32))
  }

  @inline(__always)
  func run<R: RowLoader>(_ loader: R, _ w: Weight, _ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutablePointer<Float>, _ part: @escaping ParallelJob) {
    let parts = productParts(rows: w.rows)
    parallelFor(parts, work: w.rows * w.cols * max(1, n), Product(loader: loader, rows: w.rows, cols: w.cols, n: n, x: x, y: y, parts: parts), part)
  }

  /// Part `part` of a product: contiguous, equal shares of the rows (in whole 8-row blocks).
  /// The part's rows are taken four at a time a quarter of its range apart (r, r + q, r + 2q,
  /// r + 3q): each weight is read from memory once per call, and so as four sequential streams,
  /// which the hardware prefetchers follow; adjacent rows read side by side interleave within a
  /// page, which they do not (one thread on a Zen 4 reading f16 weights of 768 columns from
  /// memory: 11 GB/s with eight adjacent rows, 29 GB/s with four streams; 8 streams: 23).
  /// The first two tokens read the four rows from memory together (four rows × two tokens: four
  /// streams); the rest find them in L1, four tokens at a time (two rows × four tokens), then
  /// two, then one. (Two rows × four tokens as the first pass is two streams: a 4-token product
  /// of f32 weights from memory took 2.7× a 1-token one that way, 2.0× this way.) A row's sum
  /// is formed in the same order in every block, so results do not depend on the rows or tokens
  /// in the call. A `wide` build (`KernelBuild`) takes the four rows × four tokens together.
  @inlinable @inline(__always)
  static func multiplyPart<R: RowLoader, B: KernelBuild>(_ arguments: UnsafeRawPointer, _ part: Int, _: R.Type, _: B.Type) {
    let a = arguments.assumingMemoryBound(to: Product<R>.self).pointee
    let loader = a.loader, rows = a.rows, cols = a.cols, n = a.n, x = a.x, y = a.y
    let (lo, hi, q) = Self.partRows(part, of: a.parts, rows: rows)
    for r in lo..<(lo + q) {
      var t = 0
      if n >= 2 {
        Self.block4x2(loader, r, q, cols, x, x + cols, y + r, y + rows + r)
        t = 2
      }
      while t + 4 <= n {
        let xt = x + t * cols, yt = y + t * rows + r
        if B.wide {
          Self.block4x4(loader, r, q, cols, xt, cols, yt, rows)
        } else {
          Self.block2x4(loader, r, q, cols, xt, xt + cols, xt + 2 * cols, xt + 3 * cols, yt, rows)
          Self.block2x4(loader, r + 2 * q, q, cols, xt, xt + cols, xt + 2 * cols, xt + 3 * cols, yt + 2 * q, rows)
        }
        t += 4
      }
      if t + 2 <= n {
        Self.block4x2(loader, r, q, cols, x + t * cols, x + (t + 1) * cols, y + t * rows + r, y + (t + 1) * rows + r)
        t += 2
      }
      if t < n {
        Self.block4x1(loader, r, q, cols, x + t * cols, y + t * rows + r)
      }
    }
    for r in (lo + 4 * q)..<hi {
      for t in 0..<n { y[t * rows + r] = Self.dot(loader, r, cols, x + t * cols) }
    }
  }

  /// Part `part` of `parts`' rows lo..<hi (contiguous, equal shares in whole 8-row blocks) and
  /// the distance q between its four streams (a quarter of the range; rows from lo + 4q on are
  /// left over).
  @inlinable @inline(__always)
  static func partRows(_ part: Int, of parts: Int, rows: Int) -> (lo: Int, hi: Int, q: Int) {
    let blocks = (rows + 7) / 8
    let lo = blocks * part / parts * 8, hi = min(blocks * (part + 1) / parts * 8, rows)
    return (lo, hi, (hi - lo) / 4)
  }

  @inlinable @inline(__always)
  static func load(_ x: UnsafePointer<Float>, _ c: Int) -> SIMD8<Float> {
    UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self)
  }

  /// Four rows `step` apart (r0, r0 + step, …) × one input row; writes y[k·step] for k in
  /// 0..<4. One accumulator per row, as in every other block, so that a row's sum is formed in
  /// the same order (8-lane chunks in column order, the lanes summed, then the scalar tail)
  /// whichever block computes it: a token's logits then do not depend on how many rows shared
  /// the call (batching, prefill chunks, verification). The row pointers are hoisted and
  /// offsets use wrapping arithmetic (no overflow checks in the loop: sizes were validated at
  /// load).
  @inlinable @inline(__always)
  static func block4x1<R: RowLoader>(_ w: R, _ r0: Int, _ step: Int, _ cols: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    let p0 = w.row(r0), p1 = w.row(r0 &+ step), p2 = w.row(r0 &+ 2 &* step), p3 = w.row(r0 &+ 3 &* step)
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var c = 0
    while c &+ 8 <= cols {
      let u = load(x, c)
      a0 = a0.addingProduct(R.load(p0, c), u); a1 = a1.addingProduct(R.load(p1, c), u)
      a2 = a2.addingProduct(R.load(p2, c), u); a3 = a3.addingProduct(R.load(p3, c), u)
      c &+= 8
    }
    var s = SIMD4<Float>(a0.sum(), a1.sum(), a2.sum(), a3.sum())
    while c < cols {
      s += SIMD4<Float>(R.scalar(p0, c), R.scalar(p1, c), R.scalar(p2, c), R.scalar(p3, c)) * x[c]
      c &+= 1
    }
    y[0] = s[0]; y[step] = s[1]; y[2 &* step] = s[2]; y[3 &* step] = s[3]
  }

  /// Four rows `step` apart × two input rows: each weight vector is loaded once for both. Writes
  /// y0[k·step] and y1[k·step] for k in 0..<4.
  @inlinable @inline(__always)
  static func block4x2<R: RowLoader>(_ w: R, _ r0: Int, _ step: Int, _ cols: Int, _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>,
                                     _ y0: UnsafeMutablePointer<Float>, _ y1: UnsafeMutablePointer<Float>) {
    let p0 = w.row(r0), p1 = w.row(r0 &+ step), p2 = w.row(r0 &+ 2 &* step), p3 = w.row(r0 &+ 3 &* step)
    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
    var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
    var c = 0
    while c &+ 8 <= cols {
      let u = load(x0, c), v = load(x1, c)
      let w0 = R.load(p0, c), w1 = R.load(p1, c), w2 = R.load(p2, c), w3 = R.load(p3, c)
      a00 = a00.addingProduct(w0, u); a10 = a10.addingProduct(w0, v)
      a01 = a01.addingProduct(w1, u); a11 = a11.addingProduct(w1, v)
      a02 = a02.addingProduct(w2, u); a12 = a12.addingProduct(w2, v)
      a03 = a03.addingProduct(w3, u); a13 = a13.addingProduct(w3, v)
      c &+= 8
    }
    var s0 = SIMD4<Float>(a00.sum(), a01.sum(), a02.sum(), a03.sum())
    var s1 = SIMD4<Float>(a10.sum(), a11.sum(), a12.sum(), a13.sum())
    while c < cols {
      let wc = SIMD4<Float>(R.scalar(p0, c), R.scalar(p1, c), R.scalar(p2, c), R.scalar(p3, c))
      s0 += wc * x0[c]
      s1 += wc * x1[c]
      c &+= 1
    }
    for k in 0..<4 {
      y0[k &* step] = s0[k]
      y1[k &* step] = s1[k]
    }
  }

  /// Rows r0 and r0 + step × four input rows (prefill, verification of drafted tokens): each
  /// weight vector is loaded and converted once for four tokens. Writes y[t·stride] and
  /// y[t·stride + step] for t in 0..<4.
  @inlinable @inline(__always)
  static func block2x4<R: RowLoader>(_ w: R, _ r0: Int, _ step: Int, _ cols: Int, _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>,
                                     _ x2: UnsafePointer<Float>, _ x3: UnsafePointer<Float>,
                                     _ y: UnsafeMutablePointer<Float>, _ stride: Int) {
    let p0 = w.row(r0), p1 = w.row(r0 &+ step)
    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
    var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
    var c = 0
    while c &+ 8 <= cols {
      let w0 = R.load(p0, c), w1 = R.load(p1, c)
      let u0 = load(x0, c), u1 = load(x1, c), u2 = load(x2, c), u3 = load(x3, c)
      a00 = a00.addingProduct(w0, u0); a10 = a10.addingProduct(w1, u0)
      a01 = a01.addingProduct(w0, u1); a11 = a11.addingProduct(w1, u1)
      a02 = a02.addingProduct(w0, u2); a12 = a12.addingProduct(w1, u2)
      a03 = a03.addingProduct(w0, u3); a13 = a13.addingProduct(w1, u3)
      c &+= 8
    }
    var s0 = SIMD4<Float>(a00.sum(), a01.sum(), a02.sum(), a03.sum())
    var s1 = SIMD4<Float>(a10.sum(), a11.sum(), a12.sum(), a13.sum())
    while c < cols {
      let xc = SIMD4<Float>(x0[c], x1[c], x2[c], x3[c])
      s0 += xc * R.scalar(p0, c)
      s1 += xc * R.scalar(p1, c)
      c &+= 1
    }
    for t in 0..<4 {
      y[t &* stride] = s0[t]
      y[t &* stride &+ step] = s1[t]
    }
  }

  /// Rows r0, r0 + step, r0 + 2·step, r0 + 3·step × input rows x, x + xStride, … (four): each
  /// weight vector loaded once for four tokens, each token vector for four rows. Sixteen
  /// accumulators: for builds with 32 vector registers (on 16 LLVM spills them). Writes
  /// y[t·stride + k·step].
  @inlinable @inline(__always)
  static func block4x4<R: RowLoader>(_ w: R, _ r0: Int, _ step: Int, _ cols: Int, _ x: UnsafePointer<Float>, _ xStride: Int,
                                                       _ y: UnsafeMutablePointer<Float>, _ stride: Int) {
    let p0 = w.row(r0), p1 = w.row(r0 &+ step), p2 = w.row(r0 &+ 2 &* step), p3 = w.row(r0 &+ 3 &* step)
    let x0 = x, x1 = x + xStride, x2 = x + 2 &* xStride, x3 = x + 3 &* xStride
    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
    var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
    var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a22 = SIMD8<Float>(), a23 = SIMD8<Float>()
    var a30 = SIMD8<Float>(), a31 = SIMD8<Float>(), a32 = SIMD8<Float>(), a33 = SIMD8<Float>()
    var c = 0
    while c &+ 8 <= cols {
      let u0 = load(x0, c), u1 = load(x1, c), u2 = load(x2, c), u3 = load(x3, c)
      let w0 = R.load(p0, c)
      a00 = a00.addingProduct(w0, u0); a01 = a01.addingProduct(w0, u1); a02 = a02.addingProduct(w0, u2); a03 = a03.addingProduct(w0, u3)
      let w1 = R.load(p1, c)
      a10 = a10.addingProduct(w1, u0); a11 = a11.addingProduct(w1, u1); a12 = a12.addingProduct(w1, u2); a13 = a13.addingProduct(w1, u3)
      let w2 = R.load(p2, c)
      a20 = a20.addingProduct(w2, u0); a21 = a21.addingProduct(w2, u1); a22 = a22.addingProduct(w2, u2); a23 = a23.addingProduct(w2, u3)
      let w3 = R.load(p3, c)
      a30 = a30.addingProduct(w3, u0); a31 = a31.addingProduct(w3, u1); a32 = a32.addingProduct(w3, u2); a33 = a33.addingProduct(w3, u3)
      c &+= 8
    }
    var s0 = SIMD4<Float>(a00.sum(), a10.sum(), a20.sum(), a30.sum()), s1 = SIMD4<Float>(a01.sum(), a11.sum(), a21.sum(), a31.sum())
    var s2 = SIMD4<Float>(a02.sum(), a12.sum(), a22.sum(), a32.sum()), s3 = SIMD4<Float>(a03.sum(), a13.sum(), a23.sum(), a33.sum())
    while c < cols {
      let wc = SIMD4<Float>(R.scalar(p0, c), R.scalar(p1, c), R.scalar(p2, c), R.scalar(p3, c))
      s0 += wc * x0[c]; s1 += wc * x1[c]; s2 += wc * x2[c]; s3 += wc * x3[c]
      c &+= 1
    }
    for k in 0..<4 {
      y[k &* step] = s0[k]; y[stride &+ k &* step] = s1[k]
      y[2 &* stride &+ k &* step] = s2[k]; y[3 &* stride &+ k &* step] = s3[k]
    }
  }

  @inlinable @inline(__always)
  static func dot<R: RowLoader>(_ w: R, _ r: Int, _ cols: Int, _ x: UnsafePointer<Float>) -> Float {
    let p = w.row(r)
    var acc = SIMD8<Float>()
    var c = 0
    while c &+ 8 <= cols {
      acc = acc.addingProduct(R.load(p, c), load(x, c))
      c &+= 8
    }
    var sum = acc.sum()
    while c < cols {
      sum += R.scalar(p, c) * x[c]
      c &+= 1
    }
    return sum
  }
}

/// Reads weights of one storage type as Floats: 8 consecutive (SIMD) or one.
@usableFromInline
protocol RowLoader {
  /// The start of row `row`.
  func row(_ row: Int) -> UnsafeRawPointer
  static func load(_ row: UnsafeRawPointer, _ col: Int) -> SIMD8<Float>
  static func scalar(_ row: UnsafeRawPointer, _ col: Int) -> Float
}

@usableFromInline
struct F32Rows: RowLoader {
  @usableFromInline let base: UnsafeRawPointer, rowBytes: Int
  init(_ w: Weight) { base = w.data; rowBytes = w.cols * 4 }
  @inlinable @inline(__always) func row(_ row: Int) -> UnsafeRawPointer { base + row &* rowBytes }
  @inlinable @inline(__always) static func load(_ p: UnsafeRawPointer, _ col: Int) -> SIMD8<Float> {
    p.loadUnaligned(fromByteOffset: col &* 4, as: SIMD8<Float>.self)
  }
  @inlinable @inline(__always) static func scalar(_ p: UnsafeRawPointer, _ col: Int) -> Float {
    p.loadUnaligned(fromByteOffset: col &* 4, as: Float.self)
  }
}

@usableFromInline
struct F16Rows: RowLoader {
  @usableFromInline let base: UnsafeRawPointer, rowBytes: Int
  init(_ w: Weight) { base = w.data; rowBytes = w.cols * 2 }
  @inlinable @inline(__always) func row(_ row: Int) -> UnsafeRawPointer { base + row &* rowBytes }
  @inlinable @inline(__always) static func load(_ p: UnsafeRawPointer, _ col: Int) -> SIMD8<Float> {
    // Written lane by lane: the stdlib's generic SIMD conversion initialisers are not inlined in
    // this context (an out-of-line call per load); this form compiles to one vcvtph2ps.
    let h = unsafeBitCast(p.loadUnaligned(fromByteOffset: col &* 2, as: SIMD8<UInt16>.self), to: SIMD8<Float16>.self)
    return SIMD8<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]), Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]))
  }
  @inlinable @inline(__always) static func scalar(_ p: UnsafeRawPointer, _ col: Int) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: col &* 2, as: UInt16.self)))
  }
}

@usableFromInline
struct BF16Rows: RowLoader {
  @usableFromInline let base: UnsafeRawPointer, rowBytes: Int
  init(_ w: Weight) { base = w.data; rowBytes = w.cols * 2 }
  @inlinable @inline(__always) func row(_ row: Int) -> UnsafeRawPointer { base + row &* rowBytes }
  @inlinable @inline(__always) static func load(_ p: UnsafeRawPointer, _ col: Int) -> SIMD8<Float> {
    // Lane by lane for the same reason as F16Rows: compiles to vpmovzxwd + vpslld.
    let v = p.loadUnaligned(fromByteOffset: col &* 2, as: SIMD8<UInt16>.self)
    let bits = SIMD8<UInt32>(UInt32(v[0]), UInt32(v[1]), UInt32(v[2]), UInt32(v[3]),
                             UInt32(v[4]), UInt32(v[5]), UInt32(v[6]), UInt32(v[7])) &<< 16
    return unsafeBitCast(bits, to: SIMD8<Float>.self)
  }
  @inlinable @inline(__always) static func scalar(_ p: UnsafeRawPointer, _ col: Int) -> Float {
    Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: col &* 2, as: UInt16.self)) << 16)
  }
}
