import EFTPluginKit
import Foundation

/// Llama-family decoder: RMSNorm, rotary embeddings (with Llama-3 / linear rope scaling),
/// grouped-query attention, SwiGLU MLP, tied or untied output head, optional q/k/v(/o) biases.
/// Covers Llama 1/2/3, Mistral (without sliding windows), Qwen2/2.5, SmolLM, TinyLlama.
/// Reference: HF transformers `models/llama/modeling_llama.py`, `models/qwen2/modeling_qwen2.py`,
/// `modeling_rope_utils.py`.
struct Llama: Network {
  struct Config {
    let hidden: Int
    let intermediate: Int
    let layers: Int
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    let vocab: Int
    let contextLength: Int
    let eps: Float
    let invFreq: [Float]
    let tied: Bool
    let qkvBias: Bool
    let oBias: Bool
    let mlpBias: Bool
    /// config.json's model_type: llama, mistral or qwen2.
    let architecture: String
  }

  struct Layer {
    let attentionNorm: [Float]   // model.layers.N.input_layernorm.weight
    let q: Weight                // model.layers.N.self_attn.q_proj.weight [heads·headDim × hidden]
    let k: Weight                // model.layers.N.self_attn.k_proj.weight [kvHeads·headDim × hidden]
    let v: Weight                // model.layers.N.self_attn.v_proj.weight [kvHeads·headDim × hidden]
    let o: Weight                // model.layers.N.self_attn.o_proj.weight [hidden × heads·headDim]
    let qBias: [Float]?          // model.layers.N.self_attn.q_proj.bias (Qwen2, attention_bias)
    let kBias: [Float]?
    let vBias: [Float]?
    let oBias: [Float]?          // model.layers.N.self_attn.o_proj.bias (attention_bias)
    let mlpNorm: [Float]         // model.layers.N.post_attention_layernorm.weight
    let gate: Weight             // model.layers.N.mlp.gate_proj.weight [intermediate × hidden]
    let up: Weight               // model.layers.N.mlp.up_proj.weight [intermediate × hidden]
    let down: Weight             // model.layers.N.mlp.down_proj.weight [hidden × intermediate]
    let gateBias: [Float]?       // model.layers.N.mlp.*.bias (mlp_bias)
    let upBias: [Float]?
    let downBias: [Float]?
  }

  let config: Config
  let embedding: Weight          // model.embed_tokens.weight [vocab × hidden]
  let blocks: [Layer]
  let finalNorm: [Float]         // model.norm.weight
  let head: Weight               // lm_head.weight [vocab × hidden], or the embedding when tied
  let kernels: any MatrixKernels

  var vocabSize: Int { config.vocab }
  var contextLength: Int { config.contextLength }
  var layers: Int { config.layers }
  var kvWidth: Int { config.kvHeads * config.headDim }
  let architecture: String

  /// config.json as written by transformers (LlamaConfig, MistralConfig, Qwen2Config).
  struct File: Decodable {
    let modelType: String?
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
    let attentionBias: Bool?
    let mlpBias: Bool?
    let ropeTheta: Double?
    let ropeScaling: Rope?
    let ropeParameters: Rope?

    enum CodingKeys: String, CodingKey {
      case modelType = "model_type", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
      case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
      case numKeyValueHeads = "num_key_value_heads", headDim = "head_dim", vocabSize = "vocab_size"
      case maxPositionEmbeddings = "max_position_embeddings", rmsNormEps = "rms_norm_eps"
      case tieWordEmbeddings = "tie_word_embeddings", attentionBias = "attention_bias", mlpBias = "mlp_bias"
      case ropeTheta = "rope_theta", ropeScaling = "rope_scaling", ropeParameters = "rope_parameters"
    }

    /// `rope_scaling` (older configs) or `rope_parameters` (transformers ≥ 5).
    struct Rope: Decodable {
      let ropeType: String?
      let type: String?
      let ropeTheta: Double?
      let factor: Double?
      let lowFreqFactor: Double?
      let highFreqFactor: Double?
      let originalMaxPositionEmbeddings: Double?

      enum CodingKeys: String, CodingKey {
        case ropeType = "rope_type", type, ropeTheta = "rope_theta", factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
      }
    }
  }

  /// The typed config, validated before anything is computed from it.
  static func config(_ ckpt: Checkpoint) throws -> Config {
    let f = try ckpt.decodeConfig(File.self)
    let check = ConfigCheck(ckpt)
    let type = f.modelType ?? "llama"
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
    let attentionBias = f.attentionBias ?? false
    let rope = f.ropeParameters ?? f.ropeScaling
    let theta = try check.number("rope_theta", f.ropeParameters?.ropeTheta ?? f.ropeTheta, default: 10000, in: Double.leastNormalMagnitude...1e12)
    return Config(
      hidden: hidden, intermediate: try check.size("intermediate_size", f.intermediateSize),
      layers: try check.size("num_hidden_layers", f.numHiddenLayers),
      heads: heads, kvHeads: kvHeads, headDim: headDim, vocab: try check.size("vocab_size", f.vocabSize),
      contextLength: try check.size("max_position_embeddings", f.maxPositionEmbeddings ?? 2048),
      eps: Float(try check.number("rms_norm_eps", f.rmsNormEps, default: 1e-6, in: 0...1)),
      invFreq: try inverseFrequencies(rope, theta: theta, headDim: headDim, check: check),
      tied: f.tieWordEmbeddings ?? false,
      qkvBias: type == "qwen2" || attentionBias, oBias: attentionBias,
      mlpBias: f.mlpBias ?? false, architecture: type)
  }

  init(_ ckpt: Checkpoint, kernels: some MatrixKernels, format: WeightFormat = .checkpoint) throws {
    let config = try Llama.config(ckpt)
    let hidden = config.hidden, heads = config.heads, headDim = config.headDim, kvHeads = config.kvHeads
    self.config = config
    self.architecture = config.architecture
    self.kernels = kernels

    func w(_ name: String, _ rows: Int, _ cols: Int) throws -> Weight { kernels.prepare(try ckpt.weight(name, shape: [rows, cols]), format: format) }
    func bias(_ name: String, _ present: Bool, _ count: Int) throws -> [Float]? { present ? try ckpt.vector(name, count: count) : nil }
    let qWidth = heads * headDim, kvWidth = kvHeads * headDim
    embedding = try ckpt.weight("model.embed_tokens.weight", shape: [config.vocab, hidden])
    blocks = try (0..<config.layers).map { i in
      let p = "model.layers.\(i)."
      return Layer(
        attentionNorm: try ckpt.vector(p + "input_layernorm.weight", count: hidden),
        q: try w(p + "self_attn.q_proj.weight", qWidth, hidden),
        k: try w(p + "self_attn.k_proj.weight", kvWidth, hidden),
        v: try w(p + "self_attn.v_proj.weight", kvWidth, hidden),
        o: try w(p + "self_attn.o_proj.weight", hidden, qWidth),
        qBias: try bias(p + "self_attn.q_proj.bias", config.qkvBias, qWidth),
        kBias: try bias(p + "self_attn.k_proj.bias", config.qkvBias, kvWidth),
        vBias: try bias(p + "self_attn.v_proj.bias", config.qkvBias, kvWidth),
        oBias: try bias(p + "self_attn.o_proj.bias", config.oBias, hidden),
        mlpNorm: try ckpt.vector(p + "post_attention_layernorm.weight", count: hidden),
        gate: try w(p + "mlp.gate_proj.weight", config.intermediate, hidden),
        up: try w(p + "mlp.up_proj.weight", config.intermediate, hidden),
        down: try w(p + "mlp.down_proj.weight", hidden, config.intermediate),
        gateBias: try bias(p + "mlp.gate_proj.bias", config.mlpBias, config.intermediate),
        upBias: try bias(p + "mlp.up_proj.bias", config.mlpBias, config.intermediate),
        downBias: try bias(p + "mlp.down_proj.bias", config.mlpBias, hidden))
    }
    finalNorm = try ckpt.vector("model.norm.weight", count: hidden)
    if ckpt.has("lm_head.weight") {
      head = try w("lm_head.weight", config.vocab, hidden)
    } else if config.tied {
      head = kernels.prepare(embedding, format: format)
    } else {
      throw BackendError(EFT_DATA_LOSS, "\(ckpt.directory.path): missing tensor 'lm_head.weight' (and tie_word_embeddings is false)")
    }
  }

  /// RoPE inverse frequencies θ^(−2i/d), with `rope_scaling` / `rope_parameters` applied.
  static func inverseFrequencies(_ rope: File.Rope?, theta: Double, headDim: Int, check: ConfigCheck) throws -> [Float] {
    let base: [Double] = (0..<(headDim / 2)).map { 1 / pow(theta, Double(2 * $0) / Double(headDim)) }
    let type = rope?.ropeType ?? rope?.type ?? "default"
    func number(_ key: String, _ value: Double?) throws -> Double {
      guard let value else { throw check.fail("rope_scaling", "of type '\(type)' needs '\(key)'") }
      guard value.isFinite, value > 0 else { throw check.fail("rope_scaling.\(key)", "is \(value); it must be a positive number") }
      return value
    }
    switch type {
    case "default":
      return base.map { Float($0) }
    case "linear":
      let factor = try number("factor", rope?.factor)
      return base.map { Float($0 / factor) }
    case "llama3":
      // modeling_rope_utils._compute_llama3_parameters
      let factor = try number("factor", rope?.factor), low = try number("low_freq_factor", rope?.lowFreqFactor)
      let high = try number("high_freq_factor", rope?.highFreqFactor)
      let original = try number("original_max_position_embeddings", rope?.originalMaxPositionEmbeddings)
      guard high != low else { throw check.fail("rope_scaling", "has equal low_freq_factor and high_freq_factor (\(low))") }
      let lowWavelength = original / low, highWavelength = original / high
      return base.map { f in
        let wavelength = 2 * Double.pi / f
        if wavelength < highWavelength { return Float(f) }
        if wavelength > lowWavelength { return Float(f / factor) }
        let smooth = (original / wavelength - low) / (high - low)
        return Float((1 - smooth) * f / factor + smooth * f)
      }
    default:
      throw BackendError(EFT_UNIMPLEMENTED, "\(check.file): rope scaling type '\(type)' is not supported (supported: default, linear, llama3)")
    }
  }

  func forward(_ batch: BatchRows) {
    let c = config
    let n = batch.count, d = c.hidden
    let qWidth = c.heads * c.headDim
    let x = UnsafeMutablePointer<Float>.allocate(capacity: n * d)          // residual stream [n × hidden]
    let h = UnsafeMutablePointer<Float>.allocate(capacity: n * d)          // normed input [n × hidden]
    let q = UnsafeMutablePointer<Float>.allocate(capacity: n * qWidth)     // [n × heads × headDim]
    let k = UnsafeMutablePointer<Float>.allocate(capacity: n * kvWidth)    // [n × kvHeads × headDim]
    let v = UnsafeMutablePointer<Float>.allocate(capacity: n * kvWidth)
    let attn = UnsafeMutablePointer<Float>.allocate(capacity: n * qWidth)  // [n × heads × headDim]
    let gate = UnsafeMutablePointer<Float>.allocate(capacity: n * c.intermediate)
    let up = UnsafeMutablePointer<Float>.allocate(capacity: n * c.intermediate)
    let o = UnsafeMutablePointer<Float>.allocate(capacity: n * d)
    defer { [x, h, q, k, v, attn, gate, up, o].forEach { $0.deallocate() } }

    for t in 0..<n {
      let token = batch.token(t)
      for i in 0..<d { x[t * d + i] = embedding.value(token * d + i) }
    }
    for (l, layer) in blocks.enumerated() {
      Layers.rmsNorm(x, layer.attentionNorm, eps: c.eps, n: n, into: h)
      kernels.multiply(layer.q, h, n: n, into: q)
      Layers.addBias(q, layer.qBias, n: n)
      kernels.multiply(layer.k, h, n: n, into: k)
      Layers.addBias(k, layer.kBias, n: n)
      kernels.multiply(layer.v, h, n: n, into: v)
      Layers.addBias(v, layer.vBias, n: n)
      Layers.rope(q, positions: batch.positions, heads: c.heads, headDim: c.headDim, invFreq: c.invFreq)
      Layers.rope(k, positions: batch.positions, heads: c.kvHeads, headDim: c.headDim, invFreq: c.invFreq)
      batch.store(layer: l, width: kvWidth, keys: k, values: v, stride: kvWidth)
      Layers.attention(q: q, batch: batch, layer: l, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                       kernels: kernels, into: attn)
      kernels.multiply(layer.o, attn, n: n, into: o)
      Layers.addBias(o, layer.oBias, n: n)
      for i in 0..<(n * d) { x[i] += o[i] }

      Layers.rmsNorm(x, layer.mlpNorm, eps: c.eps, n: n, into: h)
      kernels.multiply(layer.gate, h, n: n, into: gate)
      Layers.addBias(gate, layer.gateBias, n: n)
      kernels.multiply(layer.up, h, n: n, into: up)
      Layers.addBias(up, layer.upBias, n: n)
      for i in 0..<(n * c.intermediate) { gate[i] = Layers.silu(gate[i]) * up[i] }
      kernels.multiply(layer.down, gate, n: n, into: o)
      Layers.addBias(o, layer.downBias, n: n)
      for i in 0..<(n * d) { x[i] += o[i] }
    }
    batch.advanceCaches()
    writeLogits(batch, x: x, hidden: d, head: head, kernels: kernels) { x, rows, out in
      Layers.rmsNorm(x, finalNorm, eps: c.eps, n: rows, into: out)
    }
  }
}
