import ArgumentParser
import EFTCommandLine
import EFTCore
import Foundation

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Answer a JSONL question set greedily under one or more graphs; report accuracy, format compliance, mean log-likelihood of the reference and speed.")

  @OptionGroup var options: ConfigOptions

  @Option(help: "The question set: one JSON object a line with 'prompt' and 'answer' (optional 'reference', 'format').")
  var data: String

  @Option(name: .customLong("graph"), help: "A graph to evaluate (repeatable; default: the default graph).")
  var graphs: [String] = []

  @Option(name: .customLong("set"), help: ArgumentHelp("Override a graph parameter, e.g. --set beta=0.5 (repeatable; applies to graphs that have it).", valueName: "name=value"))
  var assignments: [String] = []

  @Option(help: "Evaluate only the first N questions.")
  var limit: Int?

  @Flag(help: "Print a JSON array: one object per graph with graph, accuracy, format_compliance, mean_loglik, perplexity, masked_references, tokens_per_s.")
  var json = false

  func run() throws {
    try reportingErrors {
      let runtime = try options.load()
      var items = try EvalItem.load(data)
      if let limit { items = Array(items.prefix(max(0, limit))) }
      let overrides = try parseAssignments(assignments)
      let names = graphs.isEmpty ? [try runtime.graph(named: nil).name] : graphs
      var results: [EvalResult] = []
      for name in names {
        let graph = try runtime.graph(named: name)
        // Each graph gets the overrides it has a parameter for.
        let parameters = overrides.filter { key, _ in graph.parameters.contains { $0.name == key } }
        let result = try runtime.evaluate(graph: name, items: items, parameters: parameters) { done in
          if done % 10 == 0 || done == items.count {
            FileHandle.standardError.write(Data("\reft eval: \(name) \(done)/\(items.count)".utf8))
          }
        }
        FileHandle.standardError.write(Data("\n".utf8))
        results.append(result)
      }
      if json {
        func f(_ x: Double) -> String { jsonNumber(x, decimals: 4) }
        let objects = results.map {
          "{\"graph\":\"\($0.graph)\",\"questions\":\($0.questions),\"accuracy\":\(f($0.accuracy)),\"format_compliance\":\(f($0.formatCompliance)),\"mean_loglik\":\(f($0.meanLogLikelihood)),\"perplexity\":\(f($0.perplexity)),\"masked_references\":\($0.maskedReferences),\"tokens_per_s\":\(f($0.tokensPerSecond))}"
        }
        print("[" + objects.joined(separator: ",") + "]")
      } else {
        print("\(items.count) questions from \(data)")
        print("graph                 accuracy   format   mean loglik   perplexity   tokens/s")
        for r in results {
          let name = r.graph.count >= 20 ? r.graph : r.graph + String(repeating: " ", count: 20 - r.graph.count)
          print(name + String(format: "  %7.1f%%  %6.1f%%  %12.3f  %11.3f  %9.1f", 100 * r.accuracy, 100 * r.formatCompliance, r.meanLogLikelihood, r.perplexity, r.tokensPerSecond)
                + (r.maskedReferences > 0 ? "   (\(r.maskedReferences) masked reference\(r.maskedReferences == 1 ? "" : "s") left out)" : ""))
        }
      }
    }
  }
}
