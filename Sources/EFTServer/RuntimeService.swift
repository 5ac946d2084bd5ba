import EFTCore
import EFTRPC
import EFTWire
import GRPCCore
import Foundation
import SwiftProtobuf
import Synchronization

/// Limits a server enforces on every request.
public struct ServiceLimits: Sendable {
  /// Calls that run at once (Generate, Score, Tokenize, Detokenize); the next ones wait.
  public var maxConcurrent = 32
  /// Requests that may wait for a slot (first come, first served); more get RESOURCE_EXHAUSTED.
  public var maxQueued = 64
  /// The largest `sampling.max_tokens` a request may ask for; graph defaults above it are capped.
  public var maxTokens = 4096
  /// The largest request message, in bytes. The transport itself drops (resets) messages over
  /// four times this, before reading them; between the two the service answers
  /// RESOURCE_EXHAUSTED with the sizes.
  public var maxMessageBytes = 4 << 20
  /// The longest text a request may hand the tokenizer (a Generate prompt, a Score prompt or
  /// continuation, a Tokenize text), in UTF-8 bytes; longer ones get RESOURCE_EXHAUSTED before
  /// any tokenizing.
  public var maxPromptBytes = 1 << 20
  /// Streams (calls) one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS):
  /// a client past it waits for one of its calls to end. Keeps one connection from taking every
  /// slot of `maxConcurrent` and the queue.
  public var maxStreamsPerConnection = 100
  /// Bytes of KV cache and logits the running calls may hold, by their estimates made before
  /// they start (`Runtime.memoryEstimate`); a call that does not fit waits in the queue, one
  /// estimated over the whole budget gets RESOURCE_EXHAUSTED. Int.max: no budget.
  public var memoryBudget = Int.max

  public init() {}

  /// The runtime request a Generate message asks for, checked against `graph` (prompt token ids
  /// in its vocabulary) and these limits (max_tokens; a graph default above the limit is capped).
  public func request(_ m: Eft_V1_GenerateRequest, graph: CompiledGraph) throws(RPCError) -> GenerationRequest {
    var r = try GenerationRequest(m)
    r.graph = graph.name
    if let ids = r.promptTokens, let i = ids.firstIndex(where: { $0 < 0 || Int($0) >= graph.vocabSize }) {
      throw ServiceError.invalidArgument("prompt_tokens[\(i)] = \(ids[i]) is outside the vocabulary [0, \(graph.vocabSize)) of graph '\(graph.name)'")
    }
    if let n = r.maxTokens, n > maxTokens {
      throw ServiceError.resourceExhausted("sampling.max_tokens = \(n) is over the server's limit of \(maxTokens) (eft-server --max-tokens-limit)")
    } else if r.maxTokens == nil, graph.defaults.maxTokens > maxTokens {
      r.maxTokens = maxTokens
    }
    return r
  }
}

/// Errors the service reports, as gRPC statuses.
enum ServiceError {
  static func invalidArgument(_ message: String) -> RPCError { RPCError(code: .invalidArgument, message: message) }
  static func resourceExhausted(_ message: String) -> RPCError { RPCError(code: .resourceExhausted, message: message) }
}

/// The `eft.v1.Runtime` service: the runtime's API (`Runtime.generate`, `score`, the graphs'
/// tokenizers and descriptions) as gRPC methods. Model code runs on a thread per request (see
/// `onThread`), never on the cooperative pool that serves the network.
public final class RuntimeService: Eft_V1_Runtime.SimpleServiceProtocol {
  public let runtime: Runtime
  public let limits: ServiceLimits
  let admission: Admission
  private let cancelled = Atomic(0)
  private let completed = Atomic(0)
  private let shuttingDown = Atomic(false)
  /// Where a line per Generate and Score call goes (nil: nowhere).
  let requestLog: (@Sendable (String) -> Void)?
  /// What `/metrics` shows (both fronts count into it).
  public let metrics: ServerMetrics
  public let started = Date()

  public init(runtime: Runtime, limits: ServiceLimits = ServiceLimits(), requestLog: (@Sendable (String) -> Void)? = nil) {
    self.runtime = runtime
    self.limits = limits
    self.admission = Admission(limit: limits.maxConcurrent, queueLimit: limits.maxQueued, memoryBudget: limits.memoryBudget)
    self.requestLog = requestLog
    self.metrics = ServerMetrics(models: runtime.modelOrder)
  }

  /// Runs the body of a Generate or Score call: a runtime error it throws becomes the status it
  /// travels as, and, when there is a request log, a line says what the body noted, or the
  /// status it failed with, and the time it took.
  /// Counts the call in the metrics by its graph (`note.graph`), `protocol` and status.
  func serving<T>(_ method: String, protocol: String? = nil, _ body: (CallNote) async throws -> T) async throws -> T {
    let note = CallNote()
    let start = ContinuousClock.now
    func log(_ outcome: String, status: String) {
      metrics.request(graph: note.graph, protocol: `protocol` ?? method, status: status)
      guard let requestLog else { return }
      let d = (ContinuousClock.now - start).components
      let what = note.line.isEmpty ? method : "\(method) \(note.line)"
      let ms = Double(d.seconds) * 1e3 + Double(d.attoseconds) / 1e15
      // Escaped: error messages quote client strings, and a newline in one must not forge a line.
      requestLog(escapedForLog("\(what)\(outcome)") + " (\(String(format: "%.1f", ms)) ms)")
    }
    do {
      let result = try await body(note)
      log("", status: "OK")
      return result
    } catch {
      let status = (error as? EFTCore.RuntimeError).map(RPCError.init) ?? error
      if let rpc = status as? RPCError {
        log(": \(statusName(rpc.code)) \(rpc.message)", status: statusName(rpc.code))
      } else {
        log(": \(status)", status: "UNKNOWN")
      }
      throw status
    }
  }

  /// Marks the start of a graceful shutdown. grpc-swift signals a quiescing server to every
  /// running call as an RPC cancellation; from now on those signals are ignored, so running calls
  /// get the server's grace period (the server cancels their tasks when it ends, and a client
  /// that goes away is still noticed by the failed write).
  public func beginShutdown() {
    shuttingDown.store(true, ordering: .relaxed)
    admission.close()
  }

  /// Runs a method's body with the call's cancellation wired to its sources: gRPC's RPC
  /// cancellation (client, disconnect, deadline) and the task's (shutdown past its grace).
  func withCallCancellation<T>(_ body: (CallCancellation) async throws -> T) async throws -> T {
    let cancellation = CallCancellation()
    return try await withRPCCancellationHandler {
      try await withTaskCancellationHandler {
        try await body(cancellation)
      } onCancel: {
        cancellation.cancel()
      }
    } onCancelRPC: { [self] in
      if !shuttingDown.load(ordering: .relaxed) { cancellation.cancel() }
    }
  }

  /// Requests running model code now, and waiting for a slot.
  public var runningRequests: Int { admission.running }
  public var queuedRequests: Int { admission.waiting }
  /// Bytes the running requests' memory estimates add up to.
  public var reservedMemory: Int { admission.reserved }
  /// Generations stopped early because their call was cancelled (by the client, a disconnect, a
  /// deadline or a shutdown).
  public var cancelledGenerations: Int { cancelled.load(ordering: .relaxed) }
  /// Generations whose decoding ran to its end (EOS, a stop string, max_tokens or the context),
  /// whether or not the client was still there to receive the finish.
  public var completedGenerations: Int { completed.load(ordering: .relaxed) }

  /// RESOURCE_EXHAUSTED for a request over `limits.maxMessageBytes`.
  func checkSize(_ request: some SwiftProtobuf.Message) throws {
    let size = (try request.serializedBytes() as [UInt8]).count
    guard size <= limits.maxMessageBytes else {
      throw ServiceError.resourceExhausted("the request is \(size) bytes, over the server's limit of \(limits.maxMessageBytes) (eft-server --max-message-bytes)")
    }
  }

  /// RESOURCE_EXHAUSTED for a text over `limits.maxPromptBytes`.
  func checkText(_ field: String, _ text: String) throws(RPCError) {
    let size = text.utf8.count
    guard size <= limits.maxPromptBytes else {
      throw ServiceError.resourceExhausted("\(field) is \(size) bytes, over the server's limit of \(limits.maxPromptBytes) (eft-server --max-prompt-bytes)")
    }
  }

  func graph(_ name: String) throws(RPCError) -> CompiledGraph {
    do {
      return try runtime.graph(named: name)
    } catch let error as EFTCore.RuntimeError {
      throw RPCError(error)
    } catch {
      throw RPCError(code: .internalError, message: "\(error)")
    }
  }

  // The calls that can run long read the client's deadline from the request's metadata (the
  // simple handlers below do not see it), so that a call its deadline stops ends with
  // DEADLINE_EXCEEDED rather than CANCELLED.
  public func generate(request: ServerRequest<Eft_V1_GenerateRequest>,
                       context: ServerContext) async throws -> StreamingServerResponse<Eft_V1_GenerateResponse> {
    let deadline = CallDeadline.of(request.metadata)
    return StreamingServerResponse(metadata: [:]) { writer in
      try await CallDeadline.$current.withValue(deadline) {
        try await self.generate(request: request.message, response: writer, context: context)
      }
      return [:]
    }
  }

  public func score(request: ServerRequest<Eft_V1_ScoreRequest>, context: ServerContext) async throws -> ServerResponse<Eft_V1_ScoreResponse> {
    let deadline = CallDeadline.of(request.metadata)
    return ServerResponse(message: try await CallDeadline.$current.withValue(deadline) {
      try await self.score(request: request.message, context: context)
    }, metadata: [:])
  }

  public func generate(request: Eft_V1_GenerateRequest, response: RPCWriter<Eft_V1_GenerateResponse>,
                       context: ServerContext) async throws {
    try await serving("generate", protocol: "grpc") { note in try await generate(request, response, note) }
  }

  private func generate(_ request: Eft_V1_GenerateRequest, _ response: RPCWriter<Eft_V1_GenerateResponse>, _ note: CallNote) async throws {
    try checkSize(request)
    try checkText("prompt", request.prompt)
    let graph = try graph(request.graph)
    note.graph = graph.name
    let generation = try limits.request(request, graph: graph)
    try await withCallCancellation { cancellation in
      let result = try await runGeneration(generation, graph: graph, cancellation: cancellation, note: note) {
        var start = Eft_V1_Start()
        start.graph = graph.name
        start.nodeNames = graph.nodeNames
        start.outputNode = graph.outputName
        start.modelNodes = graph.modelNodeNames
        start.sessionModels = graph.sessionModelNames
        try await response.write(.with { $0.start = start })
      } write: { event in
        let piece = event.nodeValues == nil ? "" : graph.tokenizer.decode([event.token])
        try await response.write(.with { $0.token = Eft_V1_Token(event, piece: piece) })
      }
      try await response.write(.with { $0.finish = Eft_V1_Finish(result) })
    }
  }

  /// One generation under the service's limits, for the gRPC and HTTP fronts alike: estimates its
  /// memory, waits for admission, calls `started`, decodes on a thread of its own and hands each
  /// token event to `write`. A write that throws (the client went away) stops the decoding
  /// thread after its current token; the sessions are freed when it returns. Counts the
  /// generation and notes it for the request log; a generation that was cancelled throws the
  /// call's cancellation status.
  func runGeneration(_ generation: GenerationRequest, graph: CompiledGraph, cancellation: CallCancellation, note: CallNote,
                     started: () async throws -> Void = {},
                     write: (TokenEvent) async throws -> Void) async throws -> GenerationResult {
    let cost: Int
    do {
      cost = try runtime.memoryEstimate(for: generation, graph: graph)
    } catch let error as EFTCore.RuntimeError {
      throw RPCError(error)
    }
    return try await admission.run(cancellation, cost: cost) {
      try await started()
      let (events, sink) = AsyncStream<TokenEvent>.makeStream()
      let runtime = self.runtime
      async let outcome = onThread {
        defer { sink.finish() }
        return try runtime.generate(generation, cancellation: cancellation) { event in
          sink.yield(event)
          return !cancellation.isCancelled
        }
      }
      do {
        for await event in events {
          try await write(event)
        }
      } catch {
        // The client is gone (it cancelled, its deadline passed, or the connection dropped): what
        // it saw is CANCELLED or DEADLINE_EXCEEDED, which is what the log says, with the tokens
        // made until the decoding thread noticed.
        cancellation.cancel()
        let made = (try? await outcome).map { result -> Int in
          count(result, graph: graph)
          return result.tokens.count
        }
        note.text += made.map { ": \($0) tokens" } ?? ""
        throw cancellation.error("the client went away (\(error))")
      }
      let result = try await outcome
      count(result, graph: graph)
      note.text += ": \(result.tokens.count) tokens, \(result.finishReason.rawValue)"
      guard result.finishReason != .cancelled, !cancellation.isCancelled else {
        throw cancellation.error("the generation was cancelled after \(result.tokens.count) tokens")
      }
      return result
    }
  }

  private func count(_ result: GenerationResult, graph: CompiledGraph) {
    metrics.generation(graph: graph.name, result: result)
    if result.finishReason == .cancelled {
      cancelled.add(1, ordering: .relaxed)
    } else {
      completed.add(1, ordering: .relaxed)
    }
  }

  public func score(request: Eft_V1_ScoreRequest, context: ServerContext) async throws -> Eft_V1_ScoreResponse {
    try await serving("score", protocol: "grpc") { note in try await score(request, note) }
  }

  private func score(_ request: Eft_V1_ScoreRequest, _ note: CallNote) async throws -> Eft_V1_ScoreResponse {
    try checkSize(request)
    try checkText("prompt", request.prompt)
    try checkText("continuation", request.continuation)
    let graph = try graph(request.graph)
    note.graph = graph.name
    let runtime = self.runtime
    let cost = runtime.scoreMemoryEstimate(graph: graph, prompt: request.prompt, continuation: request.continuation)
    let result = try await admittedOnThread(cost: cost) { cancellation in
      try runtime.score(graph: graph.name, prompt: request.prompt, continuation: request.continuation,
                        parameters: request.parameters, cancellation: cancellation)
    }
    note.text += ": \(result.tokens.count) tokens, total \(String(format: "%.4f", result.total))"
    return Eft_V1_ScoreResponse(result, pieces: result.tokens.map { graph.tokenizer.decode([$0]) })
  }

  /// Runs `body` on a thread of its own once admitted, with the call's cancellation wired up; a
  /// runtime error of cancellation becomes CANCELLED or DEADLINE_EXCEEDED. Tokenizing a long text
  /// is real work too, so Tokenize and Detokenize take this path as Score does: a flood of them
  /// cannot starve the network or bypass the limits.
  private func admittedOnThread<T: Sendable>(cost: Int = 0, _ body: @escaping @Sendable (CallCancellation) throws -> T) async throws -> T {
    try await withCallCancellation { cancellation in
      try await admission.run(cancellation, cost: cost) {
        let result: T
        do {
          result = try await onThread { try body(cancellation) }
        } catch let error as EFTCore.RuntimeError where error.code == .cancelled {
          throw cancellation.error(error.message)
        }
        // Done, but after the call was cancelled or its deadline passed: the client saw that
        // status, not this result, so the call ends (and is logged) with it.
        if cancellation.isOver { throw cancellation.error("the result came after the call ended") }
        return result
      }
    }
  }

  public func tokenize(request: Eft_V1_TokenizeRequest, context: ServerContext) async throws -> Eft_V1_TokenizeResponse {
    try checkSize(request)
    try checkText("text", request.text)
    let graph = try graph(request.graph)
    let ids = try await admittedOnThread { _ in graph.tokenizer.encode(request.text, addSpecialTokens: request.addSpecialTokens) }
    return .with { $0.ids = ids }
  }

  public func detokenize(request: Eft_V1_DetokenizeRequest, context: ServerContext) async throws -> Eft_V1_DetokenizeResponse {
    try checkSize(request)
    let graph = try graph(request.graph)
    if let i = request.ids.firstIndex(where: { $0 < 0 || Int($0) >= graph.vocabSize }) {
      throw ServiceError.invalidArgument("ids[\(i)] = \(request.ids[i]) is outside the vocabulary [0, \(graph.vocabSize)) of graph '\(graph.name)'")
    }
    let text = try await admittedOnThread { _ in graph.tokenizer.decode(request.ids, skipSpecialTokens: request.skipSpecialTokens) }
    return .with { $0.text = text }
  }

  public func listGraphs(request: Eft_V1_ListGraphsRequest, context: ServerContext) async throws -> Eft_V1_ListGraphsResponse {
    .with {
      $0.graphs = runtime.graphs.map { Eft_V1_GraphInfo(GraphSummary($0)) }
      $0.defaultGraph = runtime.defaultGraph ?? ""
    }
  }

  public func describeGraph(request: Eft_V1_DescribeGraphRequest, context: ServerContext) async throws -> Eft_V1_GraphInfo {
    Eft_V1_GraphInfo(GraphSummary(try graph(request.name)))
  }
}

/// `text` with control characters written as escapes (`\n`, `\u{1B}`), so that it stays one line.
func escapedForLog(_ text: String) -> String {
  var out = ""
  for scalar in text.unicodeScalars {
    switch scalar {
    case "\n": out += "\\n"
    case "\r": out += "\\r"
    case "\t": out += "\\t"
    case "\\": out += "\\\\"
    default:
      if scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .lineSeparator
        || scalar.properties.generalCategory == .paragraphSeparator {
        out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
      } else {
        out.unicodeScalars.append(scalar)
      }
    }
  }
  return out
}

/// What a call's log line says about it, filled in as the call learns it: its graph, then
/// what came of it.
final class CallNote {
  var graph = ""
  var text = ""
  var line: String { text.isEmpty ? graph : graph + text }
}
