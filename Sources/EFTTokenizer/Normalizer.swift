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

  static func make(json: JSONObject) throws -> Normalizer {
    let type = try json.type()
    switch type {
    case "NFC": return .nfc
    case "NFD": return .nfd
    case "NFKC": return .nfkc
    case "NFKD": return .nfkd
    case "Lowercase": return .lowercase
    case "Prepend":
      return .prepend(try json.required("prepend", as: String.self))
    case "Replace":
      return .replace(try literalPattern(json, "normalizer Replace"), try json.value("content", default: ""))
    case "Sequence":
      return .sequence(try json.objects("normalizers").map(make))
    default:
      throw json.error("normalizer type '\(type)' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Sequence)")
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
func literalPattern(_ json: JSONObject, _ what: String) throws -> String {
  guard let pattern = try json.object("pattern") else { throw json.error("\(what) needs a 'pattern'") }
  guard let s = try pattern.optional("String", as: String.self) else {
    throw json.error("\(what) with a Regex pattern is not supported (only String patterns)")
  }
  return s
}
