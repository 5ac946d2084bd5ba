import ArgumentParser
import EFTCommandLine
import EFTCore
import EFTRPC
import EFTWire
import EFTWire
import Foundation

struct Generate: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate from a graph on the server, streaming the text to stdout (as `eft run`).")

  @OptionGroup var connection: ConnectionOptions
  @OptionGroup var graphOptions: GraphOptions

  @OptionGroup var generation: GenerationOptions
  @OptionGroup(title: "Speculative decoding") var speculation: SpeculationOptions

  @OptionGroup var report: ReportOptions

  func run() async throws {
    var request = Eft_V1_GenerateRequest(try generation.request(graphOptions, speculation))
    request.returnNodeLogProbs = report.trace
    let trace = report.trace
    let finish = try await connection.withClient { client in
      try await client.generate(request, options: connection.callOptions) { response in
        var finish: Eft_V1_Finish?
        for try await message in response.messages {
          switch message.event {
          case .token(let token):
            if trace, !token.nodeLogProbs.isEmpty {
              write(Report.traceLine(token: token.id, piece: token.piece, logProb: token.logProb, nodeValues: token.nodeLogProbs) + "\n", to: .standardError)
            }
            if !token.text.isEmpty { write(token.text) }
          case .finish(let f):
            finish = f
          case .start(let start):
            if trace { write(Report.traceHeader(nodes: start.nodeNames) + "\n", to: .standardError) }
          case nil:
            break
          }
        }
        return finish
      }
    }
    write("\n")
    if report.verbose, let f = finish {
      let reasons: [Eft_V1_FinishReason: FinishReason] = [.eos: .eos, .stop: .stop, .length: .length, .context: .context]
      let stats = DecodeStats(steps: Int(f.stats.steps), drafted: Int(f.stats.drafted), accepted: Int(f.stats.accepted),
                              modelCalls: Int(f.stats.modelCalls))
      let lines = Report.generationSummary(
        tokens: Int(f.completionTokens), finish: reasons[f.reason]?.rawValue ?? "\(f.reason)",
        promptTokens: f.promptTokens.map(Int.init), prefillSeconds: f.prefillSeconds, decodeSeconds: f.decodeSeconds,
        stats: stats, speculation: f.hasSpeculation ? (f.speculation.draft, Int(f.speculation.lookahead), f.speculation.adaptive) : nil,
        modelSeconds: f.modelSeconds)
      for line in lines { write(line + "\n", to: .standardError) }
    }
  }
}
