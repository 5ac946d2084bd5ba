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
    let group = heads / kvHeads
    var headsPerPart = group
    while headsPerPart > 1 && (group % headsPerPart != 0 || batch.count * heads / headsPerPart < 2 * kernels.threads) { headsPerPart -= 1 }
    let arguments = Attention(q: q, batch: batch, layer: layer, heads: heads, group: group, kvWidth: kvHeads * headDim,
                              headDim: headDim, window: window, scale: scale ?? 1 / Float(headDim).squareRoot(), softcap: softcap, out: out,
                              headsPerPart: headsPerPart)
    kernels.parallelFor(batch.count * heads / headsPerPart, work: work * heads * headDim, arguments, attentionPart)
  }

  /// An attention's arguments, for its parallel parts: each takes consecutive heads of one row
  /// that share a KV head (the whole group, unless that leaves fewer than two parts a thread),
  /// so that the keys and values come from memory once for them and from cache after.
  struct Attention {
    let q: UnsafePointer<Float>
    let batch: BatchRows
    let layer: Int, heads: Int, group: Int, kvWidth: Int, headDim: Int
    let window: Int?
    let scale: Float
    let softcap: Float?
    let out: UnsafeMutablePointer<Float>
    let headsPerPart: Int
  }

  static let attentionPart: ParallelJob = { arguments, job in
    let a = arguments.assumingMemoryBound(to: Attention.self)
    let q = a.pointee.q, layer = a.pointee.layer, heads = a.pointee.heads, group = a.pointee.group, kvWidth = a.pointee.kvWidth
    let headDim = a.pointee.headDim, window = a.pointee.window, scale = a.pointee.scale, softcap = a.pointee.softcap, out = a.pointee.out
    let perPart = a.pointee.headsPerPart, parts = heads / perPart
    let row = job / parts, firstHead = job % parts * perPart, kvHead = firstHead / group
    let batch = a.pointee.batch
    let cache = batch.items[batch.itemOfRow[row]].cache
    let position = batch.positions[row]
    let first = window.map { max(0, position - $0 + 1) } ?? 0
    let length = position + 1 - first
    // The cache holds positions from cache.base on; `first` is never before it.
    let keys = cache.keys[layer] + (first - cache.base) * kvWidth + kvHead * headDim
    let values = cache.values[layer] + (first - cache.base) * kvWidth + kvHead * headDim
    withUnsafeTemporaryAllocation(of: Float.self, capacity: length) { scores in
      for h in firstHead..<(firstHead + perPart) {
        let qh = q + (row * heads + h) * headDim
        // Four positions at a time: four independent sums (one would wait on each FMA's latency).
        var p = 0
        while p + 4 <= length {
          let s4 = dot4(qh, keys + p * kvWidth, kvWidth, headDim)
          for k in 0..<4 { scores[p + k] = s4[k] }
          p += 4
        }
        while p < length {
          scores[p] = dot(qh, keys + p * kvWidth, headDim)
          p += 1
        }
        var maxScore = -Float.infinity
        for p in 0..<length {
          var s = scores[p] * scale
          if let softcap { s = Foundation.tanh(s / softcap) * softcap }
          scores[p] = s
          maxScore = max(maxScore, s)
        }
        var total: Float = 0
        for p in 0..<length {
          scores[p] = Foundation.exp(scores[p] - maxScore)
          total += scores[p]
        }
        let inverse = 1 / total
        for p in 0..<length { scores[p] *= inverse }
        weightedSum(out + (row * heads + h) * headDim, UnsafePointer(scores.baseAddress!), length, values, kvWidth, headDim)
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

  /// `dot(a, b + k·stride, n)` for k in 0..<4, each summed in the same order as `dot` does.
  @inline(__always)
  static func dot4(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ stride: Int, _ n: Int) -> SIMD4<Float> {
    let b0 = b, b1 = b + stride, b2 = b + 2 &* stride, b3 = b + 3 &* stride
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>(), acc2 = SIMD8<Float>(), acc3 = SIMD8<Float>()
    @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> { UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) }
    var i = 0
    while i &+ 8 <= n {
      let x = load(a, i)
      acc0 = acc0.addingProduct(x, load(b0, i)); acc1 = acc1.addingProduct(x, load(b1, i))
      acc2 = acc2.addingProduct(x, load(b2, i)); acc3 = acc3.addingProduct(x, load(b3, i))
      i &+= 8
    }
    var sums = SIMD4<Float>(acc0.sum(), acc1.sum(), acc2.sum(), acc3.sum())
    while i < n {
      sums += a[i] * SIMD4<Float>(b0[i], b1[i], b2[i], b3[i])
      i &+= 1
    }
    return sums
  }

  /// o[i] = Σ_p w[p]·v[p·stride + i] for i in 0..<n, summed over p in order (from 0) in each
  /// element; 64 elements at a time held in registers (eight independent FMA chains), then 8,
  /// then one.
  @inline(__always)
  static func weightedSum(_ o: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, _ count: Int, _ v: UnsafePointer<Float>, _ stride: Int,
                          _ n: Int) {
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
    @inline(__always) func store(_ x: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: x, as: SIMD8<Float>.self) }
    var i = 0
    while i &+ 64 <= n {
      var o0 = SIMD8<Float>(), o1 = SIMD8<Float>(), o2 = SIMD8<Float>(), o3 = SIMD8<Float>()
      var o4 = SIMD8<Float>(), o5 = SIMD8<Float>(), o6 = SIMD8<Float>(), o7 = SIMD8<Float>()
      for p in 0..<count {
        let wp = SIMD8<Float>(repeating: w[p]), vp = v + (p &* stride &+ i)
        o0 = o0.addingProduct(wp, load(vp)); o1 = o1.addingProduct(wp, load(vp + 8))
        o2 = o2.addingProduct(wp, load(vp + 16)); o3 = o3.addingProduct(wp, load(vp + 24))
        o4 = o4.addingProduct(wp, load(vp + 32)); o5 = o5.addingProduct(wp, load(vp + 40))
        o6 = o6.addingProduct(wp, load(vp + 48)); o7 = o7.addingProduct(wp, load(vp + 56))
      }
      store(o0, o + i); store(o1, o + i + 8); store(o2, o + i + 16); store(o3, o + i + 24)
      store(o4, o + i + 32); store(o5, o + i + 40); store(o6, o + i + 48); store(o7, o + i + 56)
      i &+= 64
    }
    while i &+ 8 <= n {
      var acc = SIMD8<Float>()
      for p in 0..<count { acc = acc.addingProduct(SIMD8<Float>(repeating: w[p]), load(v + (p &* stride &+ i))) }
      store(acc, o + i)
      i &+= 8
    }
    while i < n {
      var acc: Float = 0
      for p in 0..<count { acc += w[p] * v[p &* stride &+ i] }
      o[i] = acc
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
