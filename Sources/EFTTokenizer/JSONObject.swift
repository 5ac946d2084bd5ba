import Foundation

/// An object of tokenizer.json read field by field: a field of the wrong type is an error that
/// names it (`tokenizer.json: pre_tokenizer.add_prefix_space is "yes", expected true or false`),
/// never silently its default. `null` reads as absent.
struct JSONObject {
  let fields: [String: Any]
  /// The file, for messages.
  let source: String
  /// Where the object is in the file: `pre_tokenizer`, `decoder.decoders[1]`.
  let path: String

  init(_ fields: [String: Any], source: String, path: String) {
    self.fields = fields
    self.source = source
    self.path = path
  }

  func error(_ message: String) -> TokenizerError { TokenizerError("\(source): \(message)") }

  /// The path of a field of this object.
  func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

  /// The value at `key`, or nil when absent or null; an error when of another type.
  func optional<T>(_ key: String, as type: T.Type = T.self) throws -> T? {
    guard let value = fields[key], !(value is NSNull) else { return nil }
    guard let typed = value as? T, JSONObject.sameKind(value, T.self) else {
      throw error("\(at(key)) is \(JSONObject.describe(value)), expected \(JSONObject.kind(T.self))")
    }
    return typed
  }

  func value<T>(_ key: String, default fallback: T) throws -> T { try optional(key, as: T.self) ?? fallback }

  func required<T>(_ key: String, as type: T.Type = T.self) throws -> T {
    guard let value = try optional(key, as: type) else { throw error("\(at(key)) is missing") }
    return value
  }

  /// The object at `key`, if any.
  func object(_ key: String) throws -> JSONObject? {
    try optional(key, as: [String: Any].self).map { JSONObject($0, source: source, path: at(key)) }
  }

  /// The list of objects at `key` (empty when absent).
  func objects(_ key: String) throws -> [JSONObject] {
    let list = try value(key, default: [Any]())
    return try list.enumerated().map { i, element in
      guard let fields = element as? [String: Any] else {
        throw error("\(at(key))[\(i)] is \(JSONObject.describe(element)), expected an object")
      }
      return JSONObject(fields, source: source, path: "\(at(key))[\(i)]")
    }
  }

  /// The stage's `type`.
  func type() throws -> String { try required("type", as: String.self) }

  /// JSONSerialization gives numbers and booleans as NSNumber, which Swift casts to Bool and Int
  /// alike: tell them apart (a boolean's NSNumber has objCType "c").
  private static func isBoolean(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }

  private static func sameKind<T>(_ value: Any, _: T.Type) -> Bool {
    guard let number = value as? NSNumber else { return true }
    let isBool = isBoolean(number)
    if T.self == Bool.self { return isBool }
    if T.self == Int.self || T.self == Double.self { return !isBool }
    return true
  }

  private static func kind<T>(_: T.Type) -> String {
    switch T.self {
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    case is Int.Type: return "an integer"
    case is Double.Type: return "a number"
    case is [String: Any].Type: return "an object"
    default: return "a list"
    }
  }

  static func describe(_ value: Any) -> String {
    switch value {
    case let s as String: return "\"\(s.prefix(40))\""
    case let n as NSNumber: return isBoolean(n) ? (n.boolValue ? "true" : "false") : "\(n)"
    case is [String: Any]: return "an object"
    case is [Any]: return "a list"
    default: return "\(value)"
    }
  }
}
