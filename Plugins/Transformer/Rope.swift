import EFTPluginKit
import Foundation

/// `rope_scaling` (transformers 4 configs) or `rope_parameters` (transformers ≥ 5): how a kind of
/// layer rotates its queries and keys.
struct RopeParameters: Decodable {
  let ropeType: String?
  let type: String?
  let ropeTheta: Double?
  let factor: Double?
  let lowFreqFactor: Double?
  let highFreqFactor: Double?
  let originalMaxPositionEmbeddings: Double?
  let shortFactor: [Double]?
  let longFactor: [Double]?
  let attentionFactor: Double?
  let partialRotaryFactor: Double?

  enum CodingKeys: String, CodingKey {
    case ropeType = "rope_type", type, ropeTheta = "rope_theta", factor
    case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
    case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    case shortFactor = "short_factor", longFactor = "long_factor", attentionFactor = "attention_factor"
    case partialRotaryFactor = "partial_rotary_factor"
  }
}

/// Rotary position embedding in HF's "rotate half" layout for one kind of layer: within each
/// head the first `dims` values rotate, element i paired with i + dims/2 (`dims` < headDim with
/// Phi-3's partial_rotary_factor); the rest pass through.
/// Reference: HF transformers `modeling_rope_utils.py`, `apply_rotary_pos_emb` of each model.
struct Rope {
  let dims: Int
  let invFreq: [Float]
  /// cos and sin are multiplied by this (LongRoPE's attention factor; 1 for the others).
  let scale: Float
  /// LongRoPE: a sequence longer than `original` tokens uses these frequencies, at every position
  /// (HF's generate recomputes the whole sequence when it crosses `original`; see
  /// `TransformerSession.item`).
  let long: (invFreq: [Float], original: Int)?

  /// The rope of `parameters` (nil: plain RoPE at `theta`). `field` names the config entry in errors.
  /// `originalMaxPositions` stands in for the parameters' original_max_position_embeddings when
  /// they lack it (Phi-3 configs of transformers 4 have it at the top level).
  init(_ parameters: RopeParameters?, theta: Double, headDim: Int, partialRotaryFactor: Double = 1,
       maxPositions: Int, originalMaxPositions: Double? = nil, field: String = "rope_scaling", check: ConfigCheck) throws {
    let type = parameters?.ropeType ?? parameters?.type ?? "default"
    let partial = parameters?.partialRotaryFactor ?? partialRotaryFactor
    guard partial > 0, partial <= 1 else { throw check.fail("partial_rotary_factor", "is \(partial); it must be in (0, 1]") }
    // HF: dim = int(head_dim · partial_rotary_factor); frequencies θ^(−2i/dim) in f32.
    let dims = Int(Double(headDim) * partial)
    guard dims >= 2, dims % 2 == 0 else {
      throw check.fail("partial_rotary_factor", "is \(partial), which rotates \(dims) of \(headDim) dimensions; it must be an even number ≥ 2")
    }
    let base: [Double] = (0..<(dims / 2)).map { 1 / pow(theta, Double(2 * $0) / Double(dims)) }
    func scaled(by factors: [Double]) -> [Float] { zip(base, factors).map { Float($0 / $1) } }
    func number(_ key: String, _ value: Double?) throws -> Double {
      guard let value else { throw check.fail(field, "of type '\(type)' needs '\(key)'") }
      guard value.isFinite, value > 0 else { throw check.fail("\(field).\(key)", "is \(value); it must be a positive number") }
      return value
    }
    self.dims = dims
    switch type {
    case "default":
      (invFreq, scale, long) = (base.map { Float($0) }, 1, nil)
    case "linear":
      let factor = try number("factor", parameters?.factor)
      (invFreq, scale, long) = (base.map { Float($0 / factor) }, 1, nil)
    case "llama3":
      // modeling_rope_utils._compute_llama3_parameters
      let factor = try number("factor", parameters?.factor), low = try number("low_freq_factor", parameters?.lowFreqFactor)
      let high = try number("high_freq_factor", parameters?.highFreqFactor)
      let original = try number("original_max_position_embeddings", parameters?.originalMaxPositionEmbeddings)
      guard high != low else { throw check.fail(field, "has equal low_freq_factor and high_freq_factor (\(low))") }
      let lowWavelength = original / low, highWavelength = original / high
      invFreq = base.map { f in
        let wavelength = 2 * Double.pi / f
        if wavelength < highWavelength { return Float(f) }
        if wavelength > lowWavelength { return Float(f / factor) }
        let smooth = (original / wavelength - low) / (high - low)
        return Float((1 - smooth) * f / factor + smooth * f)
      }
      (scale, long) = (1, nil)
    case "longrope", "su":
      // modeling_rope_utils._compute_longrope_parameters
      let original = try number("original_max_position_embeddings", parameters?.originalMaxPositionEmbeddings ?? originalMaxPositions)
      func factors(_ key: String, _ list: [Double]?) throws -> [Double] {
        guard let list else { throw check.fail(field, "of type '\(type)' needs '\(key)'") }
        guard list.count == dims / 2, list.allSatisfy({ $0.isFinite && $0 > 0 }) else {
          throw check.fail("\(field).\(key)", "has \(list.count) entries; it needs \(dims / 2) positive numbers (one per rotated pair)")
        }
        return list
      }
      let short = try factors("short_factor", parameters?.shortFactor), longFactors = try factors("long_factor", parameters?.longFactor)
      let factor = try parameters?.factor.map { try number("factor", $0) } ?? Double(maxPositions) / original
      let attention = try parameters?.attentionFactor.map { try number("attention_factor", $0) }
        ?? (factor <= 1 ? 1 : (1 + log(factor) / log(original)).squareRoot())
      invFreq = scaled(by: short)
      scale = Float(attention)
      long = (scaled(by: longFactors), Int(original))
    default:
      throw BackendError(EFT_UNIMPLEMENTED, "\(check.file): '\(field)': rope type '\(type)' is not supported (supported: default, linear, llama3, longrope)")
    }
  }

  /// cos and sin of every row's angles, [rows × dims/2] each.
  /// The cos and sin of each row's angles, [rows × dims/2] each, in memory of the pass.
  struct Table {
    let batch: BatchRows
    let cos: UnsafeMutablePointer<Float>
    let sin: UnsafeMutablePointer<Float>
  }

  /// Computes `table` for its batch's rows.
  func fill(_ table: Table) {
    let half = dims / 2, batch = table.batch, cos = table.cos, sin = table.sin
    for row in 0..<batch.count {
      var frequencies = invFreq
      if let long, batch.ropeLength[batch.itemOfRow[row]] > long.original { frequencies = long.invFreq }
      // HF: freqs = position · inv_freq in f32, then cos/sin, times the attention factor.
      let position = Float(batch.positions[row])
      for i in 0..<half {
        let angle = position * frequencies[i]
        cos[row * half + i] = Foundation.cos(angle) * scale
        sin[row * half + i] = Foundation.sin(angle) * scale
      }
    }
  }

  /// Rotates `x`, [rows × heads × headDim], by `table`.
  func apply(_ table: Table, to x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headDim: Int) {
    let half = dims / 2
    for row in 0..<rows {
      for h in 0..<heads {
        let p = x + (row * heads + h) * headDim
        for i in 0..<half {
          let c = table.cos[row * half + i], s = table.sin[row * half + i]
          let a = p[i], b = p[i + half]
          p[i] = a * c - b * s
          p[i + half] = b * c + a * s
        }
      }
    }
  }
}
