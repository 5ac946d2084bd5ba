import EFTPluginKit
import Foundation

/// A decoder-only transformer over a KV cache.
protocol Network: Sendable {
  var vocabSize: Int { get }
  var contextLength: Int { get }
  var layers: Int { get }
  /// Floats per token per layer in the cache (kvHeads × headDim).
  var kvWidth: Int { get }
  var architecture: String { get }
  /// When every layer attends to a window: the widest, which bounds what a session's cache keeps.
  var cacheWindow: Int? { get }
  /// LongRoPE's original_max_position_embeddings: sequences longer than this rotate by other
  /// frequencies at every position.
  var longRopeThreshold: Int? { get }
  /// Runs every item's tokens at the positions after its cache's, appends their keys and values
  /// to the item's cache, and writes the logits the items ask for: one matrix product per
  /// weight over the rows of all items, attention per item.
  func forward(_ batch: BatchRows)
}

extension Network {
  var cacheWindow: Int? { nil }
  var longRopeThreshold: Int? { nil }
}

/// The architectures by config.json `model_type`.
enum Architectures {
  static let supported = ["gemma2", "gemma3_text", "gpt2", "llama", "mistral", "phi3", "qwen2", "qwen3"]

  static func load(_ checkpoint: Checkpoint, kernels: some MatrixKernels, format: WeightFormat) throws -> any Network {
    let type = checkpoint.config["model_type"] as? String ?? "?"
    switch type {
    case "llama", "mistral", "qwen2", "qwen3":
      return try Llama.load(checkpoint, kernels: kernels, format: format)
    case "gemma2", "gemma3_text":
      return try Gemma.load(checkpoint, kernels: kernels, format: format)
    case "phi3":
      return try Phi3.load(checkpoint, kernels: kernels, format: format)
    case "gpt2":
      return try GPT2(checkpoint, kernels: kernels, format: format)
    default:
      throw BackendError(EFT_UNIMPLEMENTED, "\(checkpoint.directory.path)/config.json: model_type '\(type)' is not supported (supported: \(supported.joined(separator: ", ")))")
    }
  }
}

/// How matrix weights are held in memory (`TransformerOptions.weights`).
public enum WeightFormat: Sendable {
  /// As the checkpoint has them.
  case checkpoint
  /// Q8_0 or Q4_0 where the width allows (`Weight.quantizable`), else as the checkpoint has them.
  case quantized(DType)
  /// F32 (16-bit weights upcast at load).
  case f32
}

extension MatrixKernels {
  /// A matrix weight in `format`.
  public func prepare(_ w: Weight, format: WeightFormat) -> Weight {
    switch format {
    case .checkpoint: w
    case .quantized(let type): w.quantizable ? w.quantized(to: type) : w
    case .f32: w.upcastF32()
    }
  }
}
