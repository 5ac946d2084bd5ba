import EFTProto
import Foundation
import SwiftProtobuf

/// A config file read from disk: the decoded message, and enough of the text to say on which
/// line something is. swift-protobuf's text-format errors carry no position, so on failure the
/// failing line is found by decoding ever longer prefixes of the file (each closed with the
/// brackets still open) until one fails: the last line of that prefix is the culprit.
public struct ConfigFile: Sendable {
  /// The file's path as given.
  public let path: String
  /// The directory relative paths in the config are resolved against.
  public let directory: URL
  public let config: Eft_V1_Config
  let lines: [Substring]

  /// Reads and decodes `path`.
  public init(path: String) throws {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw RuntimeError(.config, .notFound, "\(path): cannot read the config file")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw RuntimeError(.config, .invalidArgument, "\(path): the config file is not UTF-8 text")
    }
    try self.init(text: text, path: path)
  }

  /// Decodes `text` as if read from `path`.
  public init(text: String, path: String) throws {
    ConfigFile.registerOptionTypes
    self.path = path
    self.directory = URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL
    self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    do {
      self.config = try Eft_V1_Config(textFormatString: text)
    } catch {
      throw ConfigFile.locate(error, text: text, lines: lines, path: path)
    }
  }

  /// The options messages shipped with the runtime, so `[type.googleapis.com/…] { … }` parses.
  static let optionTypes: [any Message.Type] = [Eft_V1_BigramOptions.self, Eft_V1_TransformerOptions.self, Eft_V1_NGramOptions.self, Eft_V1_RemoteOptions.self]
  private static let registerOptionTypes: Void = {
    for type in optionTypes { Google_Protobuf_Any.register(messageType: type) }
  }()

  /// What to say about typed options of a message eft does not know (`[type.googleapis.com/X]
  /// { … }` in `text`), or nil when every typed name is known.
  static func unknownOptionsType(in text: Substring) -> String? {
    let known = Set(optionTypes.map { $0.protoMessageName })
    var rest = text[...]
    while let open = rest.range(of: "[type.googleapis.com/") {
      guard let close = rest[open.upperBound...].firstIndex(of: "]") else { return nil }
      let name = String(rest[open.upperBound..<close]).trimmingCharacters(in: .whitespaces)
      if !known.contains(name) {
        return "options of type \(name): eft reads typed options only of its own backends' messages (\(known.sorted().joined(separator: ", "))); for another message give its serialized bytes, `type_url: \"type.googleapis.com/\(name)\" value: \"…\"` (e.g. from `protoc --encode=\(name) FILE.proto`)"
      }
      rest = rest[close...]
    }
    return nil
  }

  /// The serialized `value` of backend options written as a model's `options` field is:
  /// `[type.googleapis.com/eft.v1.NGramOptions] { discount: 0.5 }`, or `type_url`/`value`.
  public static func backendOptions(text: String, path: String) throws -> [UInt8] {
    _ = registerOptionTypes
    do {
      return [UInt8](try Google_Protobuf_Any(textFormatString: text).value)
    } catch {
      if let unknown = unknownOptionsType(in: text[...]) { throw RuntimeError(.config, .invalidArgument, "\(path): \(unknown)") }
      throw RuntimeError(.config, .invalidArgument, "\(path): not backend options in text format (\(error))")
    }
  }

  /// Resolves a path from the config against the config's directory.
  /// Whether a model path is a location with a scheme (`tcp:HOST:PORT`, `unix:PATH`, …) rather
  /// than a file: such paths reach the backend unchanged.
  public static func isLocation(_ path: String) -> Bool {
    guard let colon = path.firstIndex(of: ":"), colon != path.startIndex else { return false }
    let scheme = path[..<colon]
    return scheme.first!.isLetter && scheme.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+.-".contains($0)) }
  }

  public func resolve(_ relative: String) -> String {
    if relative.hasPrefix("/") { return relative }
    return directory.appendingPathComponent(relative).standardizedFileURL.path
  }

  /// "file:line: " for the first line at or after `after` holding `name: "value"`, else "file: ".
  public func location(ofName value: String, after: Int = 0) -> String {
    guard let line = line(ofName: value, after: after) else { return "\(path): " }
    return "\(path):\(line): "
  }

  /// The 1-based line of the first `name: "value"` at or after line `after`.
  public func line(ofName value: String, after: Int = 0) -> Int? {
    let needle = "\"\(value)\""
    for (i, line) in lines.enumerated() where i + 1 >= after {
      let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
      guard let range = code.range(of: needle) else { continue }
      let before = code[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
      if before.hasSuffix("name:") || before.hasSuffix("name :") { return i + 1 }
    }
    return nil
  }

  // MARK: - Locating a text-format error

  static func locate(_ error: any Error, text: String, lines: [Substring], path: String) -> RuntimeError {
    let what = describe(error)
    var opened: [Character] = []
    for k in lines.indices {
      let before = opened
      opened = scan(lines[k], startingWith: opened).opened
      let prefix = lines[...k].joined(separator: "\n") + "\n" + opened.reversed().map(closing).joined()
      if (try? Eft_V1_Config(textFormatString: prefix)) == nil {
        let shown = lines[k].trimmingCharacters(in: .whitespaces)
        var message = "\(path):\(k + 1): \(what)"
        if let unknown = unknownOptionsType(in: lines[k]) {
          message = "\(path):\(k + 1): \(unknown)"
        } else if case TextFormatDecodingError.unknownField = error,
           let field = unknownField(in: lines[k], after: lines[..<k].joined(separator: "\n"), opened: before) {
          message = "\(path):\(k + 1): unknown field '\(field.name)'" + (field.inside.map { " inside '\($0) { … }'" } ?? "")
        }
        return RuntimeError(.config, .invalidArgument, "\(message): \(shown)")
      }
    }
    return RuntimeError(.config, .invalidArgument, "\(path):\(lines.count): \(what) (at the end of the file: an unclosed '{'?)")
  }

  /// The field of `line` that the decoder does not know, when the lines before it decode: the
  /// first field name on the line whose inclusion makes the text fail (fields are tried cut
  /// just before each following field, brackets closed), with the field whose `{` encloses it
  /// when that opened on this line. So `plausibility { alpah: 0.1 }` blames `alpah` inside
  /// `plausibility`, not the line's first name.
  static func unknownField(in line: Substring, after previous: String, opened: [Character]) -> (name: String, inside: String?)? {
    let scanned = scan(line, startingWith: opened)
    let fields = scanned.fields
    guard !fields.isEmpty else { return nil }
    for (i, field) in fields.enumerated() {
      // Cut just before the next field: the brackets open there are the ones that field saw.
      let (end, stack) = i + 1 < fields.count ? (fields[i + 1].offset, fields[i + 1].opened) : (line.count, scanned.opened)
      let text = previous + "\n" + line.prefix(end) + "\n" + stack.reversed().map(closing).joined()
      if (try? Eft_V1_Config(textFormatString: text)) == nil { return (field.name, field.inside) }
    }
    return (fields[0].name, fields[0].inside)
  }

  private static func closing(_ open: Character) -> String { open == "<" ? ">" : (open == "[" ? "]" : "}") }

  /// A field name on a line: where it starts, the name whose bracket encloses it (when that
  /// opened on this line) and the brackets open at its start.
  struct ScannedField {
    let offset: Int
    let name: String
    let inside: String?
    let opened: [Character]
  }

  /// Scans a line of text format, skipping strings and comments: the brackets open after it
  /// (starting from those open before it) and its field names (identifiers followed by `:`,
  /// `{` or `<`).
  static func scan(_ line: Substring, startingWith stack: [Character]) -> (opened: [Character], fields: [ScannedField]) {
    var fields: [ScannedField] = []
    var opened = stack
    var names: [String?] = stack.map { _ in nil }  // beside `opened`: nil if opened on an earlier line
    var lastName: String? = nil
    let chars = Array(line)
    var i = 0
    while i < chars.count {
      let c = chars[i]
      if c == "\"" || c == "'" {
        i += 1
        while i < chars.count, chars[i] != c { i += chars[i] == "\\" ? 2 : 1 }
        i += 1
        lastName = nil
        continue
      }
      if c == "#" { break }
      if c.isLetter || c == "_" {
        let start = i
        while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" { i += 1 }
        let name = String(chars[start..<i])
        var j = i
        while j < chars.count, chars[j] == " " || chars[j] == "\t" { j += 1 }
        if j < chars.count, [":", "{", "<"].contains(chars[j]) {
          fields.append(ScannedField(offset: start, name: name, inside: names.last ?? nil, opened: opened))
          lastName = name
        } else {
          lastName = nil
        }
        continue
      }
      switch c {
      case "{", "<", "[":
        opened.append(c)
        names.append(c == "[" ? nil : lastName)
      case "}", ">", "]":
        if !opened.isEmpty {
          opened.removeLast()
          names.removeLast()
        }
      default: break
      }
      if c != " " && c != "\t" && c != ":" { lastName = nil }
      i += 1
    }
    return (opened, fields)
  }

  static func describe(_ error: any Error) -> String {
    guard let e = error as? TextFormatDecodingError else { return "\(error)" }
    switch e {
    case .malformedText: return "syntax error"
    case .malformedNumber: return "malformed number"
    case .trailingGarbage: return "unexpected text after the end of the config"
    case .truncated: return "the file ends in the middle of a value"
    case .invalidUTF8: return "invalid UTF-8 in a string"
    case .unknownField: return "unknown field"
    case .unrecognizedEnumValue: return "unknown enum value"
    case .conflictingOneOf: return "two operators set in one node (a node holds exactly one of model, linear, normalize, …)"
    case .missingFieldNames: return "field names are required"
    case .messageDepthLimit: return "nested too deeply"
    default: return "\(e)"
    }
  }
}
