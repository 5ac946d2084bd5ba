import Transformer

/// The product kernels built for AVX-512 with VNNI (Package.swift: `-target-cpu cascadelake`,
/// tuned for Zen 4): the same generic source as `AVX2Build`, here with 32 vector registers
/// (four weight rows × four tokens per block without spilling) and `vpdpwssd` for the quantized
/// pair sums. Nothing here runs unless `KernelSet.best` finds the CPU flags: this module's code
/// is only these functions, and the set that names them is made by the baseline module.
public enum AVX512Build: KernelBuild {
  public static var wide: Bool { true }
  public static func f32(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.f32(arguments, part, Self.self) }
  public static func f16(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.f16(arguments, part, Self.self) }
  public static func bf16(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.bf16(arguments, part, Self.self) }
  public static func q8_0(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.q8_0(arguments, part, Self.self) }
  public static func q4_0(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.q4_0(arguments, part, Self.self) }
}
