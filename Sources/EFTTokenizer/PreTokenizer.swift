import Foundation

/// The `pre_tokenizer` of tokenizer.json: splits normalized text into words for the model.
/// Reference: huggingface/tokenizers `tokenizers/src/pre_tokenizers/`.
indirect enum PreTokenizer: @unchecked Sendable {
  /// GPT-2 byte-level: optional prefix space, optional GPT-2 split, then bytes → printable chars.
  case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
  /// Split on a regex (Llama-3, Qwen2 patterns); `behavior` says what happens to the matches.
  case split(NSRegularExpression, SplitBehavior)
  /// SentencePiece-style: spaces become `replacement`, which is also prepended per `prepend`.
  case metaspace(replacement: String, prepend: PrependScheme, split: Bool)
  case sequence([PreTokenizer])

  enum SplitBehavior: String { case isolated = "Isolated", removed = "Removed", mergedWithPrevious = "MergedWithPrevious", mergedWithNext = "MergedWithNext" }
  enum PrependScheme: String { case first, always, never }

  static func make(json: JSONObject) throws -> PreTokenizer {
    let type = try json.type()
    switch type {
    case "ByteLevel":
      return .byteLevel(addPrefixSpace: try json.value("add_prefix_space", default: true), useRegex: try json.value("use_regex", default: true))
    case "Split":
      guard let pattern = try json.object("pattern") else { throw json.error("Split needs a 'pattern'") }
      let regex: String
      if let r = try pattern.optional("Regex", as: String.self) {
        regex = r
      } else if let s = try pattern.optional("String", as: String.self) {
        regex = NSRegularExpression.escapedPattern(for: s)
      } else {
        throw json.error("Split pattern must be {\"Regex\": …} or {\"String\": …}")
      }
      guard try json.value("invert", default: false) == false else { throw json.error("Split with invert: true is not supported") }
      let name = try json.required("behavior", as: String.self)
      guard let behavior = SplitBehavior(rawValue: name) else {
        throw json.error("Split behavior '\(name)' is not supported (supported: Isolated, Removed, MergedWithPrevious, MergedWithNext)")
      }
      do {
        return .split(try NSRegularExpression(pattern: regex), behavior)
      } catch {
        throw json.error("Split regex does not compile: \(regex)")
      }
    case "Metaspace":
      let scheme = try json.optional("prepend_scheme", as: String.self) ?? (try json.value("add_prefix_space", default: true) ? "always" : "never")
      guard let prepend = PrependScheme(rawValue: scheme) else { throw json.error("Metaspace prepend_scheme '\(scheme)' is unknown") }
      return .metaspace(replacement: try json.value("replacement", default: "▁"), prepend: prepend, split: try json.value("split", default: true))
    case "Sequence":
      return .sequence(try json.objects("pretokenizers").map(make))
    default:
      throw json.error("pre_tokenizer type '\(type)' is not supported (supported: ByteLevel, Split, Metaspace, Sequence)")
    }
  }

  /// Whether words come out in byte-level form (then the decoder maps them back).
  var isByteLevel: Bool {
    switch self {
    case .byteLevel: return true
    case .sequence(let parts): return parts.contains { $0.isByteLevel }
    default: return false
    }
  }

  /// Splits each piece further. `atStart`: the first piece begins the input (offset 0).
  func apply(_ pieces: [String], atStart: Bool) -> [String] {
    switch self {
    case .byteLevel(let addPrefixSpace, let useRegex):
      return pieces.flatMap { piece -> [String] in
        var text = piece
        if addPrefixSpace, !text.hasPrefix(" ") { text = " " + text }
        let words = useRegex ? ByteLevelPreTokenizer.gpt2Pieces(text).map(String.init) : [text]
        return words.map { ByteLevel.encode($0) }
      }
    case .split(let regex, let behavior):
      return pieces.flatMap { Self.split($0, regex, behavior) }
    case .metaspace(let replacement, let prepend, let split):
      return pieces.enumerated().flatMap { index, piece -> [String] in
        var text = piece.replacingOccurrences(of: " ", with: replacement)
        let first = atStart && index == 0
        if (prepend == .always || (prepend == .first && first)), !text.hasPrefix(replacement) { text = replacement + text }
        guard split else { return [text] }
        // Split before each replacement character, keeping it with the word that follows.
        var words: [String] = []
        var current = ""
        for c in text.unicodeScalars {
          if String(c) == replacement, !current.isEmpty {
            words.append(current)
            current = ""
          }
          current.unicodeScalars.append(c)
        }
        if !current.isEmpty { words.append(current) }
        return words
      }
    case .sequence(let parts):
      return parts.reduce(pieces) { $1.apply($0, atStart: atStart) }
    }
  }

  static func split(_ text: String, _ regex: NSRegularExpression, _ behavior: SplitBehavior) -> [String] {
    let ns = text as NSString
    var out: [String] = []
    var last = 0
    var pendingMatch: String? = nil  // MergedWithNext: a match waiting for the text after it
    func emitGap(_ s: String) {
      guard !s.isEmpty else { return }
      if let m = pendingMatch { out.append(m + s); pendingMatch = nil } else { out.append(s) }
    }
    for match in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) where match.range.length > 0 {
      let gap = ns.substring(with: NSRange(location: last, length: match.range.location - last))
      let m = ns.substring(with: match.range)
      switch behavior {
      case .isolated:
        emitGap(gap)
        out.append(m)
      case .removed:
        emitGap(gap)
      case .mergedWithPrevious:
        if !gap.isEmpty { out.append(gap + m) } else if let prev = out.popLast() { out.append(prev + m) } else { out.append(m) }
      case .mergedWithNext:
        emitGap(gap)
        if let p = pendingMatch { out.append(p) }
        pendingMatch = m
      }
      last = match.range.location + match.range.length
    }
    emitGap(ns.substring(from: last))
    if let p = pendingMatch { out.append(p) }
    return out
  }
}
