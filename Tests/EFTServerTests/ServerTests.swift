import EFTCore
import EFTRPC
import EFTWire
@testable import EFTServer
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Testing

/// A real server on a temporary Unix socket and a free loopback port, exercised through the
/// generated client; every answer is checked against the runtime called in-process.
@Suite struct ServerTests {
  @Test func everyRPCAnswersAsTheRuntimeDoes() async throws {
    let runtime = try facts()
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(runtime, [.unix(path: dir.socket), .tcp(host: "127.0.0.1", port: 0)])
    let permissions = try FileManager.default.attributesOfItem(atPath: dir.socket)[.posixPermissions] as? Int
    #expect(permissions == 0o600, "the socket must be owner-only")
    guard case .tcp(_, let port) = running.tcpEndpoint else { return }
    #expect(port > 0)

    for endpoint in running.endpoints {
      try await withClient(endpoint) { client in
        let list = try await client.listGraphs(Eft_V1_ListGraphsRequest())
        #expect(list.graphs.map(\.name) == runtime.graphs.map(\.name))
        #expect(list.defaultGraph == "upscaled")

        let g = try await client.describeGraph(.with { $0.name = "upscaled" })
        #expect(g.nodes.map(\.name) == ["large", "ft", "base", "eft"])
        #expect(g.nodes.last?.operation == "linear(large·1 + ft·(beta) + base·(-beta))")
        #expect(g.outputNode == "eft")
        #expect(g.parameters.map(\.name) == ["beta"] && g.parameters.first?.defaultValue == 0.5)
        #expect(g.models.map(\.name) == ["large_base", "small_ft", "small_base"])
        #expect(g.models.first?.architecture == "llama")
        #expect(g.defaults.sampling.maxTokens == 24 && g.defaults.sampling.temperature == 0)
        #expect(g.defaults.speculation.draft == "ft" && g.defaults.speculation.lookahead == 4)
        #expect(g.vocabSize == 1024 && g.contextLength == 256)

        let graph = try runtime.graph(named: nil)
        let ids = try await client.tokenize(.with { $0.text = question }).ids
        #expect(ids == graph.tokenizer.encode(question, addSpecialTokens: false))
        #expect(ids.count > 5)
        let withSpecial = try await client.tokenize(.with { $0.text = question; $0.addSpecialTokens = true }).ids
        #expect(withSpecial == graph.tokenizer.encode(question, addSpecialTokens: true))
        #expect(try await client.detokenize(.with { $0.ids = ids }).text == question)

        let continuation = "The answer is Frostmoor."
        let score = try await client.score(.with { $0.prompt = question; $0.continuation = continuation })
        let local = try runtime.score(graph: nil, prompt: question, continuation: continuation)
        #expect(score.tokens == local.tokens)
        #expect(score.logProbs == local.logProbs)
        #expect(score.total == local.total)
        #expect(score.pieces.joined() == continuation)

        // Greedy, the graph's defaults (speculative, as the config says), node log-probs on.
        let streamed = try await generate(client, .with { $0.prompt = question; $0.returnNodeLogProbs = true })
        let expected = try runtime.generate(GenerationRequest(prompt: question))
        #expect(streamed.text == "The answer is Frostmoor.")
        #expect(streamed.text == expected.text)
        #expect(streamed.ids == expected.tokens)
        #expect(streamed.start?.graph == "upscaled")
        #expect(streamed.start?.nodeNames == ["large", "ft", "base", "eft"])
        #expect(streamed.start?.modelNodes == ["large", "ft", "base"])
        #expect(streamed.start?.sessionModels == ["large_base", "small_ft", "small_base"])
        #expect(streamed.start?.sessionModels.count == streamed.finish?.promptTokens.count)
        #expect(streamed.finish?.reason == .eos)
        #expect(streamed.finish?.completionTokens == Int32(expected.tokens.count))
        #expect(streamed.finish?.promptTokens == expected.promptTokens.map(Int32.init))
        #expect(streamed.finish?.speculation.draft == "ft")
        #expect(streamed.finish?.stats.modelCalls ?? 0 > 0)
        for token in streamed.tokens where token.id >= 0 {
          #expect(token.nodeLogProbs.count == 4)
          #expect(token.logProb <= 0 && token.logProb.isFinite)
        }
      }
    }

    try await connect(running.unixEndpoint) { connection in
      let health = HealthClient(wrapping: connection)
      let whole = try await health.check(.with { $0.service = "" })
      let runtimeService = try await health.check(.with { $0.service = "eft.v1.Runtime" })
      #expect(whole.status == .serving)
      #expect(runtimeService.status == .serving)
      #expect(await rpcCode { _ = try await health.check(.with { $0.service = "nope" }) } == .notFound)
    }

    try await running.stop()
    #expect(!FileManager.default.fileExists(atPath: dir.socket), "shutdown removes the socket file")
  }

  @Test func sixteenConcurrentStreamsEachEqualTheirSingleStream() async throws {
    let runtime = try facts()
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(runtime, [.unix(path: dir.socket)])
    func request(_ seed: UInt64) -> Eft_V1_GenerateRequest {
      .with {
        $0.prompt = question
        $0.sampling.temperature = 1.5  // hot enough that different seeds give different text
        $0.sampling.seed = seed
        $0.sampling.maxTokens = 16
        $0.sampling.stopAtEos = false
      }
    }
    // One stream at a time, and the runtime in-process.
    var single: [UInt64: Streamed] = [:]
    try await withClient(running.unixEndpoint) { client in
      for seed in UInt64(1)...16 { single[seed] = try await generate(client, request(seed)) }
    }
    for seed in UInt64(1)...16 {
      var local = GenerationRequest(prompt: question)
      local.temperature = 1.5
      local.seed = seed
      local.maxTokens = 16
      local.stopAtEOS = false
      #expect(single[seed]?.ids == (try runtime.generate(local).tokens), "seed \(seed)")
    }
    #expect(Set(single.values.map(\.text)).count > 8, "different seeds should give different generations")

    // Sixteen at once, each on its own connection, and sixteen multiplexed on one connection.
    let service = running.server.service
    let watching = Task {
      var most = 0
      while !Task.isCancelled {
        most = max(most, service.runningRequests)
        try? await Task.sleep(for: .milliseconds(1))
      }
      return most
    }
    let separate = try await withThrowingTaskGroup(of: (UInt64, Streamed).self) { group in
      for seed in UInt64(1)...16 {
        group.addTask { (seed, try await withClient(running.unixEndpoint) { try await generate($0, request(seed)) }) }
      }
      return try await group.reduce(into: [UInt64: Streamed]()) { $0[$1.0] = $1.1 }
    }
    let shared = try await withClient(running.unixEndpoint) { client in
      try await withThrowingTaskGroup(of: (UInt64, Streamed).self) { group in
        for seed in UInt64(1)...16 { group.addTask { (seed, try await generate(client, request(seed))) } }
        return try await group.reduce(into: [UInt64: Streamed]()) { $0[$1.0] = $1.1 }
      }
    }
    watching.cancel()
    #expect(await watching.value > 1, "the streams ran concurrently")
    for seed in UInt64(1)...16 {
      #expect(separate[seed]?.ids == single[seed]?.ids, "seed \(seed), own connection")
      #expect(shared[seed]?.ids == single[seed]?.ids, "seed \(seed), shared connection")
      #expect(separate[seed]?.text == single[seed]?.text)
      #expect(shared[seed]?.finish?.reason == .length)
    }
    try await running.stop()
  }

  /// A long generation: hot sampling, no EOS stop, nearly the context.
  static let long: Eft_V1_GenerateRequest = .with {
    $0.prompt = question
    $0.sampling.temperature = 1
    $0.sampling.seed = 3
    $0.sampling.maxTokens = 220
    $0.sampling.stopAtEos = false
    $0.speculation.enabled = false
  }

  @Test func cancellingMidStreamStopsTheGenerationAndFreesItsSlot() async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)])
    let service = running.server.service
    let received = try await withClient(running.unixEndpoint) { client in
      try await client.generate(Self.long) { response in
        var tokens = 0
        for try await message in response.messages {
          if case .token = message.event { tokens += 1 }
          if tokens == 3 { break }  // returning from the handler cancels the call
        }
        return tokens
      }
    }
    #expect(received == 3)
    #expect(try await eventually { service.runningRequests == 0 && service.cancelledGenerations == 1 })

    // Disconnecting (the whole connection goes away mid-stream) does the same.
    let connection = Task {
      try await withClient(running.unixEndpoint) { client in
        try await client.generate(Self.long) { response in
          for try await _ in response.messages {}
        }
      }
    }
    #expect(try await eventually { service.runningRequests == 1 })
    connection.cancel()
    _ = await connection.result
    #expect(try await eventually { service.runningRequests == 0 && service.cancelledGenerations == 2 })

    // And the server goes on serving.
    let after = try await withClient(running.unixEndpoint) { try await generate($0, .with { $0.prompt = question }) }
    #expect(after.text == "The answer is Frostmoor.")
    try await running.stop()
  }

  @Test func aDeadlineStopsTheGenerationOnTheServer() async throws {
    let dir = try SocketDirectory()
    let lines = Lines()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) { options in
      options.requestLog = { lines.append($0) }
    }
    let service = running.server.service
    var options = CallOptions.defaults
    options.timeout = .milliseconds(100)
    let (code, tokens) = try await withClient(running.unixEndpoint) { client in
      let count = Counter()
      let code = await rpcCode {
        try await client.generate(Self.long, options: options) { response in
          for try await message in response.messages { if case .token = message.event { count.add() } }
        }
      }
      return (code, count.value)
    }
    #expect(code == .deadlineExceeded)
    #expect(tokens < 220, "the deadline cut the generation short")
    // Had the server ignored the deadline, it would have finished the generation before it
    // freed the slot. (Under load the deadline may pass before the generation starts; then it
    // never runs at all.)
    #expect(try await eventually { service.runningRequests == 0 })
    #expect(service.completedGenerations == 0)
    #expect(service.cancelledGenerations <= 1)
    // The server reads the deadline from the call's grpc-timeout: it ends the call with
    // DEADLINE_EXCEEDED, not CANCELLED. (On a loaded machine — under ThreadSanitizer in CI — the
    // deadline can pass before the handler starts; gRPC then answers without it, and no line is
    // logged.)
    _ = try await eventually { lines.all.count == 1 }
    #expect(lines.all.count <= 1)
    if let line = lines.all.first {
      #expect(line.contains("DEADLINE_EXCEEDED"), "\(line)")
      // With the tokens made, when the generation started (not "I/O on closed channel" alone).
      if line.hasPrefix("generate upscaled:") { #expect(line.contains(" tokens"), "\(line)") }
    }
    let after = try await withClient(running.unixEndpoint) { try await generate($0, .with { $0.prompt = question }) }
    #expect(after.text == "The answer is Frostmoor.")
    try await running.stop()
  }

  /// A Score that finishes after its deadline passed ends (and is logged) with
  /// DEADLINE_EXCEEDED, which is what its client saw, not as a success. The model takes 300 ms
  /// a token (the bigram backend's delay option): the prompt (~4 tokens) is read before the 2 s
  /// deadline, and the continuation (~10 tokens, one chunk, no cancellation check inside it)
  /// ends after it — the case that was logged as a success. (On a machine so loaded that the
  /// client's cancellation arrives before the prompt is read, the score stops there instead:
  /// DEADLINE_EXCEEDED as well; one so loaded that the deadline passes before the handler
  /// starts gets its answer from gRPC, and no line is logged.)
  @Test func aScoreFinishingPastItsDeadlineIsLoggedAsSuch() async throws {
    let dir = try SocketDirectory()
    let config = URL(fileURLWithPath: dir.path).appendingPathComponent("slow.pbtxt").path
    try """
      plugins { name: "BigramBackend" }
      models {
        name: "m" plugin: "BigramBackend" path: "\(repoRoot.path)/examples/models/tiny/large_base.bigram"
        options { [type.googleapis.com/eft.v1.BigramOptions] { delay_us_per_token: 300000 } }
      }
      graphs { name: "g" nodes { name: "a" model { model: "m" } } output: "a" }
      """.write(toFile: config, atomically: true, encoding: .utf8)
    let runtime = try Runtime(configPath: config, pluginDirectories: [buildDirectory])
    let lines = Lines()
    let running = try await RunningServer.start(runtime, [.unix(path: dir.socket)]) { options in
      options.requestLog = { lines.append($0) }
    }
    var options = CallOptions.defaults
    options.timeout = .seconds(2)
    let code = try await withClient(running.unixEndpoint) { client in
      await rpcCode { _ = try await client.score(.with { $0.prompt = "Tomas"; $0.continuation = " lives in Oakridge. Tomas lives in Oakridge." }, options: options) }
    }
    #expect(code == .deadlineExceeded)
    _ = try await eventually(10) { lines.all.count == 1 }
    #expect(lines.all.count <= 1, "\(lines.all)")
    if let line = lines.all.first { #expect(line.contains("DEADLINE_EXCEEDED"), "\(line)") }
    try await running.stop()
  }

  @Test func badRequestsGetAStatusNamingTheFieldAndTheServerKeepsServing() async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) {
      $0.limits.maxMessageBytes = 64 << 10
      $0.limits.maxPromptBytes = 32 << 10
      $0.limits.maxTokens = 100
    }
    try await withClient(running.unixEndpoint) { client in
      func generateError(_ configure: (inout Eft_V1_GenerateRequest) -> Void) async -> RPCError? {
        var request = Eft_V1_GenerateRequest()
        request.prompt = question
        configure(&request)
        return await rpcError { _ = try await generate(client, request) }
      }
      let cases: [(RPCError.Code, String, (inout Eft_V1_GenerateRequest) -> Void)] = [
        (.notFound, "no graph 'nope'", { $0.graph = "nope" }),
        (.invalidArgument, "prompt and prompt_tokens", { $0.promptTokens = [1, 2] }),
        (.invalidArgument, "prompt_tokens[1] = 5000", { $0.prompt = ""; $0.promptTokens = [1, 5000] }),
        (.invalidArgument, "sampling.temperature", { $0.sampling.temperature = -1 }),
        (.invalidArgument, "sampling.top_p", { $0.sampling.topP = 2 }),
        (.invalidArgument, "no parameter 'gamma'", { $0.parameters = ["gamma": 1] }),
        (.invalidArgument, "speculative.lookahead = 100", { $0.speculation.lookahead = 100 }),
        (.invalidArgument, "speculative.draft 'nope'", { $0.speculation.draft = "nope" }),
        (.invalidArgument, "stop holds an empty string", { $0.sampling.stop = [""] }),
        (.invalidArgument, "max_tokens = -1", { $0.sampling.maxTokens = -1 }),
        (.resourceExhausted, "max_tokens = 101 is over the server's limit of 100", { $0.sampling.maxTokens = 101 }),
        (.outOfRange, "the prompt is over 256 tokens for model 'large_base', which holds 256", { $0.prompt = String(repeating: "Fenyar Balutam ", count: 400) }),
        (.resourceExhausted, "prompt is 40960 bytes, over the server's limit of 32768 (eft-server --max-prompt-bytes)", { $0.prompt = String(repeating: "a", count: 40 << 10) }),
        (.resourceExhausted, "over the server's limit of 65536 (eft-server --max-message-bytes)", { $0.prompt = String(repeating: "a", count: 65 << 10) }),
      ]
      for (code, message, configure) in cases {
        let error = await generateError(configure)
        #expect(error?.code == code, "\(message): \(String(describing: error))")
        #expect(error?.message.contains(message) == true, "\(String(describing: error?.message)) should contain \(message)")
      }
      #expect(await rpcCode { _ = try await client.detokenize(.with { $0.ids = [3, 99999] }) } == .invalidArgument)
      #expect(await rpcError { _ = try await client.detokenize(.with { $0.ids = [3, 99999] }) }?.message.contains("ids[1] = 99999") == true)
      #expect(await rpcCode { _ = try await client.score(.with { $0.prompt = question; $0.continuation = "" }) } == .invalidArgument)
      let longText = String(repeating: "b", count: 33 << 10)
      let continuation = await rpcError { _ = try await client.score(.with { $0.prompt = question; $0.continuation = longText }) }
      #expect(continuation?.code == .resourceExhausted && continuation?.message.hasPrefix("continuation is 33792 bytes") == true)
      let text = await rpcError { _ = try await client.tokenize(.with { $0.text = longText }) }
      #expect(text?.code == .resourceExhausted && text?.message.hasPrefix("text is 33792 bytes") == true)
      // Far over the limit, the transport drops the message unread (the stream is reset).
      let huge = await rpcCode { _ = try await client.tokenize(.with { $0.text = String(repeating: "a", count: 300 << 10) }) }
      #expect(huge != nil)
      #expect(await rpcCode { _ = try await client.describeGraph(.with { $0.name = "nope" }) } == .notFound)
      #expect(await rpcCode { _ = try await client.tokenize(.with { $0.graph = "nope" }) } == .notFound)
      // A graph default over the limit is capped, not refused.
      let capped = try await generate(client, .with { $0.prompt = question; $0.sampling.stopAtEos = false; $0.sampling.temperature = 1 })
      #expect(capped.finish?.completionTokens == 24)
      // Still serving.
      let after = try await generate(client, .with { $0.prompt = question })
      #expect(after.text == "The answer is Frostmoor.")
    }
    try await running.stop()
  }

  /// Past --max-streams-per-connection, a connection's further calls wait in the client: the
  /// server never sees them (with one slot, a call it saw would be queued); another connection
  /// still gets in.
  @Test(arguments: [1, 100])
  func oneConnectionHasAtMostItsStreams(streams: Int) async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) {
      $0.limits.maxStreamsPerConnection = streams
      $0.limits.maxConcurrent = 1
    }
    let service = running.server.service
    try await withClient(running.unixEndpoint) { client in
      let firstDone = Locked(false)
      let first = Task {
        defer { firstDone.withLock { $0 = true } }
        return try await generate(client, Self.long)
      }
      #expect(try await eventually { service.runningRequests == 1 })
      let second = Task { try await generate(client, .with { $0.prompt = question }) }
      // Reaching the queue may take a while on a loaded machine (ThreadSanitizer); staying away
      // is checked for 0.15 s (the long call must outlast it).
      let seen = try await eventually(streams > 1 ? 10 : 0.15) { service.queuedRequests == 1 }
      #expect(!firstDone.withLock { $0 }, "the long call ended before the check")
      #expect(seen == (streams > 1), streams > 1 ? "the second call must reach the server's queue" : "the second call must wait in the client")
      let other = try await withClient(running.unixEndpoint) { try await generate($0, .with { $0.prompt = question }) }
      #expect(other.text == "The answer is Frostmoor.", "another connection's call is served")
      #expect(try await second.value.text == "The answer is Frostmoor.")
      _ = try await first.value
    }
    try await running.stop()
  }

  /// Calls are admitted by their memory estimates too: past the budget the next call waits (with
  /// slots free), one over the whole budget is refused, and what they reserved is given back.
  @Test func callsWaitForTheMemoryBudget() async throws {
    let runtime = try facts()
    let graph = try runtime.graph(named: nil)
    let request = try ServiceLimits().request(Self.long, graph: graph)
    let cost = try runtime.memoryEstimate(for: request, graph: graph)
    // The estimate bounds what the sessions can hold: every model's cache for prompt + tokens.
    #expect(graph.models.allSatisfy { $0.sessionBytesPerToken > 0 })
    #expect(cost >= graph.models.map { $0.sessionBytesPerToken * 220 }.reduce(0, +))
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(runtime, [.unix(path: dir.socket)]) {
      $0.limits.memoryBudget = cost + cost / 2
    }
    let service = running.server.service
    try await withClient(running.unixEndpoint) { client in
      let first = Task { try await generate(client, Self.long) }
      #expect(try await eventually { service.runningRequests == 1 })
      #expect(service.reservedMemory == cost)
      let second = Task { try await generate(client, Self.long) }
      #expect(try await eventually { service.queuedRequests == 1 }, "the second call must wait for memory, not for a slot")
      #expect(service.runningRequests == 1)
      _ = try await first.value
      _ = try await second.value
    }
    #expect(service.reservedMemory == 0)
    try await running.stop()

    let small = try await RunningServer.start(runtime, [.unix(path: dir.socket)]) { $0.limits.memoryBudget = cost - 1 }
    let tooBig = await rpcError { _ = try await withClient(small.unixEndpoint) { try await generate($0, Self.long) } }
    #expect(tooBig?.code == .resourceExhausted)
    #expect(tooBig?.message.contains("over the server's whole memory budget") == true, "\(String(describing: tooBig))")
    #expect(try await withClient(small.unixEndpoint) { try await generate($0, .with { $0.prompt = question }) }.text == "The answer is Frostmoor.")
    try await small.stop()
  }

  @Test func requestsOverTheLimitWaitAndOverTheQueueAreRefused() async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) {
      $0.limits.maxConcurrent = 1
      $0.limits.maxQueued = 1
    }
    let service = running.server.service
    try await withClient(running.unixEndpoint) { client in
      let first = Task { try await generate(client, Self.long) }
      #expect(try await eventually { service.runningRequests == 1 })
      // The second waits for the slot; the third finds the queue full.
      let second = Task { try await generate(client, .with { $0.prompt = question }) }
      #expect(try await eventually { service.queuedRequests == 1 })
      let error = await rpcError { _ = try await generate(client, .with { $0.prompt = question }) }
      #expect(error?.code == .resourceExhausted)
      #expect(error?.message.contains("--max-concurrent") == true)
      let waited = try await second.value
      #expect(waited.text == "The answer is Frostmoor.")
      let long = try await first.value
      #expect(long.finish?.completionTokens == 220)
      let after = try await generate(client, .with { $0.prompt = question })
      #expect(after.text == "The answer is Frostmoor.")
    }
    try await running.stop()
  }

  @Test func aCancelledWaiterLeavesTheQueueWithoutRunning() async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) { $0.limits.maxConcurrent = 1 }
    let service = running.server.service
    try await withClient(running.unixEndpoint) { client in
      let first = Task { try await generate(client, Self.long) }
      #expect(try await eventually { service.runningRequests == 1 })
      let waiter = Task { try await generate(client, Self.long) }
      #expect(try await eventually { service.queuedRequests == 1 })
      waiter.cancel()
      #expect(try await eventually { service.queuedRequests == 0 })
      _ = try await first.value
      #expect(try await eventually { service.runningRequests == 0 })
      #expect(service.completedGenerations == 1, "the cancelled waiter never ran")
      #expect(service.cancelledGenerations == 0)
    }
    try await running.stop()
  }

  @Test func malformedBytesAndMessagesDoNotStopTheServer() async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)])
    // Not HTTP/2 at all: the server drops the connection.
    try sendRaw(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + [UInt8](repeating: 0xff, count: 4096), to: dir.socket)
    // A gRPC call whose message is not a GenerateRequest.
    try await connect(running.unixEndpoint) { connection in
      let garbage = ClientRequest(message: [UInt8]([0xff, 0xff, 0xff, 0x0f, 0x08]))
      let code = await rpcCode {
        try await connection.serverStreaming(
          request: garbage, descriptor: MethodDescriptor(fullyQualifiedService: "eft.v1.Runtime", method: "Generate"),
          serializer: RawSerializer(), deserializer: RawDeserializer(), options: .defaults) { response in
            for try await _ in response.messages {}
          }
      }
      #expect(code != nil, "an unparseable message must fail")
    }
    let after = try await withClient(running.unixEndpoint) { try await generate($0, .with { $0.prompt = question }) }
    #expect(after.text == "The answer is Frostmoor.")
    try await running.stop()
  }

  @Test func shutdownCancelsWhatOutlivesTheGracePeriodAndRemovesTheSocket() async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) { $0.shutdownGrace = .zero }
    let service = running.server.service
    let inFlight = Task {
      await rpcCode { _ = try await withClient(running.unixEndpoint) { try await generate($0, Self.long) } }
    }
    // A health watcher sees SERVING, then NOT_SERVING when the shutdown begins, then its call ends
    // (or is reset: with no grace, the shutdown may cancel it before NOT_SERVING goes out, as it
    // did under ThreadSanitizer).
    let statuses = Locked<[Grpc_Health_V1_HealthCheckResponse.ServingStatus]>([])
    let watcher = Task {
      try? await connect(running.unixEndpoint) { connection in
        try await HealthClient(wrapping: connection).watch(.with { $0.service = "" }) { response in
          for try await message in response.messages { statuses.withLock { $0.append(message.status) } }
        }
      }
    }
    #expect(try await eventually { service.runningRequests == 1 })
    #expect(try await eventually(30) { !statuses.withLock { $0 }.isEmpty }, "the watcher gets its first answer")
    try await running.stop()
    await watcher.value
    let seen = statuses.withLock { $0 }
    #expect(seen == [.serving, .notServing] || seen == [.serving], "\(seen)")
    let code = await inFlight.value
    #expect(code != nil, "a generation cut by shutdown must not end OK")
    #expect(service.runningRequests == 0)
    #expect(!FileManager.default.fileExists(atPath: dir.socket))
  }

  /// A call stuck in a backend (FixtureBrokenBackend's `append-hangs` never returns) cannot hold
  /// a shutdown: `run` gives up on it `shutdownForce` after the grace period, says how many calls
  /// it left, and the socket file is removed.
  @Test func aShutdownEndsInBoundedTimeEvenWithACallStuckInABackend() async throws {
    let dir = try SocketDirectory()
    let tokenizer = #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "decoder": {"type": "ByteLevel"}}"#
    try tokenizer.write(toFile: dir.path + "/tokenizer.json", atomically: true, encoding: .utf8)
    try """
      plugins { name: "FixtureBrokenBackend" }
      models { name: "stuck" plugin: "FixtureBrokenBackend" path: "append-hangs" tokenizer: "tokenizer.json" }
      graphs { name: "g" nodes { name: "n" model { model: "stuck" } } output: "n" }
      """.write(toFile: dir.path + "/stuck.pbtxt", atomically: true, encoding: .utf8)
    let runtime = try Runtime(configPath: dir.path + "/stuck.pbtxt", pluginDirectories: [buildDirectory])
    let running = try await RunningServer.start(runtime, [.unix(path: dir.socket)]) {
      $0.shutdownGrace = .milliseconds(100)
      $0.shutdownForce = .milliseconds(300)
    }
    let service = running.server.service
    let stuck = Task { await rpcCode { _ = try await withClient(running.unixEndpoint) { try await generate($0, .with { $0.prompt = "ab" }) } } }
    #expect(try await eventually { service.runningRequests == 1 })
    let start = ContinuousClock.now
    let error = await #expect(throws: ShutdownError.self) { try await running.stop() }
    #expect(ContinuousClock.now - start < .seconds(3))
    #expect(error?.calls == 1)
    #expect(error?.description.hasPrefix("1 call still running 0.4 seconds after the shutdown began") == true, "\(String(describing: error))")
    #expect(!FileManager.default.fileExists(atPath: dir.socket))
    stuck.cancel()
  }

  @Test func aGracefulShutdownLetsRunningCallsFinish() async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) { $0.shutdownGrace = .seconds(60) }
    let service = running.server.service
    let inFlight = Task { try await withClient(running.unixEndpoint) { try await generate($0, Self.long) } }
    #expect(try await eventually { service.runningRequests == 1 })
    try await running.stop()
    let finished = try await inFlight.value
    #expect(finished.finish?.reason == .length)
    #expect(finished.ids.count == 220)
    #expect(!FileManager.default.fileExists(atPath: dir.socket))
  }

  /// At shutdown a call waiting for a slot gets UNAVAILABLE at once (it never starts), while the
  /// running one finishes within the grace period.
  @Test func queuedCallsGetUnavailableAtShutdown() async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) {
      $0.limits.maxConcurrent = 1
      $0.shutdownGrace = .seconds(60)
    }
    let service = running.server.service
    try await withClient(running.unixEndpoint) { client in
      let first = Task { try await generate(client, Self.long) }
      #expect(try await eventually { service.runningRequests == 1 })
      let waiter = Task { await rpcError { _ = try await generate(client, .with { $0.prompt = question }) } }
      #expect(try await eventually { service.queuedRequests == 1 })
      running.server.shutdown()
      let refused = await waiter.value
      #expect(refused?.code == .unavailable, "\(String(describing: refused))")
      #expect(service.queuedRequests == 0)
      let finished = try await first.value
      #expect(finished.ids.count == 220)
    }
    try await running.stop()
    #expect(service.completedGenerations == 1)
  }

  /// A Watch whose client goes away is ended and freed (not left waiting for a status change).
  @Test func aWatchWhoseClientLeavesIsFreed() async throws {
    let dir = try SocketDirectory()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)])
    let health = running.server.health
    let watch = Task {
      try await connect(running.unixEndpoint) { connection in
        try await HealthClient(wrapping: connection).watch(.with { $0.service = "" }) { response in
          for try await _ in response.messages {}
        }
      }
    }
    #expect(try await eventually { health.watchers == 1 })
    watch.cancel()
    _ = await watch.result
    #expect(try await eventually { health.watchers == 0 })
    try await running.stop()
  }

  @Test func grpcTimeoutHeadersParse() {
    let now = ContinuousClock.now
    for (header, seconds) in [("100m", 0.1), ("2S", 2.0), ("1M", 60.0), ("1H", 3600.0), ("5000u", 0.005), ("99999999n", 0.1)] {
      let deadline = try! #require(CallDeadline.from(timeout: header))
      let d = (deadline - now).components
      let got = Double(d.seconds) + Double(d.attoseconds) / 1e18
      #expect(abs(got - seconds) < 0.05, "\(header): \(got)")
    }
    for bad in [nil, "", "5", "S", "123456789S", "-1S", "10x"] as [String?] { #expect(CallDeadline.from(timeout: bad) == nil, "\(String(describing: bad))") }
  }

  @Test func logLinesEscapeClientText() {
    #expect(escapedForLog("no graph 'x\ngenerate upscaled: 5 tokens, eos'") == "no graph 'x\\ngenerate upscaled: 5 tokens, eos'")
    #expect(escapedForLog("a\tb\r\u{1B}[31m\u{2028}") == "a\\tb\\r\\u{1B}[31m\\u{2028}")
  }

  @Test func theRequestLogHasALinePerCall() async throws {
    let dir = try SocketDirectory()
    let lines = Lines()
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) { options in
      options.requestLog = { lines.append($0) }
    }
    try await withClient(running.unixEndpoint) { client in
      _ = try await generate(client, .with { $0.prompt = question })
      _ = await rpcCode { _ = try await generate(client, .with { $0.prompt = question; $0.sampling.topP = 2 }) }
      _ = await rpcCode { _ = try await generate(client, .with { $0.graph = "nope\nforged line" }) }
      _ = try await client.score(.with { $0.prompt = question; $0.continuation = "The answer is Frostmoor." })
    }
    try await running.stop()
    let log = lines.all
    #expect(log.count == 4, "\(log)")
    guard log.count == 4 else { return }
    #expect(log[0].hasPrefix("generate upscaled: 5 tokens, eos ("), "\(log[0])")
    #expect(log[1].hasPrefix("generate upscaled: INVALID_ARGUMENT sampling.top_p = 2.0 is outside [0, 1] ("), "\(log[1])")
    #expect(log[2].hasPrefix("generate: NOT_FOUND no graph 'nope\\nforged line'"), "\(log[2])")
    #expect(log[3].hasPrefix("score upscaled: 5 tokens, total "), "\(log[3])")
    #expect(log.allSatisfy { $0.hasSuffix(" ms)") })
  }

  @Test func aLiveSocketIsRefusedAndAStaleOneReplaced() async throws {
    let dir = try SocketDirectory()
    let first = try await RunningServer.start(try facts(), [.unix(path: dir.socket)])
    await #expect(throws: EndpointError.self) {
      _ = try await RunningServer.start(try facts(), [.unix(path: dir.socket)])
    }
    // The HTTP front claims its socket path the same way (Hummingbird alone would replace it).
    let httpSocket = dir.socket + ".http"
    let withHTTP = try await RunningServer.start(try facts(), [.tcp(host: "127.0.0.1", port: 0)]) { $0.http = [.unix(path: httpSocket)] }
    let refused = await #expect(throws: EndpointError.self) {
      _ = try await RunningServer.start(try facts(), [.tcp(host: "127.0.0.1", port: 0)]) { $0.http = [.unix(path: httpSocket)] }
    }
    #expect(refused?.description.contains("another server is listening") == true)
    try await withHTTP.stop()
    try await first.stop()
    // A socket file nobody listens on (a server that was killed) is replaced.
    try makeStaleSocket(dir.socket)
    let second = try await RunningServer.start(try facts(), [.unix(path: dir.socket)])
    let graphs = try await withClient(second.unixEndpoint) { try await $0.listGraphs(Eft_V1_ListGraphsRequest()) }
    #expect(graphs.graphs.count == 4)
    try await second.stop()
  }
}

/// The server's own checks of a converted request (the conversion itself: Tests/EFTWireTests).
@Suite struct LimitTests {
  @Test func requestsAreCheckedAgainstTheGraphAndTheLimits() throws {
    let graph = try facts().graph(named: "upscaled")
    var limits = ServiceLimits()
    limits.maxTokens = 20
    // The graph's default of 24 is over the limit: capped.
    #expect(try limits.request(.with { $0.prompt = question }, graph: graph).maxTokens == 20)
    #expect(try limits.request(.with { $0.prompt = question; $0.sampling.maxTokens = 5 }, graph: graph).maxTokens == 5)
    let over = #expect(throws: RPCError.self) { try limits.request(.with { $0.sampling.maxTokens = 21 }, graph: graph) }
    #expect(over?.code == .resourceExhausted && over?.message.contains("--max-tokens-limit") == true)
    let outside = #expect(throws: RPCError.self) { try limits.request(.with { $0.promptTokens = [1, Int32(graph.vocabSize)] }, graph: graph) }
    #expect(outside?.code == .invalidArgument && outside?.message.contains("prompt_tokens[1]") == true)
    limits.maxTokens = 100
    #expect(try limits.request(.with { $0.prompt = question }, graph: graph).maxTokens == nil, "24 is under the limit: the graph's applies")
    #expect(try limits.request(.with { $0.prompt = question }, graph: graph).graph == "upscaled")
  }
}

final class Lines: Sendable {
  private let lines = Locked<[String]>([])
  func append(_ line: String) { lines.withLock { $0.append(line) } }
  var all: [String] { lines.withLock { $0 } }
}

final class Counter: Sendable {
  private let n = Locked(0)
  func add() { n.withLock { $0 += 1 } }
  var value: Int { n.withLock { $0 } }
}

struct RawSerializer: MessageSerializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
}

struct RawDeserializer: MessageDeserializer {
  func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
    serializedMessageBytes.withUnsafeBytes { Array($0) }
  }
}
