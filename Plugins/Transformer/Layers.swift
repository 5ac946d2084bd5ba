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

  /// Rotary position embedding in HF's "rotate half" layout: within each head, element i pairs
  /// with i + headDim/2. `x` is [n × heads × headDim]; row t sits at position `positions[t]`.
  static func rope(_ x: UnsafeMutablePointer<Float>, positions: [Int], heads: Int, headDim: Int, invFreq: [Float]) {
    let half = headDim / 2
    for (t, position) in positions.enumerated() {
      let position = Float(position)
      for i in 0..<half {
        // HF: freqs = position * inv_freq in float32, then cos/sin.
        let angle = position * invFreq[i]
        let c = Foundation.cos(angle), s = Foundation.sin(angle)
        for h in 0..<heads {
          let p = x + (t * heads + h) * headDim
          let a = p[i], b = p[i + half]
          p[i] = a * c - b * s
          p[i + half] = b * c + a * s
        }
      }
    }
  }

  /// Causal attention of the batch's rows over their sessions' caches, which already hold the
  /// rows' keys and values for `layer`: a row at position p attends to positions 0...p of its own
  /// session. q is [rows × heads × headDim]; the cache rows are [position × kvHeads × headDim];
  /// heads share KV heads in groups (GQA). Writes [rows × heads × headDim].
  static func attention(q: UnsafePointer<Float>, batch: BatchRows, layer: Int, heads: Int, kvHeads: Int, headDim: Int,
                        kernels: some MatrixKernels, into out: UnsafeMutablePointer<Float>) {
    let group = heads / kvHeads
    let kvWidth = kvHeads * headDim
    let scale = 1 / Float(headDim).squareRoot()
    let work = batch.positions.reduce(0) { $0 + $1 + 1 } * heads * headDim
    kernels.parallelFor(batch.count * heads, work: work) { job in
      let row = job / heads, h = job % heads
      let cache = batch.items[batch.itemOfRow[row]].cache
      let keys = cache.keys[layer], values = cache.values[layer]
      let kvh = h / group
      let length = batch.positions[row] + 1
      let qh = q + (row * heads + h) * headDim
      withUnsafeTemporaryAllocation(of: Float.self, capacity: length) { scores in
        var maxScore = -Float.infinity
        for p in 0..<length {
          let s = dot(qh, keys + p * kvWidth + kvh * headDim, headDim) * scale
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
          accumulate(o, scores[p] * inverse, values + p * kvWidth + kvh * headDim, headDim)
        }
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
/// [capacity × kvWidth] Floats, grown by doubling.
final class KVCache {
  let layers: Int
  let width: Int
  private(set) var count = 0
  private(set) var capacity = 0
  var keys: [UnsafeMutablePointer<Float>] = []
  var values: [UnsafeMutablePointer<Float>] = []

  init(layers: Int, width: Int) {
    self.layers = layers
    self.width = width
  }

  deinit {
    keys.forEach { $0.deallocate() }
    values.forEach { $0.deallocate() }
  }

  /// Makes room for `extra` more tokens.
  func reserve(_ extra: Int) {
    let needed = count + extra
    guard needed > capacity else { return }
    let newCapacity = max(needed, capacity * 2, 16)
    func grow(_ old: [UnsafeMutablePointer<Float>]) -> [UnsafeMutablePointer<Float>] {
      (0..<layers).map { l in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * width)
        if !old.isEmpty {
          p.update(from: old[l], count: count * width)
          old[l].deallocate()
        }
        return p
      }
    }
    keys = grow(keys)
    values = grow(values)
    capacity = newCapacity
  }

  func advance(_ n: Int) { count += n }
  func truncate(_ n: Int) { count = n }
}
