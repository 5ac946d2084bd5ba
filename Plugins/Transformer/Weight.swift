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

  /// An owned weight whose `rows × dtype.rowBytes(cols)` bytes `fill` writes.
  init(dtype: DType, rows: Int, cols: Int, fill: (UnsafeMutableRawPointer) -> Void) {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(1, rows * dtype.rowBytes(cols)), alignment: 64)
    fill(buffer)
    self.dtype = dtype
    self.rows = rows
    self.cols = cols
    self.data = UnsafeRawPointer(buffer)
    self.owner = nil
    self.ownedBuffer = buffer
  }

  /// An owned f32 copy.
  public convenience init(rows: Int, cols: Int, values: [Float]) {
    precondition(values.count == rows * cols)
    self.init(dtype: .f32, rows: rows, cols: cols) { buffer in
      values.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }
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
    case .q8_0: return quantizedValue(i, Q8_0.self)
    case .q4_0: return quantizedValue(i, Q4_0.self)
    }
  }

  @inline(__always)
  private func quantizedValue<F: BlockFormat>(_ i: Int, _: F.Type) -> Float {
    // A row is a whole number of blocks, so element i is in the i/32-th block from the start.
    let (q, d) = F.weights(data, i / blockSize)
    return d * Float(F.quant(q, i % blockSize))
  }

  /// Whether `quantized(to:)` applies: rows must be whole blocks, of a type not quantized already.
  public var quantizable: Bool { cols % blockSize == 0 && dtype.blockFormat == nil }

  /// This weight in a block-quantized type (Q8_0 or Q4_0), as llama.cpp makes it
  /// (`BlockFormat.quantize`). Requires `quantizable`.
  public func quantized(to type: DType) -> Weight {
    guard quantizable, let format = type.blockFormat else {
      preconditionFailure("\(type) needs whole blocks of \(blockSize) columns of an unquantized weight")
    }
    return quantized(format)
  }

  private func quantized<F: BlockFormat>(_: F.Type) -> Weight {
    Weight(dtype: F.dtype, rows: rows, cols: cols) { out in
      var values = [Float](repeating: 0, count: blockSize)
      for b in 0..<(count / blockSize) {
        for j in 0..<blockSize { values[j] = value(b * blockSize + j) }
        F.quantize(values, into: out + b * F.blockBytes)
      }
    }
  }

  /// Rows `rows` as Floats, row-major, into `out` (rows.count × cols).
  public func dequantize(rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .q8_0: dequantize(rows: rows, into: out, Q8_0.self)
    case .q4_0: dequantize(rows: rows, into: out, Q4_0.self)
    default:
      for r in rows {
        for c in 0..<cols { out[(r - rows.lowerBound) * cols + c] = value(r * cols + c) }
      }
    }
  }

  /// Block by block, 8 weights at a time (widened lane by lane: the generic SIMD conversions are
  /// out-of-line calls), each exactly d·q as `value(_:)` gives it.
  private func dequantize<F: BlockFormat>(rows: Range<Int>, into out: UnsafeMutablePointer<Float>, _: F.Type) {
    let blocks = (rows.lowerBound * cols / blockSize)..<(rows.upperBound * cols / blockSize)
    let o = UnsafeMutableRawPointer(out)
    for (k, b) in blocks.enumerated() {
      let (q, d) = F.weights(data, b)
      for c in stride(from: 0, to: blockSize, by: 8) {
        let v = F.quants(q, c)
        let f = SIMD8<Float>(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]), Float(v[4]), Float(v[5]), Float(v[6]), Float(v[7]))
        o.storeBytes(of: f * d, toByteOffset: (k * blockSize + c) * 4, as: SIMD8<Float>.self)
      }
    }
  }

  /// Rows `range` as a weight of their own, sharing this one's memory (which it keeps alive).
  func rows(_ range: Range<Int>) -> Weight {
    Weight(dtype: dtype, rows: range.count, cols: cols, data: data + range.lowerBound * dtype.rowBytes(cols), owner: self)
  }

  /// `weights` (of the same columns) one under the other, as one owned weight: in their type
  /// when they share one, else as f32.
  static func stacked(_ weights: [Weight]) -> Weight {
    let cols = weights[0].cols, rows = weights.reduce(0) { $0 + $1.rows }
    let parts = weights.allSatisfy({ $0.dtype == weights[0].dtype }) ? weights : weights.map { $0.upcastF32() }
    let dtype = parts[0].dtype
    return Weight(dtype: dtype, rows: rows, cols: cols) { out in
      var offset = 0
      for w in parts {
        precondition(w.cols == cols, "stacked weights need the same columns")
        let bytes = w.rows * dtype.rowBytes(cols)
        (out + offset).copyMemory(from: w.data, byteCount: bytes)
        offset += bytes
      }
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
