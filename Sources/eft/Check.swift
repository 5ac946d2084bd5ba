import ArgumentParser
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
        print(GraphDescription.render(graph, isDefault: graph.name == runtime.defaultGraph))
      }
    }
  }
}

enum GraphDescription {
  static func render(_ graph: CompiledGraph, isDefault: Bool) -> String {
    var lines = ["graph \(graph.name)\(isDefault ? " (default)" : "")\(graph.description.isEmpty ? "" : ": \(graph.description)")"]
    for p in graph.parameters {
      lines.append("  parameter \(p.name) = \(p.defaultValue)\(p.description.isEmpty ? "" : "  — \(p.description)")")
    }
    for (i, name) in graph.nodeNames.enumerated() {
      let marker = name == graph.outputName ? "  ← output" : ""
      lines.append("  \(name) = \(graph.describeNode(i))\(marker)")
    }
    let s = graph.defaults
    lines.append("  sampling: temperature \(s.sampling.temperature), top_k \(s.sampling.topK), top_p \(s.sampling.topP), min_p \(s.sampling.minP), max_tokens \(s.maxTokens), seed \(s.sampling.seed)\(s.stop.isEmpty ? "" : ", stop \(s.stop)")")
    lines.append("  vocabulary \(graph.vocabSize) tokens, context \(graph.contextLength), models: \(graph.models.map(\.name).joined(separator: ", "))")
    return lines.joined(separator: "\n")
  }
}
