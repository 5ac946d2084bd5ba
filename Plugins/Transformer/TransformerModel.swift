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
    case .q80: format = .quantized(.q8_0)
    case .q40: format = .quantized(.q4_0)
    case .f32: format = .f32
    case .UNRECOGNIZED(let value):
      throw BackendError(EFT_INVALID_ARGUMENT, "\(path): options: weights \(value) is not a known format (CHECKPOINT, Q8_0, F32, Q4_0)")
    }
    network = try Architectures.load(checkpoint, kernels: try makeKernels(threads), format: format)
    var context = network.contextLength
    if opts.contextLength > 0 { context = min(context, Int(opts.contextLength)) }
    description = ModelDescription(
      vocabSize: network.vocabSize, contextLength: context,
      bosTokenID: checkpoint.tokenIDs("bos_token_id").first ?? -1,
      // An id past the head's rows can never be sampled (configs of small test models keep their
      // family's default 32000, say): nothing to stop at.
      eosTokenIDs: checkpoint.tokenIDs("eos_token_id").filter { [vocab = network.vocabSize] in $0 < vocab },
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
    items.withUnsafeBufferPointer { network.forward($0) }
  }
}

final class TransformerSession: BackendSession {
  let network: any Network
  let cache: KVCache

  /// `bounded: false` keeps every position even when every layer slides (for tests).
  init(network: any Network, bounded: Bool = true, slack: Int = 128) {
    self.network = network
    // A windowed cache keeps its token ids anyway (KVCache.init); LongRoPE needs them too.
    cache = KVCache(layers: network.layers, width: network.kvWidth, window: bounded ? network.cacheWindow : nil,
                    slack: slack, keepsTokens: network.longRopeThreshold != nil)
  }

  var count: Int { cache.count }

  func append(_ tokens: UnsafeBufferPointer<Int32>, mode: eft_logits_mode, logits: UnsafeMutablePointer<Float>?) throws {
    var item = item(tokens, mode: mode, logits: logits)
    withUnsafePointer(to: &item) { network.forward(UnsafeBufferPointer(start: $0, count: 1)) }
  }

  /// This session's part of a forward pass.
  func item(_ tokens: UnsafeBufferPointer<Int32>, mode: eft_logits_mode, logits: UnsafeMutablePointer<Float>?) -> ForwardItem {
    if let threshold = network.longRopeThreshold {
      // LongRoPE rotates a sequence longer than the threshold by its long frequencies at every
      // position; keys cached for the other side of the threshold are recomputed first (as HF's
      // Phi-3 generate does when a sequence crosses it).
      let long = cache.count + tokens.count > threshold
      if cache.count > 0, cache.ropeLong != long { recompute(cache.count, ropeLength: cache.count + tokens.count) }
      cache.ropeLong = long
    }
    let rows: Range<Int>
    switch mode {
    case EFT_LOGITS_LAST: rows = (tokens.count - 1)..<tokens.count
    case EFT_LOGITS_ALL: rows = 0..<tokens.count
    default: rows = 0..<0
    }
    return ForwardItem(tokens: tokens, cache: cache, logitRows: rows, out: logits)
  }

  func truncate(to n: Int) throws {
    if cache.canTruncate(to: n) {
      cache.truncate(n)
      return
    }
    // The cache has dropped positions the next token would attend to: recompute the prefix.
    recompute(n)
  }

  /// Empties the cache and runs its first `n` tokens again (in chunks, so that a sliding-window
  /// cache stays bounded), rotated for a sequence of `ropeLength` tokens.
  private func recompute(_ n: Int, ropeLength: Int? = nil) {
    let prefix = Array(cache.tokens[..<n])
    cache.clear()
    for start in stride(from: 0, to: n, by: 512) {
      prefix[start..<min(n, start + 512)].withUnsafeBufferPointer { chunk in
        [ForwardItem(tokens: chunk, cache: cache, logitRows: 0..<0, out: nil, ropeLength: ropeLength)]
          .withUnsafeBufferPointer { network.forward($0) }
      }
    }
  }
}
