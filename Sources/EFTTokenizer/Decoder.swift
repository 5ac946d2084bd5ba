/// The `decoder` of tokenizer.json, applied token by token so that generated text can stream:
/// each step maps one token's bytes to bytes. `first` marks the first token of a decode call
/// (where `Strip` and `Metaspace` drop the space SentencePiece prepended).
/// Reference: huggingface/tokenizers `tokenizers/src/decoders/`.
enum DecoderStep: Sendable {
  case byteLevel
  case replace([UInt8], [UInt8])
  case byteFallback
  case fuse
  case strip(content: [UInt8], start: Int)
  case metaspace(replacement: [UInt8], stripFirst: Bool)

  static func make(json: JSONObject) throws -> [DecoderStep] {
    let type = try json.type()
    switch type {
    case "ByteLevel": return [.byteLevel]
    case "Replace":
      return [.replace(Array(try literalPattern(json, "decoder Replace").utf8), Array(try json.value("content", default: "").utf8))]
    case "ByteFallback": return [.byteFallback]
    case "Fuse": return [.fuse]
    case "Strip":
      guard try json.value("stop", default: 0) == 0 else { throw json.error("decoder Strip with stop > 0 is not supported") }
      let start = try json.value("start", default: 0)
      guard start >= 0 else { throw json.error("decoder Strip has start \(start); it must be a count ≥ 0") }
      return [.strip(content: Array(try json.value("content", default: " ").utf8), start: start)]
    case "Metaspace":
      let scheme = try json.optional("prepend_scheme", as: String.self) ?? (try json.value("add_prefix_space", default: true) ? "always" : "never")
      return [.metaspace(replacement: Array(try json.value("replacement", default: "▁").utf8), stripFirst: scheme != "never")]
    case "Sequence":
      return try json.objects("decoders").flatMap(make)
    default:
      throw json.error("decoder type '\(type)' is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)")
    }
  }

  static func apply(_ steps: [DecoderStep], to token: [UInt8], first: Bool) -> [UInt8] {
    var bytes = token
    for step in steps {
      switch step {
      case .byteLevel:
        var out: [UInt8] = []
        ByteLevel.decode(String(decoding: bytes, as: UTF8.self), into: &out)
        bytes = out
      case .replace(let from, let to):
        bytes = replace(bytes, from, to)
      case .byteFallback:
        // "<0xHH>" → the byte HH
        if bytes.count == 6, bytes[0] == UInt8(ascii: "<"), bytes[1] == UInt8(ascii: "0"), bytes[2] == UInt8(ascii: "x"),
           bytes[5] == UInt8(ascii: ">"), let b = UInt8(String(decoding: bytes[3..<5], as: UTF8.self), radix: 16) {
          bytes = [b]
        }
      case .fuse:
        break  // tokens are concatenated anyway
      case .strip(let content, let start):
        if first {
          for _ in 0..<start where bytes.starts(with: content) { bytes.removeFirst(content.count) }
        }
      case .metaspace(let replacement, let stripFirst):
        // HF drops every replacement character of the first token, and turns the others into spaces.
        bytes = replace(bytes, replacement, first && stripFirst ? [] : [UInt8(ascii: " ")])
      }
    }
    return bytes
  }

  static func replace(_ bytes: [UInt8], _ from: [UInt8], _ to: [UInt8]) -> [UInt8] {
    guard !from.isEmpty, bytes.count >= from.count else { return bytes }
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
      if i + from.count <= bytes.count, bytes[i..<(i + from.count)].elementsEqual(from) {
        out += to
        i += from.count
      } else {
        out.append(bytes[i])
        i += 1
      }
    }
    return out
  }
}
