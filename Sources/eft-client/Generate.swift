import ArgumentParser
import EFTCore
import EFTRPC
import Foundation

struct Generate: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate from a graph on the server, streaming the text to stdout (as `eft run`).")

  @OptionGroup var connection: ConnectionOptions
  @OptionGroup var graphOptions: GraphOptions

  @Option(help: "The prompt text.")
  var prompt: String

  @Flag(name: [.customShort("e"), .customLong("escape")], help: "Process escapes in the prompt: \\n, \\t, \\\\.")
  var escape = false

  @Option(help: "Maximum tokens to generate (default: the graph's).")
  var maxTokens: Int32?

  @Option(help: "Random seed; the same seed reproduces a run (and `eft run --seed`).")
  var seed: UInt64?

  @Option(help: "Sampling temperature; 0 is greedy.")
  var temperature: Double?

  @Option(help: "Top-k sampling (0 = off).")
  var topK: Int32?

  @Option(help: "Top-p (nucleus) sampling (0 or 1 = off).")
  var topP: Double?

  @Option(help: "Min-p sampling (0 = off).")
  var minP: Double?

  @Option(help: "Stop when the text contains this string (repeatable).")
  var stop: [String] = []

  @Option(help: "Speculative decoding on or off (default: the graph's).")
  var speculative: Switch?

  @Option(help: "Draft from this node of the graph.")
  var draft: String?

  @Option(help: "Tokens drafted per step (0 turns speculation off).")
  var lookahead: Int32?

  @Flag(inversion: .prefixedNo, help: "Adapt the lookahead to the acceptance (default: the graph's).")
  var adaptiveLookahead: Bool?

  @Flag(name: .shortAndLong, help: "Print statistics (tokens, speed, finish reason) to stderr.")
  var verbose = false

  enum Switch: String, ExpressibleByArgument, CaseIterable { case on, off }

  func request() throws -> Eft_V1_GenerateRequest {
    var r = Eft_V1_GenerateRequest()
    r.graph = graphOptions.graph
    r.prompt = escape ? unescape(prompt) : prompt
    r.parameters = try graphOptions.parameters()
    if let maxTokens { r.sampling.maxTokens = maxTokens }
    if let seed { r.sampling.seed = seed }
    if let temperature { r.sampling.temperature = temperature }
    if let topK { r.sampling.topK = topK }
    if let topP { r.sampling.topP = topP }
    if let minP { r.sampling.minP = minP }
    r.sampling.stop = stop
    if let speculative { r.speculation.enabled = speculative == .on }
    if let draft { r.speculation.draft = draft }
    if let lookahead { r.speculation.lookahead = lookahead }
    if let adaptiveLookahead { r.speculation.adaptive = adaptiveLookahead }
    return r
  }

  func run() async throws {
    let request = try request()
    let finish = try await connection.withClient { client in
      try await client.generate(request, options: connection.callOptions) { response in
        var finish: Eft_V1_Finish?
        for try await message in response.messages {
          switch message.event {
          case .token(let token):
            if !token.text.isEmpty { write(token.text) }
          case .finish(let f):
            finish = f
          case .start, nil:
            break
          }
        }
        return finish
      }
    }
    write("\n")
    if verbose, let f = finish {
      let reasons: [Eft_V1_FinishReason: FinishReason] = [.eos: .eos, .stop: .stop, .length: .length, .context: .context]
      let stats = DecodeStats(steps: Int(f.stats.steps), drafted: Int(f.stats.drafted), accepted: Int(f.stats.accepted),
                              modelCalls: Int(f.stats.modelCalls))
      let lines = Report.generationSummary(
        tokens: Int(f.completionTokens), finish: reasons[f.reason]?.rawValue ?? "\(f.reason)",
        promptTokens: f.promptTokens.map(Int.init), prefillSeconds: f.prefillSeconds, decodeSeconds: f.decodeSeconds,
        stats: stats, speculation: f.hasSpeculation ? (f.speculation.draft, Int(f.speculation.lookahead), f.speculation.adaptive) : nil)
      for line in lines { write(line + "\n", to: .standardError) }
    }
  }
}
