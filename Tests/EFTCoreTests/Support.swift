@_exported import EFTTestSupport
import Foundation

@testable import EFTCore

let tinyModels = repoRoot.appendingPathComponent("examples/models/tiny")


/// A scratch directory removed at deinit.
final class TemporaryDirectory {
  let url: URL
  init() throws {
    url = FileManager.default.temporaryDirectory.appendingPathComponent("eft-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(at: url) }

  @discardableResult
  func write(_ name: String, _ text: String) throws -> String {
    let path = url.appendingPathComponent(name).path
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }
}

/// A config over the tiny models, with `graphs` spliced in (paths absolute).
func tinyConfig(models: [(String, String)] = [("small_base", "small_base"), ("small_ft", "small_chat"), ("large_base", "large_base")],
                graphs: String, extra: String = "") -> String {
  var text = "plugins { name: \"bigram\" path: \"\(library("BigramBackend"))\" }\n"
  for (name, file) in models {
    text += "models { name: \"\(name)\" plugin: \"bigram\" path: \"\(tinyModels.path)/\(file).bigram\" }\n"
  }
  return text + extra + graphs
}

/// Loads a config text through a temporary file.
func runtime(_ text: String, in dir: TemporaryDirectory? = nil) throws -> Runtime {
  let dir = try dir ?? TemporaryDirectory()
  return try withExtendedLifetime(dir) { try Runtime(configPath: try dir.write("config.pbtxt", text)) }
}

/// The error a throwing expression raises, as a RuntimeError (nil if it does not throw one).
func runtimeError(_ body: () throws -> Void) -> RuntimeError? {
  do {
    try body()
    return nil
  } catch let e as RuntimeError {
    return e
  } catch {
    return RuntimeError(.request, .internal, "unexpected error type: \(error)")
  }
}

/// Double-precision references.
enum Reference {
  static func logSoftmax(_ x: [Double]) -> [Double] {
    let m = x.max() ?? -.infinity
    guard m > -.infinity else { return x.map { _ in -.infinity } }
    let lse = m + log(x.map { exp($0 - m) }.reduce(0, +))
    return x.map { $0 - lse }
  }

  static func softmax(_ x: [Double]) -> [Double] { logSoftmax(x).map { exp($0) } }

  /// A model's log-probabilities after `ids`, from a fresh session.
  static func logProbs(_ model: Model, after ids: [Int32]) throws -> [Double] {
    logSoftmax(try model.makeSession().append(ids).map(Double.init))
  }

  /// log p_eft after `ids` (large_base + β·(small_ft − small_base), renormalised), from the
  /// three models of `runtime` directly.
  static func upscale(_ runtime: Runtime, after ids: [Int32], beta: Double) throws -> [Double] {
    func lp(_ name: String) throws -> [Double] { try logProbs(runtime.models[name]!, after: ids) }
    let large = try lp("large_base"), ft = try lp("small_ft"), base = try lp("small_base")
    return logSoftmax(large.indices.map { large[$0] + beta * (ft[$0] - base[$0]) })
  }
}
