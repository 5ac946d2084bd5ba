import EFTPluginKit
import Foundation

/// The decoder most model families share: token embedding, pre-norm blocks of grouped-query
/// attention (rotary positions, optional per-head q/k RMSNorm, per-layer sliding windows,
/// soft-capped scores) and a gated MLP, RMSNorm throughout, then a final norm and output head.
/// A family's file decodes its config.json into `Config` and names its tensors: `Llama.swift`
/// (Llama, Mistral, Qwen2, Qwen3), `Gemma.swift` (Gemma 2, Gemma 3 text), `Phi3.swift`.
/// Reference: HF transformers `models/{llama,mistral,qwen2,qwen3,gemma2,gemma3,phi3}/modeling_*.py`.
struct DecoderNetwork: Network {
  struct Config {
    var hidden: Int
    var intermediate: Int
    var heads: Int
    var kvHeads: Int
    var headDim: Int
    var vocab: Int
    var contextLength: Int
    var eps: Float
    /// config.json's model_type.
    var architecture: String
    /// The rotary embeddings the layers use (Gemma 3: one for local layers, one for global).
    var ropes: [Rope]
    /// Per layer: which of `ropes` it uses, and the window it attends to (nil: every position).
    var layerRope: [Int]
    var layerWindow: [Int?]
    /// Attention scores are q·k · this (1/√headDim, or Gemma's query_pre_attn_scalar^−½).
    var attentionScale: Float
    var attentionSoftcap: Float? = nil
    var finalSoftcap: Float? = nil
    /// Gemma multiplies the embedding by √hidden.
    var embeddingScale: Float? = nil
    var activation: Activation = .silu
    /// Whether the output head is the embedding (when the checkpoint has no lm_head.weight).
    var tied = false

    var layers: Int { layerRope.count }
  }

  /// The gate's activation in the MLP: down(act(gate(x)) · up(x)).
  enum Activation {
    case silu      // SwiGLU (Llama, Qwen, Mistral, Phi-3)
    case geluTanh  // GeGLU with the tanh GELU (Gemma's gelu_pytorch_tanh)
  }

  /// A layer's weights. The products that read the same input are stacked into one matrix (q, k
  /// and v; gate and up): one pass over the pool where there were three, or two, and for
  /// quantized weights one quantization of the input. Each output row is the same dot product
  /// either way (the kernels are row-invariant), so stacking changes no bits.
  struct Layer {
    let attentionNorm: [Float]     // before attention
    let qkv: Weight                // q, k, v stacked: [(heads + 2·kvHeads)·headDim × hidden]
    let o: Weight                  // [hidden × heads·headDim]
    var qkvBias: [Float]? = nil    // q's, k's and v's, stacked as the rows
    var oBias: [Float]? = nil
    var qNorm: [Float]? = nil      // RMSNorm over each head's query (Qwen3, Gemma 3) [headDim]
    var kNorm: [Float]? = nil
    var postAttentionNorm: [Float]? = nil  // on the attention output before the residual add (Gemma)
    let mlpNorm: [Float]           // before the MLP
    let gateUp: Weight             // gate, then up: [2·intermediate × hidden]
    let down: Weight               // [hidden × intermediate]
    var gateUpBias: [Float]? = nil
    var downBias: [Float]? = nil
    var postMLPNorm: [Float]? = nil  // on the MLP output before the residual add (Gemma)
  }

  let config: Config
  let embedding: Weight          // [vocab × hidden]
  let blocks: [Layer]
  let finalNorm: [Float]
  let head: Weight               // [vocab × hidden]
  let kernels: any MatrixKernels

  var vocabSize: Int { config.vocab }
  var contextLength: Int { config.contextLength }
  var layers: Int { config.layers }
  var kvWidth: Int { config.kvHeads * config.headDim }
  var architecture: String { config.architecture }
  /// Every layer slides: the cache need only keep the widest window.
  var cacheWindow: Int? {
    config.layerWindow.allSatisfy { $0 != nil } ? config.layerWindow.compactMap { $0 }.max() : nil
  }
  var longRopeThreshold: Int? { config.ropes.compactMap { $0.long?.original }.min() }

  /// Rotary table `i` of the pass (of `ropes[i]`), in the pass's scratch. A network has one or
  /// two (Gemma 3: local and global layers); the scratch has slots for two.
  static func ropeTable(_ i: Int, _ batch: BatchRows, _ rope: Rope) -> Rope.Table {
    let size = batch.count * rope.dims / 2
    return i == 0 ? Rope.Table(batch: batch, cos: batch.scratch.floats(.ropeCos0, size), sin: batch.scratch.floats(.ropeSin0, size))
      : Rope.Table(batch: batch, cos: batch.scratch.floats(.ropeCos1, size), sin: batch.scratch.floats(.ropeSin1, size))
  }

  func forward(_ batch: BatchRows) {
    let c = config
    let n = batch.count, d = c.hidden
    let qWidth = c.heads * c.headDim
    let scratch = batch.scratch
    let x = scratch.floats(.a0, n * d)                 // residual stream [n × hidden]
    let h = scratch.floats(.a1, n * d)                 // normed input [n × hidden]
    let qkvWidth = qWidth + 2 * kvWidth, inner = c.intermediate
    let qkv = scratch.floats(.a2, n * qkvWidth)        // [n × (q | k | v)]
    let q = scratch.floats(.a3, n * qWidth)            // [n × heads × headDim]
    let k = scratch.floats(.a4, n * kvWidth)           // [n × kvHeads × headDim]
    let v = scratch.floats(.a5, n * kvWidth)
    let attn = scratch.floats(.a6, n * qWidth)         // [n × heads × headDim]
    let gateUp = scratch.floats(.a7, n * 2 * inner)    // [n × (gate | up)]
    let act = scratch.floats(.a8, n * inner)
    let o = scratch.floats(.a9, n * d)

    let scale = c.embeddingScale ?? 1
    for t in 0..<n {
      let token = batch.token(t)
      for i in 0..<d { x[t * d + i] = embedding.value(token * d + i) * scale }
    }
    for (i, rope) in c.ropes.enumerated() { rope.fill(Self.ropeTable(i, batch, rope)) }
    for (l, layer) in blocks.enumerated() {
      Layers.rmsNorm(x, layer.attentionNorm, eps: c.eps, n: n, into: h)
      kernels.multiply(layer.qkv, h, n: n, into: qkv)
      Layers.addBias(qkv, layer.qkvBias, n: n)
      for t in 0..<n {
        let row = qkv + t * qkvWidth
        (q + t * qWidth).update(from: row, count: qWidth)
        (k + t * kvWidth).update(from: row + qWidth, count: kvWidth)
        (v + t * kvWidth).update(from: row + qWidth + kvWidth, count: kvWidth)
      }
      if let qNorm = layer.qNorm { Layers.rmsNorm(q, qNorm, eps: c.eps, n: n * c.heads, into: q) }
      if let kNorm = layer.kNorm { Layers.rmsNorm(k, kNorm, eps: c.eps, n: n * c.kvHeads, into: k) }
      let rope = c.ropes[c.layerRope[l]], table = Self.ropeTable(c.layerRope[l], batch, rope)
      rope.apply(table, to: q, rows: n, heads: c.heads, headDim: c.headDim)
      rope.apply(table, to: k, rows: n, heads: c.kvHeads, headDim: c.headDim)
      batch.store(layer: l, width: kvWidth, keys: k, values: v, stride: kvWidth)
      Layers.attention(q: q, batch: batch, layer: l, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                       window: c.layerWindow[l], scale: c.attentionScale, softcap: c.attentionSoftcap,
                       kernels: kernels, into: attn)
      kernels.multiply(layer.o, attn, n: n, into: o)
      Layers.addBias(o, layer.oBias, n: n)
      if let norm = layer.postAttentionNorm { Layers.rmsNorm(o, norm, eps: c.eps, n: n, into: o) }
      for i in 0..<(n * d) { x[i] += o[i] }

      Layers.rmsNorm(x, layer.mlpNorm, eps: c.eps, n: n, into: h)
      kernels.multiply(layer.gateUp, h, n: n, into: gateUp)
      Layers.addBias(gateUp, layer.gateUpBias, n: n)
      for t in 0..<n {
        let gate = gateUp + t * 2 * inner, up = gate + inner, out = act + t * inner
        switch c.activation {
        case .silu: for i in 0..<inner { out[i] = Layers.silu(gate[i]) * up[i] }
        case .geluTanh: for i in 0..<inner { out[i] = Layers.geluTanh(gate[i]) * up[i] }
        }
      }
      kernels.multiply(layer.down, act, n: n, into: o)
      Layers.addBias(o, layer.downBias, n: n)
      if let norm = layer.postMLPNorm { Layers.rmsNorm(o, norm, eps: c.eps, n: n, into: o) }
      for i in 0..<(n * d) { x[i] += o[i] }
    }
    batch.advanceCaches()
    writeLogits(batch, x: x, hidden: d, head: head, kernels: kernels, softcap: c.finalSoftcap) { x, rows, out in
      Layers.rmsNorm(x, finalNorm, eps: c.eps, n: rows, into: out)
    }
  }
}

/// Reads a checkpoint's tensors for a network: matrices in the weight format asked for, then as
/// the kernels want them; vectors as Floats.
struct TensorReader {
  let checkpoint: Checkpoint
  let kernels: any MatrixKernels
  let format: WeightFormat

  func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> Weight {
    kernels.prepare(try checkpoint.weight(name, shape: [rows, cols]), format: format)
  }

  /// Matrices `parts` (name, rows), each [rows × cols], stacked into one [Σ rows × cols] weight
  /// (`DecoderNetwork.Layer`).
  func stacked(_ parts: [(String, Int)], cols: Int) throws -> Weight {
    kernels.prepare(Weight.stacked(try parts.map { try checkpoint.weight($0.0, shape: [$0.1, cols]) }), format: format)
  }

  /// Biases `parts` (name, count) stacked as `stacked` stacks their matrices, when `present`.
  func stackedBias(_ parts: [(String, Int)], _ present: Bool) throws -> [Float]? {
    present ? try parts.flatMap { try checkpoint.vector($0.0, count: $0.1) } : nil
  }

  func vector(_ name: String, _ count: Int) throws -> [Float] { try checkpoint.vector(name, count: count) }

  func bias(_ name: String, _ present: Bool, _ count: Int) throws -> [Float]? {
    present ? try checkpoint.vector(name, count: count) : nil
  }

  /// The output head: `lm_head.weight`, else the embedding when tied.
  func head(embedding: Weight, vocab: Int, hidden: Int, tied: Bool) throws -> Weight {
    if checkpoint.has("lm_head.weight") { return try matrix("lm_head.weight", vocab, hidden) }
    guard tied else {
      throw BackendError(EFT_DATA_LOSS, "\(checkpoint.directory.path): missing tensor 'lm_head.weight' (and tie_word_embeddings is false)")
    }
    return kernels.prepare(embedding, format: format)
  }
}

/// The config.json fields every decoder family has, as transformers writes them.
struct DecoderFile: Decodable {
  let hiddenSize: Int?
  let intermediateSize: Int?
  let numHiddenLayers: Int?
  let numAttentionHeads: Int?
  let numKeyValueHeads: Int?
  let headDim: Int?
  let vocabSize: Int?
  let maxPositionEmbeddings: Int?
  let rmsNormEps: Double?
  let tieWordEmbeddings: Bool?
  let ropeTheta: Double?
  let ropeScaling: RopeParameters?
  let hiddenAct: String?
  let slidingWindow: Int?
  let layerTypes: [String]?

  enum CodingKeys: String, CodingKey {
    case hiddenSize = "hidden_size", intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
    case numAttentionHeads = "num_attention_heads", numKeyValueHeads = "num_key_value_heads", headDim = "head_dim"
    case vocabSize = "vocab_size", maxPositionEmbeddings = "max_position_embeddings", rmsNormEps = "rms_norm_eps"
    case tieWordEmbeddings = "tie_word_embeddings", ropeTheta = "rope_theta", ropeScaling = "rope_scaling"
    case hiddenAct = "hidden_act", slidingWindow = "sliding_window", layerTypes = "layer_types"
  }
}

extension DecoderNetwork.Config {
  /// The sizes of `f`, checked; one plain rope and no windows until the family sets them.
  init(_ f: DecoderFile, architecture: String, check: ConfigCheck) throws {
    let hidden = try check.size("hidden_size", f.hiddenSize)
    let heads = try check.size("num_attention_heads", f.numAttentionHeads)
    let kvHeads = try check.size("num_key_value_heads", f.numKeyValueHeads ?? heads)
    guard heads % kvHeads == 0 else {
      throw check.fail("num_key_value_heads", "is \(kvHeads), which does not divide num_attention_heads \(heads)")
    }
    guard f.headDim != nil || hidden % heads == 0 else {
      throw check.fail("hidden_size", "is \(hidden), not a multiple of num_attention_heads \(heads) (and there is no head_dim)")
    }
    let headDim = try check.size("head_dim", f.headDim ?? hidden / heads)
    guard headDim % 2 == 0 else { throw check.fail("head_dim", "is \(headDim); rotary embeddings need an even head size") }
    let layers = try check.size("num_hidden_layers", f.numHiddenLayers)
    self.init(
      hidden: hidden, intermediate: try check.size("intermediate_size", f.intermediateSize),
      heads: heads, kvHeads: kvHeads, headDim: headDim, vocab: try check.size("vocab_size", f.vocabSize),
      contextLength: try check.size("max_position_embeddings", f.maxPositionEmbeddings ?? 2048),
      eps: Float(try check.number("rms_norm_eps", f.rmsNormEps, default: 1e-6, in: 0...1)),
      architecture: "", ropes: [], layerRope: Array(repeating: 0, count: layers),
      layerWindow: Array(repeating: nil, count: layers), attentionScale: 1 / Float(headDim).squareRoot())
    self.architecture = architecture
    tied = f.tieWordEmbeddings ?? false
  }

  /// Per layer, the window it attends to: `types` (config.json's layer_types, else the family's
  /// default pattern `sliding(i)`) says which layers slide; they attend to `window` positions
  /// (none: every layer attends to all).
  static func windows(layers: Int, types: [String]?, window: Int?, check: ConfigCheck,
                      sliding: (Int) -> Bool) throws -> [Int?] {
    if let types {
      guard types.count == layers else {
        throw check.fail("layer_types", "has \(types.count) entries for \(layers) layers (num_hidden_layers)")
      }
      for (i, type) in types.enumerated() where type != "sliding_attention" && type != "full_attention" {
        throw BackendError(EFT_UNIMPLEMENTED, "\(check.file): 'layer_types[\(i)]' is '\(type)'; supported: full_attention, sliding_attention")
      }
    }
    guard let window else { return Array(repeating: nil, count: layers) }
    guard window > 0, window <= ConfigCheck.maxDimension else {
      throw check.fail("sliding_window", "is \(window); it must be in 1...\(ConfigCheck.maxDimension)")
    }
    return (0..<layers).map { i in (types.map { $0[i] == "sliding_attention" } ?? sliding(i)) ? window : nil }
  }
}

extension ConfigCheck {
  /// The MLP's activation: `value` (config.json's `field`) must be one of `supported`.
  func activation(_ field: String, _ value: String?, default fallback: String,
                  _ supported: [String: DecoderNetwork.Activation]) throws -> DecoderNetwork.Activation {
    let name = value ?? fallback
    guard let activation = supported[name] else {
      throw BackendError(EFT_UNIMPLEMENTED, "\(file): '\(field)' is '\(name)'; supported: \(supported.keys.sorted().joined(separator: ", "))")
    }
    return activation
  }
}
