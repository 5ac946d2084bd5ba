import CEFTBackend
import EFTTokenizer
import Foundation

/// A model opened through a plugin, with the tokenizer it reads. Shared across threads (the ABI
/// makes models thread-safe); freed when the last reference (including its sessions') goes.
public final class Model: @unchecked Sendable {
  public let name: String
  public let plugin: Plugin
  public let tokenizer: Tokenizer
  /// Rows of the output head (may exceed `tokenizer.vocabSize`: padded heads).
  public let vocabSize: Int
  public let contextLength: Int
  public let bosTokenID: Int32?
  public let eosTokenID: Int32?
  public let architecture: String
  let handle: OpaquePointer

  /// Opens `path` with `plugin`, passing `options` (serialized protobuf) through the ABI.
  public init(name: String, plugin: Plugin, path: String, options: [UInt8], tokenizer: Tokenizer) throws {
    let table = plugin.table.pointee
    var handle: OpaquePointer? = nil
    var error: OpaquePointer? = nil
    let status = options.withUnsafeBufferPointer { bytes in
      table.model_open(path, bytes.count == 0 ? nil : bytes.baseAddress, bytes.count, &handle, &error)
    }
    guard status == EFT_OK, let handle else {
      throw plugin.error(status, error, "model '\(name)' (\(path)) via plugin '\(plugin.name)'")
    }
    var info = eft_model_info()
    info.struct_size = MemoryLayout<eft_model_info>.size
    let describeStatus = table.model_describe(handle, &info, &error)
    guard describeStatus == EFT_OK else {
      table.model_free(handle)
      throw plugin.error(describeStatus, error, "model '\(name)': describe")
    }
    guard info.vocab_size > 0, info.context_length > 0 else {
      table.model_free(handle)
      throw RuntimeError(.backend, .internal, "model '\(name)': the backend reports vocab_size \(info.vocab_size) and context_length \(info.context_length); both must be positive")
    }
    self.name = name
    self.plugin = plugin
    self.tokenizer = tokenizer
    self.handle = handle
    self.vocabSize = Int(info.vocab_size)
    self.contextLength = Int(info.context_length)
    self.bosTokenID = info.bos_token_id >= 0 ? info.bos_token_id : nil
    self.eosTokenID = info.eos_token_id >= 0 ? info.eos_token_id : nil
    self.architecture = info.architecture.map { String(cString: $0) } ?? "unknown"
  }

  deinit { plugin.table.pointee.model_free(handle) }

  /// A new empty session.
  public func makeSession() throws -> Session {
    var session: OpaquePointer? = nil
    var error: OpaquePointer? = nil
    let status = plugin.table.pointee.session_new(handle, &session, &error)
    guard status == EFT_OK, let session else { throw plugin.error(status, error, "model '\(name)': session_new") }
    return Session(model: self, handle: session)
  }
}

/// Which logits an append returns.
public enum LogitsMode: Sendable {
  /// None (a prefill chunk that is not the last).
  case none
  /// After the last appended token: one row.
  case last
  /// After each appended token: one row per token.
  case all

  var abi: eft_logits_mode {
    switch self {
    case .none: EFT_LOGITS_NONE
    case .last: EFT_LOGITS_LAST
    case .all: EFT_LOGITS_ALL
    }
  }

  /// Rows of logits an append of `tokens` tokens returns.
  func rows(_ tokens: Int) -> Int {
    switch self {
    case .none: 0
    case .last: 1
    case .all: tokens
    }
  }
}

/// One token sequence's state in a backend (a KV cache). Used by one thread at a time.
public final class Session {
  public let model: Model
  let handle: OpaquePointer

  init(model: Model, handle: OpaquePointer) {
    self.model = model
    self.handle = handle
  }

  deinit { model.plugin.table.pointee.session_free(handle) }

  /// Tokens held.
  public var count: Int { model.plugin.table.pointee.session_length(handle) }

  /// Appends tokens. With `allPositions` false returns the logits after the last token
  /// ([vocabSize]); with true, after each token ([tokens.count × vocabSize], row-major).
  @discardableResult
  public func append(_ tokens: [Int32], allPositions: Bool = false) throws -> [Float] {
    try append(tokens, mode: allPositions ? .all : .last)
  }

  /// Appends tokens and returns the logits `mode` asks for ([rows × vocabSize], row-major).
  public func append(_ tokens: [Int32], mode: LogitsMode) throws -> [Float] {
    guard !tokens.isEmpty else {
      throw RuntimeError(.request, .invalidArgument, "model '\(model.name)': nothing to append")
    }
    var logits = [Float](repeating: 0, count: mode.rows(tokens.count) * model.vocabSize)
    var error: OpaquePointer? = nil
    let status = tokens.withUnsafeBufferPointer { t in
      logits.withUnsafeMutableBufferPointer { l in
        model.plugin.table.pointee.session_append(handle, t.baseAddress, t.count, mode.abi, l.baseAddress, &error)
      }
    }
    guard status == EFT_OK else { throw model.plugin.error(status, error, "model '\(model.name)': append") }
    return logits
  }

  /// Keeps the first `n` tokens.
  public func truncate(to n: Int) throws {
    var error: OpaquePointer? = nil
    let status = model.plugin.table.pointee.session_truncate(handle, n, &error)
    guard status == EFT_OK else { throw model.plugin.error(status, error, "model '\(model.name)': truncate") }
  }
}

/// One session's part of a batched append.
public struct Append {
  public let session: Session
  public let tokens: [Int32]
  public let mode: LogitsMode

  public init(_ session: Session, _ tokens: [Int32], _ mode: LogitsMode) {
    self.session = session
    self.tokens = tokens
    self.mode = mode
  }
}

extension Model {
  /// Appends to several sessions of this model (each at most once), in one backend call when
  /// the plugin has `session_append_batch` (ABI 1.1), else one call per session. Each append's
  /// result is its own: one that fails does not fail the others (after a failed batched call
  /// — which changed no session — the appends are retried one by one to find whose it was).
  public func append(_ appends: [Append]) -> [Result<[Float], any Error>] {
    if appends.count > 1, let batch = plugin.appendBatch, let logits = try? appendBatch(batch, appends) {
      return logits.map { .success($0) }
    }
    return appends.map { a in Result { try a.session.append(a.tokens, mode: a.mode) } }
  }

  private func appendBatch(
    _ call: @convention(c) (OpaquePointer?, UnsafePointer<eft_append>?, Int, Int, UnsafeMutablePointer<OpaquePointer?>?) -> eft_status,
    _ appends: [Append]
  ) throws -> [[Float]] {
    var logits = appends.map { [Float](repeating: 0, count: $0.mode.rows($0.tokens.count) * vocabSize) }
    // Stable addresses for the call: copies of the token ids and the logits buffers.
    let tokenBuffers = appends.map { a in
      let p = UnsafeMutablePointer<Int32>.allocate(capacity: a.tokens.count)
      p.initialize(from: a.tokens, count: a.tokens.count)
      return p
    }
    let logitBuffers = logits.map { UnsafeMutablePointer<Float>.allocate(capacity: max(1, $0.count)) }
    defer {
      tokenBuffers.forEach { $0.deallocate() }
      logitBuffers.forEach { $0.deallocate() }
    }
    let items = appends.indices.map { i in
      eft_append(session: appends[i].session.handle, tokens: tokenBuffers[i], n_tokens: appends[i].tokens.count,
                 mode: appends[i].mode.abi, logits: logits[i].isEmpty ? nil : logitBuffers[i])
    }
    var error: OpaquePointer? = nil
    let status = items.withUnsafeBufferPointer { call(handle, $0.baseAddress, $0.count, MemoryLayout<eft_append>.stride, &error) }
    guard status == EFT_OK else { throw plugin.error(status, error, "model '\(name)': batched append") }
    for i in logits.indices { logits[i].withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: logitBuffers[i], count: $0.count) } }
    return logits
  }
}
