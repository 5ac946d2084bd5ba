import GRPCNIOTransportHTTP2Posix

/// Where a server listens or a client connects: `tcp:HOST:PORT`, `tcp:PORT` (loopback),
/// `tcp:[IPV6]:PORT` or `unix:PATH`.
public enum ServerEndpoint: Sendable, Equatable, CustomStringConvertible {
  case tcp(host: String, port: Int)
  case unix(path: String)

  public init(parsing text: String) throws(EndpointError) {
    if text.hasPrefix("unix:") {
      let path = String(text.dropFirst(5))
      guard !path.isEmpty else { throw EndpointError("'\(text)': the Unix socket path is empty") }
      self = .unix(path: path)
      return
    }
    guard text.hasPrefix("tcp:") else {
      throw EndpointError("'\(text)': expected tcp:HOST:PORT, tcp:PORT or unix:PATH")
    }
    let rest = text.dropFirst(4)
    var host = "127.0.0.1"
    var portText = Substring(rest)
    if rest.hasPrefix("[") {  // [IPv6]:PORT
      guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
        throw EndpointError("'\(text)': expected tcp:[IPV6]:PORT")
      }
      host = String(rest[rest.index(after: rest.startIndex)..<close])
      portText = rest[rest.index(close, offsetBy: 2)...]
    } else if let colon = rest.lastIndex(of: ":") {
      host = String(rest[..<colon])
      portText = rest[rest.index(after: colon)...]
    }
    guard !host.isEmpty else { throw EndpointError("'\(text)': the host is empty") }
    guard let port = Int(portText), (0...65535).contains(port) else {
      throw EndpointError("'\(text)': the port '\(portText)' is not a number in [0, 65535]")
    }
    self = .tcp(host: host, port: port)
  }

  public var description: String {
    switch self {
    case .tcp(let host, let port): return host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
    case .unix(let path): return "unix:\(path)"
    }
  }

  var isIPv6: Bool { if case .tcp(let host, _) = self { return host.contains(":") } else { return false } }
}

public struct EndpointError: Error, CustomStringConvertible, Sendable {
  public let description: String
  init(_ description: String) { self.description = description }
}
