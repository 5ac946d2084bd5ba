import Foundation

/// The per-token pieces shared by the architectures. Each reads and writes [n × width] row-major
/// buffers. Reference: HF transformers `modeling_llama.py` / `modeling_gpt2.py`.
enum Layers {
  /// RMSNorm: x · rsqrt(mean(x²) + eps) · w (HF LlamaRMSNorm; mean in Float).
  static func rmsNorm(_ x: UnsafePointer<Float>, _ w: [Float], eps: Float, n: Int, into out: UnsafeMutablePointer<Float>) {
    let d = w.count
    for t in 0..<n {
      let row = x + t * d
      var sumSquares: Float = 0
      for i in 0..<d { sumSquares += row[i] * row[i] }
      let scale = 1 / (sumSquares / Float(d) + eps).squareRoot()
      for i in 0..<d { out[t * d + i] = w[i] * (row[i] * scale) }
    }
  }

  /// LayerNorm: (x − mean) / sqrt(var + eps) · w + b (biased variance, as torch).
  static func layerNorm(_ x: UnsafePointer<Float>, _ w: [Float], _ b: [Float], eps: Float, n: Int, into out: UnsafeMutablePointer<Float>) {
    let d = w.count
    for t in 0..<n {
      let row = x + t * d
      var mean: Float = 0
      for i in 0..<d { mean += row[i] }
      mean /= Float(d)
      var variance: Float = 0
      for i in 0..<d { variance += (row[i] - mean) * (row[i] - mean) }
      variance /= Float(d)
      let scale = 1 / (variance + eps).squareRoot()
      for i in 0..<d { out[t * d + i] = (row[i] - mean) * scale * w[i] + b[i] }
    }
  }

  /// Adds `bias` to each of the n rows.
  static func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: [Float]?, n: Int) {
    guard let bias else { return }
    let d = bias.count
    for t in 0..<n { for i in 0..<d { y[t * d + i] += bias[i] } }
  }

  static func silu(_ x: Float) -> Float { x / (1 + Foundation.exp(-x)) }

  /// GELU, tanh approximation ("gelu_new", "gelu_pytorch_tanh").
  static func geluTanh(_ x: Float) -> Float {
    0.5 * x * (1 + Foundation.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
  }

  /// Causal attention of the batch's rows over their sessions' caches, which already hold the
  /// rows' keys and values for `layer`: a row at position p attends to positions 0...p of its own
  /// session, or to the last `window` of them (p − window < position ≤ p, as HF's sliding-window
  /// mask). q is [rows × heads × headDim]; the cache rows are [position × kvHeads × headDim];
  /// heads share KV heads in groups (GQA). Scores are q·k · `scale`, soft-capped as
  /// tanh(s / cap) · cap when `softcap` is set (Gemma 2). Writes [rows × heads × headDim].
  static func attention(q: UnsafePointer<Float>, batch: BatchRows, layer: Int, heads: Int, kvHeads: Int, headDim: Int,
                        window: Int? = nil, scale: Float? = nil, softcap: Float? = nil,
                        kernels: some MatrixKernels, into out: UnsafeMutablePointer<Float>) {
    var work = 0
    for position in batch.positions { work += min(position + 1, window ?? Int.max) }
    let arguments = Attention(q: q, batch: batch, layer: layer, heads: heads, group: heads / kvHeads, kvWidth: kvHeads * headDim,
                              headDim: headDim, window: window, scale: scale ?? 1 / Float(headDim).squareRoot(), softcap: softcap, out: out)
    kernels.parallelFor(batch.count * heads, work: work * heads * headDim, arguments, attentionPart)
  }

  /// An attention's arguments, for its parallel parts (one per row and head).
  struct Attention {
    let q: UnsafePointer<Float>
    let batch: BatchRows
    let layer: Int, heads: Int, group: Int, kvWidth: Int, headDim: Int
    let window: Int?
    let scale: Float
    let softcap: Float?
    let out: UnsafeMutablePointer<Float>
  }

  static let attentionPart: ParallelJob = { arguments, job in
    let a = arguments.assumingMemoryBound(to: Attention.self)
    let q = a.pointee.q, layer = a.pointee.layer, heads = a.pointee.heads, group = a.pointee.group, kvWidth = a.pointee.kvWidth
    let headDim = a.pointee.headDim, window = a.pointee.window, scale = a.pointee.scale, softcap = a.pointee.softcap, out = a.pointee.out
    let row = job / heads, h = job % heads
    let batch = a.pointee.batch
    let cache = batch.items[batch.itemOfRow[row]].cache
    let position = batch.positions[row]
    let first = window.map { max(0, position - $0 + 1) } ?? 0
    let length = position + 1 - first
    // The cache holds positions from cache.base on; `first` is never before it.
    let keys = cache.keys[layer] + (first - cache.base) * kvWidth + (h / group) * headDim
    let values = cache.values[layer] + (first - cache.base) * kvWidth + (h / group) * headDim
    let qh = q + (row * heads + h) * headDim
    withUnsafeTemporaryAllocation(of: Float.self, capacity: length) { scores in
      var maxScore = -Float.infinity
      for p in 0..<length {
        var s = dot(qh, keys + p * kvWidth, headDim) * scale
        if let softcap { s = Foundation.tanh(s / softcap) * softcap }
        scores[p] = s
        maxScore = max(maxScore, s)
      }
      var total: Float = 0
      for p in 0..<length {
        scores[p] = Foundation.exp(scores[p] - maxScore)
        total += scores[p]
      }
      let o = out + (row * heads + h) * headDim
      o.initialize(repeating: 0, count: headDim)
      let inverse = 1 / total
      for p in 0..<length {
        accumulate(o, scores[p] * inverse, values + p * kvWidth, headDim)
      }
    }
  }

  /// Σ a[i]·b[i], eight lanes at a time.
  @inline(__always)
  static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i &+ 8 <= n {
      acc = acc.addingProduct(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self),
                              UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self))
      i &+= 8
    }
    var sum = acc.sum()
    while i < n {
      sum += a[i] * b[i]
      i &+= 1
    }
    return sum
  }

  /// o[i] += w·v[i], eight lanes at a time.
  @inline(__always)
  static func accumulate(_ o: UnsafeMutablePointer<Float>, _ w: Float, _ v: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i &+ 8 <= n {
      let x = UnsafeRawPointer(o + i).loadUnaligned(as: SIMD8<Float>.self)
        .addingProduct(SIMD8<Float>(repeating: w), UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self))
      UnsafeMutableRawPointer(o + i).storeBytes(of: x, as: SIMD8<Float>.self)
      i &+= 8
    }
    while i < n {
      o[i] += w * v[i]
      i &+= 1
    }
  }
}

/// The keys and values of every layer for the tokens a session holds: per layer,
/// [capacity × kvWidth] Floats holding positions `base ..< count`, grown by doubling.
///
/// When every layer attends to a window, the positions no future token can see are dropped as
/// the cache makes room (`base` advances; the rows kept move to the front), so a session's memory
/// stays near the window however long it runs. `slack` more positions are kept so that the usual
/// short rollbacks (speculative decoding) truncate in place; a deeper truncation recomputes the
/// prefix from the token ids, which such a cache keeps (`TransformerSession.truncate`).
final class KVCache {
  let layers: Int
  let width: Int
  /// The widest window any layer attends to, when every layer has one; nil: keep every position.
  let window: Int?
  /// Positions kept beyond the window, so that rollbacks this short truncate in place.
  let slack: Int
  private(set) var count = 0
  private(set) var base = 0
  private(set) var capacity = 0
  var keys: [UnsafeMutablePointer<Float>] = []
  var values: [UnsafeMutablePointer<Float>] = []
  /// Every token id held, when `keepsTokens` (to recompute the keys and values: after a deep
  /// truncation of a windowed cache, or when LongRoPE's frequencies change).
  private(set) var tokens: [Int32] = []
  let keepsTokens: Bool
  /// LongRoPE: whether the keys were rotated by the long frequencies.
  var ropeLong = false

  init(layers: Int, width: Int, window: Int? = nil, slack: Int = 128, keepsTokens: Bool = false) {
    self.layers = layers
    self.width = width
    self.window = window
    self.slack = slack
    self.keepsTokens = keepsTokens || window != nil
  }

  deinit {
    keys.forEach { $0.deallocate() }
    values.forEach { $0.deallocate() }
  }

  /// Makes room for `extra` more tokens after `count`.
  func reserve(_ extra: Int) {
    if count + extra - base > capacity, let window {
      // Keep the last window − 1 positions (what the next token attends to) and the slack.
      let newBase = max(base, count - (window - 1 + slack))
      if newBase > base {
        for l in 0..<layers {
          keys[l].update(from: keys[l] + (newBase - base) * width, count: (count - newBase) * width)
          values[l].update(from: values[l] + (newBase - base) * width, count: (count - newBase) * width)
        }
        base = newBase
      }
    }
    let needed = count + extra - base
    guard needed > capacity else { return }
    let newCapacity = max(needed, capacity * 2, 16)
    func grow(_ old: [UnsafeMutablePointer<Float>]) -> [UnsafeMutablePointer<Float>] {
      (0..<layers).map { l in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * width)
        if !old.isEmpty {
          p.update(from: old[l], count: (count - base) * width)
          old[l].deallocate()
        }
        return p
      }
    }
    keys = grow(keys)
    values = grow(values)
    capacity = newCapacity
  }

  /// Records `appended` (whose keys and values are stored) as held.
  func advance(_ appended: UnsafeBufferPointer<Int32>) {
    count += appended.count
    if keepsTokens { tokens += appended }
  }

  /// Whether truncating to `n` tokens keeps every position the next token may attend to.
  func canTruncate(to n: Int) -> Bool {
    guard let window, base > 0 else { return true }
    return n - (window - 1) >= base
  }

  func truncate(_ n: Int) {
    count = n
    if keepsTokens { tokens.removeSubrange(n...) }
  }

  /// Forgets every token (keeping the buffers).
  func clear() {
    count = 0
    base = 0
    tokens.removeAll(keepingCapacity: true)
  }
}
