/// Turns generated token ids into text as they arrive, emitting only whole UTF-8 characters: a
/// character whose bytes are split across tokens is emitted once its last byte arrives.
public struct StreamingDecoder {
  let tokenizer: Tokenizer
  var pending: [UInt8] = []
  var started = false

  public init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

  /// The text that became complete with `id` (possibly empty).
  public mutating func push(_ id: Int32) -> String {
    tokenizer.appendBytes(of: id, first: !started, skipSpecialTokens: false, to: &pending)
    started = true
    let complete = Self.completePrefixLength(pending)
    let text = String(decoding: pending[..<complete], as: UTF8.self)
    pending.removeFirst(complete)
    return text
  }

  /// Whatever is left at the end of generation (an incomplete character becomes U+FFFD).
  public mutating func finish() -> String {
    defer { pending.removeAll() }
    return String(decoding: pending, as: UTF8.self)
  }

  /// The length of the longest prefix that does not end inside a multi-byte character. Invalid
  /// bytes count as complete (they decode to U+FFFD rather than stall the stream).
  static func completePrefixLength(_ bytes: [UInt8]) -> Int {
    let n = bytes.count
    // Look back at most 3 bytes for the start of an unfinished sequence.
    var i = n - 1
    var back = 0
    while i >= 0, back < 4 {
      let b = bytes[i]
      if b & 0b1100_0000 != 0b1000_0000 {
        // A lead byte (or ASCII) at i: how long should its sequence be?
        let need: Int
        if b < 0x80 { need = 1 } else if b & 0xE0 == 0xC0 { need = 2 } else if b & 0xF0 == 0xE0 { need = 3 } else if b & 0xF8 == 0xF0 { need = 4 } else { need = 1 }
        return n - i < need ? i : n
      }
      i -= 1
      back += 1
    }
    return n
  }
}
