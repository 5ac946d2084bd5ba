import Foundation

/// A value behind a lock: `withLock` gives the closure exclusive access to it.
///
/// This is what the server and the runtime use rather than `Synchronization.Mutex`: on Linux
/// `Mutex` is a bare futex that ThreadSanitizer cannot see, so every access it guards was reported
/// as a race (CI's TSan run, 2026-12-07); `NSLock` is a pthread mutex, which TSan understands. An
/// uncontended lock and unlock costs ~20 ns either way, far below anything done under these locks.
public final class Locked<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var value: Value

  public init(_ value: Value) {
    self.value = value
  }

  public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
    lock.lock()
    defer { lock.unlock() }
    return try body(&value)
  }
}
