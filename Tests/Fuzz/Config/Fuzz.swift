// Fuzzes the config text format and the graph compiler: any text is either a config whose
// graphs compile against the bundled tiny models, or a RuntimeError with a message; never a
// crash. The models are those of examples/configs/upscale.pbtxt, loaded once, also under the
// names the other example configs use (so that those, the seeds, compile); inputs name models
// but open no file.
import EFTCore
import EFTFuzzSupport
import Foundation

let models = setUp("examples/configs/upscale.pbtxt") {
  var models = try Runtime(configPath: "examples/configs/upscale.pbtxt", pluginDirectories: [pluginDirectory]).models
  for (alias, model) in [("a", "small_base"), ("b", "small_ft"), ("amateur", "small_base"), ("anti", "small_ft"),
                         ("expert", "large_base"), ("large_ft", "large_base"), ("lm", "large_base"),
                         ("market", "small_base"), ("small_chat", "small_ft"), ("small_terse", "small_base")] {
    models[alias] = models[model]
  }
  return models
}

func one(_ data: Data) {
  guard let text = String(data: data, encoding: .utf8) else { return }
  do {
    let file = try ConfigFile(text: text, path: "fuzz.pbtxt")
    let (graphs, defaultGraph) = try Runtime.compileGraphs(of: file, models: models)
    require(!graphs.isEmpty, "a config compiled to no graph")
    require(defaultGraph == nil || graphs.contains { $0.name == defaultGraph }, "default graph \(defaultGraph ?? "") is not a graph")
    outcome("compiled \(graphs.count) graphs")
  } catch let error as RuntimeError {
    require(!error.message.isEmpty, "an error without a message")
    outcome("error: \(error.message)")
  } catch {
    require(false, "an error that is not a RuntimeError: \(error)")
  }
}

@main struct Main { static func main() { fuzzMain(one) } }
