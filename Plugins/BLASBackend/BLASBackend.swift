import COpenBLAS
import EFTPluginKit
import Transformer
import TransformerAVX512

/// Matrix products of many input rows (prefill) through OpenBLAS's cblas_sgemm; products of a
/// few (decode, verification of drafted tokens, small batches) through the SIMD kernels, which
/// read each weight once per call as sequential streams and beat sgemv there (82M f32
/// checkpoint, Zen 4, 2 threads: decode 99 tokens/s against sgemv's 75). BLAS has no 16-bit or
/// quantized products: f16/bf16 weights are upcast to f32 once at load (twice the memory of the
/// checkpoint); Q8_0 and Q4_0 weights stay quantized, dequantized a slice at a time into f32 for
/// sgemm.
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

  func prepare(_ w: Weight) -> Weight { w.dtype.isQuantized ? w : w.upcastF32() }

  /// Input rows from which products go to sgemm: below, the SIMD kernels win (and a quantized
  /// product would pay a pass over its weights to dequantize them).
  static let sgemmFrom = 16
  /// Weights dequantized at a time (f32, 4 MiB): fits in L2/L3 while sgemm reads it.
  static let sliceElements = 1 << 20

  func multiply(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) {
    if n < Self.sgemmFrom { return simd.multiply(w, x, n: n, into: y) }
    if w.dtype.isQuantized {
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
      return
    }
    let a = w.data.assumingMemoryBound(to: Float.self)
    let rows = Int32(w.rows), cols = Int32(w.cols)
    // Y [n × rows] = X [n × cols] · Wᵀ
    blas.sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), rows, cols, 1, x, cols, a, cols, 0, y, rows)
  }
}

/// The OpenBLAS backend: the same transformer as the CPU backend, with BLAS matrix products.
@_cdecl("eft_backend_entry")
public func eftBackendEntry() -> UnsafePointer<eft_backend> {
  PluginExport.table(name: "blas", version: "1.0.0", open: { path, options in
    try TransformerModel(path: path, options: options, kernels: { try BLASKernels(threads: $0) })
  })
}
