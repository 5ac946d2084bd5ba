import EFTCore
@_exported import EFTWire
import EFTRPC
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import ServiceLifecycle

/// How `eft-server` listens and what it allows.
public struct ServerOptions: Sendable {
  public var endpoints: [ServerEndpoint]
  public var limits = ServiceLimits()
  /// After a shutdown begins, how long running calls may go on before they are cancelled.
  public var shutdownGrace: Duration = .seconds(10)
  /// After the grace period, how long cancelled calls have to end before `run` gives up on them
  /// and returns (throwing `ShutdownError`): a call stuck in a backend cannot hold the process.
  public var shutdownForce: Duration = .seconds(5)
  /// TLS on every TCP listener (nil: plaintext). Unix sockets stay plaintext: they are local and
  /// owner-only.
  public var tls: ServerTLS?
  /// When set, every call must carry `authorization: Bearer TOKEN` (else UNAUTHENTICATED).
  public var token: String?
  /// Where a line per Generate and Score call goes (nil: nowhere).
  public var requestLog: (@Sendable (String) -> Void)?
  /// The OpenAI-compatible HTTP front (with /metrics) on each of these.
  public var http: [ServerEndpoint] = []
  /// /metrics alone on each of these.
  public var metrics: [ServerEndpoint] = []

  public init(endpoints: [ServerEndpoint]) { self.endpoints = endpoints }
}

/// The endpoints a server listens on, as bound (a TCP port 0 replaced by the port the system chose).
public struct BoundEndpoints: Sendable {
  public var grpc: [ServerEndpoint]
  public var http: [ServerEndpoint]
  public var metrics: [ServerEndpoint]
}

/// The Runtime and health services on one gRPC server per endpoint, and the HTTP front
/// (`ServerOptions.http`, `.metrics`) on one HTTP/1.1 server per endpoint.
///
///     let server = RuntimeServer(runtime: runtime, options: ServerOptions(endpoints: [.unix(path: "/tmp/eft.sock")]))
///     try await server.run { bound in print("listening on", bound.grpc) }  // until shutdown()
public final class RuntimeServer: Sendable {
  public let service: RuntimeService
  public let health = HealthService()
  /// Sessions on the config's models, for other servers' RemoteBackend plugins.
  let models: ModelsService
  public let options: ServerOptions
  private let shutdownSignal: AsyncStream<Void>
  private let shutdownSink: AsyncStream<Void>.Continuation

  public init(runtime: Runtime, options: ServerOptions) {
    self.options = options
    self.service = RuntimeService(runtime: runtime, limits: options.limits, requestLog: options.requestLog)
    self.models = ModelsService(service: service)
    (shutdownSignal, shutdownSink) = AsyncStream<Void>.makeStream()
    let metrics = service.metrics
    runtime.scheduler.observeModelCalls { model, tokens, time in metrics.modelCall(model: model, tokens: tokens, time: time) }
  }

  /// Begins a graceful shutdown: new calls are refused, running ones have `shutdownGrace` to end.
  /// Safe to call from any thread, any number of times, before or during `run`.
  public func shutdown() {
    shutdownSink.yield()
  }

  /// Binds every endpoint, calls `onListening` with them as bound (a TCP port 0 replaced by the
  /// port the system chose), serves until `shutdown()`, drains, and removes the socket files.
  public func run(onListening: @Sendable (BoundEndpoints) -> Void = { _ in }) async throws {
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
      servers.append(GRPCServer(transport: transport, services: [service, models, health], interceptors: interceptors))
    }

    // The HTTP fronts: a Hummingbird application each, in a service group of its own so that a
    // shutdown can drain it. `started` hears of each listening (nil) or failing to.
    let (started, startedSink) = AsyncStream<(any Error)?>.makeStream()
    let httpBound = Locked<[Int: ServerEndpoint]>([:])
    var logger = Logger(label: "eft-server.http")
    logger.logLevel = .warning
    let httpEndpoints = options.http.map { ($0, true) } + options.metrics.map { ($0, false) }
    var groups: [ServiceGroup] = []
    for (i, (endpoint, openAI)) in httpEndpoints.enumerated() {
      let front = HTTPFront(service: service, openAI: openAI, token: options.token)
      let address: BindAddress
      var builder: HTTPServerBuilder = .http1()
      switch endpoint {
      case .tcp(let host, let port):
        address = .hostname(host, port: port)
        if let tls = options.tls { builder = try .tls(.http1(), tlsConfiguration: try tls.configuration) }
      case .unix(let path):
        _ = try UnixListener.claim(path)
        address = .unixDomainSocket(path: path)
      }
      let app = Application(router: front.router(), server: builder, configuration: .init(address: address, serverName: "eft-server"),
                            onServerRunning: { channel in
                              var bound = endpoint
                              if case .tcp(let host, _) = endpoint, let port = channel.localAddress?.port { bound = .tcp(host: host, port: port) }
                              if case .unix(let path) = endpoint { chmod(path, 0o600) }  // owner-only, as the gRPC sockets
                              httpBound.withLock { $0[i] = bound }
                              startedSink.yield(nil)
                            }, logger: logger)
      groups.append(ServiceGroup(configuration: .init(services: [app], logger: logger)))
    }
    defer {
      for case .unix(let path) in httpEndpoints.map(\.0) { unlink(path) }
    }

    // Every server serves in a task of its own; this loop reacts to what happens, in order: a
    // shutdown (or a server failing) begins the graceful shutdown, the grace period's end cancels
    // what still runs, and `shutdownForce` later `run` returns whatever is left.
    enum Event { case shutdown, stopped((any Error)?), graceExpired, forceExpired }
    let (events, sink) = AsyncStream<Event>.makeStream()
    let serving = servers.map { server in
      Task {
        do {
          try await server.serve()
          sink.yield(.stopped(nil))
        } catch {
          sink.yield(.stopped(error))
        }
      }
    } + groups.map { group in
      Task {
        do {
          try await group.run()
          sink.yield(.stopped(nil))
        } catch {
          startedSink.yield(error)  // if it failed before listening
          sink.yield(.stopped(error))
        }
      }
    }
    var timers: [Task<Void, Never>] = []
    defer {
      for task in serving + timers { task.cancel() }
    }
    var bound: [ServerEndpoint] = []
    for (server, endpoint) in zip(servers, options.endpoints) {
      let address = try await server.listeningAddress
      if case .tcp(let host, _) = endpoint, let port = address?.ipv4?.port ?? address?.ipv6?.port {
        bound.append(.tcp(host: host, port: port))
      } else {
        bound.append(endpoint)
      }
    }
    var waiting = groups.count
    if waiting > 0 {
      for await failure in started {
        if let failure { throw failure }
        waiting -= 1
        if waiting == 0 { break }
      }
    }
    let http = httpBound.withLock { table in httpEndpoints.indices.map { table[$0] ?? httpEndpoints[$0].0 } }
    onListening(BoundEndpoints(grpc: bound, http: Array(http.prefix(options.http.count)), metrics: Array(http.dropFirst(options.http.count))))
    let signal = shutdownSignal
    timers.append(Task {
      for await _ in signal { break }
      sink.yield(.shutdown)
    })

    var stopped = 0
    var failure: (any Error)?
    var shuttingDown = false
    func beginShutdown() {
      guard !shuttingDown else { return }
      shuttingDown = true
      health.markNotServing()
      service.beginShutdown()
      for server in servers { server.beginGracefulShutdown() }
      for group in groups { Task { await group.triggerGracefulShutdown() } }
      let grace = options.shutdownGrace
      timers.append(Task {
        try? await Task.sleep(for: grace)
        sink.yield(.graceExpired)
      })
    }
    for await event in events {
      switch event {
      case .shutdown:
        beginShutdown()
      case .stopped(let error):
        stopped += 1
        if let error, !shuttingDown, failure == nil { failure = error }  // a server failed: stop the rest
        if stopped == servers.count + groups.count {
          if let failure { throw failure }
          return
        }
        beginShutdown()
      case .graceExpired:
        // Running generations stop within a step and end with CANCELLED.
        for task in serving { task.cancel() }
        let force = options.shutdownForce
        timers.append(Task {
          try? await Task.sleep(for: force)
          sink.yield(.forceExpired)
        })
      case .forceExpired:
        throw ShutdownError(calls: service.runningRequests, after: options.shutdownGrace + options.shutdownForce)
      }
    }
  }
}

/// A shutdown that left calls running: they did not end within the grace period and
/// `shutdownForce` after it (a backend call that never returns). `run` returned without them.
public struct ShutdownError: Error, CustomStringConvertible, Sendable {
  public let calls: Int
  public let after: Duration
  public var description: String {
    "\(calls) call\(calls == 1 ? "" : "s") still running \(after) after the shutdown began (stuck in a backend?); leaving \(calls == 1 ? "it" : "them")"
  }
}

