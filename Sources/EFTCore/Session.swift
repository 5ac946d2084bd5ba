import Foundation
import CEFTBackend

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
    model.sessionOpened()
  }

  deinit {
    model.plugin.table.pointee.session_free(handle)
    model.sessionClosed()
  }

  /// Tells the backend when the request this session serves must end (nil: no deadline); see
  /// `session_set_deadline`. A no-op for plugins without the slot (ABI < 1.5, or NULL).
  public func setDeadline(_ deadline: ContinuousClock.Instant?) {
    guard let slot = model.plugin.setDeadline else { return }
    slot(handle, deadline.map(Session.monotonicNanoseconds) ?? 0)
  }

  /// `deadline` as `session_set_deadline` takes it: nanoseconds of CLOCK_MONOTONIC (never 0),
  /// through the time left until it.
  static func monotonicNanoseconds(_ deadline: ContinuousClock.Instant) -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    let now = UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    let (seconds, attoseconds) = ContinuousClock.now.duration(to: deadline).components
    let left = seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue + attoseconds / 1_000_000_000
    return left >= 0 ? now &+ UInt64(left) : max(1, now &- UInt64(-left))
  }

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
    var logits = [Float](repeating: 0, count: mode.rows(tokens.count) * model.vocabSize)
    try tokens.withUnsafeBufferPointer { t in
      try logits.withUnsafeMutableBufferPointer { try append(t, mode: mode, into: $0) }
    }
    return logits
  }

  /// Appends tokens and writes the logits `mode` asks for into `logits`, which holds at least
  /// rows × vocabSize values (a caller's buffer, reused from token to token: no allocation here).
  public func append(_ tokens: UnsafeBufferPointer<Int32>, mode: LogitsMode, into logits: UnsafeMutableBufferPointer<Float>) throws {
    guard !tokens.isEmpty else {
      throw RuntimeError(.request, .invalidArgument, "model '\(model.name)': nothing to append")
    }
    guard logits.count >= mode.rows(tokens.count) * model.vocabSize else {
      throw RuntimeError(.request, .invalidArgument, "model '\(model.name)': a logits buffer of \(logits.count) values for \(mode.rows(tokens.count)) rows")
    }
    var error: OpaquePointer? = nil
    let status = model.plugin.table.pointee.session_append(handle, tokens.baseAddress, tokens.count, mode.abi, logits.baseAddress, &error)
    guard status == EFT_OK else { throw model.plugin.error(status, error, "model '\(model.name)': append") }
  }

  /// Keeps the first `n` tokens.
  public func truncate(to n: Int) throws {
    var error: OpaquePointer? = nil
    let status = model.plugin.table.pointee.session_truncate(handle, n, &error)
    guard status == EFT_OK else { throw model.plugin.error(status, error, "model '\(model.name)': truncate") }
  }
}
