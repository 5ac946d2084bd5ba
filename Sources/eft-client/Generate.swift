import ArgumentParser
import EFTAPI
import EFTCommandLine
import EFTRPC
import EFTWire
import Foundation
import GRPCCore

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
    let result = try await connection.withClient { client in
      try await client.generate(request, options: connection.callOptions) { response in
        var tokens: [Int32] = []
        var text = ""
        for try await message in response.messages {
          switch message.event {
          case .token(let token):
            if trace, !token.nodeLogProbs.isEmpty {
              write(Report.traceLine(token: token.id, piece: token.piece, logProb: token.logProb, nodeValues: token.nodeLogProbs) + "\n", to: .standardError)
            }
            if token.id >= 0 { tokens.append(token.id) }
            text += token.text
            if !token.text.isEmpty { write(token.text) }
          case .finish(let finish):
            return try GenerationResult(finish, tokens: tokens, text: text)
          case .start(let start):
            if trace { write(Report.traceHeader(nodes: start.nodeNames) + "\n", to: .standardError) }
          case nil:
            break
          }
        }
        throw RPCError(code: .dataLoss, message: "the server ended the stream without a finish message")
      }
    }
    write("\n")
    if report.verbose {
      for line in Report.generationSummary(result) { write(line + "\n", to: .standardError) }
    }
  }
}
