import CEFTBackend
import EFTCore
import EFTPluginKit
import EFTTestSupport
import EFTTokenizer
import Foundation
import Testing

@testable import Transformer
import TransformerAVX512

let checkpoints = repoRoot.appendingPathComponent("Tests/Fixtures/Checkpoints")
let variants = ["llama_gqa", "llama_tied", "qwen2", "gpt2", "llama_bf16_sharded", "mistral_sliding", "qwen2_sliding", "qwen3",
                "gemma2", "gemma3_text", "phi3", "phi3_longrope"]


struct GoldenPrompt: Decodable {
  let ids: [Int32]
  let logits: [[Float]]
  let greedy: [Int32]
}

func golden(_ variant: String) throws -> [GoldenPrompt] {
  struct File: Decodable { let prompts: [GoldenPrompt] }
  let data = try Data(contentsOf: checkpoints.appendingPathComponent("\(variant)/golden.json"))
  return try JSONDecoder().decode(File.self, from: data).prompts
}

/// Appends `ids` in one call, returning every position's logits.
func allLogits(_ session: any BackendSession, _ ids: [Int32], vocab: Int) throws -> [Float] {
  var out = [Float](repeating: .nan, count: ids.count * vocab)
  try ids.withUnsafeBufferPointer { t in
    try out.withUnsafeMutableBufferPointer { try session.append(t, mode: EFT_LOGITS_ALL, logits: $0.baseAddress) }
  }
  return out
}

/// Every build of the product kernels this CPU runs, the baseline first (on a CPU without
/// AVX-512 and VNNI, only it: the AVX-512 tests then check the baseline alone).
let kernelBuilds: [KernelSet] = [.avx2] + [KernelSet.avx512(AVX512Build.self)].filter(\.supported)

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
  zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
}

/// Logits of HF transformers (golden files from scripts/make_transformer_goldens.py) against
/// the Swift forward pass, for every architecture variant, with the reference and SIMD kernels.
@Suite struct GoldenParityTests {
  typealias Kernels = @Sendable (Int) -> any MatrixKernels
  static let kernelSets: [(String, Kernels)] = {
    var sets: [(String, Kernels)] = [
      ("reference", { _ in ReferenceKernels() }),
      ("simd-1", { _ in SIMDKernels(threads: 1) }),
      ("simd-2", { _ in SIMDKernels(threads: 2) }),
    ]
    for build in kernelBuilds.dropFirst() { sets.append(("simd-2-\(build.name)", { _ in SIMDKernels(threads: 2, kernels: build) })) }
    return sets
  }()

  @Test(arguments: variants)
  func logitsMatchTransformers(variant: String) throws {
    for (kernelName, kernels) in Self.kernelSets {
      let model = try TransformerModel(path: checkpoints.appendingPathComponent(variant).path, options: [], kernels: kernels)
      let vocab = model.description.vocabSize
      for prompt in try golden(variant) {
        let got = try allLogits(try model.makeSession(), prompt.ids, vocab: vocab)
        let want = prompt.logits.flatMap { $0 }
        #expect(got.count == want.count)
        let diff = maxAbsDiff(got, want)
        #expect(diff <= 1e-4, "\(variant) \(kernelName): max abs diff \(diff)")
      }
    }
  }

  @Test(arguments: variants)
  func greedyContinuationsMatchTransformers(variant: String) throws {
    let model = try TransformerModel(path: checkpoints.appendingPathComponent(variant).path, options: [], kernels: { SIMDKernels(threads: $0) })
    let vocab = model.description.vocabSize
    for prompt in try golden(variant) {
      let session = try model.makeSession()
      var logits = try allLogits(session, prompt.ids, vocab: vocab).suffix(vocab).map { $0 }
      var generated: [Int32] = []
      for _ in prompt.greedy {
        let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
        generated.append(next)
        logits = try allLogits(session, [next], vocab: vocab)
      }
      #expect(generated == prompt.greedy, "\(variant)")
    }
  }

  @Test func describesItselfFromConfigJSON() throws {
    let model = try TransformerModel(path: checkpoints.appendingPathComponent("llama_gqa").path, options: [], kernels: { SIMDKernels(threads: $0) })
    #expect(model.description.vocabSize == 420)
    #expect(model.description.contextLength == 256)
    #expect(model.description.bosTokenID == 1)
    #expect(model.description.eosTokenIDs == [2])
    #expect(model.description.architecture == "llama")
  }
}

/// The invariants every backend keeps: one call or token by token gives the same logits;
/// truncating and appending again gives the same logits.
@Suite struct SessionInvariantTests {
  @Test(arguments: ["llama_gqa", "gpt2", "mistral_sliding", "gemma2", "gemma3_text", "phi3"])
  func incrementalEqualsBatchedAndTruncateRestores(variant: String) throws {
    let model = try TransformerModel(path: checkpoints.appendingPathComponent(variant).path, options: [], kernels: { SIMDKernels(threads: $0) })
    let vocab = model.description.vocabSize
    let ids: [Int32] = [1, 44, 81, 77, 69, 83, 266, 93, 73, 12]
    let batched = try allLogits(try model.makeSession(), ids, vocab: vocab)
    let session = try model.makeSession()
    var stepwise: [Float] = []
    for id in ids { stepwise += try allLogits(session, [id], vocab: vocab) }
    #expect(maxAbsDiff(batched, stepwise) <= 1e-5)
    try session.truncate(to: 4)
    let again = try allLogits(session, Array(ids[4...]), vocab: vocab)
    #expect(maxAbsDiff(Array(batched[(4 * vocab)...]), again) <= 1e-5)
  }
}

/// Sliding windows and LongRoPE, beyond what the goldens show.
@Suite struct WindowAndLongRopeTests {
  func session(_ variant: String, bounded: Bool = true, slack: Int = 128) throws -> (TransformerSession, Int) {
    let model = try TransformerModel(path: checkpoints.appendingPathComponent(variant).path, options: [], kernels: { SIMDKernels(threads: $0) })
    return (TransformerSession(network: model.network, bounded: bounded, slack: slack), model.description.vocabSize)
  }

  /// Where every layer slides, the cache keeps the window (and the slack) however long the
  /// sequence; the logits are those of a cache that keeps everything, before and after a
  /// truncation deeper than the cache holds (which recomputes the prefix).
  @Test func slidingCacheStaysBoundedAndExact() throws {
    let (bounded, vocab) = try session("mistral_sliding", slack: 3)
    let (full, _) = try session("mistral_sliding", bounded: false)
    #expect(bounded.cache.window == 4 && full.cache.window == nil)
    let ids: [Int32] = (0..<240).map { Int32(($0 * 37 + 11) % 420) }
    var a: [Float] = [], b: [Float] = []
    for chunk in stride(from: 0, to: 200, by: 7) {
      let part = Array(ids[chunk..<min(200, chunk + 7)])
      a += try allLogits(bounded, part, vocab: vocab)
      b += try allLogits(full, part, vocab: vocab)
    }
    #expect(maxAbsDiff(a, b) == 0)
    #expect(bounded.cache.capacity <= 32, "capacity \(bounded.cache.capacity) for a window of 4")
    #expect(bounded.cache.base > 150)
    // Within the slack: in place. Deeper: recomputed. Both give the logits of the full cache.
    try bounded.truncate(to: 198)
    #expect(bounded.cache.base > 150)
    let shallow = try allLogits(bounded, Array(ids[198..<205]), vocab: vocab)
    try bounded.truncate(to: 60)
    try full.truncate(to: 60)
    var deep: [Float] = [], want: [Float] = []
    for chunk in stride(from: 60, to: 240, by: 7) {
      let part = Array(ids[chunk..<min(240, chunk + 7)])
      deep += try allLogits(bounded, part, vocab: vocab)
      want += try allLogits(full, part, vocab: vocab)
    }
    #expect(maxAbsDiff(deep, want) == 0)
    #expect(maxAbsDiff(shallow, Array(want[(138 * vocab)..<(145 * vocab)])) <= 1e-5)
    // The recomputation ran the 60 tokens in one pass; the cache kept no more than that.
    #expect(bounded.cache.capacity <= 64, "capacity \(bounded.cache.capacity)")
  }

  /// A LongRoPE sequence longer than original_max_position_embeddings (8 here) is rotated by the
  /// long factors at every position, however it arrived: token by token, in one call, or after
  /// a truncation back below the threshold (which rotates by the short factors again).
  @Test func longRopeDependsOnTheSequenceLengthOnly() throws {
    let ids: [Int32] = [1, 3, 171, 52, 72, 77, 80, 81, 9, 44, 12]
    let (once, vocab) = try session("phi3_longrope")
    let all = try allLogits(once, ids, vocab: vocab)
    let (stepwise, _) = try session("phi3_longrope")
    var last: [Float] = []
    for id in ids { last = try allLogits(stepwise, [id], vocab: vocab) }
    #expect(maxAbsDiff(last, Array(all.suffix(vocab))) == 0)
    try stepwise.truncate(to: 5)
    let short = try allLogits(stepwise, Array(ids[5..<8]), vocab: vocab)
    let (fresh, _) = try session("phi3_longrope")
    let want = try allLogits(fresh, Array(ids[..<8]), vocab: vocab)
    #expect(maxAbsDiff(short, Array(want.suffix(3 * vocab))) == 0)
    // And the short and long rotations differ (else this test shows nothing).
    #expect(maxAbsDiff(Array(want.prefix(8 * vocab)), Array(all.prefix(8 * vocab))) > 1e-3)
  }
}

@Suite struct KernelTests {
  /// A [rows × cols] weight of `dtype` from deterministic values, plus its exact Float values.
  func weight(_ dtype: DType, rows: Int, cols: Int, seed: UInt64) -> (Weight, [Float]) {
    var state = seed
    func next() -> Float {
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
    }
    let values = (0..<(rows * cols)).map { _ in next() }
    switch dtype {
    case .f32:
      return (Weight(rows: rows, cols: cols, values: values), values)
    case .q8_0, .q4_0:
      let w = Weight(rows: rows, cols: cols, values: values).quantized(to: dtype)
      return (w, w.floats())
    case .f16, .bf16:
      let bits: [UInt16] = values.map { dtype == .f16 ? Float16($0).bitPattern : UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
      let buffer = Buffer(bits)
      let w = Weight(dtype: dtype, rows: rows, cols: cols, data: UnsafeRawPointer(buffer.pointer), owner: buffer)
      return (w, w.floats())
    }
  }

  final class Buffer {
    let pointer: UnsafeMutablePointer<UInt16>
    init(_ bits: [UInt16]) {
      pointer = .allocate(capacity: bits.count)
      pointer.initialize(from: bits, count: bits.count)
    }
    deinit { pointer.deallocate() }
  }

  /// Deterministic inputs in [-1, 1).
  func inputs(_ count: Int) -> [Float] { (0..<count).map { Float(($0 * 7919) % 100) / 50 - 1 } }

  /// x·Wᵀ by the reference and by the SIMD kernels (2 threads).
  func products(_ w: Weight, _ x: [Float], n: Int) -> (reference: [Float], fast: [Float]) {
    var reference = [Float](repeating: 0, count: n * w.rows)
    var fast = [Float](repeating: 0, count: n * w.rows)
    x.withUnsafeBufferPointer { xp in
      ReferenceKernels().multiply(w, xp.baseAddress!, n: n, into: &reference)
      SIMDKernels(threads: 2).multiply(w, xp.baseAddress!, n: n, into: &fast)
    }
    return (reference, fast)
  }

  @Test(arguments: [DType.f32, .f16, .bf16])
  func simdMatchesReference(dtype: DType) {
    for (rows, cols, n) in [(7, 37, 1), (64, 64, 3), (130, 200, 5), (1, 16, 2), (300, 513, 1)] {
      let (w, exact) = weight(dtype, rows: rows, cols: cols, seed: UInt64(rows * cols))
      let x = inputs(n * cols)
      let (reference, fast) = products(w, x, n: n)
      // Exact values in Double as a third opinion.
      for t in 0..<n {
        for r in 0..<rows {
          var sum = 0.0
          for c in 0..<cols { sum += Double(exact[r * cols + c]) * Double(x[t * cols + c]) }
          #expect(abs(Double(reference[t * rows + r]) - sum) <= 1e-4 * max(1, abs(sum)))
        }
      }
      #expect(maxAbsDiff(reference, fast) <= 1e-4, "\(dtype) \(rows)×\(cols)")
    }
  }

  /// The activations' quantization, eight values at a time, makes what the scalar definition
  /// makes, bit for bit: scales, values and Q4_0's corrections, for ordinary blocks, exact
  /// halves of either sign, blocks with NaN, infinities, zeros and subnormal maxima.
  @Test func activationQuantizationMatchesItsDefinition() {
    var values = inputs(32 * 40).enumerated().map { $1 * Float(1 + $0 % 7) * 3 }
    // A block whose maximum is 32767, so that x·(1/dx) is x: halves, and values next to them.
    for j in 0..<32 { values[j] = j == 0 ? 32767 : Float(j * 997 % 32000) + [0.5, -0.5, 0.49999997, -0.50000006][j % 4] * (j % 2 == 0 ? 1 : -1) }
    for j in 0..<32 { values[32 + j] = -values[j] }
    values[64 + 5] = .nan
    values[96 + 3] = .infinity
    for j in 0..<32 { values[128 + j] = 0 }
    for j in 0..<32 { values[160 + j] = Float(j) * 1e-42 }  // subnormal: the scale underflows
    values[192 + 9] = -.infinity; values[192 + 10] = .nan
    let blocks = values.count / 32
    ScratchPool.with { scratch in
      values.withUnsafeBufferPointer { x in
        for offset: Int32 in [0, 8] {
          let a = Q16Activations(n: blocks, cols: 32, scratch: scratch)
          a.quantizeReference(x.baseAddress!, blocks: 0..<blocks, offset: offset)
          let q = Array(UnsafeBufferPointer(start: a.q, count: values.count)), d = Array(UnsafeBufferPointer(start: a.d, count: blocks))
          let c = Array(UnsafeBufferPointer(start: a.corrections, count: blocks))
          a.q.update(repeating: 7, count: values.count)
          a.quantize(x.baseAddress!, blocks: 0..<blocks, offset: offset)
          #expect(Array(UnsafeBufferPointer(start: a.q, count: values.count)) == q)
          #expect(Array(UnsafeBufferPointer(start: a.d, count: blocks)).map(\.bitPattern) == d.map(\.bitPattern))
          #expect(Array(UnsafeBufferPointer(start: a.corrections, count: blocks)) == c)
        }
        // The definition itself on the hand-made block: halves away from zero.
        let a = Q16Activations(n: 1, cols: 32, scratch: scratch)
        a.quantize(x.baseAddress!, blocks: 0..<1, offset: 0)
        #expect(a.d[0] == 1 && a.q[0] == 32767)
        for j in 1..<32 { #expect(Int(a.q[j]) == Int(values[j].rounded(.toNearestOrAwayFromZero)), "value \(values[j])") }
      }
    }
  }

  /// Quantized products (Q8_0, Q4_0): the SIMD kernels against the reference (which defines
  /// them: activations quantized to Int16 per block, exact integer block sums, then one fused
  /// multiply-add a block in block order), bit for bit, and both against
  /// the exact sums of the dequantized weights and the unquantized activations, within what the
  /// activations' rounding allows: Σ_j |w_j|·dx/2 over each block (plus Float rounding).
  @Test(arguments: [DType.q8_0, .q4_0])
  func quantizedSIMDMatchesReference(dtype: DType) {
    for (rows, cols, n) in [(8, 32, 1), (7, 64, 3), (130, 224, 5), (300, 512, 1), (5, 96, 9), (1, 32, 2)] {
      let (w, exact) = weight(dtype, rows: rows, cols: cols, seed: UInt64(rows * cols))
      let x = inputs(n * cols)
      let (reference, fast) = products(w, x, n: n)
      for t in 0..<n {
        for r in 0..<rows {
          var sum = 0.0, bound = 0.0
          for b in 0..<(cols / 32) {
            let block = (b * 32)..<(b * 32 + 32)
            let dx = Double(block.map { abs(x[t * cols + $0]) }.max()!) / 32767
            for c in block {
              sum += Double(exact[r * cols + c]) * Double(x[t * cols + c])
              bound += abs(Double(exact[r * cols + c])) * dx / 2
            }
          }
          #expect(abs(Double(reference[t * rows + r]) - sum) <= bound + 1e-5 * max(1, abs(sum)))
        }
      }
      #expect(reference.map(\.bitPattern) == fast.map(\.bitPattern), "\(dtype) \(rows)×\(cols)")
      // dequantize(rows:) reads what value(_:) reads.
      var rowsOut = [Float](repeating: .nan, count: 2 * cols)
      let r0 = rows > 2 ? rows - 2 : 0, r1 = min(rows, r0 + 2)
      rowsOut.withUnsafeMutableBufferPointer { w.dequantize(rows: r0..<r1, into: $0.baseAddress!) }
      #expect(Array(rowsOut[0..<((r1 - r0) * cols)]) == Array(exact[(r0 * cols)..<(r1 * cols)]))
    }
  }

  /// A row's products do not depend on the other rows in the call (batching, prefill chunks), nor
  /// on the build of the kernels: n rows at once give, bit for bit, what each row gives alone,
  /// in every build this CPU runs (`kernelBuilds`) as in the baseline.
  @Test(arguments: [DType.f32, .f16, .bf16, .q8_0, .q4_0])
  func rowsDoNotDependOnTheCall(dtype: DType) {
    // Decode (one token) reads rows in four streams per thread, with leftover rows: shapes and
    // thread counts that leave 0–3 of them, and parts of one block; token counts that take every
    // block shape (four rows × two, then four tokens at a time, then the rest).
    for (rows, cols, n, threads) in [(130, 224, 7, 2), (37, 96, 5, 3), (5, 64, 2, 1), (1000, 64, 3, 2), (64, 160, 13, 1)] {
      let (w, _) = weight(dtype, rows: rows, cols: cols, seed: 7)
      let x = inputs(n * cols)
      var alone = [[Float]]()
      for t in 0..<n {
        var y = [Float](repeating: 0, count: rows)
        x.withUnsafeBufferPointer { SIMDKernels(threads: threads).multiply(w, $0.baseAddress! + t * cols, n: 1, into: &y) }
        alone.append(y)
      }
      for build in kernelBuilds {
        let kernels = SIMDKernels(threads: threads, kernels: build)
        var together = [Float](repeating: 0, count: n * rows)
        x.withUnsafeBufferPointer { kernels.multiply(w, $0.baseAddress!, n: n, into: &together) }
        for t in 0..<n {
          var one = [Float](repeating: 0, count: rows)
          x.withUnsafeBufferPointer { kernels.multiply(w, $0.baseAddress! + t * cols, n: 1, into: &one) }
          #expect(Array(together[(t * rows)..<((t + 1) * rows)]) == alone[t], "\(build.name) \(dtype) \(rows)×\(cols) token \(t) of \(n)")
          #expect(one == alone[t], "\(build.name) \(dtype) \(rows)×\(cols) token \(t) alone")
        }
      }
    }
  }

  /// The kernel build: the widest the CPU has, or the one EFT_KERNELS names; a name that is no
  /// build, or a build whose flags the CPU lacks, is an error that says so.
  @Test func kernelBuildSelection() throws {
    let avx512 = KernelSet.avx512(AVX512Build.self)
    #expect(try KernelSet.best(of: [avx512, .avx2], environment: [:]).name == (avx512.supported ? "avx512" : "avx2"))
    #expect(try KernelSet.best(of: [avx512, .avx2], environment: ["EFT_KERNELS": "avx2"]).name == "avx2")
    #expect(throws: BackendError.self) { try KernelSet.best(of: [avx512, .avx2], environment: ["EFT_KERNELS": "avx1024"]) }
    let imaginary = KernelSet(name: "imaginary", cpuFlags: ["avx2", "no_such_flag"], AVX512Build.self)
    #expect(!imaginary.supported)
    #expect(try KernelSet.best(of: [imaginary, .avx2], environment: [:]).name == "avx2")
    do {
      _ = try KernelSet.best(of: [imaginary, .avx2], environment: ["EFT_KERNELS": "imaginary"])
      Issue.record("a build the CPU lacks flags for was chosen")
    } catch let error as BackendError {
      #expect(error.description.contains("lacks no_such_flag"), "\(error)")
    }
  }

  /// Q8_0 as llama.cpp's quantize_row_q8_0_ref makes it (in Float, as it does): d = max|w|/127
  /// stored as Float16, q = roundf(w·(1/d)); and, independently, every weight within d/2 (plus
  /// d's rounding) of its value.
  @Test func q8QuantizesAsLlamaCpp() {
    // One block spanning [-1, 0.9375] with exact halves, one all zero, one with a NaN-free tiny range.
    var values = (0..<32).map { Float($0 - 16) / 16 }
    values += [Float](repeating: 0, count: 32)
    values += (0..<32).map { Float($0) * 1e-6 }
    let source = Weight(rows: 1, cols: 96, values: values)
    let w = source.quantized(to: .q8_0)
    #expect(w.dtype == .q8_0 && w.rows == 1 && w.cols == 96)
    for b in 0..<3 {
      let block = Array(values[(b * 32)..<(b * 32 + 32)])
      let amax = block.map { abs($0) }.max()!
      let d = amax / 127, inverse: Float = d == 0 ? 0 : 1 / d
      let stored = Float16(d)
      let raw = UnsafeMutableRawPointer.allocate(byteCount: Q8_0.blockBytes, alignment: 2)
      defer { raw.deallocate() }
      Q8_0.quantize(block, into: raw)
      #expect(raw.loadUnaligned(as: UInt16.self) == stored.bitPattern)
      for j in 0..<32 {
        let q = (block[j] * inverse).rounded(.toNearestOrAwayFromZero)
        let got = raw.load(fromByteOffset: 2 + j, as: Int8.self)
        #expect(Int(got) == Int(q), "block \(b) weight \(j)")
        #expect(w.value(b * 32 + j) == Float(stored) * Float(got))
        // |w − q·d| ≤ d/2, and d's Float16 rounding moves q·d by at most 127·|d₁₆ − d| (large
        // for a block of tiny weights, whose d is a Float16 subnormal).
        #expect(abs(w.value(b * 32 + j) - block[j]) <= d / 2 + 127 * abs(Float(stored) - d) + amax * 1e-6)
      }
    }
    // Widths that are not whole blocks are not quantized, nor are quantized weights.
    #expect(!Weight(rows: 2, cols: 40, values: [Float](repeating: 1, count: 80)).quantizable)
    #expect(!w.quantizable)
  }

  /// Q4_0 as llama.cpp's quantize_row_q4_0_ref makes it (in Float, as it does): m = the weight
  /// of largest magnitude with its sign, d = m/−8 stored as Float16, q = min(15, (int8)(w/d +
  /// 8.5)) stored as q_j | q_{16+j} << 4 in byte j; weight = d·(q − 8); independently, every
  /// weight within d/2 of its value (plus d's rounding); and the first block worked by hand.
  @Test func q4QuantizesAsLlamaCpp() {
    // One block spanning [-1, 0.9375], one all zero, one with a positive extreme, one tiny.
    var values = (0..<32).map { Float($0 - 16) / 16 }
    values += [Float](repeating: 0, count: 32)
    values += (0..<32).map { Float($0) / 31 - 0.25 }
    values += (0..<32).map { Float($0) * 1e-6 }
    let source = Weight(rows: 1, cols: 128, values: values)
    let w = source.quantized(to: .q4_0)
    #expect(w.dtype == .q4_0 && w.rows == 1 && w.cols == 128)
    #expect(w.dtype.rowBytes(128) == 4 * 18)
    for b in 0..<4 {
      let block = Array(values[(b * 32)..<(b * 32 + 32)])
      let m = block.max { abs($0) < abs($1) }!
      let d = m / -8, inverse: Float = d == 0 ? 0 : 1 / d
      let stored = Float16(d)
      let raw = UnsafeMutableRawPointer.allocate(byteCount: Q4_0.blockBytes, alignment: 2)
      defer { raw.deallocate() }
      Q4_0.quantize(block, into: raw)
      #expect(raw.loadUnaligned(as: UInt16.self) == stored.bitPattern)
      if b == 0 {
        // The first block by hand: d = 0.125, −1 → 0 (−8·d), 0 → 8, 0.9375 = 7.5·d → 15 (clamped 16).
        #expect(Float(stored) == 0.125)
        #expect(raw.load(fromByteOffset: 2, as: UInt8.self) & 0x0F == 0)
        #expect(raw.load(fromByteOffset: 2, as: UInt8.self) >> 4 == 8)
        #expect(raw.load(fromByteOffset: 2 + 15, as: UInt8.self) >> 4 == 15)
      }
      for j in 0..<32 {
        let q = min(15, Int(Int8((block[j] * inverse + 8.5).rounded(.towardZero))))
        let byte = raw.load(fromByteOffset: 2 + j % 16, as: UInt8.self)
        let got = Int(j < 16 ? byte & 0x0F : byte >> 4)
        #expect(got == q, "block \(b) weight \(j)")
        #expect(w.value(b * 32 + j) == Float(stored) * Float(got - 8))
        #expect(abs(w.value(b * 32 + j) - block[j]) <= abs(d) / 2 + 8 * abs(Float(stored) - d) + abs(m) * 1e-6)
      }
    }
    #expect(!w.quantizable)
  }

  /// A quantized weight's rows, interleaved in groups of eight (the last padded), read back as
  /// each row quantized alone gives them: the values (`value`, `dequantize`) and the products.
  @Test(arguments: [DType.q8_0, .q4_0])
  func interleavedRowsReadAsEachRowAlone(dtype: DType) {
    let rows = 11, cols = 96
    let (source, values) = weight(.f32, rows: rows, cols: cols, seed: 11)
    let w = source.quantized(to: dtype)
    #expect(dtype.bytes(rows: rows, cols: cols) == 16 * dtype.rowBytes(cols))
    var all = [Float](repeating: .nan, count: rows * cols)
    all.withUnsafeMutableBufferPointer { w.dequantize(rows: 0..<rows, into: $0.baseAddress!) }
    let x = inputs(3 * cols)
    let (_, fast) = products(w, x, n: 3)
    for r in 0..<rows {
      let alone = Weight(rows: 1, cols: cols, values: Array(values[(r * cols)..<((r + 1) * cols)])).quantized(to: dtype)
      #expect((0..<cols).allSatisfy { w.value(r * cols + $0) == alone.value($0) }, "row \(r)")
      #expect(Array(all[(r * cols)..<((r + 1) * cols)]) == alone.floats(), "row \(r)")
      let (_, one) = products(alone, x, n: 3)
      #expect((0..<3).allSatisfy { fast[$0 * rows + r] == one[$0] }, "row \(r)")
    }
  }

  @Test func sixteenBitUpcastIsExact() {
    let (f16, _) = weight(.f16, rows: 1, cols: 3, seed: 1)
    let (bf16, _) = weight(.bf16, rows: 1, cols: 3, seed: 1)
    for i in 0..<3 {
      let h = f16.data.load(fromByteOffset: i * 2, as: UInt16.self)
      #expect(f16.value(i) == Float(Float16(bitPattern: h)))
      let b = bf16.data.load(fromByteOffset: i * 2, as: UInt16.self)
      #expect(bf16.value(i) == Float(bitPattern: UInt32(b) << 16))
    }
  }

  /// TransformerOptions.weights F32: 16-bit weights upcast at load to the same values.
  @Test func f32FormatUpcastsSixteenBitWeights() {
    for dtype in [DType.f16, .bf16, .f32] {
      let (w, _) = weight(dtype, rows: 3, cols: 64, seed: 2)
      let prepared = SIMDKernels(threads: 1).prepare(w, format: .f32)
      #expect(prepared.dtype == .f32)
      #expect((0..<(3 * 64)).allSatisfy { prepared.value($0) == w.value($0) }, "\(dtype)")
    }
  }
}

@Suite struct WorkerPoolTests {
  /// Adds one to element i of the Ints at `arguments`.
  static let increment: ParallelJob = { arguments, i in
    UnsafeMutablePointer(mutating: arguments.assumingMemoryBound(to: Int.self))[i] += 1
  }

  struct Blocking {
    let started: DispatchSemaphore, secondDone: DispatchSemaphore
    let waited: UnsafeMutablePointer<DispatchTimeoutResult>
  }

  /// Index 0 signals `started`, then waits for `secondDone`.
  static let block: ParallelJob = { arguments, i in
    let b = arguments.assumingMemoryBound(to: Blocking.self).pointee
    if i == 0 {
      b.started.signal()
      b.waited.pointee = b.secondDone.wait(timeout: .now() + 10)
    }
  }

  /// Every index runs exactly once, from whichever threads join.
  @Test func eachIndexRunsOnce() {
    let pool = WorkerPool.shared(size: 2)
    let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: 1000)
    defer { counts.deallocate() }
    for _ in 0..<20 {
      counts.initialize(repeating: 0)
      pool.run(count: 1000, arguments: UnsafeRawPointer(counts.baseAddress!), Self.increment)
      #expect(counts.allSatisfy { $0 == 1 })
    }
    // A loop of more indices than a job holds runs as several jobs.
    let many = UnsafeMutableBufferPointer<Int>.allocate(capacity: WorkerPool.maxCount + 5)
    defer { many.deallocate() }
    many.initialize(repeating: 0)
    pool.run(count: many.count, arguments: UnsafeRawPointer(many.baseAddress!), Self.increment)
    #expect(many.allSatisfy { $0 == 1 })
  }

  /// Jobs of different sizes back to back from two threads: every index of every job runs once,
  /// and none past its job's count. (Before the count shared the cursor's word, a worker could
  /// claim an index past a finished job's end from the next job's count, written just before
  /// that job was published: ThreadSanitizer caught it once in CI.)
  @Test func claimsStayInsideTheirJob() {
    let pool = WorkerPool.shared(size: 2)
    let results = UncheckedSendable(UnsafeMutableBufferPointer<Int>.allocate(capacity: 2 * 16))
    defer { results.value.deallocate() }
    let group = DispatchGroup()
    for caller in 0..<2 {
      group.enter()
      Thread {
        var counts = [Int](repeating: 0, count: 16)
        var failures = 0
        for j in 0..<3000 {
          let count = 2 + (j * 7 + caller) % 14
          counts.withUnsafeMutableBufferPointer { c in
            c.update(repeating: 0)
            // Index i adds one to element i; an index ≥ count would land past `count`.
            pool.run(count: count, arguments: UnsafeRawPointer(c.baseAddress!), WorkerPoolTests.increment)
          }
          if !(counts[..<count].allSatisfy { $0 == 1 } && counts[count...].allSatisfy { $0 == 0 }) { failures += 1 }
        }
        results.value[caller] = failures
        group.leave()
      }.start()
    }
    group.wait()
    #expect(results.value[0] == 0 && results.value[1] == 0)
  }

  /// A job started while another holds the pool runs on its own caller instead of waiting: the
  /// first job here does not end until the second has, so waiting would never end (the second
  /// gets 10 s).
  @Test func aBusyPoolRunsTheNextJobOnItsCaller() {
    let pool = WorkerPool.shared(size: 2)
    let started = DispatchSemaphore(value: 0), secondDone = DispatchSemaphore(value: 0)
    let counts = UncheckedSendable(UnsafeMutableBufferPointer<Int>.allocate(capacity: 100))
    counts.value.initialize(repeating: 0)
    defer { counts.value.deallocate() }
    let second = Thread {
      started.wait()
      pool.run(count: 100, arguments: UnsafeRawPointer(counts.value.baseAddress!), Self.increment)
      secondDone.signal()
    }
    second.start()
    let waited = UnsafeMutablePointer<DispatchTimeoutResult>.allocate(capacity: 1)
    defer { waited.deallocate() }
    var blocking = Blocking(started: started, secondDone: secondDone, waited: waited)
    withUnsafePointer(to: &blocking) { pool.run(count: 2, arguments: $0, Self.block) }
    #expect(waited.pointee == .success, "the second job waited for the first")
    #expect(counts.value.allSatisfy { $0 == 1 })
  }
}
