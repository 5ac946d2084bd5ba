import Foundation

/// Heap allocations of the process so far, when libEFTAllocCounter.so is preloaded (see
/// Sources/EFTAllocCounter); nil otherwise. The benchmarks read it around what they time.
public enum AllocationCounter {
  private static let read: (@convention(c) () -> Int)? = {
    // nil: RTLD_DEFAULT, every object loaded so far (a preloaded library first).
    guard let symbol = dlsym(nil, "eft_alloc_count") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) () -> Int).self)
  }()

  public static var count: Int? { read?() }

  /// Runs `body` and returns the allocations it made (nil when not counting). Other threads'
  /// allocations in the meantime are counted too.
  public static func counting(_ body: () throws -> Void) rethrows -> Int? {
    let before = count
    try body()
    guard let before, let after = count else { return nil }
    return after - before
  }
}
