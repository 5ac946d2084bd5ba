import EFTPluginKit
import Foundation

/// A memory-mapped `.safetensors` file: an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}`, then the data.
/// Tensors point into the mapping; nothing is copied. Every size in the header is checked against
/// the file so that a truncated or lying file is refused naming the tensor.
/// Format: https://github.com/huggingface/safetensors (README, "Format").
final class SafeTensorsFile: @unchecked Sendable {
  struct Entry {
    let dtype: DType
    let shape: [Int]
    /// Byte range within the data section.
    let begin: Int
    let end: Int
  }

  let path: String
  let entries: [String: Entry]
  private let base: UnsafeMutableRawPointer
  private let length: Int
  private let dataStart: Int

  init(path: String) throws {
    self.path = path
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw BackendError(EFT_NOT_FOUND, "\(path): cannot open (\(String(cString: strerror(errno))))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw BackendError(EFT_NOT_FOUND, "\(path): cannot stat") }
    let length = Int(st.st_size)
    guard length >= 8 else { throw BackendError(EFT_DATA_LOSS, "\(path): \(length) bytes is too short for a safetensors file (cut short?)") }
    guard let base = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
      throw BackendError(EFT_RESOURCE_EXHAUSTED, "\(path): mmap failed (\(String(cString: strerror(errno))))")
    }
    self.base = base
    self.length = length
    var fail: BackendError? = nil
    var entries: [String: Entry] = [:]
    var dataStart = 0
    do {
      // Compared as UInt64 first: a crafted length ≥ 2⁶³ does not fit in Int.
      let claimed = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
      guard claimed > 0, claimed <= UInt64(length - 8) else {
        throw BackendError(EFT_DATA_LOSS, "\(path): the header claims \(claimed) bytes but the file holds \(length - 8) after the length field (cut short or not safetensors)")
      }
      let headerLength = Int(claimed)
      dataStart = 8 + headerLength
      let header = Data(bytes: base + 8, count: headerLength)
      guard let json = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else {
        throw BackendError(EFT_DATA_LOSS, "\(path): the header is not a JSON object")
      }
      let dataLength = length - dataStart
      for (name, value) in json where name != "__metadata__" {
        guard let info = value as? [String: Any], let dtypeName = info["dtype"] as? String,
              let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
          throw BackendError(EFT_DATA_LOSS, "\(path): tensor '\(name)' has a malformed header entry")
        }
        guard let dtype = DType(rawValue: dtypeName), DType.checkpointTypes.contains(dtype) else {
          throw BackendError(EFT_UNIMPLEMENTED, "\(path): tensor '\(name)' has dtype \(dtypeName); supported: F32, F16, BF16")
        }
        // Sizes come from the file: multiply with overflow checks rather than trap on a crafted header.
        var count = 1
        for dim in shape {
          let (product, overflow) = count.multipliedReportingOverflow(by: dim)
          guard dim >= 0, !overflow, product <= length else {
            throw BackendError(EFT_DATA_LOSS, "\(path): tensor '\(name)' has an impossible shape \(shape)")
          }
          count = product
        }
        guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] - offsets[0] == dtype.rowBytes(count) else {
          throw BackendError(EFT_DATA_LOSS, "\(path): tensor '\(name)' of shape \(shape) \(dtypeName) needs \(dtype.rowBytes(count)) bytes but its offsets span \(offsets[1] - offsets[0])")
        }
        guard offsets[1] <= dataLength else {
          throw BackendError(EFT_DATA_LOSS, "\(path): tensor '\(name)' ends at byte \(offsets[1]) of the data section, which holds \(dataLength) (file cut short?)")
        }
        entries[name] = Entry(dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
      }
    } catch let e as BackendError {
      fail = e
    }
    if let fail {
      munmap(base, length)
      throw fail
    }
    self.entries = entries
    self.dataStart = dataStart
  }

  deinit { munmap(base, length) }

  /// A view of a tensor's bytes (valid while this file object lives).
  func pointer(_ entry: Entry) -> UnsafeRawPointer { UnsafeRawPointer(base + dataStart + entry.begin) }
}

/// How a weight's elements are stored: the element types a checkpoint may hold, and the
/// formats weights are quantized to at load.
public enum DType: String, Sendable {
  case f32 = "F32"
  case f16 = "F16"
  case bf16 = "BF16"
  /// Block-quantized formats (`BlockFormat`): llama.cpp's Q8_0 (blocks of 32 Int8 and a
  /// Float16 scale, 34 bytes) and Q4_0 (32 four-bit values and a Float16 scale, 18 bytes). Made
  /// at load (`Weight.quantized(to:)`), never read from a file.
  case q8_0 = "Q8_0"
  case q4_0 = "Q4_0"

  /// The types a safetensors file may hold.
  static let checkpointTypes: [DType] = [.f32, .f16, .bf16]

  /// Whether this is a block-quantized type (Q8_0, Q4_0).
  public var isQuantized: Bool { blockFormat != nil }

  /// The block-quantized format of this type; nil for F32, F16 and BF16.
  var blockFormat: (any BlockFormat.Type)? {
    switch self {
    case .q8_0: Q8_0.self
    case .q4_0: Q4_0.self
    case .f32, .f16, .bf16: nil
    }
  }

  /// Bytes of a [rows × cols] weight of this type (quantized ones pad their rows to whole groups
  /// of eight: `BlockFormat`).
  func bytes(rows: Int, cols: Int) -> Int {
    (blockFormat == nil ? rows : (rows + groupRows - 1) / groupRows * groupRows) * rowBytes(cols)
  }

  /// Bytes of one row of `cols` elements (of a block-quantized type: in llama.cpp's layout).
  func rowBytes(_ cols: Int) -> Int {
    switch self {
    case .f32: cols * 4
    case .f16, .bf16: cols * 2
    case .q8_0: cols / blockSize * Q8_0.blockBytes
    case .q4_0: cols / blockSize * Q4_0.blockBytes
    }
  }
}
