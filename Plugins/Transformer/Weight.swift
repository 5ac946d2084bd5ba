import Dispatch
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

  /// An owned weight whose `dtype.bytes(rows:cols:)` bytes `fill` writes.
  init(dtype: DType, rows: Int, cols: Int, fill: (UnsafeMutableRawPointer) -> Void) {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(1, dtype.bytes(rows: rows, cols: cols)), alignment: 64)
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
    let r = i / cols, c = i % cols
    let (d, q) = F.weight(F.groupBlock(data, blocks: cols / blockSize, r / groupRows, c / blockSize), r % groupRows, c % blockSize)
    return d * Float(q)
  }

  /// Whether `quantized(to:)` applies: rows must be whole blocks, of a type not quantized already.
  public var quantizable: Bool { cols % blockSize == 0 && dtype.blockFormat == nil }

  /// This weight in a block-quantized type (Q8_0 or Q4_0), as llama.cpp makes it
  /// (`BlockFormat.quantize`). Requires `quantizable`.
  public func quantized(to type: DType) -> Weight {
    switch (quantizable, type) {
    case (true, .q8_0): quantized(Q8_0.self)
    case (true, .q4_0): quantized(Q4_0.self)
    default: preconditionFailure("\(type) needs whole blocks of \(blockSize) columns of an unquantized weight")
    }
  }

  /// Each row's blocks as `F.quantize` makes them (zero rows pad the last group), interleaved by
  /// `F.interleave`; groups of rows in parallel (this runs at load, over every weight).
  private func quantized<F: BlockFormat>(_: F.Type) -> Weight {
    Weight(dtype: F.dtype, rows: rows, cols: cols) { buffer in
      let out = UncheckedSendable(buffer)
      let blocks = cols / blockSize, groups = (rows + groupRows - 1) / groupRows
      let chunks = min(groups, ProcessInfo.processInfo.activeProcessorCount * 4)
      DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        let values = UnsafeMutablePointer<Float>.allocate(capacity: groupRows * cols)
        let group = UnsafeMutableRawPointer.allocate(byteCount: F.groupBlockBytes, alignment: 16)
        defer { values.deallocate(); group.deallocate() }
        for g in (groups * chunk / chunks)..<(groups * (chunk + 1) / chunks) {
          let first = g * groupRows, count = min(groupRows, rows - first)
          dequantize(rows: first..<(first + count), into: values)
          (values + count * cols).initialize(repeating: 0, count: (groupRows - count) * cols)
          for b in 0..<blocks {
            for k in 0..<groupRows { F.quantize(values + k * cols + b * blockSize, into: group + k * F.blockBytes) }
            F.interleave(UnsafeRawPointer(group), into: out.value + (g * blocks + b) * F.groupBlockBytes)
          }
        }
      }
    }
  }

  /// Rows `rows` as Floats, row-major, into `out` (rows.count × cols): f32 copied, 16-bit weights
  /// eight at a time, quantized ones one value at a time.
  public func dequantize(rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .f32: out.update(from: (data + rows.lowerBound * cols * 4).assumingMemoryBound(to: Float.self), count: rows.count * cols)
    case .f16: convert(rows: rows, into: out, F16Rows(self))
    case .bf16: convert(rows: rows, into: out, BF16Rows(self))
    default:
      for r in rows {
        for c in 0..<cols { out[(r - rows.lowerBound) * cols + c] = value(r * cols + c) }
      }
    }
  }

  private func convert<R: RowLoader>(rows: Range<Int>, into out: UnsafeMutablePointer<Float>, _ loader: R) {
    for r in rows {
      let row = loader.row(r), o = UnsafeMutableRawPointer(out + (r - rows.lowerBound) * cols)
      var c = 0
      while c + 8 <= cols {
        o.storeBytes(of: R.load(row, c), toByteOffset: c * 4, as: SIMD8<Float>.self)
        c += 8
      }
      while c < cols {
        o.storeBytes(of: R.scalar(row, c), toByteOffset: c * 4, as: Float.self)
        c += 1
      }
    }
  }

  /// `weights` (of the same columns, none quantized) one under the other, as one owned weight:
  /// in their type when they share one, else as f32.
  static func stacked(_ weights: [Weight]) -> Weight {
    let cols = weights[0].cols, rows = weights.reduce(0) { $0 + $1.rows }
    let parts = weights.allSatisfy({ $0.dtype == weights[0].dtype }) ? weights : weights.map { $0.upcastF32() }
    let dtype = parts[0].dtype
    precondition(dtype.blockFormat == nil, "stacking quantized weights (their rows are interleaved)")
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
