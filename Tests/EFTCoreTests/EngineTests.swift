import EFTTokenizer
import Foundation
import Testing

@testable import EFTCore

/// Generation and scoring end to end through the bigram plugin, against a reference composition
/// computed in Double straight from each model's session.
@Suite struct EngineTests {
  let runtime: Runtime
  let tokenizer: Tokenizer

  init() throws {
    runtime = try EFTCoreTests.runtime(tinyConfig(graphs: upscaleGraph + """
      graphs { name: "large" nodes { name: "l" model { model: "large_base" } } output: "l" }
      default_graph: "upscale"
      """))
    tokenizer = runtime.models["large_base"]!.tokenizer
  }

  func referenceUpscale(_ ids: [Int32], beta: Double) throws -> [Double] {
    try Reference.upscale(runtime, after: ids, beta: beta)
  }

  @Test(arguments: [1.0, 0.5, 0.0, 2.0])
  func greedyGenerationFollowsTheReferenceComposition(beta: Double) throws {
    var request = GenerationRequest(prompt: "Where does Tomas live?")
    request.temperature = 0
    request.maxTokens = 12
    request.parameters = ["beta": beta]
    request.stopAtEOS = false
    let result = try runtime.generate(request)
    #expect(result.tokens.count == 12)
    var ids = tokenizer.encode("Where does Tomas live?")
    for token in result.tokens {
      let reference = try referenceUpscale(ids, beta: beta)
      let best = reference.indices.max { reference[$0] < reference[$1] || (reference[$0] == reference[$1] && $0 > $1) }!
      #expect(Int(token) == best, "beta \(beta) after \(ids.count) tokens")
      ids.append(token)
    }
  }

  @Test func scoreMatchesTheReferenceAndItsTotal() throws {
    let prompt = "Where does Tomas live?", continuation = " Tomas lives in Oakridge."
    for beta in [1.0, 0.3] {
      let result = try runtime.score(graph: nil, prompt: prompt, continuation: continuation, parameters: ["beta": beta])
      #expect(result.tokens == tokenizer.encode(continuation, addSpecialTokens: false))
      var ids = tokenizer.encode(prompt)
      for (token, logProb) in zip(result.tokens, result.logProbs) {
        let want = try referenceUpscale(ids, beta: beta)[Int(token)]
        #expect(abs(logProb - want) < 1e-4, "\(logProb) vs \(want)")
        ids.append(token)
      }
      #expect(abs(result.total - result.logProbs.reduce(0, +)) < 1e-12)
    }
  }

  @Test func betaZeroIsTheLargeBaseAlone() throws {
    let a = try runtime.score(graph: "upscale", prompt: "Tomas", continuation: " lives in Oakridge.", parameters: ["beta": 0])
    let b = try runtime.score(graph: "large", prompt: "Tomas", continuation: " lives in Oakridge.")
    for (x, y) in zip(a.logProbs, b.logProbs) { #expect(abs(x - y) < 1e-5) }
  }

  @Test func aSeedReproducesARunAndAnotherSeedDiffers() throws {
    func run(_ seed: UInt64) throws -> [Int32] {
      var request = GenerationRequest(prompt: "Tomas")
      request.seed = seed
      request.temperature = 1
      request.maxTokens = 30
      request.stopAtEOS = false
      return try runtime.generate(request).tokens
    }
    #expect(try run(3) == run(3))
    #expect(try run(3) != run(4))
  }

  @Test func streamedTextEqualsTheResultAndStopsAtStopStrings() throws {
    var request = GenerationRequest(prompt: "Tomas")
    request.seed = 9
    request.maxTokens = 60
    request.stopAtEOS = false
    var streamed = ""
    let plain = try runtime.generate(request) { streamed += $0.text; return true }
    #expect(streamed == plain.text)
    #expect(plain.finishReason == .length)
    #expect(plain.text == tokenizer.decode(plain.tokens))

    // Stop at the first "e" of that same text.
    guard plain.text.contains("e") else { return }
    request.stop = ["e"]
    var streamedStop = ""
    let stopped = try runtime.generate(request) { streamedStop += $0.text; return true }
    #expect(stopped.finishReason == .stop)
    #expect(!streamedStop.contains("e"))
    #expect(streamedStop == String(plain.text.prefix(while: { $0 != "e" })))
  }

  @Test func callerCanCancel() throws {
    var request = GenerationRequest(prompt: "Tomas")
    request.stopAtEOS = false
    var seen = 0
    let result = try runtime.generate(request) { _ in seen += 1; return seen < 3 }
    #expect(result.finishReason == .cancelled)
    #expect(result.tokens.count == 3)
  }

  @Test func nodeValuesAreReportedPerNode() throws {
    var request = GenerationRequest(prompt: "Tomas")
    request.maxTokens = 3
    request.returnNodeValues = true
    request.stopAtEOS = false
    var events: [TokenEvent] = []
    _ = try runtime.generate(request) { events.append($0); return true }
    let graph = try runtime.graph(named: "upscale")
    for event in events where event.token >= 0 {
      let values = try #require(event.nodeValues)
      #expect(values.count == graph.nodeNames.count)
      let named = Dictionary(uniqueKeysWithValues: zip(graph.nodeNames, values))
      // eft = large + beta·(ft − base) at the chosen token, before renormalisation.
      #expect(abs(named["eft"]! - (named["large"]! + named["ft"]! - named["base"]!)) < 1e-4)
      #expect(event.logProb <= 0)
    }
  }

  @Test func requestErrorsNameTheField() throws {
    var request = GenerationRequest(prompt: "x")
    request.parameters = ["gamma": 1]
    let unknown = try #require(runtimeError { _ = try runtime.generate(request) })
    #expect(unknown.message.contains("no parameter 'gamma'"))
    #expect(unknown.message.contains("beta"))
    request.parameters = [:]
    request.topP = 2
    #expect(runtimeError { _ = try runtime.generate(request) }?.message.contains("top_p") == true)
    request.topP = nil
    for t in [1e39, 10_001, .infinity, .nan, -1] {
      request.temperature = t
      let e = runtimeError { _ = try runtime.generate(request) }
      #expect(e?.message == "sampling.temperature = \(t) is outside [0, 10000]", "\(t)")
    }
    request.temperature = nil
    request.stop = (0..<17).map { "s\($0)" }
    #expect(runtimeError { _ = try runtime.generate(request) }?.message == "stop holds 17 strings; at most 16 are allowed")
    request.stop = ["x", String(repeating: "y", count: 257)]
    #expect(runtimeError { _ = try runtime.generate(request) }?.message == "stop[1] is 257 bytes; at most 256 are allowed")
    request.stop = nil
    let noGraph = try #require(runtimeError { _ = try runtime.generate(GenerationRequest(graph: "nope", prompt: "x")) })
    #expect(noGraph.code == .notFound)
  }
}

/// A bigram table in which every token is followed by EOS (or by token 100) with near certainty.
func certainBigram(next: Int, context: Int = 4096) -> String {
  var text = "eft-bigram 1\nvocab 420\nbos 1\neos 2\ncontext \(context)\nsmoothing 0.01\ncounts\n"
  for t in 0..<420 { text += "\(t) \(next) 100000\n" }
  return text
}

@Suite struct FinishTests {
  func runtime(next: Int, context: Int = 4096) throws -> (Runtime, TemporaryDirectory) {
    let dir = try TemporaryDirectory()
    try dir.write("m.bigram", certainBigram(next: next, context: context))
    let config = tinyConfig(models: [], graphs: """
      models { name: "m" plugin: "bigram" path: "m.bigram" tokenizer: "\(tinyModels.path)/tokenizer.json" }
      graphs { name: "g" nodes { name: "a" model { model: "m" } } output: "a" sampling { temperature: 0 } }
      """)
    return (try EFTCoreTests.runtime(config, in: dir), dir)
  }

  @Test func eosEndsGenerationUnlessTurnedOff() throws {
    let (r, dir) = try runtime(next: 2)
    defer { withExtendedLifetime(dir) {} }
    let result = try r.generate(GenerationRequest(prompt: "Tomas"))
    #expect(result.finishReason == .eos)
    #expect(result.tokens.isEmpty)
    var request = GenerationRequest(prompt: "Tomas")
    request.stopAtEOS = false
    request.maxTokens = 4
    let continued = try r.generate(request)
    #expect(continued.tokens == [2, 2, 2, 2])
    #expect(continued.finishReason == .length)
  }

  @Test func aFullContextEndsGeneration() throws {
    let (r, dir) = try runtime(next: 100, context: 10)
    defer { withExtendedLifetime(dir) {} }
    let result = try r.generate(GenerationRequest(prompt: "Tomas"))  // <s> Tomas = 2 tokens (or more)
    #expect(result.finishReason == .context)
    #expect(result.promptTokens[0] + result.tokens.count == 10 + 1)
  }
}
