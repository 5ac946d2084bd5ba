import Foundation

/// Prefill and decode speed of one configuration of work.
public struct Throughput: Sendable {
  public let prefillTokensPerSecond: Double
  public let decodeTokensPerSecond: Double
  /// Heap allocations per decoded token (of the last run), when counted (`AllocationCounter`).
  public var decodeAllocationsPerToken: Double? = nil
  /// Seconds one append of k tokens takes (logits at every position, as speculative verification
  /// asks), after the prompt and the decoded tokens, for each k measured (models only).
  public var appendSeconds: [(tokens: Int, seconds: Double)] = []
}

public struct BenchmarkResult: Sendable {
  public let graph: String
  public let promptTokens: Int
  public let newTokens: Int
  public let runs: Int
  /// The whole graph, decoded plainly: every session advanced, the graph evaluated, a token chosen.
  public let graphThroughput: Throughput
  /// Each distinct model alone (one session, greedy on its own logits).
  public let models: [(name: String, throughput: Throughput)]
}

/// One way of decoding a set of requests, measured.
public struct DecodingMeasurement: Sendable {
  /// nil: plain decoding.
  public let speculation: SpeculationSettings?
  /// Generated tokens over decoding seconds, summed over the requests (median of the runs).
  public let decodeTokensPerSecond: Double
  public let tokens: Int
  public let stats: DecodeStats
  /// Each request's tokens (of the last run).
  public let outputs: [[Int32]]
}

extension Runtime {
  /// The request benchmarks decode: `promptTokens` token ids drawn uniformly from the graph's
  /// vocabulary with a fixed seed as every session's prompt, then `newTokens` greedy tokens
  /// (EOS and stop strings ignored).
  public func benchmarkRequest(graph: CompiledGraph, promptTokens: Int, newTokens: Int) -> GenerationRequest {
    var rng = SeededGenerator(seed: 1)
    var request = GenerationRequest(graph: graph.name, prompt: "")
    request.promptTokens = (0..<promptTokens).map { _ in Int32(rng.next() % UInt64(graph.vocabSize)) }
    request.temperature = 0
    request.maxTokens = newTokens
    request.stopAtEOS = false
    request.stop = []
    return request
  }

  /// Measures a graph: `promptTokens` random token ids as the prompt of every session, then
  /// `newTokens` greedy steps (EOS ignored, no speculation). Each figure is the median of `runs` runs.
  /// `appendTokens`: also time, for each model, one append of each of these sizes after the
  /// decoded tokens (the cost of verifying k − 1 drafted tokens against that of one step).
  public func benchmark(graph name: String?, promptTokens: Int, newTokens: Int, runs: Int, appendTokens: [Int] = [],
                        progress: (String) -> Void = { _ in }) throws -> BenchmarkResult {
    let graph = try graph(named: name)
    guard promptTokens >= 1, newTokens >= 1, runs >= 1, appendTokens.allSatisfy({ $0 >= 1 }) else {
      throw RuntimeError(.request, .invalidArgument, "prompt tokens, new tokens, runs and append sizes must each be ≥ 1")
    }
    guard promptTokens + newTokens + (appendTokens.max() ?? 0) <= graph.contextLength else {
      throw RuntimeError(.request, .outOfRange, "\(promptTokens) + \(newTokens)\(appendTokens.max().map { " + \($0)" } ?? "") tokens exceed the graph's context length \(graph.contextLength)")
    }
    var request = benchmarkRequest(graph: graph, promptTokens: promptTokens, newTokens: newTokens)
    let prompt = request.promptTokens ?? []

    // The whole graph.
    request.speculative = false
    var prefill: [Double] = [], decode: [Double] = []
    var allocations: Int?
    for run in 0..<runs {
      progress("graph \(graph.name): run \(run + 1)/\(runs)")
      var result: GenerationResult?
      allocations = try AllocationCounter.counting { result = try generate(request) }
      prefill.append(result?.prefillSeconds ?? 0)
      decode.append(result?.decodeSeconds ?? 0)
    }
    var graphThroughput = Throughput(prefillTokensPerSecond: Double(promptTokens) / Timing.median(prefill),
                                     decodeTokensPerSecond: Double(newTokens) / Timing.median(decode))
    if let allocations, newTokens > 1 {
      // A generation's allocations per decoded token: against one of a single token (its prompt
      // read, its setup and its end are the same).
      var one = request
      one.maxTokens = 1
      if let single = try AllocationCounter.counting({ _ = try generate(one) }) {
        graphThroughput.decodeAllocationsPerToken = Double(allocations - single) / Double(newTokens - 1)
      }
    }

    // Each model alone.
    var models: [(String, Throughput)] = []
    for model in graph.models {
      var prefill: [Double] = [], decode: [Double] = []
      var appends = [[Double]](repeating: [], count: appendTokens.count)
      for run in 0..<runs {
        progress("model \(model.name): run \(run + 1)/\(runs)")
        let session = try model.makeSession()
        // One logits buffer and one token buffer for the whole decode: what is counted below is
        // the backend's (and the plugin host's) allocations.
        let logits = UnsafeMutableBufferPointer<Float>.allocate(capacity: model.vocabSize)
        let token = UnsafeMutableBufferPointer<Int32>.allocate(capacity: 1)
        defer {
          logits.deallocate()
          token.deallocate()
        }
        let ids = UnsafeMutableBufferPointer<Int32>.allocate(capacity: prompt.count)
        _ = ids.initialize(from: prompt)
        defer { ids.deallocate() }
        prefill.append(try seconds { try session.append(UnsafeBufferPointer(ids), mode: .last, into: logits) })
        let decodeLogits = UnsafeBufferPointer(rebasing: logits[0..<min(graph.vocabSize, model.vocabSize)])
        decode.append(try seconds {
          allocations = try AllocationCounter.counting {
            for _ in 0..<newTokens {
              token[0] = try Sampler.argmax(decodeLogits)
              try session.append(UnsafeBufferPointer(token), mode: .last, into: logits)
            }
          }
        })
        // Appends of k tokens from the same point (the prompt's first ids), each undone after
        // it: one to warm up (buffers sized for k rows), then the fastest of five.
        let end = session.count
        for (i, k) in appendTokens.enumerated() {
          let ids = (0..<k).map { prompt[$0 % prompt.count] }
          var best = Double.infinity
          for attempt in 0..<6 {
            let took = try seconds { _ = try session.append(ids, mode: .all) }
            if attempt > 0 { best = min(best, took) }
            try session.truncate(to: end)
          }
          appends[i].append(best)
        }
      }
      var throughput = Throughput(prefillTokensPerSecond: Double(promptTokens) / Timing.median(prefill),
                                  decodeTokensPerSecond: Double(newTokens) / Timing.median(decode))
      throughput.decodeAllocationsPerToken = allocations.map { Double($0) / Double(newTokens) }
      throughput.appendSeconds = zip(appendTokens, appends).map { ($0, Timing.median($1)) }
      models.append((model.name, throughput))
    }
    return BenchmarkResult(graph: graph.name, promptTokens: promptTokens, newTokens: newTokens, runs: runs,
                           graphThroughput: graphThroughput, models: models)
  }

  /// Decodes `requests` plainly, then with speculation for each lookahead in `lookaheads` (nil:
  /// the request's or config's), in turn within each run; tokens/s is the median over `runs`.
  /// The first measurement is plain decoding.
  public func compareSpeculation(_ requests: [GenerationRequest], lookaheads: [Int?], runs: Int,
                                 progress: (String) -> Void = { _ in }) throws -> [DecodingMeasurement] {
    guard !requests.isEmpty, runs >= 1 else { throw RuntimeError(.request, .invalidArgument, "no requests to measure, or runs < 1") }
    let variants: [(speculative: Bool, lookahead: Int?)] = [(false, nil)] + lookaheads.map { (true, $0) }
    var rates = [[Double]](repeating: [], count: variants.count)
    var last: [(Int, DecodeStats, [[Int32]], SpeculationSettings?)] = []
    for run in 0..<runs {
      last = []
      for (v, variant) in variants.enumerated() {
        progress("run \(run + 1)/\(runs): " + (variant.speculative ? "speculative" + (variant.lookahead.map { ", lookahead \($0)" } ?? "") : "plain"))
        var tokens = 0, seconds = 0.0
        var stats = DecodeStats()
        var outputs: [[Int32]] = []
        var speculation: SpeculationSettings?
        for var request in requests {
          request.speculative = variant.speculative
          request.lookahead = variant.lookahead
          let result = try generate(request)
          tokens += result.tokens.count
          seconds += result.decodeSeconds
          stats.steps += result.stats.steps
          stats.drafted += result.stats.drafted
          stats.accepted += result.stats.accepted
          stats.modelCalls += result.stats.modelCalls
          outputs.append(result.tokens)
          speculation = result.speculation
        }
        rates[v].append(seconds > 0 ? Double(tokens) / seconds : 0)
        last.append((tokens, stats, outputs, speculation))
      }
    }
    return zip(rates, last).map { rate, l in
      DecodingMeasurement(speculation: l.3, decodeTokensPerSecond: Timing.median(rate), tokens: l.0, stats: l.1, outputs: l.2)
    }
  }
}

private func seconds(_ body: () throws -> Void) rethrows -> Double {
  let start = DispatchTime.now()
  try body()
  return Timing.seconds(since: start)
}

/// The clock arithmetic the benchmarks share (`eft bench`, `eft-server bench`).
public enum Timing {
  /// Seconds from `start` to now.
  public static func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
  }

  /// The median (the upper one of the middle two for an even count).
  public static func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
}
