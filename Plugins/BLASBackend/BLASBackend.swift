import COpenBLAS
import EFTPluginKit
import Transformer
import TransformerAVX512

/// Matrix products of many input rows (prefill) of f32 and bf16 weights through OpenBLAS's
/// cblas_sgemm; the rest through the SIMD kernels: products of a few rows (decode, verification
/// of drafted tokens, small batches), which read each weight once per call as sequential streams
/// and beat sgemv there (82M f32 checkpoint, Zen 4, 2 threads: decode 99 tokens/s against
/// sgemv's 75), and every product of f16 and quantized weights, where they beat sgemm on the
/// weights converted (82M model, 128-token prefill: f16 731 against 651 tokens/s, Q8_0 852
/// against 439). Weights stay as loaded (16-bit ones are not upcast: half the memory, and decode
/// reads half the bytes); bf16 ones are converted to f32 a slice at a time for sgemm (its
/// prefill: 815 tokens/s against the SIMD kernels' 695).
struct BLASKernels: MatrixKernels {
  let threads: Int
  let simd: SIMDKernels
  let blas: OpenBLAS

  init(threads: Int) throws {
    self.threads = max(1, threads)
    simd = SIMDKernels(threads: self.threads, kernels: try .best(of: [.avx512(AVX512Build.self), .avx2]))
    blas = try OpenBLAS.shared.get()
    blas.setThreads(Int32(self.threads))
  }

  /// Input rows from which products of f32 and bf16 weights go to sgemm: below, the SIMD
  /// kernels win.
  static let sgemmFrom = 16
  /// Weights converted at a time (f32, 4 MiB): fits in L2/L3 while sgemm reads it.
  static let sliceElements = 1 << 20

  func multiply(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) {
    guard n >= Self.sgemmFrom, w.dtype == .f32 || w.dtype == .bf16 else { return simd.multiply(w, x, n: n, into: y) }
    if w.dtype == .f32 {
      let rows = Int32(w.rows), cols = Int32(w.cols)
      // Y [n × rows] = X [n × cols] · Wᵀ
      return blas.sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), rows, cols, 1, x, cols,
                        w.data.assumingMemoryBound(to: Float.self), cols, 0, y, rows)
    }
    let sliceRows = max(1, min(w.rows, Self.sliceElements / w.cols))
    let slice = UnsafeMutablePointer<Float>.allocate(capacity: sliceRows * w.cols)
    defer { slice.deallocate() }
    var r0 = 0
    while r0 < w.rows {
      let height = min(sliceRows, w.rows - r0)
      w.dequantize(rows: r0..<(r0 + height), into: slice)
      // Y[:, r0..<r0+height] (row stride w.rows) = X [n × cols] · sliceᵀ
      blas.sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(height), Int32(w.cols), 1, x, Int32(w.cols),
                 slice, Int32(w.cols), 0, y + r0, Int32(w.rows))
      r0 += height
    }
  }
}

/// The OpenBLAS backend: the same transformer as the CPU backend, with BLAS matrix products.
@_cdecl("eft_backend_entry")
public func eftBackendEntry() -> UnsafePointer<eft_backend> {
  PluginExport.table(name: "blas", version: "1.0.0", open: { path, options in
    try TransformerModel(path: path, options: options, kernels: { try BLASKernels(threads: $0) })
  })
}
