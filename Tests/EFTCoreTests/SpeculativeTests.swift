import Foundation
import Testing

@testable import EFTCore

/// Speculative decoding is exact: greedy output equals plain greedy output token for token, and
/// sampled tokens follow the composed distribution (checked by a chi-square test over many
/// seeded runs, for plain and speculative decoding alike).
@Suite struct SpeculativeTests {
  let runtime: Runtime

  init() throws {
    runtime = try EFTCoreTests.runtime(tinyConfig(graphs: upscaleGraph + """
      graphs {
        name: "speculative"
        parameters { name: "beta" default_value: 1 }
        nodes { name: "large" model { model: "large_base" } }
        nodes { name: "ft"    model { model: "small_ft" } }
        nodes { name: "base"  model { model: "small_base" } }
        nodes { name: "eft"   linear { terms { input: "large" } terms { input: "ft" expr: "beta" } terms { input: "base" expr: "-beta" } } }
        output: "eft"
        speculative { draft: "ft" lookahead: 3 }
      }
      default_graph: "upscale"
      """))
  }

  @Test(arguments: [1, 2, 3, 5, 8])
  func greedySpeculationEqualsPlainGreedy(lookahead: Int) throws {
    for prompt in ["Where does Tomas live?", "Tell me about Mira.", "The", "Hello! What is your trade?"] {
      var request = GenerationRequest(graph: "speculative", prompt: prompt)
      request.temperature = 0
      request.maxTokens = 30
      request.stopAtEOS = false
      request.speculative = false
      let plain = try runtime.generate(request)
      request.speculative = true
      request.lookahead = lookahead
      let speculative = try runtime.generate(request)
      #expect(speculative.tokens == plain.tokens, "\(prompt), lookahead \(lookahead)")
      #expect(speculative.text == plain.text)
      let s = speculative.stats
      #expect(s.drafted > 0 && s.accepted <= s.drafted)
      // Every step yields the accepted drafts plus one token (the last step may be cut by max_tokens).
      #expect(s.accepted + s.steps >= plain.tokens.count)
      #expect(plain.stats.drafted == 0 && plain.stats.steps == plain.tokens.count)
      #expect(speculative.speculation?.lookahead == lookahead)
    }
  }

  /// The warped distribution of the composition after `ids`, from the models directly (Double).
  func exactNext(_ ids: [Int32], _ sampling: SamplingOptions) throws -> [Double] {
    try Sampler.distribution(Reference.upscale(runtime, after: ids, beta: 1).map(Float.init), sampling)!
  }

  /// Pearson's chi-square statistic of `counts` against probabilities `p` (cells with an expected
  /// count under 5 pooled), and its critical value at significance 0.001 (Wilson–Hilferty).
  func chiSquare(_ counts: [Int], _ p: [Double]) -> (statistic: Double, critical: Double) {
    let n = Double(counts.reduce(0, +))
    var cells: [(observed: Double, expected: Double)] = []
    var pooled = (observed: 0.0, expected: 0.0)
    for i in p.indices {
      if n * p[i] >= 5 {
        cells.append((Double(counts[i]), n * p[i]))
      } else {
        pooled.observed += Double(counts[i])
        pooled.expected += n * p[i]
      }
    }
    if pooled.expected > 0 { cells.append(pooled) }
    let statistic = cells.reduce(0) { $0 + ($1.observed - $1.expected) * ($1.observed - $1.expected) / $1.expected }
    let df = Double(cells.count - 1), z = 3.090  // the 0.999 quantile of N(0, 1)
    let critical = df * pow(1 - 2 / (9 * df) + z * (2 / (9 * df)).squareRoot(), 3)
    return (statistic, critical)
  }

  @Test(arguments: [(1.0, 0.0), (0.8, 0.9)])
  func sampledTokensFollowTheComposedDistribution(temperature: Double, topP: Double) throws {
    let sampling = SamplingOptions(temperature: temperature, topP: topP)
    let prompt = "The"  // a spread-out next token on which draft and composition disagree (TV ≈ 0.56)
    let ids = runtime.models["large_base"]!.tokenizer.encode(prompt)
    // Exact marginals of the first two tokens.
    let first = try exactNext(ids, sampling)
    var second = [Double](repeating: 0, count: first.count)
    for (t, pt) in first.enumerated() where pt > 0 {
      for (u, pu) in try exactNext(ids + [Int32(t)], sampling).enumerated() { second[u] += pt * pu }
    }

    let runs = 3000
    for speculative in [false, true] {
      var counts = [[Int]](repeating: [Int](repeating: 0, count: first.count), count: 2)
      var drafted = 0, accepted = 0
      for seed in 0..<runs {
        var request = GenerationRequest(graph: "speculative", prompt: prompt)
        request.temperature = temperature
        request.topP = topP
        request.seed = UInt64(seed)
        request.maxTokens = 3  // lookahead 2 drafts tokens 1 and 2 in the first step
        request.stopAtEOS = false
        request.speculative = speculative
        request.lookahead = speculative ? 2 : nil
        let result = try runtime.generate(request)
        counts[0][Int(result.tokens[0])] += 1
        counts[1][Int(result.tokens[1])] += 1
        drafted += result.stats.drafted
        accepted += result.stats.accepted
      }
      for (position, exact) in [first, second].enumerated() {
        let (statistic, critical) = chiSquare(counts[position], exact)
        #expect(statistic < critical, "speculative \(speculative), token \(position + 1): chi-square \(statistic) ≥ \(critical)")
      }
      if speculative {
        // Both branches of the rule were exercised.
        #expect(accepted > 0 && accepted < drafted, "accepted \(accepted) of \(drafted)")
      }
    }

    // The test has power: the draft's own distribution is told apart from the composition's.
    var draftCounts = [Int](repeating: 0, count: first.count)
    let q = try Sampler.distribution(Reference.logProbs(runtime.models["small_ft"]!, after: ids).map(Float.init), sampling)!
    var rng = SeededGenerator(seed: 99)
    for _ in 0..<runs { draftCounts[Int(Sampler.draw(q, using: &rng))] += 1 }
    let (statistic, critical) = chiSquare(draftCounts, first)
    #expect(statistic > critical, "draft-only sampling should fail the test: \(statistic) vs \(critical)")
  }

  @Test func configAndRequestErrorsNameTheProblem() throws {
    func configError(_ speculative: String) -> RuntimeError? {
      runtimeError {
        _ = try EFTCoreTests.runtime(tinyConfig(graphs: """
          graphs {
            name: "g"
            nodes { name: "large" model { model: "large_base" } }
            nodes { name: "ft"    model { model: "small_ft" } }
            nodes { name: "mix"   linear { terms { input: "large" } terms { input: "ft" weight: 0.5 } } }
            output: "mix"
            \(speculative)
          }
          """))
      }
    }
    #expect(configError("speculative { draft: \"fft\" }")?.message.contains("speculative.draft 'fft' is not a node") == true)
    #expect(configError("speculative { draft: \"mix\" }")?.message.contains("reads every model") == true)
    #expect(configError("speculative { draft: \"ft\" lookahead: 65 }")?.message.contains("lookahead = 65") == true)
    #expect(configError("speculative { }")?.message.contains("speculative.draft is empty") == true)
    #expect(configError("speculative { draft: \"ft\" }") == nil)
    #expect(configError("speculative { draft: \"nope\" lookahead: 0 }")?.message.contains("'nope' is not a node") == true,
            "a section that is off is still checked")
    let located = try #require(configError("speculative { draft: \"nope\" }"))
    #expect(located.message.hasPrefix("config.pbtxt:") || located.message.contains(".pbtxt:"))

    var request = GenerationRequest(graph: "upscale", prompt: "Tomas")
    request.speculative = true
    #expect(runtimeError { _ = try runtime.generate(request) }?.message.contains("no speculative section") == true)
    request.speculative = nil
    request.lookahead = 3
    #expect(runtimeError { _ = try runtime.generate(request) }?.message.contains("no speculative section") == true)
    request.lookahead = nil
    request.draft = "eft"
    #expect(runtimeError { _ = try runtime.generate(request) }?.message.contains("reads every model") == true)
    request.draft = "ft"
    request.maxTokens = 5
    #expect(try runtime.generate(request).speculation?.draft == "ft")
    request.speculative = false
    #expect(try runtime.generate(request).speculation == nil)
  }

  /// `lookahead` means one thing in a config and a request: unset is 4, 0 is off.
  @Test func lookaheadZeroTurnsSpeculationOffInAConfigAsInARequest() throws {
    func defaults(_ extra: String) throws -> GenerationSettings {
      try EFTCoreTests.runtime(tinyConfig(graphs: """
        graphs {
          name: "g"
          nodes { name: "large" model { model: "large_base" } }
          nodes { name: "ft"    model { model: "small_ft" } }
          nodes { name: "mix"   linear { terms { input: "large" } terms { input: "ft" weight: 0.5 } } }
          output: "mix"
          \(extra)
        }
        """)).graph(named: "g").defaults
    }
    #expect(try defaults("speculative { draft: \"ft\" }").speculation?.lookahead == SpeculationSettings.defaultLookahead)
    #expect(try defaults("speculative { draft: \"ft\" lookahead: 2 }").speculation?.lookahead == 2)
    #expect(try defaults("speculative { draft: \"ft\" lookahead: 0 }").speculation == nil)
    // Sampling fields are optional alike: unset is the built-in default, a set 0 is 0.
    #expect(try defaults("").maxTokens == 256)
    #expect(try defaults("sampling { max_tokens: 0 }").maxTokens == 0)
    #expect(try defaults("").sampling.temperature == 1)
    #expect(try defaults("sampling { temperature: 0 }").sampling.temperature == 0)
  }

  @Test func adaptiveLookaheadStaysExact() throws {
    var request = GenerationRequest(graph: "speculative", prompt: "Where does Tomas live?")
    request.temperature = 0
    request.maxTokens = 40
    request.stopAtEOS = false
    request.speculative = false
    let plain = try runtime.generate(request)
    request.speculative = true
    request.lookahead = 6
    request.adaptiveLookahead = true
    let adaptive = try runtime.generate(request)
    #expect(adaptive.tokens == plain.tokens)
    #expect(adaptive.speculation?.adaptive == true)
  }

  @Test func stopStringsAndCancellationCutAStepShort() throws {
    var request = GenerationRequest(graph: "speculative", prompt: "Where does Tomas live?")
    request.temperature = 0
    request.maxTokens = 40
    request.stopAtEOS = false
    request.speculative = false
    let plain = try runtime.generate(request)
    let cut = String(plain.text.prefix(plain.text.count / 2).suffix(3))
    request.stop = [cut]
    let plainStopped = try runtime.generate(request)
    request.speculative = true
    let stopped = try runtime.generate(request)
    #expect(stopped.text == plainStopped.text && stopped.finishReason == .stop)
    request.stop = nil
    var seen = 0
    let cancelled = try runtime.generate(request) { _ in seen += 1; return seen < 4 }
    #expect(cancelled.tokens.count == 4 && cancelled.finishReason == .cancelled)
  }
}
