import COpenBLAS
import EFTPluginKit
import Foundation

/// OpenBLAS, opened by this plugin at its first model rather than linked, so that its kernels
/// can be chosen before it initialises. A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernels
/// once, when it loads, from the CPU's family and model numbers; on a CPU newer than it knows it
/// falls back to its oldest x86-64 kernels. Measured with OpenBLAS 0.3.21 on an Emerald Rapids
/// VM (family 6, model 207): "Prescott" (SSE3), the 82M model's f32 prefill 204 tokens/s
/// against 469 with the Haswell kernels, and with two other busy processes on the 2 cores
/// decode collapsed to 2.8 tokens/s (36 with Haswell's). So unless OPENBLAS_CORETYPE is already
/// set, it is set from the CPU's features (AVX-512 F/BW/DQ/VL: SkylakeX; AVX2 and FMA: Haswell;
/// otherwise unset, OpenBLAS's own choice) before the library is opened.
struct OpenBLAS: @unchecked Sendable {
  typealias Sgemm = @convention(c) (CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint, Float,
                                    UnsafePointer<Float>?, blasint, UnsafePointer<Float>?, blasint, Float,
                                    UnsafeMutablePointer<Float>?, blasint) -> Void

  let sgemm: Sgemm
  let setThreads: @convention(c) (Int32) -> Void
  /// The kernels OpenBLAS chose ("Haswell", "SkylakeX", …).
  let core: String

  /// The library, opened once per process (or why it could not be).
  static let shared = Result { try OpenBLAS() }

  private init() throws {
    if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let core = Self.coreForThisCPU() {
      // Once, at the plugin's first model, before the library exists in this process.
      setenv("OPENBLAS_CORETYPE", core, 0)
    }
    guard let handle = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL) ?? dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL) else {
      throw BackendError(EFT_NOT_FOUND, "cannot open OpenBLAS (libopenblas.so.0; Debian: apt-get install libopenblas0): \(String(cString: dlerror()))")
    }
    func symbol<T>(_ name: String, as _: T.Type) throws -> T {
      guard let p = dlsym(handle, name) else { throw BackendError(EFT_NOT_FOUND, "OpenBLAS has no \(name)") }
      return unsafeBitCast(p, to: T.self)
    }
    sgemm = try symbol("cblas_sgemm", as: Sgemm.self)
    setThreads = try symbol("openblas_set_num_threads", as: (@convention(c) (Int32) -> Void).self)
    let corename = try symbol("openblas_get_corename", as: (@convention(c) () -> UnsafeMutablePointer<CChar>?).self)
    core = corename().map { String(cString: $0) } ?? "?"
  }

  /// The OpenBLAS core type whose kernels this CPU runs, from /proc/cpuinfo's flags.
  static func coreForThisCPU() -> String? {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
    let flags = Set(line.split(separator: " ").map(String.init))
    if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) { return "SkylakeX" }
    if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
    return nil
  }
}
