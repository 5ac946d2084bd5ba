// The conversions between the wire messages (eft.v1, proto/eft/v1/runtime.proto) and the
// runtime's types, both ways, and the status a runtime error travels as.
import EFTCore
import EFTRPC
import GRPCCore

/// Errors the service reports, as gRPC statuses.
public enum ServiceError {
  public static func invalidArgument(_ message: String) -> RPCError { RPCError(code: .invalidArgument, message: message) }
  public static func resourceExhausted(_ message: String) -> RPCError { RPCError(code: .resourceExhausted, message: message) }

  /// The status a runtime error travels as (`StatusCode` is the one vocabulary; this is its gRPC
  /// spelling).
  public static func rpc(_ error: EFTCore.RuntimeError) -> RPCError {
    let code: RPCError.Code
    switch error.code {
    case .ok, .internal: code = .internalError
    case .invalidArgument: code = .invalidArgument
    case .notFound: code = .notFound
    case .dataLoss: code = .dataLoss
    case .outOfRange: code = .outOfRange
    case .resourceExhausted: code = .resourceExhausted
    case .unimplemented: code = .unimplemented
    case .failedPrecondition: code = .failedPrecondition
    case .cancelled: code = .cancelled
    }
    return RPCError(code: code, message: error.message)
  }
}

extension GenerationRequest {
  /// The runtime request a message asks for, checked against `graph` and the server's limits.
  public init(_ m: Eft_V1_GenerateRequest, graph: CompiledGraph, maxTokensLimit: Int) throws(RPCError) {
    self.init(graph: graph.name, prompt: m.prompt)
    if !m.promptTokens.isEmpty {
      guard m.prompt.isEmpty else {
        throw ServiceError.invalidArgument("prompt and prompt_tokens are both set; send one")
      }
      if let i = m.promptTokens.firstIndex(where: { $0 < 0 || Int($0) >= graph.vocabSize }) {
        throw ServiceError.invalidArgument("prompt_tokens[\(i)] = \(m.promptTokens[i]) is outside the vocabulary [0, \(graph.vocabSize)) of graph '\(graph.name)'")
      }
      promptTokens = m.promptTokens
    }
    let s = m.sampling
    if s.hasTemperature { temperature = s.temperature }
    if s.hasTopK { topK = Int(s.topK) }
    if s.hasTopP { topP = s.topP }
    if s.hasMinP { minP = s.minP }
    if s.hasSeed { seed = s.seed }
    if s.hasMaxTokens {
      guard s.maxTokens <= maxTokensLimit else {
        throw ServiceError.resourceExhausted("sampling.max_tokens = \(s.maxTokens) is over the server's limit of \(maxTokensLimit) (eft-server --max-tokens-limit)")
      }
      maxTokens = Int(s.maxTokens)
    } else if graph.defaults.maxTokens > maxTokensLimit {
      maxTokens = maxTokensLimit
    }
    if !s.stop.isEmpty { stop = s.stop }
    if s.hasStopAtEos { stopAtEOS = s.stopAtEos }
    parameters = m.parameters
    let spec = m.speculation
    if spec.hasEnabled { speculative = spec.enabled }
    if !spec.draft.isEmpty { draft = spec.draft }
    if spec.hasLookahead { lookahead = Int(spec.lookahead) }
    if spec.hasAdaptive { adaptiveLookahead = spec.adaptive }
    returnNodeValues = m.returnNodeLogProbs
    topLogProbs = Int(m.topLogProbs)
  }
}

extension Eft_V1_GenerateRequest {
  /// The message that asks a server for `r` (the inverse of `GenerationRequest.init(_:graph:…)`).
  public init(_ r: GenerationRequest) {
    self.init()
    graph = r.graph ?? ""
    if let ids = r.promptTokens { promptTokens = ids } else { prompt = r.prompt }
    if let v = r.temperature { sampling.temperature = v }
    if let v = r.topK { sampling.topK = Int32(clamping: v) }
    if let v = r.topP { sampling.topP = v }
    if let v = r.minP { sampling.minP = v }
    if let v = r.seed { sampling.seed = v }
    if let v = r.maxTokens { sampling.maxTokens = Int32(clamping: v) }
    if let v = r.stop { sampling.stop = v }
    if let v = r.stopAtEOS { sampling.stopAtEos = v }
    parameters = r.parameters
    if let v = r.speculative { speculation.enabled = v }
    if let v = r.draft { speculation.draft = v }
    if let v = r.lookahead { speculation.lookahead = Int32(clamping: v) }
    if let v = r.adaptiveLookahead { speculation.adaptive = v }
    returnNodeLogProbs = r.returnNodeValues
    topLogProbs = Int32(clamping: r.topLogProbs)
  }
}

extension Eft_V1_FinishReason {
  public init(_ reason: FinishReason) {
    switch reason {
    case .eos: self = .eos
    case .stop: self = .stop
    case .length: self = .length
    case .context: self = .context
    case .cancelled: self = .unspecified  // never sent: a cancelled call ends with CANCELLED
    }
  }
}

extension Eft_V1_Speculation {
  public init(_ s: SpeculationSettings) {
    self.init()
    draft = s.draft
    lookahead = Int32(s.lookahead)
    adaptive = s.adaptive
  }
}

extension Eft_V1_Finish {
  public init(_ r: GenerationResult) {
    self.init()
    reason = Eft_V1_FinishReason(r.finishReason)
    completionTokens = Int32(r.tokens.count)
    promptTokens = r.promptTokens.map(Int32.init)
    prefillSeconds = r.prefillSeconds
    decodeSeconds = r.decodeSeconds
    modelSeconds = r.modelSeconds
    stats.steps = Int64(r.stats.steps)
    stats.drafted = Int64(r.stats.drafted)
    stats.accepted = Int64(r.stats.accepted)
    stats.modelCalls = Int64(r.stats.modelCalls)
    if let s = r.speculation { speculation = Eft_V1_Speculation(s) }
  }
}

extension Eft_V1_GraphInfo {
  public init(_ g: CompiledGraph) {
    self.init()
    name = g.name
    description_p = g.description
    nodes = g.nodeNames.indices.map { i in
      var node = Eft_V1_NodeInfo()
      node.name = g.nodeNames[i]
      node.operation = g.describeNode(i)
      return node
    }
    outputNode = g.outputName
    models = g.models.map { m in
      var info = Eft_V1_ModelInfo()
      info.name = m.name
      info.plugin = m.plugin.name
      info.architecture = m.architecture
      info.vocabSize = Int32(m.vocabSize)
      info.contextLength = Int32(m.contextLength)
      return info
    }
    parameters = g.parameters.map { p in
      var info = Eft_V1_ParameterInfo()
      info.name = p.name
      info.defaultValue = p.defaultValue
      info.description_p = p.description
      return info
    }
    let d = g.defaults
    defaults.temperature = d.sampling.temperature
    defaults.topK = Int32(d.sampling.topK)
    defaults.topP = d.sampling.topP
    defaults.minP = d.sampling.minP
    defaults.seed = d.sampling.seed
    defaults.maxTokens = Int32(d.maxTokens)
    defaults.stop = d.stop
    defaults.stopAtEos = d.stopAtEOS
    if let s = d.speculation { defaults.speculation = Eft_V1_Speculation(s) }
    vocabSize = Int32(g.vocabSize)
    contextLength = Int32(g.contextLength)
  }
}
