import EFTPluginKit
import Foundation

/// Gemma 2 and Gemma 3 (text): the embedding scaled by √hidden, RMSNorm with (1 + w) weights,
/// norms before and after both attention and the MLP, GeGLU with the tanh GELU, attention
/// scaled by query_pre_attn_scalar^−½, sliding-window layers in a pattern (layer_types), tied
/// output head. Gemma 2 soft-caps attention scores and the final logits; Gemma 3 adds per-head
/// q/k norms and gives local (sliding) and global layers their own RoPE.
/// Reference: HF transformers `models/gemma2/modeling_gemma2.py`, `models/gemma3/modeling_gemma3.py`.
enum Gemma {
  /// config.json's family fields beyond `DecoderFile` (Gemma2Config, Gemma3TextConfig).
  struct File: Decodable {
    let modelType: String?
    let hiddenActivation: String?
    let queryPreAttnScalar: Double?
    let attentionBias: Bool?
    let useBidirectionalAttention: Bool?
    let ropeParameters: RopeField?
    let ropeLocalBaseFreq: Double?
    let slidingWindowPattern: Int?
    let slidingWindowPatternV5: Int?

    enum CodingKeys: String, CodingKey {
      case modelType = "model_type", hiddenActivation = "hidden_activation", queryPreAttnScalar = "query_pre_attn_scalar"
      case attentionBias = "attention_bias", useBidirectionalAttention = "use_bidirectional_attention"
      case ropeParameters = "rope_parameters", ropeLocalBaseFreq = "rope_local_base_freq"
      case slidingWindowPattern = "sliding_window_pattern", slidingWindowPatternV5 = "_sliding_window_pattern"
    }
  }

  /// `rope_parameters`: one set (Gemma 2), or one per layer type (Gemma 3 under transformers ≥ 5).
  enum RopeField: Decodable {
    case one(RopeParameters)
    case perLayerType([String: RopeParameters])

    init(from decoder: any Swift.Decoder) throws {
      if let table = try? [String: RopeParameters](from: decoder) {
        self = .perLayerType(table)
      } else {
        self = .one(try RopeParameters(from: decoder))
      }
    }
  }

  static func config(_ ckpt: Checkpoint) throws -> (DecoderNetwork.Config, File) {
    let common = try ckpt.decodeConfig(DecoderFile.self)
    let f = try ckpt.decodeConfig(File.self)
    let check = ConfigCheck(ckpt)
    let type = f.modelType ?? "gemma2"
    var c = try DecoderNetwork.Config(common, architecture: type, check: check)
    if f.useBidirectionalAttention == true {
      throw BackendError(EFT_UNIMPLEMENTED, "\(check.file): 'use_bidirectional_attention' is true; only causal attention is supported")
    }
    c.activation = try check.activation("hidden_activation", f.hiddenActivation ?? common.hiddenAct, default: "gelu_pytorch_tanh",
                                        ["gelu_pytorch_tanh": .geluTanh])
    let scalar = try check.number("query_pre_attn_scalar", f.queryPreAttnScalar, default: 256, in: Double.leastNormalMagnitude...1e12)
    c.attentionScale = Float(1 / scalar.squareRoot())
    c.embeddingScale = Float(Double(c.hidden).squareRoot())
    c.tied = common.tieWordEmbeddings ?? true
    // Gemma2Config defaults both caps (50, 30) when the keys are absent; null turns one off.
    func cap(_ key: String, gemma2Default: Double) throws -> Float? {
      let value: Double?
      switch ckpt.config[key] {
      case nil: value = type == "gemma2" ? gemma2Default : nil
      case is NSNull: value = nil
      case let n as NSNumber: value = n.doubleValue
      default: throw check.fail(key, "is not a number")
      }
      return try value.map { Float(try check.number(key, $0, default: 0, in: Double.leastNormalMagnitude...1e12)) }
    }
    c.attentionSoftcap = try cap("attn_logit_softcapping", gemma2Default: 50)
    c.finalSoftcap = try cap("final_logit_softcapping", gemma2Default: 30)

    // Which layers slide: layer_types, else every other one (Gemma 2: 0, 2, …) or all but every
    // sliding_window_pattern-th (Gemma 3, default 6).
    let pattern = type == "gemma2" ? 2 : try check.size("sliding_window_pattern", f.slidingWindowPattern ?? f.slidingWindowPatternV5 ?? 6)
    c.layerWindow = try DecoderNetwork.Config.windows(layers: c.layers, types: common.layerTypes, window: common.slidingWindow,
                                               check: check) { ($0 + 1) % pattern != 0 }
    let types = common.layerTypes ?? (0..<c.layers).map { ($0 + 1) % pattern != 0 ? "sliding_attention" : "full_attention" }

    func rope(_ parameters: RopeParameters?, theta: Double?, default fallback: Double, field: String) throws -> Rope {
      let theta = try check.number("\(field).rope_theta", parameters?.ropeTheta ?? theta, default: fallback, in: Double.leastNormalMagnitude...1e12)
      return try Rope(parameters, theta: theta, headDim: c.headDim, maxPositions: c.contextLength, field: field, check: check)
    }
    switch (type, f.ropeParameters) {
    case ("gemma2", .perLayerType), ("gemma3_text", .one):
      throw check.fail("rope_parameters", "has the wrong shape for model_type \(type)")
    case ("gemma2", .one(let p)):
      c.ropes = [try rope(p, theta: common.ropeTheta, default: 10000, field: "rope_parameters")]
    case ("gemma2", nil):
      c.ropes = [try rope(common.ropeScaling, theta: common.ropeTheta, default: 10000, field: "rope_scaling")]
    case (_, .perLayerType(let table)):
      // Gemma3TextConfig: global layers 1e6 (with any scaling), local layers 1e4.
      for key in table.keys.sorted() where key != "full_attention" && key != "sliding_attention" {
        throw BackendError(EFT_UNIMPLEMENTED, "\(check.file): 'rope_parameters.\(key)': unknown layer type (supported: full_attention, sliding_attention)")
      }
      c.ropes = [try rope(table["full_attention"], theta: nil, default: 1_000_000, field: "rope_parameters.full_attention"),
                 try rope(table["sliding_attention"], theta: nil, default: 10000, field: "rope_parameters.sliding_attention")]
    default:
      // transformers 4 Gemma 3: rope_theta and rope_scaling for global layers, rope_local_base_freq for local ones.
      c.ropes = [try rope(common.ropeScaling, theta: common.ropeTheta, default: 1_000_000, field: "rope_scaling"),
                 try rope(nil, theta: f.ropeLocalBaseFreq, default: 10000, field: "rope_local_base_freq")]
    }
    c.layerRope = type == "gemma2" ? Array(repeating: 0, count: c.layers) : types.map { $0 == "sliding_attention" ? 1 : 0 }
    return (c, f)
  }

  static func load(_ ckpt: Checkpoint, kernels: some MatrixKernels, format: WeightFormat) throws -> DecoderNetwork {
    let (c, f) = try config(ckpt)
    let bias = f.attentionBias ?? false
    let qkNorm = c.architecture == "gemma3_text"
    let read = TensorReader(checkpoint: ckpt, kernels: kernels, format: format)
    let hidden = c.hidden, qWidth = c.heads * c.headDim, kvWidth = c.kvHeads * c.headDim
    // Gemma's RMSNorm scales by (1 + w): folded into the weight once here.
    func norm(_ name: String, _ count: Int) throws -> [Float] { try read.vector(name, count).map { 1 + $0 } }
    let embedding = try ckpt.weight("model.embed_tokens.weight", shape: [c.vocab, hidden])
    let blocks = try (0..<c.layers).map { i in
      let p = "model.layers.\(i)."
      return DecoderNetwork.Layer(
        attentionNorm: try norm(p + "input_layernorm.weight", hidden),
        qkv: try read.stacked([(p + "self_attn.q_proj.weight", qWidth), (p + "self_attn.k_proj.weight", kvWidth),
                               (p + "self_attn.v_proj.weight", kvWidth)], cols: hidden),
        o: try read.matrix(p + "self_attn.o_proj.weight", hidden, qWidth),
        qkvBias: try read.stackedBias([(p + "self_attn.q_proj.bias", qWidth), (p + "self_attn.k_proj.bias", kvWidth),
                                       (p + "self_attn.v_proj.bias", kvWidth)], bias),
        oBias: try read.bias(p + "self_attn.o_proj.bias", bias, hidden),
        qNorm: qkNorm ? try norm(p + "self_attn.q_norm.weight", c.headDim) : nil,
        kNorm: qkNorm ? try norm(p + "self_attn.k_norm.weight", c.headDim) : nil,
        postAttentionNorm: try norm(p + "post_attention_layernorm.weight", hidden),
        mlpNorm: try norm(p + "pre_feedforward_layernorm.weight", hidden),
        gateUp: try read.stacked([(p + "mlp.gate_proj.weight", c.intermediate), (p + "mlp.up_proj.weight", c.intermediate)], cols: hidden),
        down: try read.matrix(p + "mlp.down_proj.weight", hidden, c.intermediate),
        postMLPNorm: try norm(p + "post_feedforward_layernorm.weight", hidden))
    }
    return DecoderNetwork(config: c, embedding: embedding, blocks: blocks, finalNorm: try norm("model.norm.weight", hidden),
                   head: try read.head(embedding: embedding, vocab: c.vocab, hidden: hidden, tied: c.tied), kernels: kernels)
  }
}
