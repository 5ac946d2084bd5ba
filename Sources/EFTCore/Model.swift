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
  /// Every id that ends a generation (ABI 1.3's list, else eos_token_id); empty: none.
  public let eosTokenIDs: [Int32]
  public let architecture: String
  /// The model's calls wait on another machine (`EFT_MODEL_REMOTE`, ABI 1.4): the scheduler
  /// overlaps them with the other models' calls of a step.
  public let isRemote: Bool
  /// What the backend says identifies the model's tokenizer ("" when it does not say).
  public let tokenizerFingerprint: String
  /// Memory a session may hold per token, in bytes (0: the plugin does not say; ABI 1.2).
  public let sessionBytesPerToken: Int
  let handle: OpaquePointer
  private let sessions = Locked(0)
  /// Sessions of this model that exist now.
  public var liveSessions: Int { sessions.withLock { $0 } }
  func sessionOpened() { sessions.withLock { $0 += 1 } }
  func sessionClosed() { sessions.withLock { $0 -= 1 } }

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
    if info.n_eos_token_ids > 0 {
      guard let ids = info.eos_token_ids, info.n_eos_token_ids <= Int(info.vocab_size) else {
        table.model_free(handle)
        throw RuntimeError(.backend, .internal, "model '\(name)': the backend reports \(info.n_eos_token_ids) EOS ids at \(info.eos_token_ids == nil ? "NULL" : "an array"); at most vocab_size (\(info.vocab_size)) ids in an array")
      }
      eosTokenIDs = Array(UnsafeBufferPointer(start: ids, count: info.n_eos_token_ids))
    } else {
      eosTokenIDs = info.eos_token_id >= 0 ? [info.eos_token_id] : []
    }
    if let bad = eosTokenIDs.first(where: { $0 < 0 || $0 >= info.vocab_size }) {
      table.model_free(handle)
      throw RuntimeError(.backend, .internal, "model '\(name)': the backend reports EOS id \(bad), outside [0, \(info.vocab_size))")
    }
    self.architecture = info.architecture.map { String(cString: $0) } ?? "unknown"
    self.tokenizerFingerprint = info.tokenizer_fingerprint.map { String(cString: $0) } ?? ""
    self.isRemote = plugin.abiMinor >= 4 && info.flags & EFT_MODEL_REMOTE != 0
    self.sessionBytesPerToken = Int(clamping: info.session_bytes_per_token)
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
