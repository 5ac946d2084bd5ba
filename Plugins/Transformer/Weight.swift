import Foundation

/// A read-only tensor of weights: a pointer into a memory-mapped checkpoint (or an owned buffer)
/// with its element type and shape. 2-D weights are row-major [rows × cols] with PyTorch's Linear
/// layout: rows = output features, cols = input features.
public final class Weight: @unchecked Sendable {
  public let dtype: DType
  public let rows: Int
  public let cols: Int
  public let data: UnsafeRawPointer
  /// Keeps the mapping or buffer alive.
  private let owner: AnyObject?
  private let ownedBuffer: UnsafeMutableRawPointer?

  init(dtype: DType, rows: Int, cols: Int, data: UnsafeRawPointer, owner: AnyObject) {
    self.dtype = dtype
    self.rows = rows
    self.cols = cols
    self.data = data
    self.owner = owner
    self.ownedBuffer = nil
  }

  /// An owned f32 copy.
  public init(rows: Int, cols: Int, values: [Float]) {
    precondition(values.count == rows * cols)
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(1, values.count * 4), alignment: 64)
    values.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    self.dtype = .f32
    self.rows = rows
    self.cols = cols
    self.data = UnsafeRawPointer(buffer)
    self.owner = nil
    self.ownedBuffer = buffer
  }

  deinit { ownedBuffer?.deallocate() }

  public var count: Int { rows * cols }

  /// Element i as Float (upcast from 16-bit types).
  @inline(__always)
  public func value(_ i: Int) -> Float {
    switch dtype {
    case .f32: return data.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
    case .f16: return Float(Float16(bitPattern: data.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
    case .bf16: return Float(bitPattern: UInt32(data.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16)
    }
  }

  /// Every element as Float.
  public func floats() -> [Float] { (0..<count).map(value) }

  /// The transpose, as an owned f32 weight (for GPT-2's Conv1D [in × out] layout).
  func transposedF32() -> Weight {
    var out = [Float](repeating: 0, count: count)
    for r in 0..<rows {
      for c in 0..<cols { out[c * rows + r] = value(r * cols + c) }
    }
    return Weight(rows: cols, cols: rows, values: out)
  }

  /// An owned f32 copy (for kernels that only take f32).
  public func upcastF32() -> Weight { dtype == .f32 ? self : Weight(rows: rows, cols: cols, values: floats()) }
}
