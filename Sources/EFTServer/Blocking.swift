import Foundation
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

/// Set once, read from the decoding thread between tokens.
final class StopFlag: Sendable {
  private let flag = Atomic(false)
  func set() { flag.store(true, ordering: .relaxed) }
  var isSet: Bool { flag.load(ordering: .relaxed) }
}

/// Caps the number of requests that run model code at once.
final class Admission: Sendable {
  let limit: Int
  private let running = Mutex(0)

  init(limit: Int) { self.limit = limit }

  /// Runs `body` if a slot is free; RESOURCE_EXHAUSTED if not.
  func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    let admitted = running.withLock { n in
      guard n < limit else { return false }
      n += 1
      return true
    }
    guard admitted else {
      throw ServiceError.resourceExhausted("the server is running its limit of \(limit) requests (eft-server --max-concurrent); retry later")
    }
    defer { running.withLock { $0 -= 1 } }
    return try await body()
  }

  var count: Int { running.withLock { $0 } }
}
