import ArgumentParser
import EFTCore
import Foundation

struct BackendCheck: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "backend-check",
    abstract: "Check that a backend plugin keeps the ABI's promises: version and table, describe(), incremental = batched logits, truncate, independent sessions, refusal of bad input.")

  @Argument(help: "The plugin library (lib<Name>.so).")
  var plugin: String

  @Option(help: "A model the backend opens (file or directory); without it only loading is checked.")
  var model: String?

  @Option(help: "A file holding the backend options in text format, e.g. [type.googleapis.com/eft.v1.NGramOptions] { discount: 0.5 }.")
  var options: String?

  @Option(help: "Largest relative difference tolerated between logits that must agree.")
  var tolerance: Float = 1e-4

  func run() throws {
    try reportingErrors {
      var bytes: [UInt8] = []
      if let options {
        guard let data = FileManager.default.contents(atPath: options) else { throw RuntimeError(.request, .notFound, "\(options): cannot read") }
        bytes = try ConfigFile.backendOptions(text: String(decoding: data, as: UTF8.self), path: options)
      }
      var checker = BackendChecker(pluginPath: plugin, modelPath: model, options: bytes)
      checker.tolerance = tolerance
      let checks = checker.run()
      for c in checks { print("\(c.passed ? "PASS" : "FAIL")  \(c.name): \(c.detail)") }
      let failed = checks.filter { !$0.passed }.count
      print(failed == 0 ? "\(plugin): all \(checks.count) checks passed" + (model == nil ? " (no --model: loading only)" : "")
                        : "\(plugin): \(failed) of \(checks.count) checks failed")
      if failed > 0 { throw ExitCode(1) }
    }
  }
}
