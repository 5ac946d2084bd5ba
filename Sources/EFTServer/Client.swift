import EFTRPC
import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// The generated client of `eft.v1.Runtime` over the HTTP/2 transport.
public typealias RuntimeClient = Eft_V1_Runtime.Client<HTTP2ClientTransport.Posix>
/// The generated client of `grpc.health.v1.Health` over the HTTP/2 transport.
public typealias HealthClient = Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>

/// A connection to the server at `endpoint` for the duration of `body`.
///
///     try await connect(.unix(path: "/tmp/eft.sock")) { connection in
///       let graphs = try await RuntimeClient(wrapping: connection).listGraphs(Eft_V1_ListGraphsRequest())
///     }
public func connect<Result: Sendable>(
  _ endpoint: ServerEndpoint,
  _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
) async throws -> Result {
  try await withGRPCClient(transport: try clientTransport(endpoint), handleClient: body)
}

/// The HTTP/2 transport to `endpoint` (plaintext: loopback and Unix sockets).
public func clientTransport(_ endpoint: ServerEndpoint) throws -> HTTP2ClientTransport.Posix {
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
  return try HTTP2ClientTransport.Posix(target: target, transportSecurity: .plaintext)
}
