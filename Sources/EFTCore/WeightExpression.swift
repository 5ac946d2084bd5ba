/// A linear weight written as arithmetic over graph parameters: numbers, names, + − * /,
/// unary minus and parentheses ("beta", "-beta", "1 - lambda", "0.5 * (1 + beta)").
indirect enum WeightExpression: Sendable, Equatable {
  case number(Double)
  case parameter(String)
  case negate(WeightExpression)
  case binary(Character, WeightExpression, WeightExpression)

  /// Parses `text`; the error says what was expected and at which character.
  static func parse(_ text: String) throws(ParseError) -> WeightExpression {
    var parser = Parser(chars: Array(text))
    let e = try parser.sum()
    parser.skipSpaces()
    guard parser.pos == parser.chars.count else { throw parser.error("unexpected '\(parser.chars[parser.pos])'") }
    return e
  }

  /// Every parameter name used.
  var parameters: Set<String> {
    switch self {
    case .number: return []
    case .parameter(let name): return [name]
    case .negate(let e): return e.parameters
    case .binary(_, let a, let b): return a.parameters.union(b.parameters)
    }
  }

  /// The value, given every parameter's value (all must be present: checked when compiling).
  func evaluate(_ values: [String: Double]) -> Double {
    switch self {
    case .number(let v): return v
    case .parameter(let name): return values[name] ?? .nan
    case .negate(let e): return -e.evaluate(values)
    case .binary(let op, let a, let b):
      let x = a.evaluate(values), y = b.evaluate(values)
      switch op {
      case "+": return x + y
      case "-": return x - y
      case "*": return x * y
      default: return x / y
      }
    }
  }

  struct ParseError: Error {
    let message: String
  }

  private struct Parser {
    let chars: [Character]
    var pos = 0

    func error(_ what: String) -> ParseError { ParseError(message: "\(what) at character \(pos + 1)") }

    mutating func skipSpaces() {
      while pos < chars.count, chars[pos].isWhitespace { pos += 1 }
    }

    mutating func peek() -> Character? {
      skipSpaces()
      return pos < chars.count ? chars[pos] : nil
    }

    mutating func sum() throws(ParseError) -> WeightExpression {
      var e = try product()
      while let c = peek(), c == "+" || c == "-" {
        pos += 1
        e = .binary(c, e, try product())
      }
      return e
    }

    mutating func product() throws(ParseError) -> WeightExpression {
      var e = try unary()
      while let c = peek(), c == "*" || c == "/" {
        pos += 1
        e = .binary(c, e, try unary())
      }
      return e
    }

    mutating func unary() throws(ParseError) -> WeightExpression {
      if peek() == "-" {
        pos += 1
        return .negate(try unary())
      }
      if peek() == "+" {
        pos += 1
        return try unary()
      }
      return try atom()
    }

    mutating func atom() throws(ParseError) -> WeightExpression {
      guard let c = peek() else { throw error("expected a number, a parameter or '(' but the expression ended") }
      if c == "(" {
        pos += 1
        let e = try sum()
        guard peek() == ")" else { throw error("expected ')'") }
        pos += 1
        return e
      }
      let start = pos
      if c.isNumber || c == "." {
        while pos < chars.count, chars[pos].isNumber || chars[pos] == "." || chars[pos] == "e"
          || ((chars[pos] == "-" || chars[pos] == "+") && pos > start && chars[pos - 1] == "e") {
          pos += 1
        }
        guard let v = Double(String(chars[start..<pos])) else {
          pos = start
          throw error("malformed number '\(String(chars[start..<pos]))'")
        }
        return .number(v)
      }
      if c.isLetter || c == "_" {
        while pos < chars.count, chars[pos].isLetter || chars[pos].isNumber || chars[pos] == "_" { pos += 1 }
        return .parameter(String(chars[start..<pos]))
      }
      throw error("unexpected '\(c)'")
    }
  }
}
