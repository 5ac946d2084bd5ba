import ArgumentParser
import EFTCore
import Foundation

struct Score: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Log-likelihood of a continuation given a prompt under a graph: per token and total.")

  @OptionGroup var options: ConfigOptions
  @OptionGroup var graphOptions: GraphOptions

  @Option(help: "The prompt (context).")
  var prompt: String

  @Option(help: "The continuation to score (tokenized on its own, without special tokens).")
  var continuation: String

  @Flag(help: "Print JSON: {\"tokens\": [ids], \"logprobs\": [...], \"total\": x} (a masked token's log-prob is null).")
  var json = false

  func run() throws {
    try reportingErrors {
      let runtime = try options.load()
      let result = try runtime.score(graph: graphOptions.graph, prompt: prompt, continuation: continuation,
                                     parameters: try graphOptions.parameters())
      if json {
        print(ScoreJSON.render(result))
      } else {
        let graph = try runtime.graph(named: graphOptions.graph)
        for (token, logProb) in zip(result.tokens, result.logProbs) {
          let piece = graph.tokenizer.decode([token])
          print(String(format: "%6d  %10.4f  %@", token, logProb, String(reflecting: piece)))
        }
        print(String(format: "total %.4f over %d tokens", result.total, result.tokens.count))
      }
    }
  }
}

enum ScoreJSON {
  static func render(_ result: ScoreResult) -> String {
    let tokens = result.tokens.map(String.init).joined(separator: ",")
    let logProbs = result.logProbs.map { jsonNumber($0) }.joined(separator: ",")
    return "{\"tokens\":[\(tokens)],\"logprobs\":[\(logProbs)],\"total\":\(jsonNumber(result.total))}"
  }
}
