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
        print(Report.scoreJSON(result))
      } else {
        let graph = try runtime.graph(named: graphOptions.graph)
        for line in Report.scoreTable(result, pieces: result.tokens.map { graph.tokenizer.decode([$0]) }) { print(line) }
      }
    }
  }
}
