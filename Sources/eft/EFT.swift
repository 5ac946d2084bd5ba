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

/// Runs a command body, turning runtime errors into one readable line and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as RuntimeError {
    FileHandle.standardError.write(Data("eft: error: \(error.message)\n".utf8))
    throw ExitCode(1)
  }
}

extension ConfigOptions {
  /// The runtime of the config.
  func load() throws -> Runtime {
    try Runtime(configPath: config, pluginDirectories: pluginDirs)
  }
}

func writeError(_ text: String) {
  FileHandle.standardError.write(Data((text + "\n").utf8))
}
