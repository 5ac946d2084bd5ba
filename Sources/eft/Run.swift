import ArgumentParser
import EFTCore
import Foundation

struct Run: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate from a graph, streaming the generated text to stdout (diagnostics go to stderr).")

  @OptionGroup var options: ConfigOptions
  @OptionGroup var graphOptions: GraphOptions
  @OptionGroup(title: "Speculative decoding") var speculation: SpeculationOptions

  @Option(help: "The prompt text.")
  var prompt: String

  @Flag(name: [.customShort("e"), .customLong("escape")], help: "Process escapes in the prompt: \\n, \\t, \\\\ (as llama.cpp's -e), to type chat formats on one line.")
  var escape = false

  @Option(help: "Maximum tokens to generate (default: the graph's, else 256).")
  var maxTokens: Int?

  @Option(help: "Random seed; the same seed reproduces a run.")
  var seed: UInt64?

  @Option(help: "Sampling temperature; 0 is greedy.")
  var temperature: Double?

  @Option(help: "Top-k sampling (0 = off).")
  var topK: Int?

  @Option(help: "Top-p (nucleus) sampling (0 or 1 = off).")
  var topP: Double?

  @Option(help: "Min-p sampling (0 = off).")
  var minP: Double?

  @Option(help: "Stop when the text contains this string (repeatable).")
  var stop: [String] = []

  @Flag(name: .shortAndLong, help: "Print statistics (tokens, speed, finish reason) to stderr.")
  var verbose = false

  @Flag(help: "Print, per generated token, its id, text, log-prob and every node's value at it to stderr.")
  var trace = false

  func run() throws {
    try reportingErrors {
      let runtime = try options.load()
      var request = GenerationRequest(graph: graphOptions.graph, prompt: escape ? unescape(prompt) : prompt)
      request.parameters = try graphOptions.parameters()
      request.maxTokens = maxTokens
      request.seed = seed
      request.temperature = temperature
      request.topK = topK
      request.topP = topP
      request.minP = minP
      request.returnNodeValues = trace
      speculation.apply(to: &request)
      if !stop.isEmpty { request.stop = stop }
      let graph = try runtime.graph(named: graphOptions.graph)
      if trace { writeError("token  text  logprob  " + graph.nodeNames.joined(separator: "  ")) }
      let result = try runtime.generate(request) { event in
        if trace, let values = event.nodeValues {
          let piece = graph.tokenizer.decode([event.token])
          writeError("\(event.token)  \(String(reflecting: piece))  " + ([event.logProb] + values).map { String(format: "%.4f", $0) }.joined(separator: "  "))
        }
        if !event.text.isEmpty {
          FileHandle.standardOutput.write(Data(event.text.utf8))
        }
        return true
      }
      FileHandle.standardOutput.write(Data("\n".utf8))
      if verbose {
        for line in Report.generationSummary(result) { writeError(line) }
      }
    }
  }
}
