import EFTPluginKit
import Foundation

/// GPT-2: learned absolute positions, pre-LayerNorm blocks, fused q/k/v projection, GELU (tanh)
/// MLP, output head tied to the token embedding. GPT-2 stores its projections as Conv1D weights
/// ([in × out]); they are transposed once at load into the [out × in] layout the kernels read.
/// Reference: HF transformers `models/gpt2/modeling_gpt2.py`.
struct GPT2: Network {
  struct Layer {
    let ln1Weight: [Float], ln1Bias: [Float]   // h.N.ln_1.{weight,bias}
    let qkv: Weight, qkvBias: [Float]          // h.N.attn.c_attn.{weight [hidden × 3·hidden], bias}
    let proj: Weight, projBias: [Float]        // h.N.attn.c_proj.{weight [hidden × hidden], bias}
    let ln2Weight: [Float], ln2Bias: [Float]   // h.N.ln_2.{weight,bias}
    let fc: Weight, fcBias: [Float]            // h.N.mlp.c_fc.{weight [hidden × inner], bias}
    let out: Weight, outBias: [Float]          // h.N.mlp.c_proj.{weight [inner × hidden], bias}
  }

  let hidden: Int
  let heads: Int
  let inner: Int
  let vocabSize: Int
  let contextLength: Int
  let eps: Float
  let tokenEmbedding: Weight     // wte.weight [vocab × hidden]; also the output head
  let head: Weight
  let positionEmbedding: Weight  // wpe.weight [positions × hidden]
  let blocks: [Layer]
  let finalNormWeight: [Float], finalNormBias: [Float]  // ln_f.{weight,bias}
  let kernels: any MatrixKernels
  let architecture = "gpt2"

  var layers: Int { blocks.count }
  var kvWidth: Int { hidden }

  /// config.json as written by transformers (GPT2Config).
  struct File: Decodable {
    let nEmbd: Int?
    let nHead: Int?
    let nInner: Int?
    let nLayer: Int?
    let nPositions: Int?
    let vocabSize: Int?
    let layerNormEpsilon: Double?
    let activationFunction: String?

    enum CodingKeys: String, CodingKey {
      case nEmbd = "n_embd", nHead = "n_head", nInner = "n_inner", nLayer = "n_layer", nPositions = "n_positions"
      case vocabSize = "vocab_size", layerNormEpsilon = "layer_norm_epsilon", activationFunction = "activation_function"
    }
  }

  init(_ ckpt: Checkpoint, kernels: some MatrixKernels, format: WeightFormat = .checkpoint) throws {
    let f = try ckpt.decodeConfig(File.self)
    let check = ConfigCheck(ckpt)
    hidden = try check.size("n_embd", f.nEmbd)
    heads = try check.size("n_head", f.nHead)
    guard hidden % heads == 0 else { throw check.fail("n_embd", "is \(hidden), not a multiple of n_head \(heads)") }
    inner = try check.size("n_inner", f.nInner ?? 4 * hidden)
    vocabSize = try check.size("vocab_size", f.vocabSize)
    contextLength = try check.size("n_positions", f.nPositions)
    let layerCount = try check.size("n_layer", f.nLayer)
    eps = Float(try check.number("layer_norm_epsilon", f.layerNormEpsilon, default: 1e-5, in: 0...1))
    let activation = f.activationFunction ?? "gelu_new"
    guard ["gelu_new", "gelu_pytorch_tanh"].contains(activation) else {
      throw BackendError(EFT_UNIMPLEMENTED, "\(check.file): activation_function '\(activation)' is not supported (supported: gelu_new, gelu_pytorch_tanh)")
    }
    self.kernels = kernels
    // Hub checkpoints name tensors "h.0…"; GPT2LMHeadModel.save_pretrained writes "transformer.h.0…".
    let prefix = ckpt.has("transformer.wte.weight") ? "transformer." : ""
    let (d, inner) = (hidden, self.inner)
    func conv(_ name: String, _ rows: Int, _ cols: Int) throws -> Weight {
      kernels.prepare(try ckpt.weight(prefix + name, shape: [rows, cols]).transposedF32(), format: format)
    }
    func vector(_ name: String, _ count: Int) throws -> [Float] { try ckpt.vector(prefix + name, count: count) }
    tokenEmbedding = try ckpt.weight(prefix + "wte.weight", shape: [vocabSize, d])
    positionEmbedding = try ckpt.weight(prefix + "wpe.weight", shape: [contextLength, d])
    blocks = try (0..<layerCount).map { i in
      let p = "h.\(i)."
      return Layer(
        ln1Weight: try vector(p + "ln_1.weight", d), ln1Bias: try vector(p + "ln_1.bias", d),
        qkv: try conv(p + "attn.c_attn.weight", d, 3 * d), qkvBias: try vector(p + "attn.c_attn.bias", 3 * d),
        proj: try conv(p + "attn.c_proj.weight", d, d), projBias: try vector(p + "attn.c_proj.bias", d),
        ln2Weight: try vector(p + "ln_2.weight", d), ln2Bias: try vector(p + "ln_2.bias", d),
        fc: try conv(p + "mlp.c_fc.weight", d, inner), fcBias: try vector(p + "mlp.c_fc.bias", inner),
        out: try conv(p + "mlp.c_proj.weight", inner, d), outBias: try vector(p + "mlp.c_proj.bias", d))
    }
    finalNormWeight = try vector("ln_f.weight", d)
    finalNormBias = try vector("ln_f.bias", d)
    head = ckpt.has("lm_head.weight") ? kernels.prepare(try ckpt.weight("lm_head.weight", shape: [vocabSize, d]), format: format) : kernels.prepare(tokenEmbedding, format: format)
  }

  func forward(_ batch: BatchRows) {
    let n = batch.count, d = hidden, headDim = hidden / heads
    let scratch = batch.scratch
    let x = scratch.floats(.a0, n * d)         // residual [n × hidden]
    let h = scratch.floats(.a1, n * d)
    let qkv = scratch.floats(.a2, n * 3 * d)   // [n × (q | k | v)]
    let q = scratch.floats(.a3, n * d)
    let attn = scratch.floats(.a4, n * d)
    let mlp = scratch.floats(.a5, n * inner)
    let o = scratch.floats(.a6, n * d)

    for t in 0..<n {
      let token = batch.token(t), position = batch.positions[t]
      for i in 0..<d {
        x[t * d + i] = tokenEmbedding.value(token * d + i) + positionEmbedding.value(position * d + i)
      }
    }
    for (l, layer) in blocks.enumerated() {
      Layers.layerNorm(x, layer.ln1Weight, layer.ln1Bias, eps: eps, n: n, into: h)
      kernels.multiply(layer.qkv, h, n: n, into: qkv)
      Layers.addBias(qkv, layer.qkvBias, n: n)
      for t in 0..<n { (q + t * d).update(from: qkv + t * 3 * d, count: d) }
      batch.store(layer: l, width: d, keys: qkv + d, values: qkv + 2 * d, stride: 3 * d)
      Layers.attention(q: q, batch: batch, layer: l, heads: heads, kvHeads: heads, headDim: headDim,
                       kernels: kernels, into: attn)
      kernels.multiply(layer.proj, attn, n: n, into: o)
      Layers.addBias(o, layer.projBias, n: n)
      for i in 0..<(n * d) { x[i] += o[i] }

      Layers.layerNorm(x, layer.ln2Weight, layer.ln2Bias, eps: eps, n: n, into: h)
      kernels.multiply(layer.fc, h, n: n, into: mlp)
      Layers.addBias(mlp, layer.fcBias, n: n)
      for i in 0..<(n * inner) { mlp[i] = Layers.geluTanh(mlp[i]) }
      kernels.multiply(layer.out, mlp, n: n, into: o)
      Layers.addBias(o, layer.outBias, n: n)
      for i in 0..<(n * d) { x[i] += o[i] }
    }
    batch.advanceCaches()
    writeLogits(batch, x: x, hidden: d, head: head, kernels: kernels) { x, rows, out in
      Layers.layerNorm(x, finalNormWeight, finalNormBias, eps: eps, n: rows, into: out)
    }
  }
}
