import ArgumentParser
import EFTCore
import Foundation

@main
struct EFT: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eft",
    abstract: "Compose language models at decoding time (EFT up-scaling, proxy-tuning, contrastive decoding, ensembles).",
    subcommands: [Check.self, Run.self, Score.self, Eval.self, Bench.self, Tokenize.self, BackendCheck.self])
}

/// Options every command that loads a config shares.
struct ConfigOptions: ParsableArguments {
  @Argument(help: "The config file (.pbtxt).")
  var config: String

  @Option(name: .customLong("plugin-dir"), help: "A directory to search for plugins (repeatable; searched before the config's plugin_dirs and the executable's directory).")
  var pluginDirs: [String] = []

  func load() throws -> Runtime {
    try Runtime(configPath: config, pluginDirectories: pluginDirs)
  }
}

/// Graph selection and parameter overrides.
struct GraphOptions: ParsableArguments {
  @Option(help: "The graph to use (default: the config's default graph, or its only graph).")
  var graph: String?

  @Option(name: .customLong("set"), help: ArgumentHelp("Override a graph parameter, e.g. --set beta=0.5 (repeatable).", valueName: "name=value"))
  var assignments: [String] = []

  func parameters() throws -> [String: Double] { try parseAssignments(assignments) }
}

/// Speculative decoding overrides.
struct SpeculationOptions: ParsableArguments {
  enum Switch: String, ExpressibleByArgument, CaseIterable { case on, off }

  @Option(help: "Speculative decoding on or off (default: the graph's speculative section).")
  var speculative: Switch?

  @Option(help: "Draft from this node of the graph (turns speculation on unless --speculative off).")
  var draft: String?

  @Option(help: "Tokens drafted per step (0 turns speculation off).")
  var lookahead: Int?

  @Flag(inversion: .prefixedNo, help: "Adapt the lookahead to the acceptance (default: the graph's).")
  var adaptiveLookahead: Bool?

  func apply(to request: inout GenerationRequest) {
    request.speculative = speculative.map { $0 == .on }
    request.draft = draft
    request.lookahead = lookahead
    request.adaptiveLookahead = adaptiveLookahead
  }
}

/// Runs a command body, turning runtime errors into one readable line and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as RuntimeError {
    FileHandle.standardError.write(Data("eft: error: \(error.message)\n".utf8))
    throw ExitCode(1)
  }
}

func writeError(_ text: String) {
  FileHandle.standardError.write(Data((text + "\n").utf8))
}
