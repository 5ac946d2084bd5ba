// How calls run: model code on a thread of its own, their cancellation, and admission.
import EFTCore
import EFTWire
import Foundation
import GRPCCore

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
    var handlers: [Int: @Sendable () -> Void] = [:]
    var nextHandler = 0
  }
  private let state = Locked(State())
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

  /// Whether the call's deadline has passed. The client's clock started before the request
  /// reached the handler, which reads the header (and so sets `deadline`) only once the server's
  /// busy cooperative threads get to it — 0.7 s late was seen on a loaded 2-core machine: a
  /// cancellation within a second of the deadline is the deadline's. (A client that cancels that
  /// late sees its own CANCELLED anyway; this is what the server logs and counts.)
  var pastDeadline: Bool {
    guard let deadline else { return false }
    return ContinuousClock.now + .seconds(1) >= deadline
  }

  var isCancelled: Bool { state.withLock { $0.cancelled } }

  /// Whether the call is over for its client: cancelled, or its deadline has passed (strictly:
  /// the client's own timer may fire a little earlier, and gRPC's signal of it arrive later).
  var isOver: Bool {
    if isCancelled { return true }
    guard let deadline else { return false }
    return ContinuousClock.now >= deadline
  }

  func cancel() {
    let handlers = state.withLock { s -> [@Sendable () -> Void] in
      guard !s.cancelled else { return [] }
      s.cancelled = true
      defer { s.handlers = [:] }
      return s.handlers.sorted { $0.key < $1.key }.map(\.value)
    }
    for handler in handlers { handler() }
  }

  /// Calls `handler` once the call is cancelled (at once, if it already is). The result takes
  /// the handler back (`removeHandler`), for a handler that outlives its use.
  @discardableResult
  func onCancel(_ handler: @escaping @Sendable () -> Void) -> Int {
    let id = state.withLock { s -> Int? in
      if s.cancelled { return nil }
      s.nextHandler += 1
      s.handlers[s.nextHandler] = handler
      return s.nextHandler
    }
    guard let id else {
      handler()
      return 0
    }
    return id
  }

  func removeHandler(_ id: Int) {
    _ = state.withLock { $0.handlers.removeValue(forKey: id) }
  }

  /// Runs `body` with the cancellation of a part of this call (one append of a long-lived session
  /// stream): cancelled with this call, or when `deadline` passes. What waits on the part (a
  /// queued admission) registers its handlers there, so they go with it rather than pile up on
  /// the stream.
  func withPart<T>(until deadline: ContinuousClock.Instant?, _ body: (CallCancellation) async throws -> T) async throws -> T {
    let part = CallCancellation(deadline: deadline)
    let link = onCancel { part.cancel() }
    let timer = deadline.map { deadline in
      Task {
        do {
          try await Task.sleep(until: deadline, clock: .continuous)
          part.cancel()
        } catch {}  // the part ended first
      }
    }
    defer {
      timer?.cancel()
      removeHandler(link)
    }
    return try await body(part)
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
  /// Bytes the running calls' estimates may add up to (Int.max: no budget).
  let memoryBudget: Int

  private struct Waiter {
    let id: Int
    let cost: Int
    let continuation: CheckedContinuation<Void, any Error>
  }
  private struct State {
    var running = 0
    var reserved = 0
    var waiting: [Waiter] = []
    var nextID = 0
    var closed = false
  }
  private let state = Locked(State())

  init(limit: Int, queueLimit: Int, memoryBudget: Int = .max) {
    self.limit = limit
    self.queueLimit = queueLimit
    self.memoryBudget = memoryBudget
  }

  /// Runs `body` when a slot is free and `cost` bytes fit in the memory budget beside what the
  /// running calls reserved, waiting in the queue (first come, first served; until
  /// `cancellation`) if need be.
  func run<T: Sendable>(_ cancellation: CallCancellation, cost: Int = 0, _ body: () async throws -> T) async throws -> T {
    try await acquire(cancellation, cost: cost)
    defer { release(cost: cost) }
    return try await body()
  }

  /// Requests running now, and waiting; bytes the running ones reserved.
  var running: Int { state.withLock { $0.running } }
  var waiting: Int { state.withLock { $0.waiting.count } }
  var reserved: Int { state.withLock { $0.reserved } }

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

  private enum Entry { case admitted, queued(Int), full, tooBig, closed }

  private func fits(_ cost: Int, _ s: State) -> Bool {
    s.running < limit && cost <= memoryBudget - s.reserved
  }

  private func acquire(_ cancellation: CallCancellation, cost: Int) async throws {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      // Deciding and queueing in one critical section: a slot freed in between cannot be lost.
      let entry = state.withLock { s -> Entry in
        if s.closed { return .closed }
        if cost > memoryBudget { return .tooBig }
        if s.waiting.isEmpty, fits(cost, s) {  // no overtaking: waiters go first
          s.running += 1
          s.reserved += cost
          return .admitted
        }
        guard s.waiting.count < queueLimit else { return .full }
        s.nextID += 1
        s.waiting.append(Waiter(id: s.nextID, cost: cost, continuation: continuation))
        return .queued(s.nextID)
      }
      switch entry {
      case .admitted:
        continuation.resume()
      case .closed:
        continuation.resume(throwing: Self.closedError)
      case .full:
        continuation.resume(throwing: ServiceError.resourceExhausted("the server is running its limit of \(limit) requests (or of its memory budget) with \(queueLimit) more waiting (eft-server --max-concurrent, --memory-budget, --max-queued); retry later"))
      case .tooBig:
        continuation.resume(throwing: ServiceError.resourceExhausted("the request needs an estimated \(mebibytes(cost)) of KV cache and logits, over the server's whole memory budget of \(mebibytes(memoryBudget)) (eft-server --memory-budget); ask for fewer tokens"))
      case .queued(let id):
        // A cancellation that comes first runs this at once; one that comes after `release` gave
        // the waiter the slot finds nothing to remove (the call then stops by itself).
        cancellation.onCancel { [self] in
          let (waiter, admitted) = state.withLock { s -> (Waiter?, [Waiter]) in
            guard let i = s.waiting.firstIndex(where: { $0.id == id }) else { return (nil, []) }
            let waiter = s.waiting.remove(at: i)
            return (waiter, admitWaiting(&s))  // the first waiter may have held the others back
          }
          waiter?.continuation.resume(throwing: cancellation.error("cancelled while waiting for a slot"))
          for next in admitted { next.continuation.resume() }
        }
      }
    }
  }

  /// Frees a slot and its bytes, and admits the waiters that now fit, in order.
  private func release(cost: Int) {
    let admitted = state.withLock { s -> [Waiter] in
      s.running -= 1
      s.reserved -= cost
      return admitWaiting(&s)
    }
    for next in admitted { next.continuation.resume() }
  }

  /// Takes waiters from the head of the queue while they fit (first come, first served: one that
  /// does not fit holds back those behind it).
  private func admitWaiting(_ s: inout State) -> [Waiter] {
    var admitted: [Waiter] = []
    while let first = s.waiting.first, fits(first.cost, s) {
      s.waiting.removeFirst()
      s.running += 1
      s.reserved += first.cost
      admitted.append(first)
    }
    return admitted
  }
}

/// `bytes` in MiB, for messages.
func mebibytes(_ bytes: Int) -> String {
  bytes == .max ? "unlimited" : String(format: "%.1f MiB", Double(bytes) / 1_048_576)
}
