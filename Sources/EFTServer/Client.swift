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
/// `security` gives the certificates to trust for TLS on TCP and a bearer token for every call.
public func connect<Result: Sendable>(
  _ endpoint: ServerEndpoint,
  security: ClientSecurity = .none,
  _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
) async throws -> Result {
  try await withGRPCClient(transport: try clientTransport(endpoint, security: security), interceptors: security.interceptors, handleClient: body)
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
