import Foundation
import Testing

@testable import EFTCore

/// Runs `body(i)` for i in 0..<n, each on a thread of its own (all at once, unlike
/// concurrentPerform, which runs one per core), and returns the results in order.
func onThreads<T: Sendable>(_ n: Int, _ body: @escaping @Sendable (Int) throws -> T) -> [Result<T, any Error>] {
  let results = Locked([Result<T, any Error>?](repeating: nil, count: n))
  let group = DispatchGroup()
  for i in 0..<n {
    group.enter()
    let thread = Thread {
      let r = Result { try body(i) }
      results.withLock { $0[i] = r }
      group.leave()
    }
    thread.stackSize = 8 << 20
    thread.start()
  }
  group.wait()
  return results.withLock { $0.map { $0! } }
}

/// Continuous batching is exact: a request's tokens (and their log-probs, bit for bit) are the
/// same whether it ran alone or in steps shared with other requests — mixed graphs, prompt
/// lengths, greedy and seeded sampling, speculative and plain, requests joining and leaving at
/// different times, one cancelled mid-batch — and whether its prompt was prefilled at once or in
/// chunks. Runs the bundled facts models on the CPU backend, whose batched append computes each
/// session's rows exactly as a call of its own would.
@Suite struct BatchingTests {
  static let config = repoRoot.appendingPathComponent("examples/configs/facts.pbtxt").path
  let runtime: Runtime
  let prompts: [String]

  init() throws {
    runtime = try Runtime(configPath: Self.config, pluginDirectories: [buildDirectory])
    prompts = try EvalItem.load(repoRoot.appendingPathComponent("examples/facts/heldout.jsonl").path).prefix(8).map(\.prompt)
  }

  /// One append per session through `Model.append(_:)` (the plugin's session_append_batch)
  /// equals separate session_append calls bit for bit: sessions at different lengths, appends of
  /// 1 to 9 tokens, every logits mode.
  @Test func batchedAppendEqualsSeparateCalls() throws {
    let model = try #require(runtime.models["large_base"])
    #expect(model.plugin.appendBatch != nil, "the CPU backend implements session_append_batch")
    let graph = try runtime.graph(named: "large_base")
    let histories = prompts.prefix(5).map { graph.tokenizer.encode($0, addSpecialTokens: true) }
    let news: [[Int32]] = histories.enumerated().map { i, h in Array(h.prefix(1 + 2 * i)) }
    let modes: [LogitsMode] = [.last, .all, .none, .all, .last]
    func prepared() throws -> [Session] {
      try histories.map { h in
        let s = try model.makeSession()
        try s.append(h)
        return s
      }
    }
    let alone = try zip(try prepared(), zip(news, modes)).map { s, a in try s.append(a.0, mode: a.1) }
    let batch = try prepared()
    let batched = model.append(zip(batch, zip(news, modes)).map { Append($0, $1.0, $1.1) })
    for i in alone.indices {
      let got = try batched[i].get()
      #expect(got == alone[i], "append \(i): \(news[i].count) tokens, mode \(modes[i])")
      #expect(batch[i].count == histories[i].count + news[i].count)
    }
  }

  /// A failing append in a batch fails alone: the others get their logits.
  @Test func aFailingAppendDoesNotFailTheBatch() throws {
    let model = try #require(runtime.models["small_ft"])
    let a = try model.makeSession(), b = try model.makeSession()
    let results = model.append([Append(a, [1, 2, 3], .last), Append(b, [Int32(model.vocabSize)], .last)])
    #expect(try results[0].get() == (try model.makeSession().append([1, 2, 3], mode: .last)))
    #expect(throws: RuntimeError.self) { try results[1].get() }
    #expect(a.count == 3 && b.count == 0)
  }

  /// The requests of the test: mixed graphs, prompts, sampling, speculation and lengths.
  func requests() -> [GenerationRequest] {
    let graphs = ["upscaled", "small_ft", "large_ft", "upscaled"]
    return (0..<8).map { i in
      var r = GenerationRequest(graph: graphs[i % graphs.count], prompt: prompts[i])
      r.maxTokens = 6 + 3 * i
      r.stopAtEOS = false
      if i % 3 == 1 {
        r.temperature = 0.9
        r.seed = UInt64(100 + i)
      }
      if r.graph == "upscaled" { r.speculative = i % 2 == 0 }
      if i == 7 { r.lookahead = 2 }
      return r
    }
  }

  /// With a step budget of 5 tokens, prompts are prefilled in chunks between other requests'
  /// decoding steps, and decoding rows beyond the budget wait a step: still exact.
  @Test(arguments: [512, 5])
  func concurrentRequestsGiveTheTokensTheyGiveAlone(maxBatchTokens: Int) throws {
    let runtime = try Runtime(configPath: Self.config, pluginDirectories: [buildDirectory], maxBatchTokens: maxBatchTokens)
    let requests = requests()
    let start = runtime.scheduler.statisticsSnapshot
    /// The result and each token's log-prob.
    @Sendable func run(_ runtime: Runtime, _ request: GenerationRequest) throws -> (GenerationResult, [Float]) {
      var logProbs: [Float] = []
      let result = try runtime.generate(request) { event in
        logProbs.append(event.logProb)
        return true
      }
      return (result, logProbs)
    }
    let alone = try requests.map { try run(runtime, $0) }
    let before = runtime.scheduler.statisticsSnapshot
    let shared = runtime
    // Staggered starts: requests join while others are decoding, and leave at different times.
    let together = onThreads(requests.count) { i in
      Thread.sleep(forTimeInterval: 0.002 * Double(i % 4))
      return try run(shared, requests[i])
    }
    for (i, ((a, aLogProbs), t)) in zip(alone, together).enumerated() {
      let (t, tLogProbs) = try t.get()
      #expect(t.tokens == a.tokens, "request \(i) (\(requests[i].graph!))")
      #expect(tLogProbs == aLogProbs, "request \(i): the same log-probs, bit for bit")
      #expect(t.text == a.text)
      #expect(t.finishReason == a.finishReason)
      #expect(t.stats == a.stats, "request \(i): the same steps, drafts and calls")
    }
    let after = runtime.scheduler.statisticsSnapshot
    // Steps were shared: some step carried more appends than one request ever makes at once (3).
    #expect(after.largestStepAppends > 3, "\(after)")
    #expect(after.steps - before.steps < before.steps - start.steps, "fewer steps than one after the other: \(start) → \(before) → \(after)")
    #expect(after.largestStepTokens <= maxBatchTokens)
    #expect(runtime.scheduler.activeMembers == 0)
  }

  @Test func cancellingOneRequestMidBatchLeavesTheOthersExact() throws {
    let requests = requests()
    let alone = try requests.map { try runtime.generate($0) }
    let shared = runtime
    let together = onThreads(requests.count) { i in
      var seen = 0
      return try shared.generate(requests[i]) { _ in
        seen += 1
        return i != 2 || seen < 3  // request 2 stops after its third token
      }
    }
    for (i, (a, t)) in zip(alone, together).enumerated() {
      let t = try t.get()
      if i == 2 {
        #expect(t.finishReason == .cancelled)
        #expect(t.tokens == Array(a.tokens.prefix(t.tokens.count)))
      } else {
        #expect(t.tokens == a.tokens, "request \(i)")
      }
    }
    #expect(runtime.scheduler.activeMembers == 0)
  }

  /// A request cancelled while it waits for its prefill ends with no tokens and leaves; a
  /// cancelled Score throws `.cancelled`.
  @Test func aCancelledPrefillEndsTheRequest() throws {
    struct Cancelled: CancellationSignal { var isCancelled: Bool { true } }
    let result = try runtime.generate(GenerationRequest(prompt: prompts[0]), cancellation: Cancelled())
    #expect(result.finishReason == .cancelled && result.tokens.isEmpty)
    let error = runtimeError { _ = try runtime.score(graph: nil, prompt: prompts[0], continuation: "The", cancellation: Cancelled()) }
    #expect(error?.code == .cancelled)
    #expect(runtime.scheduler.activeMembers == 0)
  }

  /// A score reads its continuation in chunks: the same log-probs whatever the chunk, and a
  /// cancellation seen between two chunks stops it.
  @Test func scoreReadsItsContinuationInChunks() throws {
    let continuation = String(repeating: "The answer is Frostmoor. Fenyar Balutam lives there. ", count: 4)
    let whole = try runtime.score(graph: nil, prompt: prompts[0], continuation: continuation, parameters: [:], cancellation: nil, chunk: 1 << 20)
    #expect(whole.tokens.count > 40)
    for chunk in [1, 7, 64] {
      let parts = try runtime.score(graph: nil, prompt: prompts[0], continuation: continuation, parameters: [:], cancellation: nil, chunk: chunk)
      #expect(parts.tokens == whole.tokens)
      #expect(parts.logProbs == whole.logProbs, "chunk \(chunk)")
    }
    /// Cancelled after `polls` looks.
    final class CancelledLater: CancellationSignal, @unchecked Sendable {
      let lock = NSLock()
      var polls: Int
      init(after polls: Int) { self.polls = polls }
      var isCancelled: Bool { lock.withLock { polls -= 1; return polls < 0 } }
    }
    let error = runtimeError {
      _ = try runtime.score(graph: nil, prompt: prompts[0], continuation: continuation, parameters: [:], cancellation: CancelledLater(after: 3), chunk: 7)
    }
    #expect(error?.code == .cancelled)
    #expect(runtime.scheduler.activeMembers == 0)
  }

  /// Prompts prefilled in chunks of 1, 3 or 7 tokens give the tokens and log-probs of one prefill.
  @Test(arguments: [1, 3, 7])
  func chunkedPrefillIsExact(maxBatchTokens: Int) throws {
    let chunked = try Runtime(configPath: Self.config, pluginDirectories: [buildDirectory], maxBatchTokens: maxBatchTokens)
    for request in requests().prefix(4) {
      let whole = try runtime.generate(request)
      var logProbs: [Float] = []
      let parts = try chunked.generate(request) { event in
        logProbs.append(event.logProb)
        return true
      }
      #expect(parts.tokens == whole.tokens)
      var wholeLogProbs: [Float] = []
      _ = try runtime.generate(request) { event in
        wholeLogProbs.append(event.logProb)
        return true
      }
      #expect(logProbs == wholeLogProbs)
    }
    #expect(chunked.scheduler.statisticsSnapshot.largestStepTokens <= maxBatchTokens)
    // Scoring reads the continuation in one append per session: chunked too.
    let score = try chunked.score(graph: "upscaled", prompt: prompts[0], continuation: "The answer is Frostmoor.")
    let reference = try runtime.score(graph: "upscaled", prompt: prompts[0], continuation: "The answer is Frostmoor.")
    #expect(score.logProbs == reference.logProbs)
  }
}
