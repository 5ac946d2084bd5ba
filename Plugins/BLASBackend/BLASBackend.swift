import COpenBLAS
import EFTPluginKit
import Transformer

/// Matrix products through OpenBLAS (cblas_sgemm / cblas_sgemv). BLAS has no 16-bit products,
/// so f16/bf16 weights are upcast to f32 once at load (twice the memory of the checkpoint).
struct BLASKernels: MatrixKernels {
  let threads: Int

  init(threads: Int) {
    self.threads = max(1, threads)
    openblas_set_num_threads(Int32(self.threads))
  }

  func prepare(_ w: Weight) -> Weight { w.upcastF32() }

  func multiply(_ w: Weight, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) {
    let a = w.data.assumingMemoryBound(to: Float.self)
    let rows = Int32(w.rows), cols = Int32(w.cols)
    if n == 1 {
      // y = W x
      cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, cols, 1, a, cols, x, 1, 0, y, 1)
    } else {
      // Y [n × rows] = X [n × cols] · Wᵀ
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), rows, cols, 1, x, cols, a, cols, 0, y, rows)
    }
  }
}

/// The OpenBLAS backend: the same transformer as the CPU backend, with BLAS matrix products.
@_cdecl("eft_backend_entry")
public func eftBackendEntry() -> UnsafePointer<eft_backend> {
  PluginExport.table(name: "blas", version: "1.0.0", open: { path, options in
    try TransformerModel(path: path, options: options, kernels: { BLASKernels(threads: $0) })
  })
}
