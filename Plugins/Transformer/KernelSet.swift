import EFTPluginKit
import Foundation

/// One compilation of the product kernels: the parallel part of a product for each weight type.
/// The parts are the generic kernels of `SIMDKernels`, specialised where the conforming type is
/// compiled, so the same source is built once per instruction set: `AVX2Build` here (this module
/// is built for Haswell: AVX2, FMA, F16C) and `AVX512Build` in TransformerAVX512 (built for
/// AVX-512 with VNNI). The products of every build are the same bits: each (row, token) sum runs
/// the same operations in the same order, only the blocking differs (`wide`).
public protocol KernelBuild: SendableMetatype {
  /// Whether the build has 32 vector registers: it then takes four weight rows × four tokens at
  /// once (sixteen accumulators) where a 16-register build takes two rows × four tokens twice.
  static var wide: Bool { get }
  static func f32(_ arguments: UnsafeRawPointer, _ part: Int)
  static func f16(_ arguments: UnsafeRawPointer, _ part: Int)
  static func bf16(_ arguments: UnsafeRawPointer, _ part: Int)
  static func q8_0(_ arguments: UnsafeRawPointer, _ part: Int)
  static func q4_0(_ arguments: UnsafeRawPointer, _ part: Int)
}

/// The generic parts, for a `KernelBuild` to instantiate. Every kernel function that holds a
/// loop is generic over the build too: a specialisation is named by its generic arguments, and
/// two modules' copies of one name are merged at link time — a loop specialised for concrete
/// loader types alone, and not inlined, ran the baseline's copy (16 registers, spilling) in the
/// AVX-512 build.
public enum KernelParts {
  @inlinable @inline(__always)
  public static func f32<B: KernelBuild>(_ arguments: UnsafeRawPointer, _ part: Int, _ build: B.Type) {
    SIMDKernels.multiplyPart(arguments, part, F32Rows.self, build)
  }
  @inlinable @inline(__always)
  public static func f16<B: KernelBuild>(_ arguments: UnsafeRawPointer, _ part: Int, _ build: B.Type) {
    SIMDKernels.multiplyPart(arguments, part, F16Rows.self, build)
  }
  @inlinable @inline(__always)
  public static func bf16<B: KernelBuild>(_ arguments: UnsafeRawPointer, _ part: Int, _ build: B.Type) {
    SIMDKernels.multiplyPart(arguments, part, BF16Rows.self, build)
  }
  @inlinable @inline(__always)
  public static func q8_0<B: KernelBuild>(_ arguments: UnsafeRawPointer, _ part: Int, _ build: B.Type) {
    SIMDKernels.quantizedPart(arguments, part, Q8_0.self, build)
  }
  @inlinable @inline(__always)
  public static func q4_0<B: KernelBuild>(_ arguments: UnsafeRawPointer, _ part: Int, _ build: B.Type) {
    SIMDKernels.quantizedPart(arguments, part, Q4_0.self, build)
  }
}

/// The baseline build (every x86-64 CPU this plugin runs on has AVX2, FMA and F16C).
enum AVX2Build: KernelBuild {
  static var wide: Bool { false }
  static func f32(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.f32(arguments, part, Self.self) }
  static func f16(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.f16(arguments, part, Self.self) }
  static func bf16(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.bf16(arguments, part, Self.self) }
  static func q8_0(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.q8_0(arguments, part, Self.self) }
  static func q4_0(_ arguments: UnsafeRawPointer, _ part: Int) { KernelParts.q4_0(arguments, part, Self.self) }
}

/// A build of the kernels, with the CPU flags (as /proc/cpuinfo names them) it needs. Made in
/// code built for the baseline: the closures only call into the build, so holding a set runs
/// none of its instructions.
public struct KernelSet: Sendable {
  public let name: String
  public let cpuFlags: [String]
  let f32, f16, bf16, q8_0, q4_0: ParallelJob

  public init<B: KernelBuild>(name: String, cpuFlags: [String], _: B.Type) {
    self.name = name
    self.cpuFlags = cpuFlags
    f32 = { B.f32($0, $1) }
    f16 = { B.f16($0, $1) }
    bf16 = { B.bf16($0, $1) }
    q8_0 = { B.q8_0($0, $1) }
    q4_0 = { B.q4_0($0, $1) }
  }

  public static let avx2 = KernelSet(name: "avx2", cpuFlags: ["avx2", "fma", "f16c"], AVX2Build.self)

  /// The flags TransformerAVX512 is built for (`-target-cpu cascadelake`: AVX-512 F, CD, BW, DQ,
  /// VL and VNNI, the others of that CPU any AVX-512 one has).
  public static func avx512<B: KernelBuild>(_ build: B.Type) -> KernelSet {
    KernelSet(name: "avx512", cpuFlags: ["avx2", "fma", "f16c", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni"], build)
  }

  /// Whether this CPU has every flag the set needs.
  public var supported: Bool { cpuFlags.allSatisfy(KernelSet.hostFlags.contains) }

  /// The first of `sets` (widest first) this CPU runs, or the one EFT_KERNELS names (to compare
  /// builds, or to rule one out): an error if it names none of them or one this CPU lacks.
  public static func best(of sets: [KernelSet], environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KernelSet {
    if let name = environment["EFT_KERNELS"], !name.isEmpty {
      guard let set = sets.first(where: { $0.name == name }) else {
        throw BackendError(EFT_INVALID_ARGUMENT, "EFT_KERNELS=\(name): no such kernel build (builds: \(sets.map(\.name).joined(separator: ", ")))")
      }
      let missing = set.cpuFlags.filter { !hostFlags.contains($0) }
      guard missing.isEmpty else {
        throw BackendError(EFT_INVALID_ARGUMENT, "EFT_KERNELS=\(name): this CPU lacks \(missing.joined(separator: ", "))")
      }
      return set
    }
    return sets.first(where: \.supported) ?? .avx2
  }

  /// The first "flags" line of /proc/cpuinfo (empty where there is none).
  static let hostFlags: Set<String> = {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
          let colon = line.firstIndex(of: ":") else { return [] }
    return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
  }()
}
