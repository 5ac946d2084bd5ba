import Foundation
import Testing

@testable import EFTCore

/// The bundled facts-world models (scripts/train_facts_models.py) keep showing the EFT result under
/// this engine: on a fixed subset of held-out questions, greedy decoding (deterministic), the
/// up-scaled composition answers more questions than the small fine-tuned model, and the large
/// fine-tuned model more than both. A regression in the engine, an operator or the transformer
/// backend breaks the ordering.
@Suite struct FactsModelTests {
  @Test func upscalingBeatsTheSmallFineTunedModelOnHeldOutQuestions() throws {
    let runtime = try Runtime(configPath: repoRoot.appendingPathComponent("examples/configs/facts.pbtxt").path,
                              pluginDirectories: [buildDirectory])
    let items = Array(try EvalItem.load(repoRoot.appendingPathComponent("examples/facts/heldout.jsonl").path).prefix(60))
    let small = try runtime.evaluate(graph: "small_ft", items: items)
    let upscaled = try runtime.evaluate(graph: "upscaled", items: items)
    let large = try runtime.evaluate(graph: "large_ft", items: items)
    #expect(upscaled.accuracy > small.accuracy, "upscaled \(upscaled.accuracy) vs small_ft \(small.accuracy)")
    #expect(large.accuracy > small.accuracy, "large_ft \(large.accuracy) vs small_ft \(small.accuracy)")
    #expect(upscaled.formatCompliance >= 0.95)
    // Up-scaling also makes the reference answers more likely than the small fine-tuned model does.
    #expect(upscaled.meanLogLikelihood > small.meanLogLikelihood)
  }

  /// Speculation (small_ft drafts, as facts.pbtxt configures) changes no token of greedy output.
  @Test func speculativeUpscalingAnswersExactlyAsPlainDecoding() throws {
    let runtime = try Runtime(configPath: repoRoot.appendingPathComponent("examples/configs/facts.pbtxt").path,
                              pluginDirectories: [buildDirectory])
    let items = Array(try EvalItem.load(repoRoot.appendingPathComponent("examples/facts/heldout.jsonl").path).prefix(60))
    var drafted = 0, accepted = 0, plainCalls = 0, speculativeCalls = 0
    for (i, item) in items.enumerated() {
      var request = GenerationRequest(graph: "upscaled", prompt: item.prompt)
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
