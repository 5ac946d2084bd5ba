@_exported import CEFTBackend
import Foundation

/// An error a Swift backend throws; it crosses the C ABI as an `eft_error` with this status.
public struct BackendError: Error, CustomStringConvertible {
  public var status: eft_status
  public var message: String

  public init(_ status: eft_status, _ message: String) {
    self.status = status
    self.message = message
  }

  public var description: String { message }
}

/// What a model says about itself (see `eft_model_info` in eft_backend.h).
public struct ModelDescription: Sendable {
  public var vocabSize: Int
  public var contextLength: Int
  public var bosTokenID: Int32
  /// Every id that ends a generation (`eft_model_info.eos_token_ids`); empty: none.
  public var eosTokenIDs: [Int32]
  public var architecture: String
  public var tokenizerFingerprint: String
  /// Memory a session may hold per token, growth slack included (0: unknown); see
  /// `eft_model_info.session_bytes_per_token`.
  public var sessionBytesPerToken: Int
  /// The model's calls wait on another machine, not this one's cores (`EFT_MODEL_REMOTE`).
  public var isRemote: Bool

  public init(vocabSize: Int, contextLength: Int, bosTokenID: Int32, eosTokenIDs: [Int32],
              architecture: String, tokenizerFingerprint: String = "", sessionBytesPerToken: Int = 0, isRemote: Bool = false) {
    self.vocabSize = vocabSize
    self.contextLength = contextLength
    self.bosTokenID = bosTokenID
    self.eosTokenIDs = eosTokenIDs
    self.architecture = architecture
    self.tokenizerFingerprint = tokenizerFingerprint
    self.sessionBytesPerToken = sessionBytesPerToken
    self.isRemote = isRemote
  }
}

/// A model opened by a Swift backend. Shared across threads.
public protocol BackendModel: AnyObject, Sendable {
  var description: ModelDescription { get }
  func makeSession() throws -> any BackendSession
  /// Appends to several sessions of this model in one call (`session_append_batch`). The kit
  /// has validated every append as for `BackendSession.append`, and the sessions are distinct
  /// sessions of this model. All or nothing: must leave every session unchanged when it throws.
  /// The default appends one session after the other and rolls back on a failure.
  func append(batch: [BackendAppend]) throws
}

/// One session's part of a batched append.
public struct BackendAppend {
  public let session: any BackendSession
  public let tokens: UnsafeBufferPointer<Int32>
  public let mode: eft_logits_mode
  public let logits: UnsafeMutablePointer<Float>?
}

extension BackendModel {
  public func append(batch: [BackendAppend]) throws {
    let lengths = batch.map(\.session.count)
    for (i, a) in batch.enumerated() {
      do {
        try a.session.append(a.tokens, mode: a.mode, logits: a.logits)
      } catch {
        for j in 0..<i { try? batch[j].session.truncate(to: lengths[j]) }
        throw error
      }
    }
  }
}

/// The state of one token sequence. Used by one thread at a time.
///
/// The kit validates arguments before calling in: `tokens` is non-empty and every id is in
/// `[0, vocabSize)`; `logits` has room for the requested mode; `truncate(to:)` gets `n ≤ count`;
/// appends never run past the context length.
public protocol BackendSession: AnyObject {
  /// The number of tokens held.
  var count: Int { get }
  /// Appends tokens; writes logits for the last position (`.last`), every position (`.all`) or
  /// none. Must leave the session unchanged when it throws.
  func append(_ tokens: UnsafeBufferPointer<Int32>, mode: eft_logits_mode,
              logits: UnsafeMutablePointer<Float>?) throws
  /// Keeps the first `n` tokens.
  func truncate(to n: Int) throws
  /// When the request the session serves must end (`session_set_deadline`; nil: no deadline). A
  /// backend whose calls wait on another machine stops waiting then, throwing
  /// `EFT_DEADLINE_EXCEEDED` with the session unchanged. The default ignores it.
  func setDeadline(_ deadline: ContinuousClock.Instant?)
}

extension BackendSession {
  public func setDeadline(_ deadline: ContinuousClock.Instant?) {}
}

/// A `session_set_deadline` value (nanoseconds of CLOCK_MONOTONIC, 0: none) as an instant, through
/// the time left until it.
func instant(monotonic deadline: UInt64) -> ContinuousClock.Instant? {
  guard deadline != 0 else { return nil }
  var t = timespec()
  clock_gettime(CLOCK_MONOTONIC, &t)
  let now = UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
  let left = deadline >= now ? Int64(clamping: deadline - now) : -Int64(clamping: now - deadline)
  return .now + .nanoseconds(left)
}

/// Builds the C function table of a backend written in Swift.
///
/// A plugin exports it in one line:
///
///     @_cdecl("eft_backend_entry")
///     public func eftBackendEntry() -> UnsafePointer<eft_backend> {
///       PluginExport.table(name: "bigram", version: "1.0", open: BigramModel.init(path:options:))
///     }
public enum PluginExport {
  public typealias Opener = @Sendable (_ path: String, _ options: [UInt8]) throws -> any BackendModel

  private static let lock = NSLock()
  nonisolated(unsafe) private static var opener: Opener?
  nonisolated(unsafe) private static var table: UnsafeMutablePointer<eft_backend>?

  /// The plugin's table, built on the first call; `open` is what `model_open` calls.
  public static func table(name: StaticString, version: StaticString,
                           open: @escaping Opener) -> UnsafePointer<eft_backend> {
    lock.lock()
    defer { lock.unlock() }
    opener = open
    if let table { return UnsafePointer(table) }
    let t = UnsafeMutablePointer<eft_backend>.allocate(capacity: 1)
    t.initialize(to: eft_backend(
      abi_major: UInt32(EFT_ABI_VERSION_MAJOR),
      abi_minor: UInt32(EFT_ABI_VERSION_MINOR),
      struct_size: MemoryLayout<eft_backend>.size,
      name: UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self),
      version: UnsafeRawPointer(version.utf8Start).assumingMemoryBound(to: CChar.self),
      model_open: modelOpen,
      model_free: modelFree,
      model_describe: modelDescribe,
      session_new: sessionNew,
      session_free: sessionFree,
      session_append: sessionAppend,
      session_truncate: sessionTruncate,
      session_length: sessionLength,
      error_message: errorMessage,
      error_status: errorStatus,
      error_free: errorFree,
      session_append_batch: sessionAppendBatch,
      session_set_deadline: sessionSetDeadline))
    table = t
    return UnsafePointer(t)
  }

  static func currentOpener() -> Opener? {
    lock.lock()
    defer { lock.unlock() }
    return opener
  }
}

// MARK: - Boxes behind the opaque handles

final class ModelBox {
  let model: any BackendModel
  let info: ModelDescription
  let architecture: UnsafeMutablePointer<CChar>
  let fingerprint: UnsafeMutablePointer<CChar>
  let eosTokenIDs: UnsafeMutableBufferPointer<Int32>

  init(_ model: any BackendModel) {
    self.model = model
    self.info = model.description
    self.architecture = strdup(info.architecture)
    self.fingerprint = strdup(info.tokenizerFingerprint)
    eosTokenIDs = .allocate(capacity: info.eosTokenIDs.count)
    _ = eosTokenIDs.initialize(from: info.eosTokenIDs)
  }

  deinit {
    free(architecture)
    free(fingerprint)
    eosTokenIDs.deallocate()
  }
}

final class SessionBox {
  let session: any BackendSession
  let model: ModelBox  // keeps the model's box alive while a session exists

  init(_ session: any BackendSession, model: ModelBox) {
    self.session = session
    self.model = model
  }
}

final class ErrorBox {
  let status: eft_status
  let message: UnsafeMutablePointer<CChar>

  init(_ status: eft_status, _ message: String) {
    self.status = status
    self.message = strdup(message)
  }

  deinit { free(message) }
}

private func fail(_ status: eft_status, _ message: String,
                  _ error: UnsafeMutablePointer<OpaquePointer?>?) -> eft_status {
  error?.pointee = OpaquePointer(Unmanaged.passRetained(ErrorBox(status, message)).toOpaque())
  return status
}

private func fail(_ thrown: any Error, _ error: UnsafeMutablePointer<OpaquePointer?>?) -> eft_status {
  if let e = thrown as? BackendError { return fail(e.status, e.message, error) }
  return fail(EFT_INTERNAL, "\(thrown)", error)
}

private func model(_ handle: OpaquePointer) -> ModelBox {
  Unmanaged<ModelBox>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

private func session(_ handle: OpaquePointer) -> SessionBox {
  Unmanaged<SessionBox>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

private func errorBox(_ handle: OpaquePointer) -> ErrorBox {
  Unmanaged<ErrorBox>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

// MARK: - The table's functions

private let modelOpen: @convention(c) (
  UnsafePointer<CChar>?, UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<OpaquePointer?>?,
  UnsafeMutablePointer<OpaquePointer?>?
) -> eft_status = { path, options, optionsLength, out, error in
  guard let path, let out else { return fail(EFT_INVALID_ARGUMENT, "model_open: path and out must not be NULL", error) }
  guard optionsLength == 0 || options != nil else {
    return fail(EFT_INVALID_ARGUMENT, "model_open: options is NULL but options_len is \(optionsLength)", error)
  }
  guard let opener = PluginExport.currentOpener() else { return fail(EFT_INTERNAL, "plugin table not initialised", error) }
  let bytes = optionsLength == 0 ? [] : Array(UnsafeBufferPointer(start: options, count: optionsLength))
  do {
    let m = try opener(String(cString: path), bytes)
    out.pointee = OpaquePointer(Unmanaged.passRetained(ModelBox(m)).toOpaque())
    return EFT_OK
  } catch let thrown {
    return fail(thrown, error)
  }
}

private let modelFree: @convention(c) (OpaquePointer?) -> Void = { handle in
  guard let handle else { return }
  Unmanaged<ModelBox>.fromOpaque(UnsafeRawPointer(handle)).release()
}

private let modelDescribe: @convention(c) (
  OpaquePointer?, UnsafeMutablePointer<eft_model_info>?, UnsafeMutablePointer<OpaquePointer?>?
) -> eft_status = { handle, info, error in
  guard let handle, let info else { return fail(EFT_INVALID_ARGUMENT, "model_describe: NULL argument", error) }
  let box = model(handle)
  // Write only the fields that fit in the caller's struct (a host of an older minor).
  var full = eft_model_info()
  full.struct_size = MemoryLayout<eft_model_info>.size
  full.vocab_size = Int32(box.info.vocabSize)
  full.context_length = Int32(clamping: box.info.contextLength)
  full.bos_token_id = box.info.bosTokenID
  full.eos_token_id = box.info.eosTokenIDs.first ?? -1
  full.architecture = UnsafePointer(box.architecture)
  full.tokenizer_fingerprint = UnsafePointer(box.fingerprint)
  full.session_bytes_per_token = UInt64(max(0, box.info.sessionBytesPerToken))
  full.n_eos_token_ids = box.eosTokenIDs.count
  full.eos_token_ids = box.eosTokenIDs.isEmpty ? nil : UnsafePointer(box.eosTokenIDs.baseAddress)
  full.flags = box.info.isRemote ? EFT_MODEL_REMOTE : 0
  let callerSize = info.pointee.struct_size
  let n = min(callerSize, MemoryLayout<eft_model_info>.size)
  withUnsafeBytes(of: &full) { src in
    UnsafeMutableRawPointer(info).copyMemory(from: src.baseAddress!, byteCount: n)
  }
  info.pointee.struct_size = callerSize
  return EFT_OK
}

private let sessionNew: @convention(c) (
  OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<OpaquePointer?>?
) -> eft_status = { handle, out, error in
  guard let handle, let out else { return fail(EFT_INVALID_ARGUMENT, "session_new: NULL argument", error) }
  let box = model(handle)
  do {
    let s = try box.model.makeSession()
    out.pointee = OpaquePointer(Unmanaged.passRetained(SessionBox(s, model: box)).toOpaque())
    return EFT_OK
  } catch let thrown {
    return fail(thrown, error)
  }
}

private let sessionFree: @convention(c) (OpaquePointer?) -> Void = { handle in
  guard let handle else { return }
  Unmanaged<SessionBox>.fromOpaque(UnsafeRawPointer(handle)).release()
}

/// Checks one append's arguments against the ABI's promises; nil when they hold, else the
/// status and message to refuse it with.
private func invalidAppend(_ box: SessionBox, _ tokens: UnsafePointer<Int32>?, _ count: Int, _ mode: eft_logits_mode,
                           _ logits: UnsafeMutablePointer<Float>?) -> (eft_status, String)? {
  guard let tokens, count > 0 else { return (EFT_INVALID_ARGUMENT, "no tokens to append") }
  guard mode == EFT_LOGITS_NONE || mode == EFT_LOGITS_LAST || mode == EFT_LOGITS_ALL else {
    return (EFT_INVALID_ARGUMENT, "unknown logits mode \(mode.rawValue)")
  }
  guard mode == EFT_LOGITS_NONE || logits != nil else { return (EFT_INVALID_ARGUMENT, "logits is NULL but mode asks for logits") }
  let info = box.model.info
  // The length first (written so that no sum can overflow), then the ids.
  guard count <= info.contextLength - box.session.count else {
    return (EFT_OUT_OF_RANGE, "\(box.session.count) + \(count) tokens exceed the context length \(info.contextLength)")
  }
  for (i, t) in UnsafeBufferPointer(start: tokens, count: count).enumerated() where t < 0 || Int(t) >= info.vocabSize {
    return (EFT_INVALID_ARGUMENT, "token \(i) is \(t), outside the vocabulary [0, \(info.vocabSize))")
  }
  return nil
}

private let sessionAppend: @convention(c) (
  OpaquePointer?, UnsafePointer<Int32>?, Int, eft_logits_mode, UnsafeMutablePointer<Float>?,
  UnsafeMutablePointer<OpaquePointer?>?
) -> eft_status = { handle, tokens, count, mode, logits, error in
  guard let handle else { return fail(EFT_INVALID_ARGUMENT, "session_append: session is NULL", error) }
  let box = session(handle)
  if let (status, message) = invalidAppend(box, tokens, count, mode, logits) {
    return fail(status, "session_append: \(message)", error)
  }
  do {
    try box.session.append(UnsafeBufferPointer(start: tokens, count: count), mode: mode, logits: logits)
    return EFT_OK
  } catch let thrown {
    return fail(thrown, error)
  }
}

private let sessionSetDeadline: @convention(c) (OpaquePointer?, UInt64) -> Void = { handle, deadline in
  guard let handle else { return }
  session(handle).session.setDeadline(instant(monotonic: deadline))
}

private let sessionAppendBatch: @convention(c) (
  OpaquePointer?, UnsafePointer<eft_append>?, Int, Int, UnsafeMutablePointer<OpaquePointer?>?
) -> eft_status = { handle, appends, count, appendSize, error in
  guard let handle else { return fail(EFT_INVALID_ARGUMENT, "session_append_batch: model is NULL", error) }
  guard count > 0 else { return EFT_OK }
  guard let appends else { return fail(EFT_INVALID_ARGUMENT, "session_append_batch: appends is NULL", error) }
  guard appendSize >= MemoryLayout<eft_append>.size else {
    return fail(EFT_INVALID_ARGUMENT, "session_append_batch: append_size \(appendSize) is smaller than eft_append (\(MemoryLayout<eft_append>.size) bytes)", error)
  }
  let owner = model(handle)
  var batch: [BackendAppend] = []
  var seen = Set<ObjectIdentifier>()
  for i in 0..<count {
    let a = (UnsafeRawPointer(appends) + i * appendSize).loadUnaligned(as: eft_append.self)
    guard let sessionHandle = a.session else { return fail(EFT_INVALID_ARGUMENT, "session_append_batch: append \(i): session is NULL", error) }
    let box = session(sessionHandle)
    guard box.model === owner else {
      return fail(EFT_INVALID_ARGUMENT, "session_append_batch: append \(i): the session belongs to another model", error)
    }
    guard seen.insert(ObjectIdentifier(box)).inserted else {
      return fail(EFT_INVALID_ARGUMENT, "session_append_batch: append \(i): the session appears twice in the batch", error)
    }
    if let (status, message) = invalidAppend(box, a.tokens, a.n_tokens, a.mode, a.logits) {
      return fail(status, "session_append_batch: append \(i): \(message)", error)
    }
    batch.append(BackendAppend(session: box.session, tokens: UnsafeBufferPointer(start: a.tokens, count: a.n_tokens),
                               mode: a.mode, logits: a.logits))
  }
  do {
    try owner.model.append(batch: batch)
    return EFT_OK
  } catch let thrown {
    return fail(thrown, error)
  }
}

private let sessionTruncate: @convention(c) (
  OpaquePointer?, Int, UnsafeMutablePointer<OpaquePointer?>?
) -> eft_status = { handle, n, error in
  guard let handle else { return fail(EFT_INVALID_ARGUMENT, "session_truncate: session is NULL", error) }
  let box = session(handle)
  guard n <= box.session.count else {
    return fail(EFT_OUT_OF_RANGE, "session_truncate: cannot keep \(n) tokens of \(box.session.count)", error)
  }
  do {
    try box.session.truncate(to: n)
    return EFT_OK
  } catch let thrown {
    return fail(thrown, error)
  }
}

private let sessionLength: @convention(c) (OpaquePointer?) -> Int = { handle in
  guard let handle else { return 0 }
  return session(handle).session.count
}

private let errorMessage: @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>? = { handle in
  guard let handle else { return UnsafeRawPointer(("" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self) }
  return UnsafePointer(errorBox(handle).message)
}

private let errorStatus: @convention(c) (OpaquePointer?) -> eft_status = { handle in
  guard let handle else { return EFT_INTERNAL }
  return errorBox(handle).status
}

private let errorFree: @convention(c) (OpaquePointer?) -> Void = { handle in
  guard let handle else { return }
  Unmanaged<ErrorBox>.fromOpaque(UnsafeRawPointer(handle)).release()
}
