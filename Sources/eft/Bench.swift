import ArgumentParser
import EFTCommandLine
import EFTCore
import Foundation

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Prefill and decode tokens/s of a graph and of each of its models alone (median of several runs); or plain against speculative decoding.")

  @OptionGroup var options: ConfigOptions

  @Option(help: "The graph (default: the config's default graph).")
  var graph: String?

  @Option(help: "Prompt length in tokens (random ids).")
  var promptTokens = 128

  @Option(help: "Tokens to decode after the prompt.")
  var newTokens = 64

  @Option(help: "Runs per measurement; the median is reported.")
  var runs = 3

  @Option(help: "Worker threads for the transformer backends (sets EFT_THREADS; default: their options, else one per core).")
  var threads: Int?

  @Flag(help: "Decode plainly, then speculatively, on the same prompts; print both decode speeds and the acceptance rate.")
  var compareSpeculative = false

  @Option(help: "With --compare-speculative: prompts from a JSONL file ('prompt' field, as eft eval reads), decoded with the graph's sampling settings; default: one random-token prompt, --new-tokens greedy tokens.")
  var data: String?

  @Option(help: "With --data: the first N prompts.")
  var limit: Int?

  @Option(help: "With --compare-speculative: the lookahead to measure (repeatable, a sweep; default: the graph's).")
  var lookahead: [Int] = []

  @Option(help: "With --compare-speculative: the draft node (default: the graph's speculative.draft).")
  var draft: String?

  @Flag(help: "With --compare-speculative: adapt the lookahead to the acceptance.")
  var adaptiveLookahead = false

  @Option(help: "With --compare-speculative: the sampling temperature of every prompt (default: the graph's; 0 is greedy).")
  var temperature: Double?

  @Option(help: "With --compare-speculative and --temperature: prompt i samples with seed S + i.")
  var seed: UInt64 = 0

  @Option(help: ArgumentHelp("Also time one append of each of these sizes to each model after the decoded tokens (logits at every position, as speculative verification asks), e.g. 1,5: what verifying k − 1 drafted tokens costs against one step.", valueName: "k,k,…"))
  var appendTokens: String?

  @Flag(help: "Count heap allocations per decoded token (runs again with libEFTAllocCounter.so, from the executable's directory, preloaded).")
  var countAllocations = false

  @Flag(help: "Print JSON.")
  var json = false

  func run() throws {
    if let threads { setenv("EFT_THREADS", String(threads), 1) }
    if countAllocations, AllocationCounter.count == nil { try runCountingAllocations() }
    let sizes = try (appendTokens?.split(separator: ",") ?? []).map {
      guard let k = Int($0.trimmingCharacters(in: .whitespaces)), k >= 1 else {
        throw ValidationError("--append-tokens: '\($0)' is not a token count ≥ 1")
      }
      return k
    }
    try reportingErrors {
      let runtime = try options.load()
      if compareSpeculative {
        try compare(runtime)
        return
      }
      let result = try runtime.benchmark(graph: graph, promptTokens: promptTokens, newTokens: newTokens, runs: runs, appendTokens: sizes) {
        writeError("eft bench: \($0)")
      }
      if json {
        print(BenchJSON.render(result))
      } else {
        print("graph \(result.graph): \(result.promptTokens)-token prompt, \(result.newTokens) new tokens, median of \(result.runs)")
        let counted = result.graphThroughput.decodeAllocationsPerToken != nil
        print("  " + pad("", 24) + "   prefill/s    decode/s" + (counted ? "  allocations/token" : ""))
        func row(_ name: String, _ t: Throughput) {
          print("  " + pad(name, 24) + String(format: "%12.1f%12.1f", t.prefillTokensPerSecond, t.decodeTokensPerSecond)
                + (t.decodeAllocationsPerToken.map { String(format: "%19.1f", $0) } ?? ""))
        }
        row("graph", result.graphThroughput)
        for (name, t) in result.models { row("model \(name)", t) }
        for (name, t) in result.models where !t.appendSeconds.isEmpty {
          let one = t.appendSeconds.first { $0.tokens == 1 }?.seconds
          print("  append, model \(name): " + t.appendSeconds.map { k, s in
            String(format: "%d token%@ %.3f ms", k, k == 1 ? "" : "s", 1000 * s) + (one.map { k == 1 ? "" : String(format: " (%.2f× one)", s / $0) } ?? "")
          }.joined(separator: ", "))
        }
      }
    }
  }

  /// Runs this command again with the allocation counter preloaded (the dynamic loader reads
  /// LD_PRELOAD only at exec).
  func runCountingAllocations() throws {
    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    let counter = executable.deletingLastPathComponent().appendingPathComponent("libEFTAllocCounter.so").path
    guard FileManager.default.fileExists(atPath: counter) else {
      throw ValidationError("--count-allocations: no \(counter); build it (swift build [-c release] --product EFTAllocCounter)")
    }
    let preload = ProcessInfo.processInfo.environment["LD_PRELOAD"].map { counter + ":" + $0 } ?? counter
    setenv("LD_PRELOAD", preload, 1)
    execv(executable.path, CommandLine.unsafeArgv)
    throw ValidationError("--count-allocations: could not run \(executable.path) again: \(String(cString: strerror(errno)))")
  }

  func compare(_ runtime: Runtime) throws {
    let g = try runtime.graph(named: graph)
    var requests: [GenerationRequest]
    if let data {
      var items = try EvalItem.load(data)
      if let limit { items = Array(items.prefix(max(0, limit))) }
      requests = items.map { GenerationRequest(graph: g.name, prompt: $0.prompt) }
    } else {
      requests = [runtime.benchmarkRequest(graph: g, promptTokens: promptTokens, newTokens: newTokens)]
    }
    for i in requests.indices {
      requests[i].draft = draft
      if adaptiveLookahead { requests[i].adaptiveLookahead = true }
      if let temperature {
        requests[i].temperature = temperature
        requests[i].seed = seed &+ UInt64(i)
      }
    }
    let measured = try runtime.compareSpeculation(requests, lookaheads: lookahead.isEmpty ? [nil] : lookahead.map { $0 }, runs: runs) {
      writeError("eft bench: \($0)")
    }
    let plain = measured[0]
    let speculative = Array(measured.dropFirst())
    // Speculation is exact; at greedy decoding the tokens themselves must agree.
    let greedy = (try? runtime.settings(for: requests[0], graph: g).sampling.temperature == 0) ?? false
    let identical = speculative.map { $0.outputs == plain.outputs }
    if json {
      print(BenchJSON.render(plain: plain, speculative: speculative, greedy: greedy, identical: identical, graph: g.name, prompts: requests.count))
    } else {
      print("graph \(g.name): \(requests.count) prompt\(requests.count == 1 ? "" : "s"), median of \(runs) runs")
      print("  " + pad("", 28) + "   tokens   decode/s   speed-up   accepted   model calls")
      print("  " + pad("plain", 28) + String(format: "%9d%11.1f%11@%11@%14d", plain.tokens, plain.decodeTokensPerSecond, "", "", plain.stats.modelCalls))
      for (m, same) in zip(speculative, identical) {
        let spec = m.speculation
        let name = spec.map { "draft \($0.draft), k=\($0.lookahead)\($0.adaptive ? " adaptive" : "")" } ?? "speculative"
        print("  " + pad(name, 28) + String(format: "%9d%11.1f%10.2f×%10.1f%%%14d", m.tokens, m.decodeTokensPerSecond,
                                               m.decodeTokensPerSecond / plain.decodeTokensPerSecond, 100 * m.stats.acceptanceRate, m.stats.modelCalls)
              + (greedy && !same ? "   OUTPUT DIFFERS" : ""))
      }
    }
    if greedy, identical.contains(false) {
      writeError("eft bench: greedy speculative output differs from plain output")
      throw ExitCode(1)
    }
  }
}

private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

enum BenchJSON {
  static func render(_ r: BenchmarkResult) -> String {
    func fmt(_ x: Double) -> String { jsonNumber(x, decimals: 3) }
    let models = r.models.map {
      "{\"name\":\"\($0.name)\",\"prefill_tokens_per_s\":\(fmt($0.throughput.prefillTokensPerSecond)),\"decode_tokens_per_s\":\(fmt($0.throughput.decodeTokensPerSecond))"
        + allocations($0.throughput) + appends($0.throughput) + "}"
    }.joined(separator: ",")
    return "{\"graph\":\"\(r.graph)\",\"prompt_tokens\":\(r.promptTokens),\"new_tokens\":\(r.newTokens),\"runs\":\(r.runs),"
      + "\"prefill_tokens_per_s\":\(fmt(r.graphThroughput.prefillTokensPerSecond)),\"decode_tokens_per_s\":\(fmt(r.graphThroughput.decodeTokensPerSecond))"
      + allocations(r.graphThroughput) + ",\"models\":[\(models)]}"
  }

  /// `,"append_seconds":{"k":s,…}` when appends were timed.
  static func appends(_ t: Throughput) -> String {
    t.appendSeconds.isEmpty ? "" : ",\"append_seconds\":{" + t.appendSeconds.map { "\"\($0.tokens)\":\(jsonNumber($0.seconds, decimals: 6))" }.joined(separator: ",") + "}"
  }

  /// `,"decode_allocations_per_token":N` when they were counted.
  static func allocations(_ t: Throughput) -> String {
    t.decodeAllocationsPerToken.map { ",\"decode_allocations_per_token\":\(jsonNumber($0, decimals: 2))" } ?? ""
  }

  /// {"plain": {…}, "speculative": {…}} with the first speculative measurement, and "sweep" with
  /// all of them when there are several.
  static func render(plain: DecodingMeasurement, speculative: [DecodingMeasurement], greedy: Bool, identical: [Bool],
                     graph: String, prompts: Int) -> String {
    func fmt(_ x: Double) -> String { jsonNumber(x, decimals: 3) }
    func object(_ m: DecodingMeasurement, _ same: Bool?) -> String {
      var fields = ["\"decode_tokens_per_s\":\(fmt(m.decodeTokensPerSecond))", "\"tokens\":\(m.tokens)", "\"model_calls\":\(m.stats.modelCalls)"]
      if let spec = m.speculation {
        fields += ["\"draft\":\"\(spec.draft)\"", "\"lookahead\":\(spec.lookahead)", "\"adaptive\":\(spec.adaptive)",
                   "\"drafted\":\(m.stats.drafted)", "\"accepted\":\(m.stats.accepted)", "\"acceptance_rate\":\(fmt(m.stats.acceptanceRate))",
                   "\"speedup\":\(fmt(m.decodeTokensPerSecond / plain.decodeTokensPerSecond))"]
      }
      if let same, greedy { fields.append("\"identical_to_plain\":\(same)") }
      return "{" + fields.joined(separator: ",") + "}"
    }
    var out = "{\"graph\":\"\(graph)\",\"prompts\":\(prompts),\"greedy\":\(greedy),\"plain\":\(object(plain, nil))"
    if let first = speculative.first { out += ",\"speculative\":\(object(first, identical[0]))" }
    if speculative.count > 1 {
      out += ",\"sweep\":[" + zip(speculative, identical).map { object($0, $1) }.joined(separator: ",") + "]"
    }
    return out + "}"
  }
}
