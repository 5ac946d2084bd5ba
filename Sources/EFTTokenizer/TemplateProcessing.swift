/// The post-processor: adds special tokens around an encoded sequence (single-sequence form).
/// `TemplateProcessing` uses its `single` template; `ByteLevel` (as a post-processor, it only
/// trims offsets) adds nothing and is represented by `nil`.
/// Reference: huggingface/tokenizers `tokenizers/src/processors/template.rs`.
struct TemplateProcessing: Sendable {
  enum Item: Sendable {
    case sequence
    case special([Int32])
  }

  let items: [Item]

  var fingerprint: String {
    items.map { item in
      switch item {
      case .sequence: return "$A"
      case .special(let ids): return ids.map(String.init).joined(separator: ",")
      }
    }.joined(separator: " ")
  }

  static func make(json: [String: Any], source: String) throws -> TemplateProcessing? {
    let type = json["type"] as? String ?? "?"
    switch type {
    case "ByteLevel":
      return nil
    case "TemplateProcessing":
      return try TemplateProcessing(json: json, source: source)
    default:
      throw TokenizerError("\(source): post_processor type '\(type)' is not supported yet (supported: TemplateProcessing, ByteLevel)")
    }
  }

  init(json: [String: Any], source: String) throws {
    guard let single = json["single"] as? [[String: Any]] else {
      throw TokenizerError("\(source): post_processor.single is missing")
    }
    let specials = json["special_tokens"] as? [String: Any] ?? [:]
    var items: [Item] = []
    for (i, entry) in single.enumerated() {
      if entry["Sequence"] != nil {
        items.append(.sequence)
      } else if let special = entry["SpecialToken"] as? [String: Any], let name = special["id"] as? String {
        guard let spec = specials[name] as? [String: Any], let ids = spec["ids"] as? [Int],
              ids.allSatisfy({ $0 >= 0 && $0 < Tokenizer.maxTokenID }) else {
          throw TokenizerError("\(source): post_processor.single[\(i)] names special token '\(name)' missing from special_tokens")
        }
        items.append(.special(ids.map { Int32($0) }))
      } else {
        throw TokenizerError("\(source): post_processor.single[\(i)] is neither Sequence nor SpecialToken")
      }
    }
    self.items = items
  }

  func apply(_ ids: [Int32]) -> [Int32] {
    var out: [Int32] = []
    for item in items {
      switch item {
      case .sequence: out.append(contentsOf: ids)
      case .special(let s): out.append(contentsOf: s)
      }
    }
    return out
  }
}
