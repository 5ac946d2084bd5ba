import ArgumentParser
import EFTCommandLine
import EFTCore
import Foundation

struct Score: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Log-likelihood of a continuation given a prompt under a graph: per token and total.")

  @OptionGroup var options: ConfigOptions
  @OptionGroup var graphOptions: GraphOptions

  @OptionGroup var scoring: ScoreOptions

  func run() throws {
    try reportingErrors {
      let runtime = try options.load()
      let (prompt, continuation) = scoring.texts
      let result = try runtime.score(graph: graphOptions.graph, prompt: prompt, continuation: continuation,
                                     parameters: try graphOptions.parameters())
      if scoring.json {
        print(Report.scoreJSON(result))
      } else {
        let graph = try runtime.graph(named: graphOptions.graph)
        for line in Report.scoreTable(result, pieces: result.tokens.map { graph.tokenizer.decode([$0]) }) { print(line) }
      }
    }
  }
}
