import Foundation
import Testing

@testable import EFTCore

/// A facts-world family (scripts/train_facts_models.py): its config and held-out questions.
struct FactsFamily: Sendable, CustomTestStringConvertible {
  let config: String
  let heldout: String
  /// Held-out questions the tests ask (the first N; greedy decoding is deterministic).
  let questions: Int
  /// The up-scaling graph and the graph of its small fine-tuned model alone.
  var upscaled = "upscaled"
  var smallFT = "small_ft"
  /// Questions about people who appear nowhere (the negative control), if the family has them.
  var control: String? = nil
  var testDescription: String { "\(config) \(upscaled)" }

  static let facts = FactsFamily(config: "examples/configs/facts.pbtxt", heldout: "examples/facts/heldout.jsonl", questions: 60)
  /// Bandwidth-bound large model, behaviour only the fine-tunes teach (README, "EFT at scale").
  static let xl = FactsFamily(config: "examples/configs/facts-xl.pbtxt", heldout: "examples/facts-xl/heldout.jsonl", questions: 24,
                              control: "examples/facts-xl/control.jsonl")
  /// The same large base with the chatty small fine-tune: replies closed by a sentence it drafts.
  static let xlChatty = FactsFamily(config: "examples/configs/facts-xl.pbtxt", heldout: "examples/facts-xl/heldout-chatty.jsonl",
                                    questions: 24, upscaled: "upscaled_chatty", smallFT: "small_ft_chatty")

  func runtime() throws -> Runtime {
    try Runtime(configPath: repoRoot.appendingPathComponent(config).path, pluginDirectories: [buildDirectory])
  }

  func items(_ file: String? = nil) throws -> [EvalItem] {
    Array(try EvalItem.load(repoRoot.appendingPathComponent(file ?? heldout).path).prefix(questions))
  }
}

/// The bundled facts-world models keep showing the EFT result under this engine: on a fixed
/// subset of held-out questions, greedy decoding (deterministic), the up-scaled composition
/// answers more questions than the small fine-tuned model, and the large fine-tuned model more
/// than both. A regression in the engine, an operator or the transformer backend breaks the
/// ordering.
@Suite struct FactsModelTests {
  @Test(arguments: [FactsFamily.facts, .xl])
  func upscalingBeatsTheSmallFineTunedModelOnHeldOutQuestions(family: FactsFamily) throws {
    let runtime = try family.runtime()
    let items = try family.items()
    let small = try runtime.evaluate(graph: "small_ft", items: items)
    let upscaled = try runtime.evaluate(graph: family.upscaled, items: items)
    let large = try runtime.evaluate(graph: "large_ft", items: items)
    #expect(upscaled.accuracy > small.accuracy, "upscaled \(upscaled.accuracy) vs small_ft \(small.accuracy)")
    #expect(large.accuracy > small.accuracy, "large_ft \(large.accuracy) vs small_ft \(small.accuracy)")
    #expect(upscaled.formatCompliance >= 0.95)
    // Up-scaling also makes the reference answers more likely than the small fine-tuned model does.
    #expect(upscaled.meanLogLikelihood > small.meanLogLikelihood)
  }

  /// The xl family's point: the reply format comes only from the fine-tunes, so the large base
  /// alone fails it while up-scaling has it with the large model's knowledge, which the small
  /// fine-tune lacks; and on people who appear nowhere in training (the negative control)
  /// up-scaling knows nothing.
  @Test(arguments: [FactsFamily.xl, .xlChatty])
  func upscalingGraftsTheFormatTheLargeBaseLacks(family: FactsFamily) throws {
    let runtime = try family.runtime()
    let items = try family.items()
    let base = try runtime.evaluate(graph: "large_base", items: items)
    let small = try runtime.evaluate(graph: family.smallFT, items: items)
    let upscaled = try runtime.evaluate(graph: family.upscaled, items: items)
    #expect(base.formatCompliance <= 0.1, "large_base format \(base.formatCompliance)")
    #expect(upscaled.formatCompliance >= 0.9, "\(family.upscaled) format \(upscaled.formatCompliance)")
    #expect(upscaled.accuracy >= base.accuracy + 0.3, "\(family.upscaled) \(upscaled.accuracy) vs large_base \(base.accuracy)")
    #expect(upscaled.accuracy >= small.accuracy + 0.3, "\(family.upscaled) \(upscaled.accuracy) vs \(family.smallFT) \(small.accuracy)")
    if let control = family.control {
      let strangers = try runtime.evaluate(graph: family.upscaled, items: try family.items(control))
      #expect(strangers.formatCompliance >= 0.9)
      #expect(strangers.accuracy <= 0.15, "upscaled on people never seen: \(strangers.accuracy)")
    }
  }

  /// Speculation (small_ft drafts, as the configs declare) changes no token of greedy output.
  @Test(arguments: [FactsFamily.facts, .xl, .xlChatty])
  func speculativeUpscalingAnswersExactlyAsPlainDecoding(family: FactsFamily) throws {
    let runtime = try family.runtime()
    let items = try family.items()
    var drafted = 0, accepted = 0, plainCalls = 0, speculativeCalls = 0
    for (i, item) in items.enumerated() {
      var request = GenerationRequest(graph: family.upscaled, prompt: item.prompt)
      request.speculative = false
      let plain = try runtime.generate(request)
      request.speculative = true
      request.lookahead = [1, 2, 4, 7][i % 4]
      let speculative = try runtime.generate(request)
      #expect(speculative.tokens == plain.tokens, "\(item.prompt) lookahead \(request.lookahead!)")
      drafted += speculative.stats.drafted
      accepted += speculative.stats.accepted
      plainCalls += plain.stats.modelCalls
      speculativeCalls += speculative.stats.modelCalls
    }
    // The small fine-tuned model knows the answer format: most drafts are accepted, and fewer
    // backend calls are made.
    #expect(Double(accepted) / Double(drafted) > 0.5, "accepted \(accepted) of \(drafted)")
    #expect(speculativeCalls < plainCalls)
  }
}
