// How a client reaches an eft-server: the endpoint syntax, the connection (TLS, bearer token)
// and the names of the status codes. The server's listeners parse the same endpoints.
import EFTRPC
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOSSL

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

  package var isIPv6: Bool { if case .tcp(let host, _) = self { return host.contains(":") } else { return false } }
}

public struct EndpointError: Error, CustomStringConvertible, Sendable {
  public let description: String
  package init(_ description: String) { self.description = description }
}

/// The generated client of `eft.v1.Runtime` over the HTTP/2 transport.
public typealias RuntimeClient = Eft_V1_Runtime.Client<HTTP2ClientTransport.Posix>
/// The generated client of `grpc.health.v1.Health` over the HTTP/2 transport.
public typealias HealthClient = Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>
/// The generated client of `eft.v1.Models` over the HTTP/2 transport.
public typealias ModelsClient = Eft_V1_Models.Client<HTTP2ClientTransport.Posix>

/// A connection to the server at `endpoint` for the duration of `body`.
///
///     try await connect(.unix(path: "/tmp/eft.sock")) { connection in
///       let graphs = try await RuntimeClient(wrapping: connection).listGraphs(Eft_V1_ListGraphsRequest())
///     }
/// `security` gives the certificates to trust for TLS on TCP and a bearer token for every call.
public func connect<Result: Sendable>(
  _ endpoint: ServerEndpoint,
  security: ClientSecurity = .none,
  _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
) async throws -> Result {
  try await withGRPCClient(transport: try clientTransport(endpoint, security: security), interceptors: security.interceptors, handleClient: body)
}

/// A client of the server at `endpoint` that lives until its `beginGracefulShutdown()`: the
/// caller runs `runConnections()` in a task of its own (for a connection that outlives one
/// scope, as a RemoteBackend model's does).
public func makeClient(_ endpoint: ServerEndpoint, security: ClientSecurity = .none) throws -> GRPCClient<HTTP2ClientTransport.Posix> {
  GRPCClient(transport: try clientTransport(endpoint, security: security), interceptors: security.interceptors)
}

/// The HTTP/2 transport to `endpoint`: TLS on TCP when `security` has trust roots, else plaintext.
func clientTransport(_ endpoint: ServerEndpoint, security: ClientSecurity) throws -> HTTP2ClientTransport.Posix {
  let target: any ResolvableTarget
  switch endpoint {
  case .unix(let path):
    target = .unixDomainSocket(path: path)
  case .tcp(let host, let port):
    if endpoint.isIPv6 {
      target = .ipv6(address: host, port: port)
    } else if host.split(separator: ".").count == 4, host.allSatisfy({ $0 == "." || $0.isNumber }) {
      target = .ipv4(address: host, port: port)
    } else {
      target = .dns(host: host, port: port)
    }
  }
  if case .unix = endpoint { return try HTTP2ClientTransport.Posix(target: target, transportSecurity: .plaintext) }
  return try HTTP2ClientTransport.Posix(target: target, transportSecurity: security.transportSecurity)
}

/// How a client reaches a server: the certificates it trusts for TLS on TCP (nil: plaintext) and
/// the bearer token it sends with every call (nil: none).
public struct ClientSecurity: Sendable {
  var trustRoots: [UInt8]?
  public var token: String?

  public static let none = ClientSecurity()

  public init(trustRootsFile: String? = nil, token: String? = nil) throws(SecurityError) {
    if let trustRootsFile {
      let pem = try readPEM(trustRootsFile, what: "certificate")
      do {
        guard try !NIOSSLCertificate.fromPEMBytes(pem).isEmpty else { throw SecurityError("\(trustRootsFile): no certificate in the file") }
      } catch let error as SecurityError {
        throw error
      } catch {
        throw SecurityError("\(trustRootsFile): not a PEM certificate (\(error))")
      }
      trustRoots = pem
    }
    if let token { try checkToken(token, source: "the token") }
    self.token = token
  }

  private init() {}

  var transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
    guard let trustRoots else { return .plaintext }
    return .tls { $0.trustRoots = .certificates([.bytes(trustRoots, format: .pem)]) }
  }

  var interceptors: [any ClientInterceptor] { token.map { [BearerToken(token: $0)] } ?? [] }
}

/// A bearer token read from a file: the file's text less surrounding whitespace, which must be
/// printable ASCII without spaces (what an HTTP/2 header value can carry), 16 to 4096 bytes.
public func readToken(file path: String) throws(SecurityError) -> String {
  guard let data = FileManager.default.contents(atPath: path) else { throw SecurityError("\(path): cannot read the token file") }
  guard let text = String(data: data, encoding: .utf8) else { throw SecurityError("\(path): the token is not UTF-8 text") }
  let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
  try checkToken(token, source: path)
  return token
}

func checkToken(_ token: String, source: String) throws(SecurityError) {
  guard (16...4096).contains(token.utf8.count) else {
    throw SecurityError("\(source): a token must be 16 to 4096 bytes (this one is \(token.utf8.count))")
  }
  guard token.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
    throw SecurityError("\(source): a token may hold only printable ASCII characters without spaces")
  }
}

package func readPEM(_ path: String, what: String) throws(SecurityError) -> [UInt8] {
  guard let data = FileManager.default.contents(atPath: path) else { throw SecurityError("\(path): cannot read the \(what) file") }
  return Array(data)
}

public struct SecurityError: Error, CustomStringConvertible, Sendable {
  public let description: String
  package init(_ description: String) { self.description = description }
}

/// Adds `authorization: Bearer TOKEN` to every call.
struct BearerToken: ClientInterceptor {
  let token: String
  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingClientRequest<Input>, context: ClientContext,
    next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
  ) async throws -> StreamingClientResponse<Output> {
    var request = request
    request.metadata.replaceOrAddString("Bearer \(token)", forKey: "authorization")
    return try await next(request, context)
  }
}
