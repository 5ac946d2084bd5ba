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

  static func make(json: JSONObject) throws -> TemplateProcessing? {
    let type = try json.type()
    switch type {
    case "ByteLevel":
      return nil
    case "TemplateProcessing":
      return try TemplateProcessing(json: json)
    default:
      throw json.error("post_processor type '\(type)' is not supported yet (supported: TemplateProcessing, ByteLevel)")
    }
  }

  init(json: JSONObject) throws {
    let single = try json.objects("single")
    guard !single.isEmpty else { throw json.error("post_processor.single is missing") }
    let specials = try json.object("special_tokens")
    var items: [Item] = []
    for (i, entry) in single.enumerated() {
      if entry.fields["Sequence"] != nil {
        items.append(.sequence)
      } else if let special = try entry.object("SpecialToken") {
        let name = try special.required("id", as: String.self)
        guard let spec = try specials?.object(name), let ids = try spec.optional("ids", as: [Int].self),
              ids.allSatisfy({ $0 >= 0 && $0 < Tokenizer.maxTokenID }) else {
          throw json.error("post_processor.single[\(i)] names special token '\(name)' missing from special_tokens")
        }
        items.append(.special(ids.map { Int32($0) }))
      } else {
        throw json.error("post_processor.single[\(i)] is neither Sequence nor SpecialToken")
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
