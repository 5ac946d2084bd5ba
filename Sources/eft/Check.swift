import ArgumentParser
import EFTCommandLine
import EFTCore

struct Check: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Load a config (plugins, models, tokenizers), validate every graph and print it.")

  @OptionGroup var options: ConfigOptions

  func run() throws {
    try reportingErrors {
      let runtime = try options.load()
      print("config \(runtime.file.path): ok")
      for name in runtime.plugins.keys.sorted() {
        let p = runtime.plugins[name]!
        print("plugin \(name): \(p.name) \(p.version), ABI \(p.abiMajor).\(p.abiMinor), \(p.path)")
      }
      for name in runtime.models.keys.sorted() {
        let m = runtime.models[name]!
        print("model \(name): \(m.architecture) via \(m.plugin.name), \(m.vocabSize) output rows, tokenizer \(m.tokenizer.vocabSize) tokens (\(m.tokenizer.fingerprint)), context \(m.contextLength)")
      }
      for graph in runtime.graphs {
        print(GraphSummary(graph).render(isDefault: graph.name == runtime.defaultGraph))
      }
    }
  }
}
