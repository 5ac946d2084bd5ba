import EFTPluginKit
import EFTProto
import Foundation

/// The test backend: a token bigram model, p(next | prev), from a count table.
///
/// File format (text, UTF-8), one directive per line, `#` starts a comment:
///
///     eft-bigram 1            magic and format version
///     vocab 300               output rows (token ids are 0..<vocab)
///     bos 1                   BOS id, or -1
///     eos 2                   EOS id, or -1
///     context 2048            longest sequence (default 4096)
///     smoothing 0.1           default additive pseudo-count (> 0)
///     tokenizer <fingerprint> optional, reported by describe()
///     counts                  then one "prev next count" line per observed pair
///
/// log p(next | prev) = log((count(prev, next) + s) / (Σ_next count(prev, ·) + s·vocab)).
/// Deterministic and exact; real enough to compose (every row is a proper distribution).
public final class BigramModel: BackendModel {
  public let description: ModelDescription
  /// [vocab × vocab] log-probabilities, row = previous token.
  let logProbs: [Float]
  let delayMicroseconds: UInt32

  public init(path: String, options: [UInt8]) throws {
    let opts: Eft_V1_BigramOptions
    do {
      opts = try Eft_V1_BigramOptions(serializedBytes: options)
    } catch {
      throw BackendError(EFT_INVALID_ARGUMENT, "\(path): options are not a valid eft.v1.BigramOptions message: \(error)")
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw BackendError(EFT_NOT_FOUND, "\(path): cannot read the bigram model file")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw BackendError(EFT_DATA_LOSS, "\(path): not UTF-8 text")
    }
    var header: [String: String] = [:]
    var counts: [(Int, Int, Double)] = []
    var inCounts = false
    var sawMagic = false
    for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let lineNumber = index + 1
      let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
      if fields.isEmpty { continue }
      func bad(_ why: String) -> BackendError {
        BackendError(EFT_DATA_LOSS, "\(path):\(lineNumber): \(why)")
      }
      if !sawMagic {
        guard fields.count == 2, fields[0] == "eft-bigram" else { throw bad("expected the header 'eft-bigram 1'") }
        guard fields[1] == "1" else { throw bad("unsupported bigram format version \(fields[1]) (this backend reads 1)") }
        sawMagic = true
        continue
      }
      if inCounts {
        guard fields.count == 3, let a = Int(fields[0]), let b = Int(fields[1]), let c = Double(fields[2]), c >= 0 else {
          throw bad("expected 'prev next count' with non-negative numbers")
        }
        counts.append((a, b, c))
        continue
      }
      if fields == ["counts"] { inCounts = true; continue }
      guard fields.count == 2 else { throw bad("expected 'key value'") }
      header[String(fields[0])] = String(fields[1])
    }
    guard sawMagic else { throw BackendError(EFT_DATA_LOSS, "\(path): empty file (expected the header 'eft-bigram 1')") }
    guard inCounts else { throw BackendError(EFT_DATA_LOSS, "\(path): the file ends before the 'counts' section (cut short?)") }

    func int(_ key: String, default value: Int? = nil) throws -> Int {
      guard let s = header[key] else {
        if let value { return value }
        throw BackendError(EFT_DATA_LOSS, "\(path): missing '\(key)' in the header")
      }
      guard let v = Int(s) else { throw BackendError(EFT_DATA_LOSS, "\(path): '\(key)' is not an integer: \(s)") }
      return v
    }
    let vocab = try int("vocab")
    guard vocab > 0, vocab <= 8192 else { throw BackendError(EFT_DATA_LOSS, "\(path): vocab \(vocab) outside 1...8192") }
    let bos = try int("bos", default: -1)
    let eos = try int("eos", default: -1)
    for (name, id) in [("bos", bos), ("eos", eos)] where id < -1 || id >= vocab {
      throw BackendError(EFT_DATA_LOSS, "\(path): \(name) id \(id) outside the vocabulary [0, \(vocab))")
    }
    let context = try int("context", default: 4096)
    guard context > 0 else { throw BackendError(EFT_DATA_LOSS, "\(path): context \(context) must be positive") }
    var smoothing = Double(header["smoothing"] ?? "1") ?? .nan
    if opts.hasSmoothing { smoothing = opts.smoothing }
    guard smoothing > 0, smoothing.isFinite else {
      throw BackendError(EFT_INVALID_ARGUMENT, "\(path): smoothing must be a positive number")
    }

    var table = [Double](repeating: 0, count: vocab * vocab)
    for (a, b, c) in counts {
      guard a >= 0, a < vocab, b >= 0, b < vocab else {
        throw BackendError(EFT_DATA_LOSS, "\(path): count for pair (\(a), \(b)) outside the vocabulary [0, \(vocab))")
      }
      table[a * vocab + b] += c
    }
    var logProbs = [Float](repeating: 0, count: vocab * vocab)
    for row in 0..<vocab {
      var total = 0.0
      for col in 0..<vocab { total += table[row * vocab + col] }
      let denominator = total + smoothing * Double(vocab)
      for col in 0..<vocab {
        logProbs[row * vocab + col] = Float(Foundation.log((table[row * vocab + col] + smoothing) / denominator))
      }
    }
    self.logProbs = logProbs
    self.delayMicroseconds = opts.delayUsPerToken
    self.description = ModelDescription(
      vocabSize: vocab, contextLength: context, bosTokenID: Int32(bos), eosTokenIDs: eos >= 0 ? [Int32(eos)] : [],
      architecture: "bigram", tokenizerFingerprint: header["tokenizer"] ?? "",
      sessionBytesPerToken: MemoryLayout<Int32>.size)  // a session holds its token ids
  }

  public func makeSession() throws -> any BackendSession { BigramSession(model: self) }
}

/// A bigram session only needs its tokens: the logits after a token are that token's row.
final class BigramSession: BackendSession {
  let model: BigramModel
  var tokens: [Int32] = []

  init(model: BigramModel) { self.model = model }

  var count: Int { tokens.count }

  func append(_ new: UnsafeBufferPointer<Int32>, mode: eft_logits_mode,
              logits: UnsafeMutablePointer<Float>?) throws {
    if model.delayMicroseconds > 0 { usleep(model.delayMicroseconds * UInt32(new.count)) }
    let vocab = model.description.vocabSize
    model.logProbs.withUnsafeBufferPointer { table in
      func write(row: Int32, to destination: UnsafeMutablePointer<Float>) {
        destination.update(from: table.baseAddress! + Int(row) * vocab, count: vocab)
      }
      if mode == EFT_LOGITS_LAST, let logits { write(row: new[new.count - 1], to: logits) }
      if mode == EFT_LOGITS_ALL, let logits {
        for (i, t) in new.enumerated() { write(row: t, to: logits + i * vocab) }
      }
    }
    tokens.append(contentsOf: new)
  }

  func truncate(to n: Int) throws { tokens.removeLast(tokens.count - n) }
}

@_cdecl("eft_backend_entry")
public func eftBackendEntry() -> UnsafePointer<eft_backend> {
  PluginExport.table(name: "bigram", version: "1.0.0", open: { try BigramModel(path: $0, options: $1) })
}
