import Foundation

/// An error reading or applying a `tokenizer.json`.
public struct TokenizerError: Error, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// A Hugging Face `tokenizer.json` tokenizer: added tokens, normalizer, pre-tokenizer, model,
/// post-processor and decoder, each a stage in its own file and chosen by the exact `type`
/// strings of tokenizer.json. Unknown stage types throw `TokenizerError`.
///
/// Covers byte-level BPE (GPT-2, Llama-3, Qwen2: ByteLevel and regex Split pre-tokenizers) and
/// SentencePiece-style BPE with `▁` and byte fallback (Llama-2, TinyLlama: Prepend/Replace
/// normalizers or Metaspace; Replace/ByteFallback/Fuse/Strip decoders).
/// Reference: huggingface/tokenizers, `tokenizers/src/tokenizer/mod.rs`.
public final class Tokenizer: Sendable {
  let model: BPEModel
  let normalizer: Normalizer?
  let preTokenizer: PreTokenizer?
  let postProcessor: TemplateProcessing?
  let decoder: [DecoderStep]
  let added: AddedTokens

  /// Token ids must be below this (no real vocabulary comes near; it bounds what a file can make
  /// the loader allocate).
  static let maxTokenID = 1 << 24

  /// Number of token ids (one past the largest id of the vocabulary or of an added token).
  public let vocabSize: Int
  /// A stable hash of everything that decides how text maps to ids (vocabulary, merges, added
  /// tokens, stages); equal fingerprints mean interchangeable tokenizers.
  public let fingerprint: String
  /// `fingerprint` as backends report it when they know this algorithm: "eft:" + fingerprint.
  public var taggedFingerprint: String { Tokenizer.fingerprintPrefix + fingerprint }
  public static let fingerprintPrefix = "eft:"

  public convenience init(contentsOf url: URL) throws {
    guard let data = FileManager.default.contents(atPath: url.path) else {
      throw TokenizerError("\(url.path): cannot read the tokenizer file")
    }
    try self.init(json: data, source: url.path)
  }

  public init(json data: Data, source: String = "tokenizer.json") throws {
    let root: [String: Any]
    do {
      guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw TokenizerError("\(source): the top level is not a JSON object")
      }
      root = object
    } catch let error as TokenizerError {
      throw error
    } catch {
      throw TokenizerError("\(source): not valid JSON (\(error.localizedDescription))")
    }
    let file = JSONObject(root, source: source, path: "")
    normalizer = try file.object("normalizer").map(Normalizer.make)
    guard let modelJSON = try file.object("model") else { throw TokenizerError("\(source): no 'model' section") }
    model = try BPEModel(json: modelJSON)
    added = try AddedTokens(json: file.objects("added_tokens"))
    preTokenizer = try file.object("pre_tokenizer").map(PreTokenizer.make)
    postProcessor = try file.object("post_processor").flatMap(TemplateProcessing.make)
    decoder = try file.object("decoder").map(DecoderStep.make) ?? []
    vocabSize = max(model.vocab.count, (model.idToToken.indices.last ?? -1) + 1, added.maxID + 1)

    var hasher = FNV1a()
    for token in model.idToToken { hasher.combine(token ?? "\u{0}") }
    for merge in model.mergeList { hasher.combine(merge.0); hasher.combine(merge.1) }
    for token in added.tokens { hasher.combine("\(token.id):\(token.content):\(token.special)") }
    for stage in ["normalizer", "pre_tokenizer", "decoder"] {
      // The stage definitions, canonically serialised (sorted keys), so different settings differ.
      // (Only objects: JSONSerialization traps on a top-level NSNull, which is how `null` reads.)
      let text = (root[stage] as? [String: Any]).flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) }
      hasher.combine("\(stage):" + (text.map { String(decoding: $0, as: UTF8.self) } ?? "none"))
    }
    hasher.combine("post:\(postProcessor?.fingerprint ?? "none")")
    fingerprint = hasher.hex
  }

  /// The id of a token string (vocabulary or added token), if any.
  public func id(of token: String) -> Int32? {
    if let id = added.byContent[token] { return id }
    return model.vocab[token]
  }

  /// Text to ids, like HF `tokenizer.encode(text, add_special_tokens:)`. With a `limit`, stops
  /// as soon as it has more than `limit` ids and returns those (a text too long for a context is
  /// known without tokenizing all of it; the caller sees `count > limit`).
  public func encode(_ text: String, addSpecialTokens: Bool = true, limit: Int = .max) -> [Int32] {
    var ids: [Int32] = []
    for (index, piece) in added.split(text).enumerated() {
      switch piece {
      case .added(let id):
        ids.append(id)
      case .text(let segment):
        let normalized = normalizer?.apply(String(segment)) ?? String(segment)
        let words = preTokenizer?.apply([normalized], atStart: index == 0) ?? [normalized]
        for word in words where !word.isEmpty {
          model.tokenize(word, into: &ids)
          if ids.count > limit { return ids }
        }
      }
      if ids.count > limit { return ids }
    }
    if addSpecialTokens, let postProcessor { ids = postProcessor.apply(ids) }
    return ids
  }

  /// Ids to text, like HF `tokenizer.decode(ids, skip_special_tokens:)`.
  public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
    String(decoding: bytes(of: ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
  }

  /// The bytes a sequence of ids stands for (before UTF-8 decoding).
  public func bytes(of ids: [Int32], skipSpecialTokens: Bool = false) -> [UInt8] {
    var out: [UInt8] = []
    for (i, id) in ids.enumerated() { appendBytes(of: id, first: i == 0, skipSpecialTokens: skipSpecialTokens, to: &out) }
    return out
  }

  /// Appends one token's bytes; `first`: the token starts the decoded text.
  func appendBytes(of id: Int32, first: Bool, skipSpecialTokens: Bool, to out: inout [UInt8]) {
    if let token = added.byID[id] {
      if !(skipSpecialTokens && token.special) { out.append(contentsOf: Array(token.content.utf8)) }
      return
    }
    guard let token = model.token(for: id) else { return }
    out += DecoderStep.apply(decoder, to: Array(token.utf8), first: first)
  }

  /// Whether `id` is a special added token (BOS, EOS, chat markers marked special).
  public func isSpecial(_ id: Int32) -> Bool { added.byID[id]?.special ?? false }
}

/// 64-bit FNV-1a over strings, each followed by a separator byte. Stable across runs and machines
/// (Swift's Hasher is seeded per process, so it cannot be used for fingerprints).
struct FNV1a {
  var state: UInt64 = 0xcbf2_9ce4_8422_2325
  mutating func combine(_ s: String) {
    for b in s.utf8 { state = (state ^ UInt64(b)) &* 0x100_0000_01b3 }
    state = (state ^ 0xff) &* 0x100_0000_01b3
  }
  var hex: String {
    let s = String(state, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
  }
}
