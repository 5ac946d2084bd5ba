import Foundation
import Synchronization

/// A fixed set of worker threads for the data-parallel loops of a forward pass. Handing work to
/// a GCD `concurrentPerform` costs a futex wake-up per call, and a decode step makes ~90 such calls;
/// these workers instead spin briefly on an atomic generation counter before sleeping, so
/// back-to-back calls start within microseconds.
final class WorkerPool: @unchecked Sendable {
  let size: Int
  private let generation = Atomic<Int>(0)
  private let pending = Atomic<Int>(0)
  private let sleepers = Atomic<Int>(0)
  private let wake = DispatchSemaphore(value: 0)
  private let lock = NSLock()  // one job at a time
  nonisolated(unsafe) private var job: ((Int) -> Void)?

  private static let registry = Mutex<[Int: WorkerPool]>([:])

  /// The process-wide pool of `size` participants (its threads live as long as the process).
  static func shared(size: Int) -> WorkerPool {
    registry.withLock { pools in
      if let pool = pools[size] { return pool }
      let pool = WorkerPool(size: size)
      pools[size] = pool
      return pool
    }
  }

  /// A pool of `size` participants: the calling thread and `size - 1` workers.
  private init(size: Int) {
    self.size = max(1, size)
    for worker in 1..<self.size {
      let thread = Thread { [unowned self] in self.loop(worker) }
      thread.stackSize = 1 << 20
      thread.start()
    }
  }

  /// Runs `body(i)` for i in 0..<size, i = 0 on the calling thread; returns when all are done.
  func run(_ body: (Int) -> Void) {
    if size == 1 {
      body(0)
      return
    }
    lock.lock()
    defer { lock.unlock() }
    withoutActuallyEscaping(body) { body in
      job = body
      pending.store(size - 1, ordering: .sequentiallyConsistent)
      generation.add(1, ordering: .sequentiallyConsistent)
      for _ in 0..<sleepers.load(ordering: .sequentiallyConsistent) { wake.signal() }
      body(0)
      while pending.load(ordering: .acquiring) > 0 { spinPause() }
      job = nil
    }
  }

  private func loop(_ worker: Int) {
    var seen = 0
    while true {
      var spins = 0
      while generation.load(ordering: .acquiring) == seen {
        spins += 1
        if spins < 20_000 {
          spinPause()
        } else {
          // Idle: sleep until the next job (re-checking the generation after registering).
          sleepers.add(1, ordering: .sequentiallyConsistent)
          if generation.load(ordering: .sequentiallyConsistent) == seen { _ = wake.wait(timeout: .now() + .milliseconds(50)) }
          sleepers.subtract(1, ordering: .sequentiallyConsistent)
          spins = 0
        }
      }
      seen = generation.load(ordering: .acquiring)
      job?(worker)
      pending.subtract(1, ordering: .releasing)
    }
  }
}

/// One turn of a spin-wait (a plain atomic re-load; Swift exposes no pause instruction).
@inline(__always)
private func spinPause() {}
