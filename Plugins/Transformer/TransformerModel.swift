import EFTPluginKit
import EFTProto
import Foundation

/// A transformer checkpoint served through the backend ABI. Shared by the CPU and BLAS
/// plugins, which differ only in their `MatrixKernels`.
public final class TransformerModel: BackendModel {
  public let description: ModelDescription
  let network: any Network

  /// Opens the HF model directory at `path`. `options` are a serialized `eft.v1.TransformerOptions`.
  public init(path: String, options: [UInt8], kernels makeKernels: (_ threads: Int) -> any MatrixKernels) throws {
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
    network = try Architectures.load(checkpoint, kernels: makeKernels(threads))
    var context = network.contextLength
    if opts.contextLength > 0 { context = min(context, Int(opts.contextLength)) }
    description = ModelDescription(
      vocabSize: network.vocabSize, contextLength: context,
      bosTokenID: checkpoint.tokenID("bos_token_id"), eosTokenID: checkpoint.tokenID("eos_token_id"),
      architecture: network.architecture)
  }

  public func makeSession() throws -> any BackendSession {
    TransformerSession(network: network)
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
    let rows: Range<Int>
    switch mode {
    case EFT_LOGITS_LAST: rows = (tokens.count - 1)..<tokens.count
    case EFT_LOGITS_ALL: rows = 0..<tokens.count
    default: rows = 0..<0
    }
    network.forward(tokens, cache: cache, logitRows: rows, into: logits)
  }

  func truncate(to n: Int) throws { cache.truncate(n) }
}
