import ArgumentParser
import EFTCommandLine
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
