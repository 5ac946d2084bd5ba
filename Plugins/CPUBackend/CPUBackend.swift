import EFTPluginKit
import Transformer
import TransformerAVX512

/// The pure-Swift CPU backend: transformer checkpoints with SIMD kernels (f32, f16 and bf16
/// weights read in place from the memory-mapped safetensors).
@_cdecl("eft_backend_entry")
public func eftBackendEntry() -> UnsafePointer<eft_backend> {
  PluginExport.table(name: "cpu", version: "1.0.0", open: { path, options in
    try TransformerModel(path: path, options: options, kernels: { SIMDKernels(threads: $0, kernels: try .best(of: [.avx512(AVX512Build.self), .avx2])) })
  })
}
