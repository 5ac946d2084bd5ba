import ArgumentParser
import EFTAPI
import EFTCommandLine
import EFTRPC
import EFTWire
import Foundation

struct Score: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Log-likelihood of a continuation given a prompt under a graph (as `eft score`).")

  @OptionGroup var connection: ConnectionOptions
  @OptionGroup var graphOptions: GraphOptions

  @OptionGroup var scoring: ScoreOptions

  func run() async throws {
    var request = Eft_V1_ScoreRequest()
    request.graph = graphOptions.graph ?? ""
    (request.prompt, request.continuation) = scoring.texts
    request.parameters = try graphOptions.parameters()
    let response = try await connection.withClient { try await $0.score(request, options: connection.callOptions) }
    let result = ScoreResult(response)
    if scoring.json {
      print(Report.scoreJSON(result))
    } else {
      for line in Report.scoreTable(result, pieces: response.pieces) { print(line) }
    }
  }
}

struct Tokenize: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print the token ids of each line of a text file (or stdin) with a graph's tokenizer (as `eft tokenize`).")

  @OptionGroup var connection: ConnectionOptions

  @Option(help: "Whose tokenizer (default: the default graph's).")
  var graph = ""

  @Flag(help: "Add the tokenizer's special tokens (e.g. BOS).")
  var addSpecialTokens = false

  @Argument(help: "The text file (default: stdin).")
  var file: String?

  func run() async throws {
    let data: Data
    if let file {
      guard let d = FileManager.default.contents(atPath: file) else { throw ValidationError("\(file): cannot read") }
      data = d
    } else {
      data = FileHandle.standardInput.readDataToEndOfFile()
    }
    let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    try await connection.withClient { client in
      for line in lines {
        var request = Eft_V1_TokenizeRequest()
        request.graph = graph
        request.text = String(line)
        request.addSpecialTokens = addSpecialTokens
        let ids = try await client.tokenize(request, options: connection.callOptions).ids
        print(ids.map(String.init).joined(separator: " "))
      }
    }
  }
}

struct Detokenize: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Print the text of token ids.")

  @OptionGroup var connection: ConnectionOptions

  @Option(help: "Whose tokenizer (default: the default graph's).")
  var graph = ""

  @Flag(help: "Leave out special tokens (BOS, EOS, …).")
  var skipSpecialTokens = false

  @Argument(help: "Token ids.")
  var ids: [Int32]

  func run() async throws {
    var request = Eft_V1_DetokenizeRequest()
    request.graph = graph
    request.ids = ids
    request.skipSpecialTokens = skipSpecialTokens
    let text = try await connection.withClient { try await $0.detokenize(request, options: connection.callOptions).text }
    print(text)
  }
}

struct Graphs: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Describe the server's graphs (as the graph part of `eft check`), or one graph.")

  @OptionGroup var connection: ConnectionOptions

  @Argument(help: "One graph to describe (default: all).")
  var name: String?

  func run() async throws {
    let (graphs, defaultGraph) = try await connection.withClient { client in
      if let name {
        var request = Eft_V1_DescribeGraphRequest()
        request.name = name
        return ([try await client.describeGraph(request, options: connection.callOptions)], "")
      }
      let list = try await client.listGraphs(Eft_V1_ListGraphsRequest(), options: connection.callOptions)
      return (list.graphs, list.defaultGraph)
    }
    for g in graphs {
      print(GraphSummary(g).render(isDefault: g.name == defaultGraph))
    }
  }
}

struct Health: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Ask the server's grpc.health.v1 service; exit 0 when SERVING.")

  @OptionGroup var connection: ConnectionOptions

  @Option(help: "The service to ask about (\"\" is the server as a whole).")
  var service = ""

  func run() async throws {
    var request = Grpc_Health_V1_HealthCheckRequest()
    request.service = service
    let status = try await connection.withHealthClient { try await $0.check(request, options: connection.callOptions).status }
    print(status == .serving ? "SERVING" : status == .notServing ? "NOT_SERVING" : "\(status)")
    if status != .serving { throw ExitCode(1) }
  }
}
