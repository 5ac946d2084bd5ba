import EFTAPI
import EFTRPC
import EFTWire
import GRPCCore
import Testing

// Every conversion between the wire and the runtime's types, both ways: what one side sends is
// what the other reads back. These tests link the wire module without the engine (as eft-client
// does).

@Suite struct StatusTableTests {
  @Test func everyRuntimeStatusTravelsAndComesBack() {
    for code in StatusCode.allCases where code != .ok {
      #expect(StatusCode(RPCError.Code(code)) == code, "\(code)")
    }
    #expect(RPCError.Code(StatusCode.ok) == .internalError, "an error is never OK")
    // Codes only the transport or a server front give have no runtime status.
    for code in [RPCError.Code.unauthenticated, .unknown, .permissionDenied, .aborted, .alreadyExists] {
      #expect(StatusCode(code) == nil, "\(code)")
    }
    let error = RPCError(EFTAPI.RuntimeError(.request, .outOfRange, "too long"))
    #expect(error.code == .outOfRange && error.message == "too long")
  }

  @Test func statusNamesAreGRPCs() {
    #expect(statusName(.invalidArgument) == "INVALID_ARGUMENT")
    #expect(statusName(.deadlineExceeded) == "DEADLINE_EXCEEDED")
    #expect(statusName(.unauthenticated) == "UNAUTHENTICATED")
    let names = StatusCode.allCases.filter { $0 != .ok }.map { statusName(RPCError.Code($0)) }
    #expect(Set(names).count == names.count)
    // The runtime's own spelling is the same name in lower case.
    for code in StatusCode.allCases where code != .ok && code != .internal {
      // "deadline_exceeded" and the rest: snake case of the gRPC name.
      #expect(statusName(RPCError.Code(code)).lowercased() == code.description)
    }
  }
}

@Suite struct MessageTests {
  /// What `eft-client` sends is what the server turns back into the same runtime request.
  @Test func generationRequestsRoundTrip() throws {
    var r = GenerationRequest(graph: "upscaled", prompt: "Where does Tomas live?")
    r.temperature = 0.7
    r.topK = 5
    r.topP = 0.9
    r.minP = 0.05
    r.seed = 42
    r.maxTokens = 17
    r.stop = ["\n", "."]
    r.stopAtEOS = false
    r.parameters = ["beta": 1.25]
    r.speculative = true
    r.draft = "ft"
    r.lookahead = 3
    r.adaptiveLookahead = true
    r.returnNodeValues = true
    r.topLogProbs = 3
    #expect(try GenerationRequest(Eft_V1_GenerateRequest(r)) == r)
    // Through bytes too: the numbering of config.proto's `Sampling` is the wire's.
    let bytes: [UInt8] = try Eft_V1_GenerateRequest(r).serializedBytes()
    #expect(try GenerationRequest(Eft_V1_GenerateRequest(serializedBytes: bytes)) == r)

    // Unset fields stay unset (the graph's defaults apply on the server); token prompts travel;
    // zeros are values, not "unset" (`lookahead: 0` turns speculation off, `max_tokens: 0` asks for none).
    var plain = GenerationRequest(prompt: "")
    plain.promptTokens = [1, 2, 3]
    #expect(try GenerationRequest(Eft_V1_GenerateRequest(plain)) == plain)
    var zeros = GenerationRequest(prompt: "x")
    zeros.lookahead = 0
    zeros.maxTokens = 0
    zeros.temperature = 0
    zeros.speculative = false
    #expect(try GenerationRequest(Eft_V1_GenerateRequest(zeros)) == zeros)

    // And the message side: a message read and written back is the same message.
    let m = Eft_V1_GenerateRequest(r)
    #expect(Eft_V1_GenerateRequest(try GenerationRequest(m)) == m)
  }

  @Test func aPromptGivenTwiceIsRefused() {
    let error = #expect(throws: RPCError.self) {
      try GenerationRequest(.with { $0.prompt = "x"; $0.promptTokens = [1] })
    }
    #expect(error?.code == .invalidArgument && error?.message.contains("prompt_tokens") == true)
  }

  @Test func tokenEventsRoundTrip() {
    let event = TokenEvent(token: 7, text: "hé", logProb: -0.25, nodeValues: [-1, -.infinity, 0.5],
                           topLogProbs: [(7, -0.25), (3, -2)])
    let m = Eft_V1_Token(event, piece: "é")
    #expect(m.piece == "é")
    let back = TokenEvent(m)
    #expect(back.token == 7 && back.text == "hé" && back.logProb == -0.25 && back.nodeValues == [-1, -.infinity, 0.5])
    #expect(back.topLogProbs.map(\.token) == [7, 3] && back.topLogProbs.map(\.logProb) == [-0.25, -2])
    #expect(Eft_V1_Token(back, piece: "é") == m)
    // Without node values no piece is sent (the server decodes it only for them).
    let plain = Eft_V1_Token(TokenEvent(token: 1, text: "a", logProb: 0, nodeValues: nil), piece: "a")
    #expect(plain.piece.isEmpty && TokenEvent(plain).nodeValues == nil)
  }

  @Test func resultsRoundTripThroughTheFinish() throws {
    for reason in [FinishReason.eos, .stop, .length, .context] {
      let r = GenerationResult(tokens: [5, 6, 7], text: "abc", finishReason: reason, promptTokens: [12, 9],
                               prefillSeconds: 0.5, decodeSeconds: 1.5,
                               stats: DecodeStats(steps: 2, drafted: 4, accepted: 3, modelCalls: 6),
                               speculation: SpeculationSettings(draft: "ft", lookahead: 4, adaptive: true),
                               modelSeconds: ["base": 1.25, "ft": 0.5])
      #expect(try GenerationResult(Eft_V1_Finish(r), tokens: r.tokens, text: r.text) == r)
      #expect(FinishReason(Eft_V1_FinishReason(reason)) == reason)
    }
    let plain = GenerationResult(tokens: [], text: "", finishReason: .eos, promptTokens: [3], prefillSeconds: 0,
                                 decodeSeconds: 0, stats: DecodeStats(), speculation: nil)
    #expect(try GenerationResult(Eft_V1_Finish(plain), tokens: [], text: "") == plain)
    // A cancelled generation never sends a finish; its reason has no wire value.
    #expect(FinishReason(Eft_V1_FinishReason(.cancelled)) == nil)

    let short = #expect(throws: RPCError.self) { try GenerationResult(Eft_V1_Finish(plain), tokens: [1], text: "a") }
    #expect(short?.code == .dataLoss)
    let unknown = #expect(throws: RPCError.self) { try GenerationResult(.with { $0.reason = .init(rawValue: 99)! }, tokens: [], text: "") }
    #expect(unknown?.message.contains("finish reason") == true)
  }

  @Test func scoresRoundTrip() {
    let r = ScoreResult(tokens: [4, 5], logProbs: [-1.5, -.infinity])
    let m = Eft_V1_ScoreResponse(r, pieces: ["a", "b"])
    #expect(m.total == -.infinity && m.pieces == ["a", "b"])
    #expect(ScoreResult(m) == r)
  }

  @Test func graphSummariesRoundTrip() {
    var defaults = GenerationSettings()
    defaults.sampling = SamplingOptions(temperature: 0, topK: 40, topP: 0.95, minP: 0.05, seed: 9)
    defaults.maxTokens = 24
    defaults.stop = ["\n"]
    defaults.stopAtEOS = false
    defaults.speculation = SpeculationSettings(draft: "ft", lookahead: 4, adaptive: false)
    var g = GraphSummary(
      name: "upscaled", description: "EFT up-scaling",
      parameters: [GraphParameter(name: "beta", defaultValue: 1, description: "strength")],
      nodes: [.init(name: "base", operation: "model(base)"), .init(name: "out", operation: "linear(base·1)")],
      output: "out", defaults: defaults, vocabSize: 512, contextLength: 256,
      models: [.init(name: "base", plugin: "cpu", architecture: "llama", vocabSize: 512, contextLength: 256)])
    #expect(GraphSummary(Eft_V1_GraphInfo(g)) == g)
    g.defaults.speculation = nil
    g.defaults.sampling.temperature = 1
    #expect(GraphSummary(Eft_V1_GraphInfo(g)) == g)
    // Every default is sent, built-in ones included: a client sees what a request would get.
    #expect(Eft_V1_GraphInfo(g).defaults.sampling.hasTemperature && Eft_V1_GraphInfo(g).defaults.sampling.hasStopAtEos)
  }
}

@Suite struct EndpointTests {
  @Test func endpointsParseAndPrint() throws {
    #expect(try ServerEndpoint(parsing: "tcp:8080") == .tcp(host: "127.0.0.1", port: 8080))
    #expect(try ServerEndpoint(parsing: "tcp:0.0.0.0:80") == .tcp(host: "0.0.0.0", port: 80))
    #expect(try ServerEndpoint(parsing: "tcp:[::1]:9") == .tcp(host: "::1", port: 9))
    #expect(try ServerEndpoint(parsing: "unix:/tmp/x.sock") == .unix(path: "/tmp/x.sock"))
    for text in ["tcp:10.0.0.1:50051", "tcp:[::1]:9", "unix:/tmp/x.sock"] {
      #expect(try ServerEndpoint(parsing: text).description == text)
    }
    for bad in ["8080", "tcp:", "tcp:host:", "tcp:1:99999", "unix:", "udp:1"] {
      #expect(throws: EndpointError.self, "\(bad)") { try ServerEndpoint(parsing: bad) }
    }
  }
}
