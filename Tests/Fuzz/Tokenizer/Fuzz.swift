// Fuzzes tokenizer.json loading and encode/decode. The first byte of an input picks the mode:
// - below 0x80: the rest is text, encoded and decoded by one of the golden tokenizers (byte %
//   5): ids inside the vocabulary, the streaming decoder agreeing with decode, and for the
//   byte-level tokenizers without a normalizer (llama3, tiny) decode(encode(text)) == text;
// - otherwise the rest is a tokenizer.json: it loads or throws, and what loads encodes and
//   decodes a fixed text.
import EFTFuzzSupport
import EFTTokenizer
import Foundation

let goldens: [(name: String, tokenizer: Tokenizer, roundTrips: Bool)] = setUp("Tests/EFTTokenizerTests/Goldens") {
  try [("llama3", true), ("metaspace", false), ("qwen2", false), ("sentencepiece", false), ("tiny", true)].map { name, exact in
    let path = name == "tiny" ? "examples/models/tiny/tokenizer.json" : "Tests/EFTTokenizerTests/Goldens/\(name).tokenizer.json"
    return (name, try Tokenizer(contentsOf: URL(fileURLWithPath: path)), exact)
  }
}

func check(_ tokenizer: Tokenizer, _ text: String, name: String, roundTrips: Bool) {
  for special in [false, true] {
    let ids = tokenizer.encode(text, addSpecialTokens: special)
    require(ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabSize }, "\(name): an id outside the vocabulary")
    let decoded = tokenizer.decode(ids)
    var streaming = StreamingDecoder(tokenizer: tokenizer)
    let streamed = ids.map { streaming.push($0) }.joined() + streaming.finish()
    require(streamed == decoded, "\(name): streaming decode \(streamed.debugDescription) != decode \(decoded.debugDescription)")
    if roundTrips && !special {
      require(decoded == text, "\(name): decode(encode(\(text.debugDescription))) = \(decoded.debugDescription)")
    }
  }
}

func one(_ data: Data) {
  guard let mode = data.first else { return }
  let rest = data.dropFirst()
  if mode < 0x80 {
    let golden = goldens[Int(mode) % goldens.count]
    check(golden.tokenizer, String(decoding: rest, as: UTF8.self), name: golden.name, roundTrips: golden.roundTrips)
  } else {
    guard let tokenizer = try? Tokenizer(json: Data(rest), source: "fuzz.json") else { return }
    check(tokenizer, "Hello, wörld! 123  <|user|>\n\tend", name: "fuzzed tokenizer.json", roundTrips: false)
  }
}

@main struct Main { static func main() { fuzzMain(one) } }
