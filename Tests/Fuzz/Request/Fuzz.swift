// Fuzzes a Generate request as the server receives it: the input is a serialized
// eft.v1.GenerateRequest, converted and checked as RuntimeService does (`ServiceLimits.request`, max_tokens limit 8)
// and run on the bundled tiny models (examples/configs/upscale.pbtxt). It either generates — at
// most 8 tokens, the streamed pieces adding up to the text — or fails with a status and a
// message; never a crash.
import EFTCore
import EFTFuzzSupport
import EFTRPC
import EFTServer
import EFTWire
import Foundation
import GRPCCore

let runtime = setUp("examples/configs/upscale.pbtxt") {
  try Runtime(configPath: "examples/configs/upscale.pbtxt", pluginDirectories: [pluginDirectory])
}
let limits = { var l = ServiceLimits(); l.maxTokens = 8; return l }()
let maxTokensLimit = limits.maxTokens

func one(_ data: Data) {
  guard let message = try? Eft_V1_GenerateRequest(serializedBytes: data) else { return }
  do {
    let graph = try runtime.graph(named: message.graph)
    let request = try limits.request(message, graph: graph)
    var streamed = ""
    let result = try runtime.generate(request) { event in
      streamed += event.text
      return true
    }
    require(result.tokens.count <= maxTokensLimit, "\(result.tokens.count) tokens, over the limit of \(maxTokensLimit)")
    require(streamed == result.text, "streamed \(streamed.debugDescription), result \(result.text.debugDescription)")
    require(result.tokens.allSatisfy { $0 >= 0 && Int($0) < graph.vocabSize }, "a token outside the vocabulary")
    outcome("generated \(result.tokens.count) tokens: \(result.text.debugDescription)")
  } catch let error as RPCError {
    require(!error.message.isEmpty && error.code != .internalError, "\(error.code): \(error.message)")
    outcome("\(error.code): \(error.message)")
  } catch let error as EFTCore.RuntimeError {
    require(!error.message.isEmpty && error.code != .internal, "\(error.code): \(error.message)")
    outcome("\(error.code): \(error.message)")
  } catch {
    require(false, "an error that is neither a status nor a RuntimeError: \(error)")
  }
}

@main struct Main { static func main() { fuzzMain(one) } }
