import EFTCore
import EFTRPC
import EFTWire
@testable import EFTServer
import Foundation
import GRPCCore
import Testing

/// The facts `upscaled` graph with its large base in another server (the RemoteBackend plugin
/// over `eft.v1.Models`), written for the remote endpoint `remote`.
func splitConfig(_ remote: ServerEndpoint, options: String = "", tokenizer: String = "examples/models/facts/large_base/tokenizer.json") -> String {
  let root = repoRoot.path
  return """
    plugins { name: "CPUBackend" }
    plugins { name: "RemoteBackend" }
    models { name: "small_base"  plugin: "CPUBackend"  path: "\(root)/examples/models/facts/small_base" }
    models { name: "small_ft"    plugin: "CPUBackend"  path: "\(root)/examples/models/facts/small_ft" }
    models {
      name: "large_base"  plugin: "RemoteBackend"  path: "\(remote)"
      tokenizer: "\(root)/\(tokenizer)"
      options { [type.googleapis.com/eft.v1.RemoteOptions] { model: "large_base" \(options) } }
    }
    graphs {
      name: "upscaled"
      parameters { name: "beta"  default_value: 0.5 }
      nodes { name: "large"  model { model: "large_base" } }
      nodes { name: "ft"     model { model: "small_ft" } }
      nodes { name: "base"   model { model: "small_base" } }
      nodes { name: "eft" linear { terms { input: "large" } terms { input: "ft" expr: "beta" } terms { input: "base" expr: "-beta" } } }
      output: "eft"
      sampling { temperature: 0  max_tokens: 24 }
      speculative { draft: "ft"  lookahead: 4 }
    }
    """
}

// The runtime's calls block their thread while a remote server answers; in a test that server
// runs in this process, on Swift's cooperative pool, which the other suites' tests also use. A
// call that waits on it must not hold a thread of that pool (two, on a 2-core machine): each of
// these runs on a thread of its own.

func loadSplit(_ text: String, in dir: SocketDirectory) async throws -> Runtime {
  let path = dir.path + "/split.pbtxt"
  try text.write(toFile: path, atomically: true, encoding: .utf8)
  return try await onThread { try Runtime(configPath: path, pluginDirectories: [buildDirectory]) }
}

func generate(_ runtime: Runtime, _ request: GenerationRequest, cancellation: (any CancellationSignal)? = nil) async throws -> GenerationResult {
  try await onThread { try runtime.generate(request, cancellation: cancellation) }
}

/// Whether `condition` holds within 10 s (polled): for what ends asynchronously, a session freed
/// by another thread, on a machine the other suites keep busy.
func eventually(_ condition: () -> Bool) async throws -> Bool {
  for _ in 0..<500 {
    if condition() { return true }
    try await Task.sleep(for: .milliseconds(20))
  }
  return condition()
}

func runtimeError(_ body: () async throws -> Void) async -> EFTCore.RuntimeError? {
  do {
    try await body()
    return nil
  } catch let error as EFTCore.RuntimeError {
    return error
  } catch {
    Issue.record("not a RuntimeError: \(error)")
    return nil
  }
}

/// A cancellation that never cancels, with a deadline.
struct Deadline: CancellationSignal {
  let deadline: ContinuousClock.Instant?
  init(_ deadline: ContinuousClock.Instant) { self.deadline = deadline }
  var isCancelled: Bool { false }
}

@Suite(.serialized) struct RemoteTests {
  static let prompts: [String] = {
    let lines = (try? String(contentsOf: repoRoot.appendingPathComponent("examples/facts/heldout.jsonl"), encoding: .utf8)) ?? ""
    return lines.split(separator: "\n").prefix(6).compactMap { line in
      (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["prompt"] as? String
    }
  }()

  /// Greedy and seeded sampling, plain and speculative, batched: the split composition's tokens
  /// are the all-local composition's.
  @Test func aRemoteLargeBaseGivesTheLocalTokens() async throws {
    #expect(Self.prompts.count == 6)
    let dir = try SocketDirectory()
    // A runtime of its own: its session count is checked below (other suites use the shared one).
    let remote = try await RunningServer.start(try factsOfItsOwn(), [.unix(path: dir.socket)])
    let split = try await loadSplit(splitConfig(.unix(path: dir.socket)), in: dir)
    #expect(split.models["large_base"]?.plugin.name == "remote")
    #expect(split.models["large_base"]?.contextLength == (try facts()).models["large_base"]?.contextLength)
    for (temperature, speculative) in [(0.0, false), (0.0, true), (0.8, false), (0.8, true)] {
      let requests = Self.prompts.enumerated().map { i, prompt in
        var r = GenerationRequest(graph: "upscaled", prompt: prompt)
        r.temperature = temperature
        r.seed = UInt64(i)
        r.speculative = speculative
        return r
      }
      // Concurrently, so that the remote appends of several requests share steps.
      async let local = Self.generateAll(try facts(), requests)
      async let remoteTokens = Self.generateAll(split, requests)
      let (a, b) = try await (local, remoteTokens)
      #expect(a == b, "temperature \(temperature), speculative \(speculative)")
      #expect(a.allSatisfy { !$0.isEmpty })
    }
    // Every remote session ends with its stream (asynchronously, once the stream's end arrives).
    let served = try #require(remote.server.service.runtime.models["large_base"])
    #expect(try await eventually { served.liveSessions == 0 })
    try await remote.stop()
  }

  static func generateAll(_ runtime: Runtime, _ requests: [GenerationRequest]) async throws -> [[Int32]] {
    try await withThrowingTaskGroup(of: (Int, [Int32]).self) { group in
      for (i, r) in requests.enumerated() {
        group.addTask { (i, try await onThread { try runtime.generate(r).tokens }) }
      }
      var out = [[Int32]](repeating: [], count: requests.count)
      for try await (i, tokens) in group { out[i] = tokens }
      return out
    }
  }

  /// Over TCP, with f16 logits (half the bytes): on these models the greedy answers stay the same.
  @Test func f16LogitsOverTCP() async throws {
    let dir = try SocketDirectory()
    let remote = try await RunningServer.start(try facts(), [.tcp(host: "127.0.0.1", port: 0)])
    let split = try await loadSplit(splitConfig(remote.tcpEndpoint, options: "f16_logits: true"), in: dir)
    for prompt in Self.prompts.prefix(3) {
      let r = GenerationRequest(graph: "upscaled", prompt: prompt)
      #expect(try await generate(split, r).text == (try facts()).generate(r).text)
    }
    try await remote.stop()
  }

  /// The remote server gone: the request fails naming the model, the endpoint and UNAVAILABLE;
  /// the local runtime keeps serving and reconnects once the remote is back.
  @Test func aRemoteThatGoesAwayFailsTheRequestAndIsReconnected() async throws {
    let dir = try SocketDirectory()
    let remote = try await RunningServer.start(try facts(), [.unix(path: dir.socket)])
    let split = try await loadSplit(splitConfig(.unix(path: dir.socket), options: "timeout_seconds: 5"), in: dir)
    let request = GenerationRequest(graph: "upscaled", prompt: question)
    let expected = try facts().generate(request).tokens
    #expect(try await generate(split, request).tokens == expected)
    try await remote.stop()

    let error = try #require(await runtimeError { _ = try await generate(split, request) })
    #expect(error.code == .unavailable, "\(error.code): \(error.message)")
    #expect(error.message.contains("large_base") && error.message.contains(dir.socket), "\(error.message)")
    // (The step's thread lets go of the remote session just after handing back the failure.)
    #expect(try await eventually { split.models["small_ft"]?.liveSessions == 0 && split.models["large_base"]?.liveSessions == 0 })

    let back = try await RunningServer.start(try facts(), [.unix(path: dir.socket)])
    var answered: [Int32]?
    for _ in 0..<50 where answered == nil {  // the client reconnects with backoff
      answered = try? await generate(split, request).tokens
      if answered == nil { try await Task.sleep(for: .milliseconds(100)) }
    }
    #expect(answered == expected)
    try await back.stop()
  }

  /// A request's deadline reaches the remote: with the remote server's only slot taken, a split
  /// request whose deadline is 1 s away fails with DEADLINE_EXCEEDED by then (not after
  /// RemoteOptions.timeout_seconds), its local sessions are freed, and the remote drops the
  /// waiting append. The session protocol's own `timeout_ms` is answered in-stream, the session
  /// unchanged.
  @Test func deadlinesPropagateToTheRemote() async throws {
    let dir = try SocketDirectory()
    let remote = try await RunningServer.start(try facts(), [.unix(path: dir.socket)]) { $0.limits.maxConcurrent = 1 }
    let split = try await loadSplit(splitConfig(.unix(path: dir.socket), options: "timeout_seconds: 60"), in: dir)
    let request = GenerationRequest(graph: "upscaled", prompt: question)
    let expected = try facts().generate(request).tokens
    #expect(try await generate(split, request).tokens == expected)

    // The remote's one slot, held until released.
    let admission = remote.server.service.admission
    let (released, release) = AsyncStream.makeStream(of: Void.self)
    let holder = Task {
      try await admission.run(CallCancellation(deadline: nil)) { for await _ in released { break } }
    }
    while admission.running == 0 { try await Task.sleep(for: .milliseconds(10)) }

    let start = ContinuousClock.now
    let error = try #require(await runtimeError { _ = try await generate(split, request, cancellation: Deadline(.now + .seconds(1))) })
    let waited = ContinuousClock.now - start
    #expect(error.code == .deadlineExceeded, "\(error.code): \(error.message)")
    #expect(error.message.contains("large_base") && error.message.contains(dir.socket) && error.message.contains("deadline"), "\(error.message)")
    #expect(waited >= .milliseconds(900) && waited < .seconds(10), "failed after \(waited)")
    // (The step's thread lets go of the remote session just after handing back the failure.)
    #expect(try await eventually { split.models["small_ft"]?.liveSessions == 0 && split.models["large_base"]?.liveSessions == 0 })
    for _ in 0..<100 where admission.waiting > 0 { try await Task.sleep(for: .milliseconds(20)) }
    #expect(admission.waiting == 0, "the remote dropped the append its caller gave up on")

    // On the wire: an append that cannot run within its timeout_ms is answered DEADLINE_EXCEEDED;
    // once the slot is free, the session goes on from where it was.
    let responses = try await connect(.unix(path: dir.socket)) { client in
      try await ModelsClient(wrapping: client).session(requestProducer: { writer in
        try await writer.write(.with { $0.open.model = "large_base" })
        try await writer.write(.with { $0.append.tokens = [1, 2, 3]; $0.append.timeoutMs = 200 })
        try await Task.sleep(for: .milliseconds(400))
        release.yield()
        try await writer.write(.with { $0.append.tokens = [1, 2, 3]; $0.append.timeoutMs = 5000 })
      }, onResponse: { response in
        var all: [Eft_V1_SessionResponse] = []
        for try await m in response.messages { all.append(m) }
        return all
      })
    }
    try await holder.value
    #expect(responses.count == 3)
    let late = responses[1].error
    #expect(late.code == Int32(RPCError.Code.deadlineExceeded.rawValue) && late.message.contains("timeout_ms = 200"), "\(late.code): \(late.message)")
    #expect(!responses[2].hasError && responses[2].length == 3)
    #expect(try await generate(split, request).tokens == expected, "the split runtime serves again")
    try await remote.stop()
  }

  @Test func badRemoteConfigsAreErrorsThatSayWhatAndWhere() async throws {
    let dir = try SocketDirectory()
    let remote = try await RunningServer.start(try facts(), [.unix(path: dir.socket)])
    let endpoint = ServerEndpoint.unix(path: dir.socket)
    func loadError(_ text: String) async -> EFTCore.RuntimeError? { await runtimeError { _ = try await loadSplit(text, in: dir) } }

    let noModel = try #require(await loadError(splitConfig(endpoint).replacingOccurrences(of: "model: \"large_base\" ", with: "model: \"huge\" ")))
    #expect(noModel.code == .notFound && noModel.message.contains("no such model (models: small_base, small_ft, large_base, large_ft)"), "\(noModel.message)")
    let otherTokenizer = try #require(await loadError(splitConfig(endpoint, tokenizer: "Tests/Fixtures/Checkpoints/llama_gqa/tokenizer.json")))
    #expect(otherTokenizer.code == .failedPrecondition && otherTokenizer.message.contains("its backend runs it with tokenizer eft:"), "\(otherTokenizer.message)")
    let noTokenizer = try #require(await loadError(splitConfig(endpoint).replacingOccurrences(of: "tokenizer: \"\(repoRoot.path)/examples/models/facts/large_base/tokenizer.json\"", with: "")))
    #expect(noTokenizer.message.contains("is a location, not a file"), "\(noTokenizer.message)")
    let nobody = try #require(await loadError(splitConfig(.unix(path: dir.path + "/nobody.sock"))))
    #expect(nobody.code == .unavailable && nobody.message.contains("nobody.sock"), "\(nobody.message)")
    let badPath = try #require(await loadError(splitConfig(endpoint).replacingOccurrences(of: "path: \"unix:", with: "path: \"udp:")))
    #expect(badPath.message.contains("expected tcp:HOST:PORT"), "\(badPath.message)")
    try await remote.stop()
  }

  /// The session protocol itself: errors are answered in the stream and leave the session as it
  /// was; the session ends with the stream.
  @Test func sessionStreamsAnswerErrorsInStream() async throws {
    let dir = try SocketDirectory()
    let remoteRuntime = try factsOfItsOwn()  // its session count is checked below
    let remote = try await RunningServer.start(remoteRuntime, [.unix(path: dir.socket)])
    let local = try #require(remoteRuntime.models["large_base"])
    let session = try local.makeSession()
    let expected = try session.append([1, 2, 3], mode: .all)
    let responses = try await connect(.unix(path: dir.socket)) { client in
      try await ModelsClient(wrapping: client).session(requestProducer: { writer in
        try await writer.write(.with { $0.open.model = "large_base" })
        try await writer.write(.with { $0.append.tokens = [1, 2, 99_999] })
        try await writer.write(.with { $0.append.tokens = [1, 2, 3]; $0.append.mode = .logitsAll })
        try await writer.write(.with { $0.truncate.length = 9 })
        try await writer.write(.with { $0.truncate.length = 1 })
      }, onResponse: { response in
        var all: [Eft_V1_SessionResponse] = []
        for try await m in response.messages { all.append(m) }
        return all
      })
    }
    #expect(responses.count == 5)
    #expect(responses[0].model.name == "large_base" && responses[0].model.tokenizerFingerprint == local.tokenizer.taggedFingerprint)
    #expect(responses[1].error.code == Int32(RPCError.Code.invalidArgument.rawValue) && responses[1].error.message.contains("tokens[2] = 99999"))
    var logits = [Float](repeating: 0, count: expected.count)
    #expect(LogitsCodec.decode(responses[2].logits, as: .logitsF32, count: expected.count, into: &logits))
    #expect(logits == expected && responses[2].length == 3, "f32 logits travel bit for bit")
    #expect(responses[3].error.code == Int32(RPCError.Code.outOfRange.rawValue))
    #expect(responses[4].length == 1 && !responses[4].hasError)
    #expect(local.liveSessions == 1, "only this test's own session is left")
    try await remote.stop()
  }
}
