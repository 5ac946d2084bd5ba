/// An error of the runtime. `message` is complete and readable on its own: it says what went
/// wrong and where (config file:line, node name, plugin file, token index).
public struct RuntimeError: Error, CustomStringConvertible, Sendable {
  /// Which part of the runtime refused.
  public enum Domain: String, Sendable {
    case config, plugin, graph, backend, tokenizer, request
  }

  public var domain: Domain
  public var code: StatusCode
  public var message: String

  public init(_ domain: Domain, _ code: StatusCode, _ message: String) {
    self.domain = domain
    self.code = code
    self.message = message
  }

  public var description: String { message }
}
