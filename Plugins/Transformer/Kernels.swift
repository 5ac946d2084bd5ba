import Dispatch
import Foundation

/// The matrix products of a forward pass — the one piece that differs between backends.
public protocol MatrixKernels: Sendable {
  /// y = x·Wᵀ: `x` is [n × w.cols] row-major, `y` is [n × w.rows].
  func multiply(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>)
  /// The weight in the form `multiply` reads best, made once at load (e.g. f32 for BLAS).
  func prepare(_ w: Weight) -> Weight
  /// Worker threads for the parts of the forward pass outside `multiply` (attention heads).
  var threads: Int { get }
}

extension MatrixKernels {
  public func prepare(_ w: Weight) -> Weight { w }

  /// Runs `body(i)` for every i in 0..<count, spread over `threads` when `work` is large
  /// enough to pay for the handoff.
  func parallelFor(_ count: Int, work: Int, _ body: (Int) -> Void) {
    if threads <= 1 || count <= 1 || work < 1 << 16 {
      for i in 0..<count { body(i) }
      return
    }
    let workers = min(threads, count)
    // concurrentPerform returns only when every iteration has run, so `body` does not escape;
    // callers hand each index disjoint output rows (the reason it is safe to share).
    withoutActuallyEscaping(body) { body in
      let shared = UncheckedSendable(body)
      DispatchQueue.concurrentPerform(iterations: workers) { worker in
        var i = worker
        while i < count {
          shared.value(i)
          i += workers
        }
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
    for t in 0..<n {
      for r in 0..<w.rows {
        var sum: Float = 0
        for c in 0..<w.cols { sum += w.value(r * w.cols + c) * x[t * w.cols + c] }
        y[t * w.rows + r] = sum
      }
    }
  }
}

/// Pure-Swift SIMD kernels: each weight row is read once per call and multiplied with every input
/// row; 16-bit weights are upcast in registers (F16C for f16, a shift for bf16). Rows are split
/// across threads. Sums are reassociated (eight lanes, then a horizontal add): results differ
/// from the reference by rounding only (tested at 1e-5 relative).
public struct SIMDKernels: MatrixKernels {
  public let threads: Int

  public init(threads: Int) { self.threads = max(1, threads) }

  public func multiply(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) {
    let rows = w.rows, cols = w.cols
    let blockRows = 4
    let blocks = (rows + blockRows - 1) / blockRows
    let chunk = max(1, min(blocks, 64))
    let chunks = (blocks + chunk - 1) / chunk
    parallelFor(chunks, work: rows * cols * max(1, n)) { c in
      let firstBlock = c * chunk
      for block in firstBlock..<min(blocks, firstBlock + chunk) {
        let r0 = block * blockRows
        let count = min(blockRows, rows - r0)
        for t in 0..<n {
          let xt = x + t * cols
          for r in r0..<(r0 + count) {
            y[t * rows + r] = dot(w, row: r, xt, cols)
          }
        }
      }
    }
  }

  @inline(__always)
  func dot(_ w: Weight, row: Int, _ x: UnsafePointer<Float>, _ cols: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var c = 0
    let raw = UnsafeRawPointer(x)
    switch w.dtype {
    case .f32:
      let base = w.data + row * cols * 4
      while c + 16 <= cols {
        acc0 = acc0.addingProduct(base.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self),
                                  raw.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self))
        acc1 = acc1.addingProduct(base.loadUnaligned(fromByteOffset: (c + 8) * 4, as: SIMD8<Float>.self),
                                  raw.loadUnaligned(fromByteOffset: (c + 8) * 4, as: SIMD8<Float>.self))
        c += 16
      }
    case .f16:
      let base = w.data + row * cols * 2
      while c + 16 <= cols {
        let a = SIMD8<Float>(unsafeBitCast(base.loadUnaligned(fromByteOffset: c * 2, as: SIMD8<UInt16>.self), to: SIMD8<Float16>.self))
        let b = SIMD8<Float>(unsafeBitCast(base.loadUnaligned(fromByteOffset: (c + 8) * 2, as: SIMD8<UInt16>.self), to: SIMD8<Float16>.self))
        acc0 = acc0.addingProduct(a, raw.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self))
        acc1 = acc1.addingProduct(b, raw.loadUnaligned(fromByteOffset: (c + 8) * 4, as: SIMD8<Float>.self))
        c += 16
      }
    case .bf16:
      let base = w.data + row * cols * 2
      while c + 16 <= cols {
        let ua = SIMD8<UInt32>(truncatingIfNeeded: base.loadUnaligned(fromByteOffset: c * 2, as: SIMD8<UInt16>.self)) &<< 16
        let ub = SIMD8<UInt32>(truncatingIfNeeded: base.loadUnaligned(fromByteOffset: (c + 8) * 2, as: SIMD8<UInt16>.self)) &<< 16
        acc0 = acc0.addingProduct(unsafeBitCast(ua, to: SIMD8<Float>.self), raw.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self))
        acc1 = acc1.addingProduct(unsafeBitCast(ub, to: SIMD8<Float>.self), raw.loadUnaligned(fromByteOffset: (c + 8) * 4, as: SIMD8<Float>.self))
        c += 16
      }
    }
    var sum = (acc0 + acc1).sum()
    while c < cols {
      sum += w.value(row * cols + c) * x[c]
      c += 1
    }
    return sum
  }
}
