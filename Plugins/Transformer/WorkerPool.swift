import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A fixed set of worker threads for the data-parallel loops of a forward pass. Handing work to
/// a GCD `concurrentPerform` costs a futex wake-up per call, and a decode step makes ~90 such calls;
/// these workers instead spin briefly on an atomic generation counter before sleeping, so
/// back-to-back calls start within microseconds.
///
/// Work is claimed, not assigned: the calling thread and the workers take the next index from a
/// shared counter until none is left. On a busy machine (a server with more request threads than
/// cores) a worker may not be running when a job starts; the caller then does the work itself
/// instead of spinning until the descheduled worker comes back for its share.
final class WorkerPool: @unchecked Sendable {
  let size: Int
  /// The current job in one word: its generation (high 24 bits), its index count (20 bits) and
  /// its next unclaimed index (low 20 bits). The count shares the word so that a claim, one
  /// compare-and-swap, proves its index in range for that very job: with the count in a variable
  /// of its own, a worker that found a finished job's last index taken could read the next job's
  /// count, written just before the next job is published, and claim an index past the end of
  /// the finished one, then run the next job's body (and count it finished) before that job was
  /// published (ThreadSanitizer caught it in CI, once, on a loaded machine).
  private let cursor = Atomic<UInt64>(0)
  /// How many of the current job's indices have finished.
  private let finished = Atomic<Int>(0)
  /// Indices a job may have (20 bits); `run` splits a larger loop into jobs of this many.
  static let maxCount = 1 << 20 - 1
  /// Added to every index of the current job (the part of a split loop it runs).
  nonisolated(unsafe) private var base = 0
  private let sleepers = Atomic<Int>(0)
  private let wake = DispatchSemaphore(value: 0)
  private let lock = NSLock()  // held by the job running
  nonisolated(unsafe) private var job: ParallelJob?
  nonisolated(unsafe) private var arguments: UnsafeRawPointer?

  // An NSLock (a pthread mutex) rather than Synchronization.Mutex: ThreadSanitizer sees
  // pthread locking, not Mutex's futex, and reported the registry as racing when two models
  // opened at once.
  private static let registryLock = NSLock()
  nonisolated(unsafe) private static var registry: [Int: WorkerPool] = [:]

  /// The process-wide pool of `size` participants (its threads live as long as the process).
  static func shared(size: Int) -> WorkerPool {
    registryLock.withLock {
      if let pool = registry[size] { return pool }
      let pool = WorkerPool(size: size)
      registry[size] = pool
      return pool
    }
  }

  /// A pool of `size` participants: the calling thread and `size - 1` workers.
  private init(size: Int) {
    self.size = max(1, size)
    for _ in 1..<self.size {
      let thread = Thread { [unowned self] in self.loop() }
      thread.stackSize = 1 << 20
      thread.start()
    }
  }

  /// Runs `body(arguments, i)` for every i in 0..<count, on the calling thread and whichever
  /// workers join; returns when all are done. Each index runs exactly once.
  func run(count: Int, arguments: UnsafeRawPointer, _ body: @escaping ParallelJob) {
    guard size > 1, count > 1 else {
      for i in 0..<count { body(arguments, i) }
      return
    }
    // One job at a time. A caller that finds the pool busy (another model's or request's
    // forward pass on another thread) runs its job alone rather than wait: unrelated requests'
    // products never queue behind each other, and each index still runs exactly once.
    guard lock.try() else {
      for i in 0..<count { body(arguments, i) }
      return
    }
    defer { lock.unlock() }
    job = body
    self.arguments = arguments
    var start = 0
    while start < count {
      let n = min(count - start, Self.maxCount)
      base = start
      finished.store(0, ordering: .relaxed)
      let generation = (cursor.load(ordering: .relaxed) >> 40) &+ 1
      // Publishes job, arguments, base and finished.
      cursor.store((generation & 0xff_ffff) << 40 | UInt64(n) << 20, ordering: .releasing)
      for _ in 0..<sleepers.load(ordering: .sequentiallyConsistent) { wake.signal() }
      work(generation & 0xff_ffff)
      // Indices claimed by workers may still be running; wait for them (yielding the core if
      // one of them was preempted mid-index).
      var spins = 0
      while finished.load(ordering: .acquiring) < n {
        spins += 1
        if spins > 1_000 { sched_yield() }
      }
      start += n
    }
    self.arguments = nil
  }

  /// Claims and runs indices of job `generation` until none is left.
  private func work(_ generation: UInt64) {
    var done = 0
    while let i = claim(generation) {
      invoke(i)
      done += 1
    }
    if done > 0 { finished.add(done, ordering: .releasing) }
  }

  /// Runs index `i` of the current job (claimed, so `job`, `arguments` and `base` are the job's).
  private func invoke(_ i: Int) {
    if let job, let arguments { job(arguments, base + i) }
  }

  /// The next unclaimed index of job `generation`, or nil when that job is over or taken.
  private func claim(_ generation: UInt64) -> Int? {
    var current = cursor.load(ordering: .acquiring)
    while true {
      let index = Int(current & 0xf_ffff), count = Int((current >> 20) & 0xf_ffff)
      guard current >> 40 == generation, index < count else { return nil }
      let (exchanged, original) = cursor.compareExchange(expected: current, desired: current &+ 1, ordering: .acquiringAndReleasing)
      if exchanged { return index }
      current = original
    }
  }

  private func loop() {
    var seen: UInt64 = 0
    while true {
      var spins = 0
      while cursor.load(ordering: .acquiring) >> 40 == seen {
        spins += 1
        if spins >= 20_000 {
          // Idle: sleep until the next job (re-checking the generation after registering).
          sleepers.add(1, ordering: .sequentiallyConsistent)
          if cursor.load(ordering: .sequentiallyConsistent) >> 40 == seen { _ = wake.wait(timeout: .now() + .milliseconds(50)) }
          sleepers.subtract(1, ordering: .sequentiallyConsistent)
          spins = 0
        }
      }
      seen = cursor.load(ordering: .acquiring) >> 40
      work(seen)
    }
  }
}
