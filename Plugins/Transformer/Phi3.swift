import EFTPluginKit
import Foundation

/// Phi-3 (and Phi-3.5, Phi-4-mini): a Llama-style decoder whose checkpoints fuse q/k/v into
/// `qkv_proj` and gate/up into `gate_up_proj` (split into row blocks at load, no copy), with
/// partial rotary embeddings (partial_rotary_factor), LongRoPE scaling (short and long factors)
/// and an optional sliding window on every layer.
/// Reference: HF transformers `models/phi3/modeling_phi3.py`.
enum Phi3 {
  /// config.json's family fields beyond `DecoderFile` (Phi3Config).
  struct File: Decodable {
    let ropeParameters: RopeParameters?
    let partialRotaryFactor: Double?
    let originalMaxPositionEmbeddings: Double?

    enum CodingKeys: String, CodingKey {
      case ropeParameters = "rope_parameters", partialRotaryFactor = "partial_rotary_factor"
      case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    }
  }

  static func config(_ ckpt: Checkpoint) throws -> DecoderNetwork.Config {
    let common = try ckpt.decodeConfig(DecoderFile.self)
    let f = try ckpt.decodeConfig(File.self)
    let check = ConfigCheck(ckpt)
    var c = try DecoderNetwork.Config(common, architecture: "phi3", check: check)
    c.activation = try check.activation("hidden_act", common.hiddenAct, default: "silu", ["silu": .silu])
    let parameters = f.ropeParameters ?? common.ropeScaling
    let theta = try check.number("rope_theta", f.ropeParameters?.ropeTheta ?? common.ropeTheta, default: 10000, in: Double.leastNormalMagnitude...1e12)
    c.ropes = [try Rope(parameters, theta: theta, headDim: c.headDim, partialRotaryFactor: f.partialRotaryFactor ?? 1,
                        maxPositions: c.contextLength, originalMaxPositions: f.originalMaxPositionEmbeddings,
                        field: f.ropeParameters != nil ? "rope_parameters" : "rope_scaling", check: check)]
    // Phi3Attention slides every layer when sliding_window is set.
    c.layerWindow = try DecoderNetwork.Config.windows(layers: c.layers, types: nil, window: common.slidingWindow, check: check) { _ in true }
    return c
  }

  static func load(_ ckpt: Checkpoint, kernels: some MatrixKernels, format: WeightFormat) throws -> DecoderNetwork {
    let c = try config(ckpt)
    let read = TensorReader(checkpoint: ckpt, kernels: kernels, format: format)
    let hidden = c.hidden, qWidth = c.heads * c.headDim, kvWidth = c.kvHeads * c.headDim
    let embedding = try ckpt.weight("model.embed_tokens.weight", shape: [c.vocab, hidden])
    let blocks = try (0..<c.layers).map { i in
      let p = "model.layers.\(i)."
      return DecoderNetwork.Layer(
        attentionNorm: try read.vector(p + "input_layernorm.weight", hidden),
        qkv: try read.matrix(p + "self_attn.qkv_proj.weight", qWidth + 2 * kvWidth, hidden),
        o: try read.matrix(p + "self_attn.o_proj.weight", hidden, qWidth),
        mlpNorm: try read.vector(p + "post_attention_layernorm.weight", hidden),
        // Phi3MLP: gate, up = gate_up_proj(x).chunk(2) — the gate's rows come first.
        gateUp: try read.matrix(p + "mlp.gate_up_proj.weight", 2 * c.intermediate, hidden),
        down: try read.matrix(p + "mlp.down_proj.weight", hidden, c.intermediate))
    }
    return DecoderNetwork(config: c, embedding: embedding, blocks: blocks, finalNorm: try read.vector("model.norm.weight", hidden),
                          head: try read.head(embedding: embedding, vocab: c.vocab, hidden: hidden, tied: c.tied), kernels: kernels)
  }
}
