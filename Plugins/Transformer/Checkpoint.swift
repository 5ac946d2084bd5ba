import EFTPluginKit
import Foundation

/// A Hugging Face model directory: `config.json`, the weights (`model.safetensors`, or shards
/// listed in `model.safetensors.index.json`) and optionally `generation_config.json`.
final class Checkpoint: @unchecked Sendable {
  let directory: URL
  let config: [String: Any]
  let generationConfig: [String: Any]
  private let files: [SafeTensorsFile]
  private let tensors: [String: (file: Int, entry: SafeTensorsFile.Entry)]

  init(directory path: String) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw BackendError(EFT_NOT_FOUND, "\(path): no such model directory")
    }
    guard isDirectory.boolValue else {
      throw BackendError(EFT_INVALID_ARGUMENT, "\(path): expected a Hugging Face model directory (config.json + *.safetensors), got a file")
    }
    directory = URL(fileURLWithPath: path)
    config = try Checkpoint.json(directory.appendingPathComponent("config.json"), required: true)
    generationConfig = try Checkpoint.json(directory.appendingPathComponent("generation_config.json"), required: false)

    let single = directory.appendingPathComponent("model.safetensors").path
    let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
    var shardNames: [String]
    var expected: [String: String] = [:]
    if FileManager.default.fileExists(atPath: indexURL.path) {
      let index = try Checkpoint.json(indexURL, required: true)
      guard let map = index["weight_map"] as? [String: String] else {
        throw BackendError(EFT_DATA_LOSS, "\(indexURL.path): no weight_map object")
      }
      expected = map
      shardNames = Array(Set(map.values)).sorted()
    } else if FileManager.default.fileExists(atPath: single) {
      shardNames = ["model.safetensors"]
    } else {
      throw BackendError(EFT_NOT_FOUND, "\(path): neither model.safetensors nor model.safetensors.index.json")
    }
    var files: [SafeTensorsFile] = []
    var tensors: [String: (Int, SafeTensorsFile.Entry)] = [:]
    for name in shardNames {
      let file = try SafeTensorsFile(path: directory.appendingPathComponent(name).path)
      for (tensor, entry) in file.entries { tensors[tensor] = (files.count, entry) }
      files.append(file)
    }
    for (tensor, shard) in expected.sorted(by: { $0.key < $1.key }) where tensors[tensor] == nil {
      throw BackendError(EFT_DATA_LOSS, "\(path): tensor '\(tensor)' is listed in the index under \(shard) but that file does not hold it")
    }
    self.files = files
    self.tensors = tensors
  }

  static func json(_ url: URL, required: Bool) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: url.path) else {
      if required { throw BackendError(EFT_NOT_FOUND, "\(url.path): missing") }
      return [:]
    }
    guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw BackendError(EFT_DATA_LOSS, "\(url.path): not a JSON object")
    }
    return object
  }

  func has(_ name: String) -> Bool { tensors[name] != nil }

  /// The tensor `name`, checked to have `shape` (1-D shapes give a 1 × n weight).
  func weight(_ name: String, shape: [Int]) throws -> Weight {
    guard let (file, entry) = tensors[name] else {
      throw BackendError(EFT_DATA_LOSS, "\(directory.path): missing tensor '\(name)'")
    }
    guard entry.shape == shape else {
      throw BackendError(EFT_DATA_LOSS, "\(directory.path): tensor '\(name)' has shape \(entry.shape), expected \(shape) from config.json")
    }
    let rows = shape.count == 2 ? shape[0] : 1
    let cols = shape.last ?? 1
    return Weight(dtype: entry.dtype, rows: rows, cols: cols, data: files[file].pointer(entry), owner: files[file])
  }

  /// A 1-D tensor as Floats (norm weights, biases).
  func vector(_ name: String, count: Int) throws -> [Float] { try weight(name, shape: [count]).floats() }


  // MARK: config.json

  /// config.json decoded into an architecture's typed config (its CodingKeys are the JSON names), every type
  /// error named by its field: `…/config.json: 'num_attention_heads': expected Int, found a string`.
  func decodeConfig<T: Decodable>(_ type: T.Type) throws -> T {
    let url = directory.appendingPathComponent("config.json")
    guard let data = FileManager.default.contents(atPath: url.path) else { throw BackendError(EFT_NOT_FOUND, "\(url.path): missing") }
    let decoder = JSONDecoder()
    do {
      return try decoder.decode(T.self, from: data)
    } catch let error as DecodingError {
      throw BackendError(EFT_DATA_LOSS, "\(url.path): \(ConfigCheck.describe(error))")
    }
  }

  /// BOS/EOS ids: generation_config.json's, else config.json's; one id or a list (Llama-3-Instruct
  /// lists three EOS ids), without repeats. Ids that are not Int32s ≥ 0 (a crafted file) are dropped.
  func tokenIDs(_ key: String) -> [Int32] {
    for source in [generationConfig, config] {
      guard let value = source[key], !(value is NSNull) else { continue }
      let numbers = (value as? [NSNumber]) ?? (value as? NSNumber).map { [$0] } ?? []
      var ids: [Int32] = []
      for n in numbers {
        if let id = Int32(exactly: n.int64Value), id >= 0, !ids.contains(id) { ids.append(id) }
      }
      return ids
    }
    return []
  }
}

/// Checks on the fields of a model's config.json, made before any arithmetic uses them: every
/// bad value is an error naming the file and the field.
struct ConfigCheck {
  let file: String

  init(_ checkpoint: Checkpoint) { file = checkpoint.directory.appendingPathComponent("config.json").path }

  /// The largest size a dimension may have (2²⁴): products of two stay far from overflow.
  static let maxDimension = 1 << 24

  func fail(_ field: String, _ message: String) -> BackendError {
    BackendError(EFT_DATA_LOSS, "\(file): '\(field)' \(message)")
  }

  /// A required size: present, positive, at most `maxDimension`.
  func size(_ field: String, _ value: Int?) throws -> Int {
    guard let value else { throw fail(field, "is missing") }
    guard value > 0, value <= Self.maxDimension else { throw fail(field, "is \(value); it must be in 1...\(Self.maxDimension)") }
    return value
  }

  /// A finite number in `range`, or `fallback` when absent.
  func number(_ field: String, _ value: Double?, default fallback: Double, in range: ClosedRange<Double>) throws -> Double {
    let v = value ?? fallback
    guard v.isFinite, range.contains(v) else { throw fail(field, "is \(v); it must be a finite number in \(range.lowerBound)...\(range.upperBound)") }
    return v
  }

  static func describe(_ error: DecodingError) -> String {
    func path(_ context: DecodingError.Context) -> String {
      let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
      return keys.isEmpty ? "the top level" : "'\(keys.joined(separator: "."))'"
    }
    switch error {
    case .typeMismatch(let type, let context): return "\(path(context)): expected \(type) (\(context.debugDescription))"
    case .valueNotFound(let type, let context): return "\(path(context)): expected \(type), found null"
    case .keyNotFound(let key, _): return "'\(key.stringValue)' is missing"
    case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
    @unknown default: return "\(error)"
    }
  }
}
