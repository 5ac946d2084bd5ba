import CEFTBackend

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
    let counts = appends.map { $0.mode.rows($0.tokens.count) * vocabSize }
    // Stable addresses for the call: copies of the token ids, and the logits buffers.
    let tokenBuffers = appends.map { a in
      let p = UnsafeMutablePointer<Int32>.allocate(capacity: a.tokens.count)
      p.initialize(from: a.tokens, count: a.tokens.count)
      return p
    }
    let logitBuffers = counts.map { UnsafeMutablePointer<Float>.allocate(capacity: max(1, $0)) }
    defer {
      tokenBuffers.forEach { $0.deallocate() }
      logitBuffers.forEach { $0.deallocate() }
    }
    let items = appends.indices.map { i in
      eft_append(session: appends[i].session.handle, tokens: tokenBuffers[i], n_tokens: appends[i].tokens.count,
                 mode: appends[i].mode.abi, logits: counts[i] == 0 ? nil : logitBuffers[i])
    }
    var error: OpaquePointer? = nil
    let status = items.withUnsafeBufferPointer { call(handle, $0.baseAddress, $0.count, MemoryLayout<eft_append>.stride, &error) }
    guard status == EFT_OK else { throw plugin.error(status, error, "model '\(name)': batched append") }
    return counts.indices.map { Array(UnsafeBufferPointer(start: logitBuffers[$0], count: counts[$0])) }
  }
}
