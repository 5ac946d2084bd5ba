import EFTWire
import EFTCore
import EFTRPC
import GRPCCore

/// `grpc.health.v1.Health`: SERVING for the server as a whole ("") and for "eft.v1.Runtime" until
/// the server begins shutting down, NOT_SERVING after; NOT_FOUND (Check) or SERVICE_UNKNOWN
/// (Watch) for any other service name.
public final class HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
  public static let services: Set<String> = ["", "eft.v1.Runtime"]

  private struct State {
    var serving = true
    var watchers: [Int: AsyncStream<Bool>.Continuation] = [:]
    var nextWatcher = 0
  }
  private let state = Locked(State())

  public init() {}

  /// Reports NOT_SERVING from now on, and ends every Watch after telling it (so that a graceful
  /// shutdown does not wait for watchers).
  public func markNotServing() {
    let watchers = state.withLock { s in
      s.serving = false
      return Array(s.watchers.values)
    }
    for w in watchers {
      w.yield(false)
      w.finish()
    }
  }

  private static func status(_ serving: Bool) -> Grpc_Health_V1_HealthCheckResponse {
    .with { $0.status = serving ? .serving : .notServing }
  }

  public func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
    guard Self.services.contains(request.service) else {
      throw RPCError(code: .notFound, message: "unknown service '\(request.service)' (known: \"\", eft.v1.Runtime)")
    }
    return Self.status(state.withLock { $0.serving })
  }

  public func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
                    context: ServerContext) async throws {
    let known = Self.services.contains(request.service)
    let (changes, sink) = AsyncStream<Bool>.makeStream()
    let (id, serving) = state.withLock { s in
      s.nextWatcher += 1
      s.watchers[s.nextWatcher] = sink
      return (s.nextWatcher, s.serving)
    }
    defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
    if !serving { sink.finish() }
    // A client that goes away (or cancels, or whose deadline passes) is reported as an RPC
    // cancellation, not by cancelling this task: end the stream then, so the watcher is freed.
    try await withRPCCancellationHandler {
      try await response.write(known ? Self.status(serving) : .with { $0.status = .serviceUnknown })
      for await serving in changes where known {
        try await response.write(Self.status(serving))
      }
    } onCancelRPC: {
      sink.finish()
    }
  }

  /// Watch streams open now.
  public var watchers: Int { state.withLock { $0.watchers.count } }
}
