// How logits travel in `eft.v1.Models/Session` (SessionResponse.logits): little-endian IEEE 754,
// 32-bit or 16-bit, row after row. The server encodes, the RemoteBackend plugin decodes.
import EFTRPC
import Foundation

public enum LogitsCodec {
  /// Bytes per value in `format`.
  public static func width(_ format: Eft_V1_LogitsFormat) -> Int { format == .logitsF16 ? 2 : 4 }

  public static func encode(_ values: [Float], as format: Eft_V1_LogitsFormat) -> Data {
    switch format {
    case .logitsF16:
      let halves = values.map { Float16($0).bitPattern.littleEndian }
      return halves.withUnsafeBytes { Data($0) }
    default:
      let bits = values.map { $0.bitPattern.littleEndian }
      return bits.withUnsafeBytes { Data($0) }
    }
  }

  /// Writes the `count` values `data` holds into `out`; false when `data` holds another number.
  public static func decode(_ data: Data, as format: Eft_V1_LogitsFormat, count: Int, into out: UnsafeMutablePointer<Float>) -> Bool {
    guard data.count == count * width(format) else { return false }
    data.withUnsafeBytes { raw in
      if format == .logitsF16 {
        for i in 0..<count { out[i] = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
      } else {
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
      }
    }
    return true
  }
}
