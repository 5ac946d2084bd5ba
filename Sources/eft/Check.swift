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
      func eos(_ m: Model) -> String { m.eosTokenIDs.isEmpty ? "none" : m.eosTokenIDs.map { "\($0)" }.joined(separator: " ") }
      for name in runtime.models.keys.sorted() {
        let m = runtime.models[name]!
        print("model \(name): \(m.architecture) via \(m.plugin.name), \(m.vocabSize) output rows, tokenizer \(m.tokenizer.vocabSize) tokens (\(m.tokenizer.fingerprint)), context \(m.contextLength), EOS \(eos(m))")
      }
      for graph in runtime.graphs {
        print(GraphSummary(graph).render(isDefault: graph.name == runtime.defaultGraph))
        // Any model's EOS ends a generation under the graph: say so when two models name
        // different ones (a model with none, such as a non-language-model backend, is fine).
        let ids = Set(graph.models.map { Set($0.eosTokenIDs) }.filter { !$0.isEmpty })
        if ids.count > 1 {
          let each = graph.models.map { "\($0.name) \(eos($0))" }.joined(separator: ", ")
          writeError("eft check: warning: graph \(graph.name): its models disagree on EOS (\(each)); any of them ends a generation. A model that is not a language model should report none (eos_token_id -1).")
        }
      }
    }
  }
}
