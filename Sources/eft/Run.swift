import ArgumentParser
import EFTCommandLine
import EFTCore
import Foundation

struct Run: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate from a graph, streaming the generated text to stdout (diagnostics go to stderr).")

  @OptionGroup var options: ConfigOptions
  @OptionGroup var graphOptions: GraphOptions
  @OptionGroup var generation: GenerationOptions
  @OptionGroup(title: "Speculative decoding") var speculation: SpeculationOptions

  @OptionGroup var report: ReportOptions

  func run() throws {
    try reportingErrors {
      let runtime = try options.load()
      var request = try generation.request(graphOptions, speculation)
      request.returnNodeValues = report.trace
      let graph = try runtime.graph(named: graphOptions.graph)
      if report.trace { writeError(Report.traceHeader(nodes: graph.nodeNames)) }
      let result = try runtime.generate(request) { event in
        if report.trace, let values = event.nodeValues {
          writeError(Report.traceLine(token: event.token, piece: graph.tokenizer.decode([event.token]), logProb: event.logProb, nodeValues: values))
        }
        if !event.text.isEmpty {
          FileHandle.standardOutput.write(Data(event.text.utf8))
        }
        return true
      }
      FileHandle.standardOutput.write(Data("\n".utf8))
      if report.verbose {
        for line in Report.generationSummary(result) { writeError(line) }
      }
    }
  }
}
