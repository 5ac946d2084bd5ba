// The conversions between the wire messages (eft.v1, proto/eft/v1/runtime.proto) and the
// runtime's types (EFTAPI), both ways, and the status table. A server converts one way and a
// client the other, with the same code; Tests/EFTWireTests round-trips every pair.
import EFTAPI
import EFTProto
import EFTRPC
import GRPCCore

// MARK: Status codes

extension RPCError.Code {
  /// The gRPC code a runtime status travels as.
  public init(_ code: StatusCode) {
    switch code {
    case .ok, .internal: self = .internalError  // an error is never OK
    case .invalidArgument: self = .invalidArgument
    case .notFound: self = .notFound
    case .dataLoss: self = .dataLoss
    case .outOfRange: self = .outOfRange
    case .resourceExhausted: self = .resourceExhausted
    case .unimplemented: self = .unimplemented
    case .failedPrecondition: self = .failedPrecondition
    case .cancelled: self = .cancelled
    case .unavailable: self = .unavailable
    case .deadlineExceeded: self = .deadlineExceeded
    }
  }
}

extension StatusCode {
  /// The runtime status of a gRPC code; nil for the codes only the transport or the server's
  /// front give (UNAUTHENTICATED, PERMISSION_DENIED, …).
  public init?(_ code: RPCError.Code) {
    guard let match = StatusCode.allCases.first(where: { $0 != .ok && RPCError.Code($0) == code }) else { return nil }
    self = match
  }
}

extension RPCError {
  /// The status a runtime error travels as.
  public init(_ error: EFTAPI.RuntimeError) {
    self.init(code: Code(error.code), message: error.message)
  }
}

/// The canonical gRPC name of a status code (google.rpc.Code), as servers and docs spell it.
public func statusName(_ code: RPCError.Code) -> String {
  let names = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
               "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
               "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]
  return names.indices.contains(code.rawValue) ? names[code.rawValue] : "\(code)"
}

// MARK: Requests

extension GenerationRequest {
  /// The runtime request a message asks for. Refuses only what no graph could take (a prompt
  /// given twice); the server checks the rest against the graph and its limits.
  public init(_ m: Eft_V1_GenerateRequest) throws(RPCError) {
    self.init(graph: m.graph.isEmpty ? nil : m.graph, prompt: m.prompt)
    if !m.promptTokens.isEmpty {
      guard m.prompt.isEmpty else {
        throw RPCError(code: .invalidArgument, message: "prompt and prompt_tokens are both set; send one")
      }
      promptTokens = m.promptTokens
    }
    let s = m.sampling
    if s.hasTemperature { temperature = s.temperature }
    if s.hasTopK { topK = Int(s.topK) }
    if s.hasTopP { topP = s.topP }
    if s.hasMinP { minP = s.minP }
    if s.hasSeed { seed = s.seed }
    if s.hasMaxTokens { maxTokens = Int(s.maxTokens) }
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
  /// The message that asks a server for `r`.
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

// MARK: Generation events and results

extension Eft_V1_Token {
  /// The message of one token; `piece` is the token's own text, sent with the node values.
  public init(_ e: TokenEvent, piece: String = "") {
    self.init()
    id = e.token
    text = e.text
    logProb = e.logProb
    if let values = e.nodeValues {
      nodeLogProbs = values
      self.piece = piece
    }
    top = e.topLogProbs.map { t in .with { $0.id = t.token; $0.logProb = t.logProb } }
  }
}

extension TokenEvent {
  /// The event a token message describes (its piece aside). A message without node values reads
  /// as an event without them: the server sends them all or none.
  public init(_ m: Eft_V1_Token) {
    self.init(token: m.id, text: m.text, logProb: m.logProb, nodeValues: m.nodeLogProbs.isEmpty ? nil : m.nodeLogProbs,
              topLogProbs: m.top.map { ($0.id, $0.logProb) })
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

extension FinishReason {
  /// nil for a reason this side does not know (unspecified, or a newer server's).
  public init?(_ reason: Eft_V1_FinishReason) {
    switch reason {
    case .eos: self = .eos
    case .stop: self = .stop
    case .length: self = .length
    case .context: self = .context
    case .unspecified, .UNRECOGNIZED: return nil
    }
  }
}

extension Eft_V1_Speculation {
  public init(_ s: SpeculationSettings) {
    self.init()
    draft = s.draft
    lookahead = Int32(clamping: s.lookahead)
    adaptive = s.adaptive
  }
}

extension SpeculationSettings {
  public init(_ m: Eft_V1_Speculation) {
    self.init(draft: m.draft, lookahead: Int(m.lookahead), adaptive: m.adaptive)
  }
}

extension Eft_V1_DecodeStats {
  public init(_ s: DecodeStats) {
    self.init()
    steps = Int64(s.steps)
    drafted = Int64(s.drafted)
    accepted = Int64(s.accepted)
    modelCalls = Int64(s.modelCalls)
  }
}

extension DecodeStats {
  public init(_ m: Eft_V1_DecodeStats) {
    self.init(steps: Int(clamping: m.steps), drafted: Int(clamping: m.drafted), accepted: Int(clamping: m.accepted),
              modelCalls: Int(clamping: m.modelCalls))
  }
}

extension Eft_V1_Finish {
  public init(_ r: GenerationResult) {
    self.init()
    reason = Eft_V1_FinishReason(r.finishReason)
    completionTokens = Int32(clamping: r.tokens.count)
    promptTokens = r.promptTokens.map { Int32(clamping: $0) }
    prefillSeconds = r.prefillSeconds
    decodeSeconds = r.decodeSeconds
    modelSeconds = r.modelSeconds
    stats = Eft_V1_DecodeStats(r.stats)
    if let s = r.speculation { speculation = Eft_V1_Speculation(s) }
  }
}

extension GenerationResult {
  /// The result a generation's finish message ends, with the tokens and text its token
  /// messages carried.
  public init(_ f: Eft_V1_Finish, tokens: [Int32], text: String) throws(RPCError) {
    guard let reason = FinishReason(f.reason) else {
      throw RPCError(code: .internalError, message: "the server's finish reason \(f.reason) is unknown to this client")
    }
    guard f.completionTokens == tokens.count else {
      throw RPCError(code: .dataLoss, message: "the server's finish counts \(f.completionTokens) tokens, but \(tokens.count) arrived")
    }
    self.init(tokens: tokens, text: text, finishReason: reason, promptTokens: f.promptTokens.map(Int.init),
              prefillSeconds: f.prefillSeconds, decodeSeconds: f.decodeSeconds, stats: DecodeStats(f.stats),
              speculation: f.hasSpeculation ? SpeculationSettings(f.speculation) : nil, modelSeconds: f.modelSeconds)
  }
}

// MARK: Scores

extension Eft_V1_ScoreResponse {
  /// `pieces`: each token's own text.
  public init(_ r: ScoreResult, pieces: [String]) {
    self.init()
    tokens = r.tokens
    logProbs = r.logProbs
    total = r.total
    self.pieces = pieces
  }
}

extension ScoreResult {
  public init(_ m: Eft_V1_ScoreResponse) {
    self.init(tokens: m.tokens, logProbs: m.logProbs)
  }
}

// MARK: Graphs

extension Eft_V1_Sampling {
  /// Every field set: what a request that sets none of them decodes with.
  public init(_ s: GenerationSettings) {
    self.init()
    temperature = s.sampling.temperature
    topK = Int32(clamping: s.sampling.topK)
    topP = s.sampling.topP
    minP = s.sampling.minP
    seed = s.sampling.seed
    maxTokens = Int32(clamping: s.maxTokens)
    stop = s.stop
    stopAtEos = s.stopAtEOS
  }
}

extension GenerationSettings {
  /// The settings a graph's defaults message describes; unset fields keep the built-in defaults.
  public init(_ m: Eft_V1_GraphDefaults) {
    self.init()
    let s = m.sampling
    if s.hasTemperature { sampling.temperature = s.temperature }
    if s.hasTopK { sampling.topK = Int(s.topK) }
    if s.hasTopP { sampling.topP = s.topP }
    if s.hasMinP { sampling.minP = s.minP }
    if s.hasSeed { sampling.seed = s.seed }
    if s.hasMaxTokens { maxTokens = Int(s.maxTokens) }
    stop = s.stop
    if s.hasStopAtEos { stopAtEOS = s.stopAtEos }
    if m.hasSpeculation { speculation = SpeculationSettings(m.speculation) }
  }
}

extension Eft_V1_GraphDefaults {
  public init(_ s: GenerationSettings) {
    self.init()
    sampling = Eft_V1_Sampling(s)
    if let spec = s.speculation { speculation = Eft_V1_Speculation(spec) }
  }
}

extension Eft_V1_GraphInfo {
  public init(_ g: GraphSummary) {
    self.init()
    name = g.name
    description_p = g.description
    nodes = g.nodes.map { n in .with { $0.name = n.name; $0.operation = n.operation } }
    outputNode = g.output
    models = g.models.map { m in
      .with {
        $0.name = m.name
        $0.plugin = m.plugin
        $0.architecture = m.architecture
        $0.vocabSize = Int32(clamping: m.vocabSize)
        $0.contextLength = Int32(clamping: m.contextLength)
      }
    }
    parameters = g.parameters.map { p in
      .with { $0.name = p.name; $0.defaultValue = p.defaultValue; $0.description_p = p.description }
    }
    defaults = Eft_V1_GraphDefaults(g.defaults)
    vocabSize = Int32(clamping: g.vocabSize)
    contextLength = Int32(clamping: g.contextLength)
  }
}

extension GraphSummary {
  public init(_ m: Eft_V1_GraphInfo) {
    self.init(name: m.name, description: m.description_p,
              parameters: m.parameters.map { GraphParameter(name: $0.name, defaultValue: $0.defaultValue, description: $0.description_p) },
              nodes: m.nodes.map { Node(name: $0.name, operation: $0.operation) }, output: m.outputNode,
              defaults: GenerationSettings(m.defaults), vocabSize: Int(m.vocabSize), contextLength: Int(m.contextLength),
              models: m.models.map {
                ModelSummary(name: $0.name, plugin: $0.plugin, architecture: $0.architecture,
                             vocabSize: Int($0.vocabSize), contextLength: Int($0.contextLength))
              })
  }
}
