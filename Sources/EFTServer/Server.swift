import EFTCore
import EFTRPC
import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// How `eft-server` listens and what it allows.
public struct ServerOptions: Sendable {
  public var endpoints: [ServerEndpoint]
  public var limits = ServiceLimits()
  /// After a shutdown begins, how long running calls may go on before they are cancelled.
  public var shutdownGrace: Duration = .seconds(10)
  /// TLS on every TCP listener (nil: plaintext). Unix sockets stay plaintext: they are local and
  /// owner-only.
  public var tls: ServerTLS?
  /// When set, every call must carry `authorization: Bearer TOKEN` (else UNAUTHENTICATED).
  public var token: String?
  /// Where a line per Generate and Score call goes (nil: nowhere).
  public var requestLog: (@Sendable (String) -> Void)?

  public init(endpoints: [ServerEndpoint]) { self.endpoints = endpoints }
}

/// The Runtime and health services on one gRPC server per endpoint.
///
///     let server = RuntimeServer(runtime: runtime, options: ServerOptions(endpoints: [.unix(path: "/tmp/eft.sock")]))
///     try await server.run { endpoints in print("listening on", endpoints) }  // until shutdown()
public final class RuntimeServer: Sendable {
  public let service: RuntimeService
  public let health = HealthService()
  public let options: ServerOptions
  private let shutdownSignal: AsyncStream<Void>
  private let shutdownSink: AsyncStream<Void>.Continuation

  public init(runtime: Runtime, options: ServerOptions) {
    self.options = options
    self.service = RuntimeService(runtime: runtime, limits: options.limits, requestLog: options.requestLog)
    (shutdownSignal, shutdownSink) = AsyncStream<Void>.makeStream()
  }

  /// Begins a graceful shutdown: new calls are refused, running ones have `shutdownGrace` to end.
  /// Safe to call from any thread, any number of times, before or during `run`.
  public func shutdown() {
    shutdownSink.yield()
  }

  /// Binds every endpoint, calls `onListening` with them as bound (a TCP port 0 replaced by the
  /// port the system chose), serves until `shutdown()`, drains, and removes the socket files.
  public func run(onListening: @Sendable ([ServerEndpoint]) -> Void = { _ in }) async throws {
    var config = HTTP2ServerTransport.Posix.Config.defaults
    // The service answers messages over the limit with RESOURCE_EXHAUSTED; far over it (4×) the
    // transport resets the stream without reading the message.
    config.rpc.maxRequestPayloadSize = min(options.limits.maxMessageBytes, Int(Int32.max) / 4) * 4
    config.http2.maxConcurrentStreams = options.limits.maxStreamsPerConnection
    var servers: [GRPCServer<HTTP2ServerTransport.Posix>] = []
    var unixListeners: [UnixListener] = []
    defer { for l in unixListeners { l.removeFile() } }
    for endpoint in options.endpoints {
      let transport: HTTP2ServerTransport.Posix
      switch endpoint {
      case .tcp(let host, let port):
        let address: GRPCNIOTransportHTTP2Posix.SocketAddress = endpoint.isIPv6 ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
        transport = HTTP2ServerTransport.Posix(address: address, transportSecurity: options.tls?.transportSecurity ?? .plaintext, config: config)
      case .unix(let path):
        let listener: UnixListener
        do {
          listener = try UnixListener(path: path)
        } catch {
          for l in unixListeners { l.abandon() }  // not yet handed to a running transport
          throw error
        }
        unixListeners.append(listener)
        transport = HTTP2ServerTransport.Posix(listeningSocketDescriptor: Int(listener.descriptor), transportSecurity: .plaintext, config: config)
      }
      let interceptors: [any ServerInterceptor] = options.token.map { [TokenCheck(token: $0)] } ?? []
      servers.append(GRPCServer(transport: transport, services: [service, health], interceptors: interceptors))
    }

    try await withThrowingTaskGroup(of: Void.self) { group in
      for server in servers { group.addTask { try await server.serve() } }
      var bound: [ServerEndpoint] = []
      for (server, endpoint) in zip(servers, options.endpoints) {
        let address = try await server.listeningAddress
        if case .tcp(let host, _) = endpoint, let port = address?.ipv4?.port ?? address?.ipv6?.port {
          bound.append(.tcp(host: host, port: port))
        } else {
          bound.append(endpoint)
        }
      }
      onListening(bound)

      for await _ in shutdownSignal { break }
      health.markNotServing()
      service.beginShutdown()
      for server in servers { server.beginGracefulShutdown() }
      let grace = options.shutdownGrace
      group.addTask {
        try await Task.sleep(for: grace)
        throw GraceExpired()
      }
      // Wait for every server to drain; when the grace period ends first, cancel what is left
      // (running generations stop within a step and end with CANCELLED).
      var stopped = 0
      var expired = false
      while stopped < servers.count {
        do {
          guard try await group.next() != nil else { break }
          stopped += 1
        } catch is GraceExpired {
          expired = true
          group.cancelAll()
        } catch where expired {
          stopped += 1  // a server cancelled after the grace period
        }
      }
      group.cancelAll()
    }
  }

  private struct GraceExpired: Error {}
}
