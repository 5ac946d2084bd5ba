import Foundation

/// The `normalizer` of tokenizer.json, applied to each run of text between added tokens.
/// Reference: huggingface/tokenizers `tokenizers/src/normalizers/`.
indirect enum Normalizer: Sendable {
  case nfc, nfd, nfkc, nfkd, lowercase
  /// Prepend a string to non-empty text (SentencePiece's "▁").
  case prepend(String)
  /// Replace every occurrence of a literal string.
  case replace(String, String)
  case sequence([Normalizer])

  static func make(json: [String: Any], source: String) throws -> Normalizer {
    let type = json["type"] as? String ?? "?"
    switch type {
    case "NFC": return .nfc
    case "NFD": return .nfd
    case "NFKC": return .nfkc
    case "NFKD": return .nfkd
    case "Lowercase": return .lowercase
    case "Prepend":
      guard let s = json["prepend"] as? String else { throw TokenizerError("\(source): normalizer Prepend needs 'prepend'") }
      return .prepend(s)
    case "Replace":
      return .replace(try literalPattern(json, "normalizer Replace", source), json["content"] as? String ?? "")
    case "Sequence":
      let parts = json["normalizers"] as? [[String: Any]] ?? []
      return .sequence(try parts.map { try make(json: $0, source: source) })
    default:
      throw TokenizerError("\(source): normalizer type '\(type)' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Sequence)")
    }
  }

  func apply(_ text: String) -> String {
    switch self {
    case .nfc: return text.precomposedStringWithCanonicalMapping
    case .nfd: return text.decomposedStringWithCanonicalMapping
    case .nfkc: return text.precomposedStringWithCompatibilityMapping
    case .nfkd: return text.decomposedStringWithCompatibilityMapping
    case .lowercase: return text.lowercased()
    case .prepend(let s): return text.isEmpty ? text : s + text
    case .replace(let from, let to): return text.replacingOccurrences(of: from, with: to)
    case .sequence(let parts): return parts.reduce(text) { $1.apply($0) }
    }
  }
}

/// The literal of a `{"String": "…"}` pattern (regex patterns are refused where only literals work).
func literalPattern(_ json: [String: Any], _ what: String, _ source: String) throws -> String {
  guard let pattern = json["pattern"] as? [String: Any] else { throw TokenizerError("\(source): \(what) needs a 'pattern'") }
  guard let s = pattern["String"] as? String else {
    throw TokenizerError("\(source): \(what) with a Regex pattern is not supported (only String patterns)")
  }
  return s
}
