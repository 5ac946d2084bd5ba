// How calls run: model code on a thread of its own, their cancellation, and admission.
import EFTCore
import EFTWire
import Foundation
import GRPCCore
import Synchronization

/// Runs `body` on a thread of its own and returns its result. Decoding blocks (backend calls,
/// sampling) for as long as a generation lasts; on Swift's cooperative pool (one thread per core)
/// a few such requests would stall every other request and the network. A thread per running
/// request, capped by `Admission`, keeps them apart.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  try await withCheckedThrowingContinuation { continuation in
    let thread = Thread {
      continuation.resume(with: Result { try body() })
    }
    thread.name = "eft-request"
    thread.stackSize = 8 << 20  // what the CLI's main thread has; the kernels keep scratch on the stack
    thread.start()
  }
}

/// A call's cancellation, from whichever source comes first: gRPC cancelling the RPC (the client
/// cancelled or went away, the deadline passed; gRPC signals these through the call's context,
/// not by cancelling the handler's task), the handler's task being cancelled (a shutdown past its
/// grace period), or a failed write. The decoding thread reads `isCancelled` after every token.
final class CallCancellation: CancellationSignal {
  private struct State {
    var cancelled = false
    var handlers: [@Sendable () -> Void] = []
  }
  private let state = Mutex(State())
  /// When the client's deadline (its grpc-timeout) passes, if it sent one.
  let deadline: ContinuousClock.Instant?

  init(deadline: ContinuousClock.Instant? = CallDeadline.current) {
    self.deadline = deadline
  }

  /// The status a call that stopped because it was cancelled ends with: DEADLINE_EXCEEDED when
  /// its deadline has passed (gRPC signals a passed deadline as a cancellation), else CANCELLED.
  func error(_ message: String) -> RPCError {
    if pastDeadline { return RPCError(code: .deadlineExceeded, message: "the deadline passed: \(message)") }
    return RPCError(code: .cancelled, message: message)
  }

  /// Whether the call's deadline has passed. gRPC's timer starts before the handler reads the
  /// header (so before `deadline` was set): a cancellation within half a second of the deadline
  /// is the deadline's. (A client that cancels that late sees its own CANCELLED anyway; this is
  /// what the server logs and counts.)
  var pastDeadline: Bool {
    guard let deadline else { return false }
    return ContinuousClock.now + .milliseconds(500) >= deadline
  }

  var isCancelled: Bool { state.withLock { $0.cancelled } }

  func cancel() {
    let handlers = state.withLock { s -> [@Sendable () -> Void] in
      guard !s.cancelled else { return [] }
      s.cancelled = true
      defer { s.handlers = [] }
      return s.handlers
    }
    for handler in handlers { handler() }
  }

  /// Calls `handler` once the call is cancelled (at once, if it already is).
  func onCancel(_ handler: @escaping @Sendable () -> Void) {
    let now = state.withLock { s in
      if s.cancelled { return true }
      s.handlers.append(handler)
      return false
    }
    if now { handler() }
  }
}

/// The deadline of the call being handled (a task-local, set from the request's grpc-timeout
/// header before the handler runs).
enum CallDeadline {
  @TaskLocal static var current: ContinuousClock.Instant?

  /// The deadline a request's metadata sets (its `grpc-timeout` header), if any.
  static func of(_ metadata: Metadata) -> ContinuousClock.Instant? {
    var values = metadata[stringValues: "grpc-timeout"].makeIterator()
    return from(timeout: values.next())
  }

  /// The deadline a `grpc-timeout` header value sets from now: digits (at most 8) and a unit,
  /// H, M, S, m (ms), u (µs) or n (ns). nil when absent or malformed.
  static func from(timeout: String?) -> ContinuousClock.Instant? {
    guard let timeout, let unit = timeout.last, timeout.count >= 2, timeout.count <= 9,
          let amount = Int64(timeout.dropLast()), amount >= 0 else { return nil }
    let duration: Duration
    switch unit {
    case "H": duration = .seconds(amount * 3600)
    case "M": duration = .seconds(amount * 60)
    case "S": duration = .seconds(amount)
    case "m": duration = .milliseconds(amount)
    case "u": duration = .microseconds(amount)
    case "n": duration = .nanoseconds(amount)
    default: return nil
    }
    return .now + duration
  }
}

/// Caps the requests that run model code at once; the next ones wait in a bounded FIFO queue
/// (a waiting call that is cancelled, or whose deadline passes, leaves the queue), and beyond the
/// queue they are refused with RESOURCE_EXHAUSTED. Once closed (a shutdown began), waiting calls
/// and new ones get UNAVAILABLE.
final class Admission: Sendable {
  let limit: Int
  let queueLimit: Int

  private struct Waiter {
    let id: Int
    let continuation: CheckedContinuation<Void, any Error>
  }
  private struct State {
    var running = 0
    var waiting: [Waiter] = []
    var nextID = 0
    var closed = false
  }
  private let state = Mutex(State())

  init(limit: Int, queueLimit: Int) {
    self.limit = limit
    self.queueLimit = queueLimit
  }

  /// Runs `body` when a slot is free, waiting in the queue (until `cancellation`) if need be.
  func run<T: Sendable>(_ cancellation: CallCancellation, _ body: () async throws -> T) async throws -> T {
    try await acquire(cancellation)
    defer { release() }
    return try await body()
  }

  /// Requests running now, and waiting.
  var running: Int { state.withLock { $0.running } }
  var waiting: Int { state.withLock { $0.waiting.count } }

  static let closedError = RPCError(code: .unavailable, message: "the server is shutting down")

  /// Refuses new calls and hands every waiting one UNAVAILABLE; running calls go on.
  func close() {
    let waiters = state.withLock { s -> [Waiter] in
      s.closed = true
      defer { s.waiting = [] }
      return s.waiting
    }
    for waiter in waiters { waiter.continuation.resume(throwing: Self.closedError) }
  }

  private enum Entry { case admitted, queued(Int), full, closed }

  private func acquire(_ cancellation: CallCancellation) async throws {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      // Deciding and queueing in one critical section: a slot freed in between cannot be lost.
      let entry = state.withLock { s -> Entry in
        if s.closed { return .closed }
        if s.running < limit {
          s.running += 1
          return .admitted
        }
        guard s.waiting.count < queueLimit else { return .full }
        s.nextID += 1
        s.waiting.append(Waiter(id: s.nextID, continuation: continuation))
        return .queued(s.nextID)
      }
      switch entry {
      case .admitted:
        continuation.resume()
      case .closed:
        continuation.resume(throwing: Self.closedError)
      case .full:
        continuation.resume(throwing: ServiceError.resourceExhausted("the server is running its limit of \(limit) requests with \(queueLimit) more waiting (eft-server --max-concurrent, --max-queued); retry later"))
      case .queued(let id):
        // A cancellation that comes first runs this at once; one that comes after `release` gave
        // the waiter the slot finds nothing to remove (the call then stops by itself).
        cancellation.onCancel { [self] in
          let waiter = state.withLock { s -> Waiter? in
            guard let i = s.waiting.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiting.remove(at: i)
          }
          waiter?.continuation.resume(throwing: cancellation.error("cancelled while waiting for a slot"))
        }
      }
    }
  }

  /// Hands the slot to the first waiter, or frees it.
  private func release() {
    let next = state.withLock { s -> Waiter? in
      guard !s.waiting.isEmpty else {
        s.running -= 1
        return nil
      }
      return s.waiting.removeFirst()
    }
    next?.continuation.resume()
  }
}
