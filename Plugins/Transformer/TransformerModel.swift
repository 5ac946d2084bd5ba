import EFTPluginKit
import EFTProto
import Foundation

/// A transformer checkpoint served through the backend ABI. Shared by the CPU and BLAS
/// plugins, which differ only in their `MatrixKernels`.
public final class TransformerModel: BackendModel {
  public let description: ModelDescription
  let network: any Network

  /// Opens the HF model directory at `path`. `options` are a serialized `eft.v1.TransformerOptions`.
  public init(path: String, options: [UInt8], kernels makeKernels: (_ threads: Int) throws -> any MatrixKernels) throws {
    let opts: Eft_V1_TransformerOptions
    do {
      opts = try Eft_V1_TransformerOptions(serializedBytes: options)
    } catch {
      throw BackendError(EFT_INVALID_ARGUMENT, "\(path): options are not a valid eft.v1.TransformerOptions message: \(error)")
    }
    // threads: the options, else EFT_THREADS (set by `eft bench --threads`), else one per core.
    let environment = ProcessInfo.processInfo.environment["EFT_THREADS"].flatMap { Int($0) }
    let threads = opts.threads > 0 ? Int(opts.threads) : environment ?? ProcessInfo.processInfo.activeProcessorCount
    let checkpoint = try Checkpoint(directory: path)
    let format: WeightFormat
    switch opts.weights {
    case .checkpoint: format = .checkpoint
    case .q80: format = .q8_0
    case .UNRECOGNIZED(let value):
      throw BackendError(EFT_INVALID_ARGUMENT, "\(path): options: weights \(value) is not a known format (CHECKPOINT, Q8_0)")
    }
    network = try Architectures.load(checkpoint, kernels: try makeKernels(threads), format: format)
    var context = network.contextLength
    if opts.contextLength > 0 { context = min(context, Int(opts.contextLength)) }
    description = ModelDescription(
      vocabSize: network.vocabSize, contextLength: context,
      bosTokenID: checkpoint.tokenID("bos_token_id"), eosTokenID: checkpoint.tokenID("eos_token_id"),
      architecture: network.architecture,
      // Keys and values of every layer, f32; the cache grows by doubling (KVCache.reserve).
      sessionBytesPerToken: 2 * (network.layers * 2 * network.kvWidth * MemoryLayout<Float>.size))
  }

  public func makeSession() throws -> any BackendSession {
    TransformerSession(network: network)
  }

  /// One forward pass over every session's tokens (one matrix product per weight for all rows).
  public func append(batch: [BackendAppend]) throws {
    let items = try batch.enumerated().map { i, a in
      // The kit passes only this model's sessions.
      guard let session = a.session as? TransformerSession else {
        throw BackendError(EFT_INVALID_ARGUMENT, "append \(i): the session is not one of this model's")
      }
      return session.item(a.tokens, mode: a.mode, logits: a.logits)
    }
    network.forward(BatchRows(items))
  }
}

final class TransformerSession: BackendSession {
  let network: any Network
  let cache: KVCache

  init(network: any Network) {
    self.network = network
    cache = KVCache(layers: network.layers, width: network.kvWidth)
  }

  var count: Int { cache.count }

  func append(_ tokens: UnsafeBufferPointer<Int32>, mode: eft_logits_mode, logits: UnsafeMutablePointer<Float>?) throws {
    network.forward(BatchRows([item(tokens, mode: mode, logits: logits)]))
  }

  /// This session's part of a forward pass.
  func item(_ tokens: UnsafeBufferPointer<Int32>, mode: eft_logits_mode, logits: UnsafeMutablePointer<Float>?) -> ForwardItem {
    let rows: Range<Int>
    switch mode {
    case EFT_LOGITS_LAST: rows = (tokens.count - 1)..<tokens.count
    case EFT_LOGITS_ALL: rows = 0..<tokens.count
    default: rows = 0..<0
    }
    return ForwardItem(tokens: tokens, cache: cache, logitRows: rows, out: logits)
  }

  func truncate(to n: Int) throws { cache.truncate(n) }
}
