import EFTPluginKit
import Foundation

/// The Llama family: Llama 1/2/3 (with Llama-3 / linear rope scaling, optional attention and MLP
/// biases), Mistral (a sliding window on every layer), Qwen2/2.5 (q/k/v biases; sliding windows
/// on the layers from max_window_layers on when use_sliding_window), Qwen3 (per-head q/k RMSNorm,
/// an explicit head_dim), SmolLM, TinyLlama. RMSNorm, SwiGLU, tied or untied output head.
/// Reference: HF transformers `models/{llama,mistral,qwen2,qwen3}/modeling_*.py`.
enum Llama {
  /// config.json's family fields beyond `DecoderFile` (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config).
  struct File: Decodable {
    let modelType: String?
    let attentionBias: Bool?
    let mlpBias: Bool?
    let ropeParameters: RopeParameters?
    let useSlidingWindow: Bool?
    let maxWindowLayers: Int?
    let partialRotaryFactor: Double?

    enum CodingKeys: String, CodingKey {
      case modelType = "model_type", attentionBias = "attention_bias", mlpBias = "mlp_bias"
      case ropeParameters = "rope_parameters", useSlidingWindow = "use_sliding_window"
      case maxWindowLayers = "max_window_layers", partialRotaryFactor = "partial_rotary_factor"
    }
  }

  /// The typed config, validated before anything is computed from it.
  static func config(_ ckpt: Checkpoint) throws -> (DecoderNetwork.Config, File) {
    let common = try ckpt.decodeConfig(DecoderFile.self)
    let f = try ckpt.decodeConfig(File.self)
    let check = ConfigCheck(ckpt)
    let type = f.modelType ?? "llama"
    var c = try DecoderNetwork.Config(common, architecture: type, check: check)
    c.activation = try check.activation("hidden_act", common.hiddenAct, default: "silu", ["silu": .silu])
    if let partial = f.partialRotaryFactor ?? f.ropeParameters?.partialRotaryFactor, partial != 1 {
      throw BackendError(EFT_UNIMPLEMENTED, "\(check.file): 'partial_rotary_factor' is \(partial); model_type \(type) rotates whole heads (partial rotation: phi3)")
    }
    let theta = try check.number("rope_theta", f.ropeParameters?.ropeTheta ?? common.ropeTheta, default: 10000, in: Double.leastNormalMagnitude...1e12)
    c.ropes = [try Rope(f.ropeParameters ?? common.ropeScaling, theta: theta, headDim: c.headDim,
                        maxPositions: c.contextLength, field: f.ropeParameters != nil ? "rope_parameters" : "rope_scaling", check: check)]
    switch type {
    case "mistral":
      // MistralAttention slides every layer when sliding_window is set (layer_types is not read).
      c.layerWindow = try DecoderNetwork.Config.windows(layers: c.layers, types: nil, window: common.slidingWindow, check: check) { _ in true }
    case "qwen2", "qwen3":
      // Qwen2Config: sliding_window counts only with use_sliding_window; then layers from
      // max_window_layers on slide, unless layer_types says which.
      let from = f.maxWindowLayers ?? 28
      c.layerWindow = try DecoderNetwork.Config.windows(layers: c.layers, types: common.layerTypes,
                                                 window: f.useSlidingWindow == true ? common.slidingWindow : nil, check: check) { $0 >= from }
    default:
      break
    }
    return (c, f)
  }

  static func load(_ ckpt: Checkpoint, kernels: some MatrixKernels, format: WeightFormat) throws -> DecoderNetwork {
    let (c, f) = try config(ckpt)
    let attentionBias = f.attentionBias ?? false
    let qkvBias = c.architecture == "qwen2" || attentionBias, oBias = attentionBias
    let mlpBias = f.mlpBias ?? false, qkNorm = c.architecture == "qwen3"
    let read = TensorReader(checkpoint: ckpt, kernels: kernels, format: format)
    let hidden = c.hidden, qWidth = c.heads * c.headDim, kvWidth = c.kvHeads * c.headDim
    let embedding = try ckpt.weight("model.embed_tokens.weight", shape: [c.vocab, hidden])
    let blocks = try (0..<c.layers).map { i in
      let p = "model.layers.\(i)."
      return DecoderNetwork.Layer(
        attentionNorm: try read.vector(p + "input_layernorm.weight", hidden),
        qkv: try read.stacked([(p + "self_attn.q_proj.weight", qWidth), (p + "self_attn.k_proj.weight", kvWidth),
                               (p + "self_attn.v_proj.weight", kvWidth)], cols: hidden),
        o: try read.matrix(p + "self_attn.o_proj.weight", hidden, qWidth),
        qkvBias: try read.stackedBias([(p + "self_attn.q_proj.bias", qWidth), (p + "self_attn.k_proj.bias", kvWidth),
                                       (p + "self_attn.v_proj.bias", kvWidth)], qkvBias),
        oBias: try read.bias(p + "self_attn.o_proj.bias", oBias, hidden),
        qNorm: try read.bias(p + "self_attn.q_norm.weight", qkNorm, c.headDim),
        kNorm: try read.bias(p + "self_attn.k_norm.weight", qkNorm, c.headDim),
        mlpNorm: try read.vector(p + "post_attention_layernorm.weight", hidden),
        gateUp: try read.stacked([(p + "mlp.gate_proj.weight", c.intermediate), (p + "mlp.up_proj.weight", c.intermediate)], cols: hidden),
        down: try read.matrix(p + "mlp.down_proj.weight", hidden, c.intermediate),
        gateUpBias: try read.stackedBias([(p + "mlp.gate_proj.bias", c.intermediate), (p + "mlp.up_proj.bias", c.intermediate)], mlpBias),
        downBias: try read.bias(p + "mlp.down_proj.bias", mlpBias, hidden))
    }
    return DecoderNetwork(config: c, embedding: embedding, blocks: blocks,
                   finalNorm: try read.vector("model.norm.weight", hidden),
                   head: try read.head(embedding: embedding, vocab: c.vocab, hidden: hidden, tied: c.tied),
                   kernels: kernels)
  }
}
