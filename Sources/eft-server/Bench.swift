import ArgumentParser
import EFTCommandLine
import EFTCore
import EFTRPC
import EFTWire
import EFTServer
import Foundation

struct Bench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "What serving costs: the same generation in-process (as `eft run`) and streamed through this server over a Unix socket and TCP loopback, alternating, in one run; or, with --concurrency, throughput under concurrent streams.",
    discussion: """
      Each run times one generation in-process, then the same request (same seed) through each \
      transport on an open connection, from sending it to receiving its last message. Prints the \
      median per generation and per token, and the ratio to in-process; exits 1 if any streamed \
      generation differs from the in-process one.

      With --concurrency 1,2,4,8: for each level N, N clients (a TCP loopback connection each) \
      send the same request at once; prints, per level, aggregate tokens/s (all tokens over the \
      wall time from the first request to the last token), its ratio to the first level, mean \
      per-stream tokens/s, p50/p99 time between a stream's tokens and p50 time to first token. \
      The levels are run --runs times, interleaved, and the run with the median aggregate is \
      reported. Exits 1 if any stream's tokens differ from the request's alone (in-process).
      """)

  @Option(help: ArgumentHelp("Concurrency levels to measure, e.g. 1,2,4,8 (see the discussion).", valueName: "n,n,…"))
  var concurrency: String?

  @Option(help: "Tokens one scheduler step may append (the server's --max-batch-tokens).")
  var maxBatchTokens = 512

  @OptionGroup var configOptions: ConfigOptions

  @Option(help: "The graph (default: the config's default graph).")
  var graph: String?

  @Option(help: "The prompt.")
  var prompt = "The"

  @Option(help: "Tokens per generation (EOS does not stop it).")
  var maxTokens = 64

  @Option(help: "Sampling temperature (default: the graph's).")
  var temperature: Double?

  @Option(help: "The seed of every generation.")
  var seed: UInt64 = 1

  @OptionGroup(title: "Speculative decoding") var speculation: SpeculationOptions

  @Option(help: "Runs; medians are reported.")
  var runs = 15

  @Flag(help: "Print JSON.")
  var json = false

  func validate() throws {
    guard maxBatchTokens > 0 else { throw ValidationError("--max-batch-tokens must be positive") }
    guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
    guard runs > 0 else { throw ValidationError("--runs must be positive") }
  }

  /// The levels of --concurrency.
  func levels() throws -> [Int]? {
    guard let concurrency else { return nil }
    let levels = concurrency.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !levels.isEmpty, levels.allSatisfy({ ($0 ?? 0) > 0 && $0! <= 256 }) else {
      throw ValidationError("--concurrency takes positive numbers up to 256 separated by commas, e.g. 1,2,4,8")
    }
    return levels.map { $0! }
  }

  func run() async throws {
    let runtime = try loadRuntime(configOptions, maxBatchTokens: maxBatchTokens)
    var local = GenerationRequest(graph: graph, prompt: prompt)
    local.maxTokens = maxTokens
    local.stopAtEOS = false
    local.seed = seed
    local.temperature = temperature
    speculation.apply(to: &local)
    let remote = Eft_V1_GenerateRequest(local)

    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eft-bench-\(getpid())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = RuntimeServer(runtime: runtime, options: ServerOptions(endpoints: [.unix(path: directory + "/eft.sock"), .tcp(host: "127.0.0.1", port: 0)]))
    let listening = AsyncStream<[ServerEndpoint]>.makeStream()
    let serving = Task { try await server.run { listening.continuation.yield($0.grpc) } }
    var endpoints: [ServerEndpoint] = []
    for await bound in listening.stream {
      endpoints = bound
      break
    }
    defer { server.shutdown() }

    let expected = try runtime.generate(local).tokens
    if let levels = try levels() {
      try await load(levels, endpoint: endpoints[1], runtime: runtime, request: remote, expected: expected)
      server.shutdown()
      try await serving.value
      return
    }
    var localTimes: [Double] = []
    var unixTimes: [Double] = []
    var tcpTimes: [Double] = []
    var identical = true
    try await connect(endpoints[0]) { unixConnection in
      try await connect(endpoints[1]) { tcpConnection in
        let clients = [RuntimeClient(wrapping: unixConnection), RuntimeClient(wrapping: tcpConnection)]
        func streamed(_ client: RuntimeClient) async throws -> (Double, [Int32]) {
          let start = DispatchTime.now()
          let ids = try await client.generate(remote) { response in
            var ids: [Int32] = []
            for try await message in response.messages {
              if case .token(let t) = message.event, t.id >= 0 { ids.append(t.id) }
            }
            return ids
          }
          return (Timing.seconds(since: start), ids)
        }
        for client in clients { _ = try await streamed(client) }  // warm-up: connection, thread, caches
        for _ in 0..<runs {
          let start = DispatchTime.now()
          let tokens = try runtime.generate(local).tokens
          localTimes.append(Timing.seconds(since: start))
          identical = identical && tokens == expected
          let (unixTime, unixIDs) = try await streamed(clients[0])
          let (tcpTime, tcpIDs) = try await streamed(clients[1])
          unixTimes.append(unixTime)
          tcpTimes.append(tcpTime)
          identical = identical && unixIDs == expected && tcpIDs == expected
        }
      }
    }
    server.shutdown()
    try await serving.value

    let n = Double(expected.count)
    let rows = [("in-process", Timing.median(localTimes)), ("unix socket", Timing.median(unixTimes)), ("tcp loopback", Timing.median(tcpTimes))]
    let base = rows[0].1
    if json {
      let items = rows.map { name, t in
        "{\"path\":\"\(name)\",\"seconds\":\(jsonNumber(t, decimals: 6)),\"us_per_token\":\(jsonNumber(t / n * 1e6, decimals: 2)),\"ratio\":\(jsonNumber(t / base, decimals: 4)),\"overhead_us_per_token\":\(jsonNumber((t - base) / n * 1e6, decimals: 2))}"
      }
      print("{\"tokens\":\(expected.count),\"runs\":\(runs),\"identical\":\(identical),\"paths\":[\(items.joined(separator: ","))]}")
    } else {
      print("graph \(try runtime.graph(named: graph).name), \(expected.count) tokens per generation, median of \(runs) runs")
      for (name, t) in rows {
        print(String(format: "%-13@ %9.3f ms  %8.1f µs/token  %6.3f×  %+8.1f µs/token", name, t * 1e3, t / n * 1e6, t / base, (t - base) / n * 1e6))
      }
      print(identical ? "streamed tokens identical to in-process: yes" : "streamed tokens identical to in-process: NO")
    }
    if !identical { throw ExitCode(1) }
  }

  /// The --concurrency benchmark.
  func load(_ levels: [Int], endpoint: ServerEndpoint, runtime: Runtime, request: Eft_V1_GenerateRequest, expected: [Int32]) async throws {
    let graphName = try runtime.graph(named: graph).name
    _ = try await measureLoad(endpoint, streams: levels.max()!, request: request, expected: expected)  // warm-up
    var measured = [[LoadLevel]](repeating: [], count: levels.count)
    for run in 0..<runs {
      for (i, n) in levels.enumerated() {
        FileHandle.standardError.write("run \(run + 1)/\(runs): \(n) streams\n".data(using: .utf8)!)
        measured[i].append(try await measureLoad(endpoint, streams: n, request: request, expected: expected))
      }
    }
    let chosen = measured.map { runs in runs.sorted { $0.aggregate < $1.aggregate }[runs.count / 2] }
    let base = chosen[0].aggregate
    let identical = chosen.allSatisfy(\.identical) && measured.joined().allSatisfy(\.identical)
    if json {
      print("{\"graph\":\"\(graphName)\",\"tokens_per_stream\":\(expected.count),\"runs\":\(runs),\"max_batch_tokens\":\(maxBatchTokens),\"identical\":\(identical),\"levels\":[\(chosen.map { $0.json(base: base) }.joined(separator: ","))]}")
    } else {
      print("graph \(graphName), \(expected.count) tokens per stream, TCP loopback, median-aggregate run of \(runs)")
      print(LoadLevel.header)
      for level in chosen { print(level.row(base: base)) }
    }
    if !identical { throw ExitCode(1) }
  }
}
