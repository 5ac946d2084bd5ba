import ArgumentParser
import EFTCore
import Foundation

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Prefill and decode tokens/s of a graph and of each of its models alone (median of several runs).")

  @OptionGroup var options: ConfigOptions

  @Option(help: "The graph (default: the config's default graph).")
  var graph: String?

  @Option(help: "Prompt length in tokens (random ids).")
  var promptTokens = 128

  @Option(help: "Tokens to decode after the prompt.")
  var newTokens = 64

  @Option(help: "Runs per measurement; the median is reported.")
  var runs = 3

  @Option(help: "Worker threads for the transformer backends (sets EFT_THREADS; default: their options, else one per core).")
  var threads: Int?

  @Flag(help: "Print JSON.")
  var json = false

  func run() throws {
    if let threads { setenv("EFT_THREADS", String(threads), 1) }
    try reportingErrors {
      let runtime = try options.load()
      let result = try runtime.benchmark(graph: graph, promptTokens: promptTokens, newTokens: newTokens, runs: runs) {
        writeError("eft bench: \($0)")
      }
      if json {
        print(BenchJSON.render(result))
      } else {
        print("graph \(result.graph): \(result.promptTokens)-token prompt, \(result.newTokens) new tokens, median of \(result.runs)")
        func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
        print("  " + pad("", 24) + "   prefill/s    decode/s")
        func row(_ name: String, _ t: Throughput) {
          print("  " + pad(name, 24) + String(format: "%12.1f%12.1f", t.prefillTokensPerSecond, t.decodeTokensPerSecond))
        }
        row("graph", result.graphThroughput)
        for (name, t) in result.models { row("model \(name)", t) }
      }
    }
  }
}

enum BenchJSON {
  static func render(_ r: BenchmarkResult) -> String {
    func fmt(_ x: Double) -> String { jsonNumber(x, decimals: 3) }
    let models = r.models.map {
      "{\"name\":\"\($0.name)\",\"prefill_tokens_per_s\":\(fmt($0.throughput.prefillTokensPerSecond)),\"decode_tokens_per_s\":\(fmt($0.throughput.decodeTokensPerSecond))}"
    }.joined(separator: ",")
    return "{\"graph\":\"\(r.graph)\",\"prompt_tokens\":\(r.promptTokens),\"new_tokens\":\(r.newTokens),\"runs\":\(r.runs),"
      + "\"prefill_tokens_per_s\":\(fmt(r.graphThroughput.prefillTokensPerSecond)),\"decode_tokens_per_s\":\(fmt(r.graphThroughput.decodeTokensPerSecond)),"
      + "\"models\":[\(models)]}"
  }
}
