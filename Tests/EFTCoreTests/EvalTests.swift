import Foundation
import Testing

@testable import EFTCore

@Suite struct EvalTests {
  @Test func judgeExtractsTheAnswerWithTheFormat() {
    let item = EvalItem(prompt: "q", answer: "Saltmere", reference: "The answer is Saltmere.", format: "^The answer is (.+)\\.$")
    #expect(item.judge("The answer is Saltmere.", finish: .eos) == (true, true))
    #expect(item.judge(" The answer is Saltmere.\n", finish: .eos) == (true, true))
    #expect(item.judge("The answer is Oakridge.", finish: .eos) == (false, true))
    #expect(item.judge("The answer is Saltmere.", finish: .length) == (true, false))  // did not stop by itself
    #expect(item.judge("Saltmere", finish: .eos) == (false, false))
    #expect(item.judge("It is. The answer is Saltmere.", finish: .eos) == (false, false))  // the whole reply must match
    let plain = EvalItem(prompt: "q", answer: "42")
    #expect(plain.judge("42", finish: .eos) == (true, true))
    #expect(plain.judge("42 or so", finish: .stop) == (false, true))
  }

  @Test func loadNamesFileAndLine() throws {
    let dir = try TemporaryDirectory()
    let good = try dir.write("good.jsonl", """
      {"prompt": "a", "answer": "b"}

      {"prompt": "c", "answer": "d", "reference": "The answer is d.", "format": "^The answer is (.+)\\\\.$"}
      """)
    let items = try EvalItem.load(good)
    #expect(items.count == 2)
    #expect(items[0].reference == "b")
    #expect(items[1].format == "^The answer is (.+)\\.$")
    let bad = try dir.write("bad.jsonl", "{\"prompt\": \"a\", \"answer\": \"b\"}\n{\"prompt\": \"a\"}\n")
    #expect(runtimeError { _ = try EvalItem.load(bad) }?.message.contains("bad.jsonl:2:") == true)
    let regex = try dir.write("regex.jsonl", "{\"prompt\": \"a\", \"answer\": \"b\", \"format\": \"(\"}\n")
    #expect(runtimeError { _ = try EvalItem.load(regex) }?.message.contains("regex.jsonl:1:") == true)
  }

  @Test func evaluateCountsCorrectAnswersOnACertainModel() throws {
    // Every token is followed by EOS, so every reply is empty and stops by itself.
    let dir = try TemporaryDirectory()
    try dir.write("m.bigram", certainBigram(next: 2))
    let r = try runtime(tinyConfig(models: [], graphs: """
      models { name: "m" plugin: "bigram" path: "m.bigram" tokenizer: "\(tinyModels.path)/tokenizer.json" }
      graphs { name: "g" nodes { name: "a" model { model: "m" } } output: "a" }
      """), in: dir)
    let items = [EvalItem(prompt: "x", answer: "", reference: "w"), EvalItem(prompt: "y", answer: "z")]
    let result = try r.evaluate(graph: nil, items: items)
    #expect(result.questions == 2)
    #expect(result.accuracy == 0.5)
    #expect(result.formatCompliance == 1)
    #expect(result.meanLogLikelihood < 0)
    #expect(result.replies == ["", ""])
  }

  /// A reference the graph masks (here: outside its top_k) is counted and left out of the mean
  /// log-likelihood and the perplexity, which would otherwise be −inf and +inf.
  @Test func maskedReferencesAreCountedAndLeftOut() throws {
    let dir = try TemporaryDirectory()
    try dir.write("m.bigram", certainBigram(next: 91))  // every token is followed by "w" (91)
    let r = try runtime(tinyConfig(models: [], graphs: """
      models { name: "m" plugin: "bigram" path: "m.bigram" tokenizer: "\(tinyModels.path)/tokenizer.json" }
      graphs { name: "g" nodes { name: "a" model { model: "m" } } nodes { name: "k" top_k { input: "a" k: 1 } } output: "k" }
      """), in: dir)
    let kept = EvalItem(prompt: "x", answer: "w", reference: "w"), masked = EvalItem(prompt: "x", answer: "w", reference: "z")
    let one = try r.evaluate(graph: nil, items: [kept])
    let both = try r.evaluate(graph: nil, items: [kept, masked, masked])
    #expect(one.maskedReferences == 0)
    #expect(both.maskedReferences == 2)
    #expect(one.meanLogLikelihood.isFinite && one.meanLogLikelihood <= 0)
    #expect(both.meanLogLikelihood == one.meanLogLikelihood)
    #expect(both.perplexity == one.perplexity)
    let none = try r.evaluate(graph: nil, items: [masked])
    #expect(none.maskedReferences == 1 && none.meanLogLikelihood.isNaN && none.perplexity.isNaN)
  }
}
