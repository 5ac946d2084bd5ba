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
}
