// Fuzzes opening a Hugging Face checkpoint: an input is config.json, a line "--safetensors--",
// then model.safetensors. It is written to a scratch directory and opened as the CPU backend
// would; a model that opens runs a session (two appends, a truncate) and must give logits of the
// size it described. Every failure must be a BackendError with a message.
import EFTFuzzSupport
import EFTPluginKit
import EFTProto
import Foundation
import Transformer

let directory = setUp("a scratch directory") { () throws -> String in
  let path = NSTemporaryDirectory() + "eft-fuzz-checkpoint-\(getpid())"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}
let options = setUp("options") { try Array(Eft_V1_TransformerOptions.with { $0.threads = 1 }.serializedBytes() as [UInt8]) }
let separator = Data("\n--safetensors--\n".utf8)

func one(_ data: Data) {
  let split = data.range(of: separator)
  let config = split.map { data[..<$0.lowerBound] } ?? data
  let weights = split.map { data[$0.upperBound...] } ?? Data()
  _ = FileManager.default.createFile(atPath: directory + "/config.json", contents: config)
  _ = FileManager.default.createFile(atPath: directory + "/model.safetensors", contents: weights)
  do {
    let model = try TransformerModel(path: directory, options: options, kernels: { SIMDKernels(threads: $0) })
    let d = model.description
    require(d.vocabSize > 0 && d.contextLength > 0, "opened with vocab \(d.vocabSize), context \(d.contextLength)")
    guard d.vocabSize <= 1 << 16, d.contextLength >= 3 else { return }
    let session = try model.makeSession()
    var logits = [Float](repeating: 0, count: 2 * d.vocabSize)
    let tokens: [Int32] = [0, Int32(d.vocabSize - 1)]
    try tokens.withUnsafeBufferPointer { try session.append($0, mode: EFT_LOGITS_ALL, logits: &logits) }
    try session.truncate(to: 1)
    try tokens.withUnsafeBufferPointer { try session.append(UnsafeBufferPointer(rebasing: $0[1...]), mode: EFT_LOGITS_LAST, logits: &logits) }
    require(session.count == 2, "session holds \(session.count) tokens after append 2, truncate 1, append 1")
    outcome("opened: vocab \(d.vocabSize), context \(d.contextLength), session ran")
  } catch let error as BackendError {
    require(!error.message.isEmpty, "an error without a message")
    outcome("error: \(error.message)")
  } catch {
    require(false, "an error that is not a BackendError: \(error)")
  }
}

@main struct Main { static func main() { fuzzMain(one) } }
