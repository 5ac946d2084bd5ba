// The runtime's vocabulary (requests, results, settings, errors) is EFTAPI's; every user of the
// engine gets it with EFTCore.
@_exported import EFTAPI
import EFTProto
import EFTTokenizer
import Foundation

/// A loaded config: its plugins, open models and compiled graphs. Immutable and shared across
/// threads; every request makes its own sessions.
///
///     let runtime = try Runtime(configPath: "examples/configs/upscale.pbtxt")
///     let result = try runtime.generate(GenerationRequest(prompt: "Tomas lives in")) { event in
///       print(event.text, terminator: "")
///       return true  // false stops the generation
///     }
public final class Runtime: Sendable {
  public let file: ConfigFile
  public let plugins: [String: Plugin]
  public let models: [String: Model]
  /// The models' names in the config's order.
  public let modelOrder: [String]
  /// In config order.
  public let graphs: [CompiledGraph]
  /// The graph used when a request names none (nil when the config has several and names no default).
  public let defaultGraph: String?
  /// Runs the model appends of every request on this runtime in shared steps (batching).
  public let scheduler: StepScheduler

  /// Loads the config at `configPath`: plugins, models, tokenizers; compiles and validates every
  /// graph. `pluginDirectories` are searched (before the config's `plugin_dirs` and the
  /// executable's directory) for plugins declared without a path. `maxBatchTokens` caps the
  /// tokens one scheduler step appends (see `StepScheduler`).
  public init(configPath: String, pluginDirectories: [String] = [], maxBatchTokens: Int = 512) throws {
    let file = try ConfigFile(path: configPath)
    let config = file.config
    self.file = file
    func at(_ name: String) -> String { file.location(ofName: name) }

    // Plugins.
    let locator = PluginLocator(directories: pluginDirectories + config.pluginDirs.map(file.resolve))
    var plugins: [String: Plugin] = [:]
    for p in config.plugins {
      guard !p.name.isEmpty else { throw RuntimeError(.config, .invalidArgument, "\(file.path): a plugin has no name") }
      guard plugins[p.name] == nil else { throw RuntimeError(.config, .invalidArgument, "\(at(p.name))plugin '\(p.name)' is declared twice") }
      do {
        let path = p.path.isEmpty ? try locator.locate(p.name) : file.resolve(p.path)
        plugins[p.name] = try Plugin(path: path)
      } catch let e as RuntimeError {
        throw RuntimeError(e.domain, e.code, "\(at(p.name))\(e.message)")
      }
    }

    // Models, each with its tokenizer (one Tokenizer object per tokenizer file).
    var tokenizers: [String: Tokenizer] = [:]
    var models: [String: Model] = [:]
    for m in config.models {
      guard !m.name.isEmpty else { throw RuntimeError(.config, .invalidArgument, "\(file.path): a model has no name") }
      let here = at(m.name)
      guard models[m.name] == nil else { throw RuntimeError(.config, .invalidArgument, "\(here)model '\(m.name)' is declared twice") }
      guard let plugin = plugins[m.plugin] else {
        throw RuntimeError(.config, .invalidArgument, "\(here)model '\(m.name)': plugin '\(m.plugin)' is not declared (plugins: \(plugins.keys.sorted().joined(separator: ", ")))")
      }
      guard !m.path.isEmpty else { throw RuntimeError(.config, .invalidArgument, "\(here)model '\(m.name)': path is empty") }
      let path = ConfigFile.isLocation(m.path) ? m.path : file.resolve(m.path)
      // The tokenizer defaults to the one beside the model, so the path must exist; with an
      // explicit tokenizer the path is the plugin's to interpret (it need not be a file).
      if m.tokenizer.isEmpty, ConfigFile.isLocation(m.path) {
        throw RuntimeError(.config, .invalidArgument, "\(here)model '\(m.name)': path \(m.path) is a location, not a file, so no tokenizer.json sits beside it; name the model's tokenizer (tokenizer: \"…/tokenizer.json\")")
      }
      guard !m.tokenizer.isEmpty || FileManager.default.fileExists(atPath: path) else {
        throw RuntimeError(.config, .notFound, "\(here)model '\(m.name)': path \(path) does not exist (a relative path is taken from the config's folder)")
      }
      let tokenizerPath = m.tokenizer.isEmpty ? Runtime.defaultTokenizerPath(forModel: path) : file.resolve(m.tokenizer)
      let tokenizer: Tokenizer
      if let cached = tokenizers[tokenizerPath] {
        tokenizer = cached
      } else {
        do {
          tokenizer = try Tokenizer(contentsOf: URL(fileURLWithPath: tokenizerPath))
        } catch {
          throw RuntimeError(.tokenizer, .invalidArgument, "\(here)model '\(m.name)': \(error)")
        }
        tokenizers[tokenizerPath] = tokenizer
      }
      let model: Model
      do {
        model = try Model(name: m.name, plugin: plugin, path: path, options: [UInt8](m.options.value), tokenizer: tokenizer)
      } catch let e as RuntimeError {
        throw RuntimeError(e.domain, e.code, "\(here)\(e.message)")
      }
      // A backend that knows the host's fingerprint of its tokenizer (a remote model does) says
      // so as "eft:HEX"; the tokenizer the config gives it must be that one.
      if model.tokenizerFingerprint.hasPrefix(Tokenizer.fingerprintPrefix), model.tokenizerFingerprint != tokenizer.taggedFingerprint {
        throw RuntimeError(.config, .failedPrecondition, "\(here)model '\(m.name)': its backend runs it with tokenizer \(model.tokenizerFingerprint), but the config gives it \(tokenizerPath) (\(tokenizer.taggedFingerprint)); name the model's own tokenizer.json")
      }
      models[m.name] = model
    }

    (graphs, defaultGraph) = try Runtime.compileGraphs(of: file, models: models)
    self.plugins = plugins
    self.models = models
    self.modelOrder = config.models.map(\.name)
    self.scheduler = StepScheduler(maxBatchTokens: maxBatchTokens)
  }

  /// Compiles every graph of `file` against loaded `models` and picks the default graph: what
  /// loading a config does once its models are open. (The config fuzzer calls it with the models
  /// of a runtime already loaded, so that no input opens files.)
  public static func compileGraphs(of file: ConfigFile, models: [String: Model]) throws -> (graphs: [CompiledGraph], defaultGraph: String?) {
    let config = file.config
    func at(_ name: String) -> String { file.location(ofName: name) }
    guard !config.graphs.isEmpty else { throw RuntimeError(.config, .invalidArgument, "\(file.path): the config declares no graph") }
    let compiler = GraphCompiler(file: file, models: models)
    var graphs: [CompiledGraph] = []
    for g in config.graphs {
      guard !g.name.isEmpty else { throw RuntimeError(.config, .invalidArgument, "\(file.path): a graph has no name") }
      guard !graphs.contains(where: { $0.name == g.name }) else {
        throw RuntimeError(.config, .invalidArgument, "\(at(g.name))graph '\(g.name)' is declared twice")
      }
      graphs.append(try compiler.compile(g))
    }
    guard !config.defaultGraph.isEmpty else { return (graphs, graphs.count == 1 ? graphs[0].name : nil) }
    guard graphs.contains(where: { $0.name == config.defaultGraph }) else {
      throw RuntimeError(.config, .invalidArgument, "\(file.path): default_graph '\(config.defaultGraph)' is not a graph (graphs: \(graphs.map(\.name).joined(separator: ", ")))")
    }
    return (graphs, config.defaultGraph)
  }

  /// `tokenizer.json` beside a model: in `path` when it is a directory, else in its directory.
  static func defaultTokenizerPath(forModel path: String) -> String {
    var isDirectory: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
    let directory = exists && isDirectory.boolValue ? URL(fileURLWithPath: path) : URL(fileURLWithPath: path).deletingLastPathComponent()
    return directory.appendingPathComponent("tokenizer.json").path
  }

  /// The graph called `name`, or the default graph when `name` is nil or empty.
  public func graph(named name: String?) throws -> CompiledGraph {
    guard let wanted = (name?.isEmpty == false ? name : defaultGraph) else {
      throw RuntimeError(.request, .invalidArgument, "\(file.path) declares several graphs and no default_graph; choose one with --graph (graphs: \(graphs.map(\.name).joined(separator: ", ")))")
    }
    guard let g = graphs.first(where: { $0.name == wanted }) else {
      throw RuntimeError(.request, .notFound, "no graph '\(wanted)' in \(file.path) (graphs: \(graphs.map(\.name).joined(separator: ", ")))")
    }
    return g
  }
}
