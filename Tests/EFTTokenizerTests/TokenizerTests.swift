import EFTTestSupport
import Foundation
import Testing

@testable import EFTTokenizer

let tinyTokenizerURL = repoRoot.appendingPathComponent("examples/models/tiny/tokenizer.json")

struct Golden: Decodable {
  let text: String
  let ids: [Int32]
  let ids_plain: [Int32]
  let decoded: String
}

let goldensDirectory = repoRoot.appendingPathComponent("Tests/EFTTokenizerTests/Goldens")

func goldens(_ style: String = "tiny") throws -> [Golden] {
  let data = try Data(contentsOf: goldensDirectory.appendingPathComponent("\(style).json"))
  return try JSONDecoder().decode([Golden].self, from: data)
}

/// Tokenizers in the styles of real checkpoints (scripts/make_tokenizer_goldens.py), against HF
/// tokenizers' ids and decodings.
@Suite struct TokenizerStyleTests {
  @Test(arguments: ["sentencepiece", "metaspace", "gemma", "llama3", "qwen2"])
  func encodeAndDecodeMatchHFTokenizers(style: String) throws {
    let tokenizer = try Tokenizer(contentsOf: goldensDirectory.appendingPathComponent("\(style).tokenizer.json"))
    let cases = try goldens(style)
    #expect(cases.count >= 10)
    for g in cases {
      #expect(tokenizer.encode(g.text) == g.ids, "\(style) with special tokens: \(String(reflecting: g.text))")
      #expect(tokenizer.encode(g.text, addSpecialTokens: false) == g.ids_plain, "\(style) plain: \(String(reflecting: g.text))")
      #expect(tokenizer.decode(g.ids_plain) == g.decoded, "\(style) decode: \(String(reflecting: g.text))")
      // Streaming gives the same text as decoding at once.
      var stream = StreamingDecoder(tokenizer: tokenizer)
      let streamed = g.ids_plain.map { stream.push($0) }.joined() + stream.finish()
      #expect(streamed == tokenizer.decode(g.ids_plain), "\(style) streamed: \(String(reflecting: g.text))")
    }
  }

  /// With a limit, encoding stops soon after passing it: a prefix of the full encoding. (A
  /// tokenizer that does not split words — the SentencePiece and Metaspace styles — stops only after its one
  /// word; there the server's --max-prompt-bytes is the bound.)
  @Test(arguments: ["llama3", "qwen2"])
  func encodeStopsPastItsLimit(style: String) throws {
    let tokenizer = try Tokenizer(contentsOf: goldensDirectory.appendingPathComponent("\(style).tokenizer.json"))
    let text = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 50)
    let full = tokenizer.encode(text, addSpecialTokens: false)
    #expect(full.count > 300)
    for limit in [0, 5, 100] {
      let limited = tokenizer.encode(text, addSpecialTokens: false, limit: limit)
      #expect(limited.count > limit && limited.count <= limit + 10, "\(style), limit \(limit): \(limited.count) ids")
      #expect(Array(full.prefix(limited.count)) == limited)
    }
    #expect(tokenizer.encode(text, limit: full.count + 5) == tokenizer.encode(text), "a limit not reached changes nothing")
  }

  @Test func stylesHaveDistinctFingerprints() throws {
    let prints = try ["sentencepiece", "metaspace", "gemma", "llama3", "qwen2"].map {
      try Tokenizer(contentsOf: goldensDirectory.appendingPathComponent("\($0).tokenizer.json")).fingerprint
    }
    #expect(Set(prints).count == prints.count)
  }
}

@Suite struct TokenizerGoldenTests {
  let tokenizer: Tokenizer

  init() throws { tokenizer = try Tokenizer(contentsOf: tinyTokenizerURL) }

  @Test func encodeMatchesHFTokenizers() throws {
    let cases = try goldens()
    #expect(cases.count >= 10)
    for g in cases {
      #expect(tokenizer.encode(g.text) == g.ids, "with special tokens: \(String(reflecting: g.text))")
      #expect(tokenizer.encode(g.text, addSpecialTokens: false) == g.ids_plain, "plain: \(String(reflecting: g.text))")
    }
  }

  @Test func decodeMatchesHFTokenizers() throws {
    for g in try goldens() {
      #expect(tokenizer.decode(g.ids_plain) == g.decoded, "\(String(reflecting: g.text))")
    }
  }

  @Test func streamingDecodeEmitsWholeCharactersOnly() throws {
    let text = "Emoji: 👋🌍 family: 👨‍👩‍👧 naïve 日本語"
    let ids = tokenizer.encode(text, addSpecialTokens: false)
    // The tiny vocabulary splits these characters into single-byte tokens.
    #expect(ids.count > text.unicodeScalars.count)
    var decoder = StreamingDecoder(tokenizer: tokenizer)
    var pieces: [String] = []
    for id in ids { pieces.append(decoder.push(id)) }
    pieces.append(decoder.finish())
    #expect(pieces.joined() == text)
    #expect(!pieces.joined().contains("\u{FFFD}"))
    // Some token produced no text: its character was not complete yet.
    #expect(pieces.contains(""))
  }

  @Test func streamingDecodeFlushesAnIncompleteCharacterAsReplacement() throws {
    let bytes = Array("👋".utf8)
    let firstByteToken = try #require(tokenizer.id(of: String(ByteLevel.byteToChar[Int(bytes[0])])))
    var decoder = StreamingDecoder(tokenizer: tokenizer)
    #expect(decoder.push(firstByteToken) == "")
    #expect(decoder.finish() == "\u{FFFD}")
  }

  @Test func fingerprintIsStableAndContentBased() throws {
    let again = try Tokenizer(contentsOf: tinyTokenizerURL)
    #expect(again.fingerprint == tokenizer.fingerprint)
    #expect(tokenizer.vocabSize == 420)
  }

  @Test func specialTokensAreAddedAndMatchedInText() throws {
    let bos = try #require(tokenizer.id(of: "<s>"))
    let user = try #require(tokenizer.id(of: "<|user|>"))
    let ids = tokenizer.encode("<|user|>hi")
    #expect(ids.first == bos)
    #expect(ids[1] == user)
    #expect(tokenizer.isSpecial(bos))
  }
}

@Suite struct TokenizerRefusalTests {
  func load(_ mutate: (inout [String: Any]) -> Void) throws -> Tokenizer {
    var json = try JSONSerialization.jsonObject(with: Data(contentsOf: tinyTokenizerURL)) as! [String: Any]
    mutate(&json)
    return try Tokenizer(json: JSONSerialization.data(withJSONObject: json), source: "t.json")
  }

  @Test(arguments: ["normalizer", "pre_tokenizer", "decoder", "post_processor", "model"])
  func unknownStageTypeThrowsNamingIt(stage: String) throws {
    do {
      _ = try load { $0[stage] = ["type": "Frobnicate"] }
      Issue.record("expected an error for \(stage)")
    } catch let error as TokenizerError {
      #expect(error.message.contains("Frobnicate"))
      #expect(error.message.contains("t.json"))
    }
  }

  @Test func stripWithANegativeStartIsRefused() throws {
    do {
      _ = try load { $0["decoder"] = ["type": "Strip", "content": " ", "start": -2, "stop": 0] }
      Issue.record("expected an error")
    } catch let error as TokenizerError {
      #expect(error.message.contains("decoder Strip has start -2"), "\(error.message)")
    }
  }

  /// A field of the wrong type is an error naming it, not its default.
  @Test func fieldsOfTheWrongTypeAreErrorsNamingThem() throws {
    let cases: [(String, (inout [String: Any]) -> Void)] = [
      ("pre_tokenizer.add_prefix_space is \"yes\", expected true or false",
       { $0["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": "yes"] }),
      ("decoder.decoders[1].start is 1.5, expected an integer",
       { $0["decoder"] = ["type": "Sequence", "decoders": [["type": "ByteLevel"], ["type": "Strip", "content": " ", "start": 1.5]]] }),
      ("normalizer.normalizers[0] is \"NFC\", expected an object", { $0["normalizer"] = ["type": "Sequence", "normalizers": ["NFC"]] }),
      ("model.byte_fallback is 1, expected true or false", { json in
        var model = json["model"] as! [String: Any]
        model["byte_fallback"] = 1
        json["model"] = model
      }),
      ("added_tokens[0].special is \"no\", expected true or false", { $0["added_tokens"] = [["id": 3, "content": "<x>", "special": "no"]] }),
      ("pre_tokenizer.type is missing", { $0["pre_tokenizer"] = ["add_prefix_space": true] }),
    ]
    for (message, mutate) in cases {
      do {
        _ = try load(mutate)
        Issue.record("expected an error: \(message)")
      } catch let error as TokenizerError {
        #expect(error.message == "t.json: " + message)
      }
    }
  }

  @Test func outOfRangeIdsAreRefusedNotTrapped() throws {
    #expect(throws: TokenizerError.self) {
      _ = try load { json in
        var model = json["model"] as! [String: Any]
        var vocab = model["vocab"] as! [String: Any]
        vocab["huge"] = 1 << 40
        model["vocab"] = vocab
        json["model"] = model
      }
    }
    #expect(throws: TokenizerError.self) {
      _ = try load { $0["added_tokens"] = [["id": -3, "content": "<x>", "special": true]] }
    }
  }

  @Test func notJSONIsAClearError() {
    #expect(throws: TokenizerError.self) { try Tokenizer(json: Data("{oops".utf8), source: "x.json") }
  }

  @Test func mergeWithUnknownTokenIsRefused() throws {
    do {
      _ = try load { json in
        var model = json["model"] as! [String: Any]
        model["merges"] = ["Q Z"]
        json["model"] = model
      }
      Issue.record("expected an error")
    } catch let error as TokenizerError {
      #expect(error.message.contains("merges[0]"))
    }
  }
}

@Suite struct PreTokenizerTests {
  @Test func gpt2PatternSplits() {
    func pieces(_ s: String) -> [String] { ByteLevelPreTokenizer.gpt2Pieces(s).map(String.init) }
    #expect(pieces("Hello world") == ["Hello", " world"])
    #expect(pieces("it's 42!") == ["it", "'s", " 42", "!"])
    #expect(pieces("a   b") == ["a", "  ", " b"])
    #expect(pieces("x\n\ny") == ["x", "\n", "\n", "y"])  // as Python regex splits it
    #expect(pieces("trailing  ") == ["trailing", "  "])
    #expect(pieces("we'RE") == ["we", "'", "RE"])
  }
}
