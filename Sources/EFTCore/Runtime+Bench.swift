import Foundation

/// Prefill and decode speed of one configuration of work.
public struct Throughput: Sendable {
  public let prefillTokensPerSecond: Double
  public let decodeTokensPerSecond: Double
}

public struct BenchmarkResult: Sendable {
  public let graph: String
  public let promptTokens: Int
  public let newTokens: Int
  public let runs: Int
  /// The whole graph: every session advanced, the graph evaluated, a token chosen.
  public let graphThroughput: Throughput
  /// Each distinct model alone (one session, greedy on its own logits).
  public let models: [(name: String, throughput: Throughput)]
}

extension Runtime {
  /// Measures a graph: `promptTokens` random token ids as the prompt of every session, then
  /// `newTokens` greedy steps (EOS ignored). Each figure is the median of `runs` runs.
  public func benchmark(graph name: String?, promptTokens: Int, newTokens: Int, runs: Int,
                        progress: (String) -> Void = { _ in }) throws -> BenchmarkResult {
    let graph = try graph(named: name)
    guard promptTokens >= 1, newTokens >= 1, runs >= 1 else {
      throw RuntimeError(.request, .invalidArgument, "prompt tokens, new tokens and runs must each be ≥ 1")
    }
    guard promptTokens + newTokens <= graph.contextLength else {
      throw RuntimeError(.request, .outOfRange, "\(promptTokens) + \(newTokens) tokens exceed the graph's context length \(graph.contextLength)")
    }
    var rng = SeededGenerator(seed: 1)
    let prompt = (0..<promptTokens).map { _ in Int32(rng.next() % UInt64(graph.vocabSize)) }
    func seconds(_ body: () throws -> Void) rethrows -> Double {
      let start = DispatchTime.now()
      try body()
      return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
    func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

    // The whole graph.
    var prefill: [Double] = [], decode: [Double] = []
    let evaluator = try GraphEvaluator(graph: graph, parameters: try parameterValues([:], graph: graph))
    for run in 0..<runs {
      progress("graph \(graph.name): run \(run + 1)/\(runs)")
      var state: DecodeState!
      prefill.append(try seconds { state = try DecodeState(graph: graph, promptTokens: prompt) })
      decode.append(try seconds {
        for _ in 0..<newTokens {
          try evaluator.evaluate(logits: state.lastLogits)
          try state.append(try Sampler.argmax(evaluator.outputLogProbs()))
        }
      })
    }
    let graphThroughput = Throughput(prefillTokensPerSecond: Double(promptTokens) / median(prefill),
                                     decodeTokensPerSecond: Double(newTokens) / median(decode))

    // Each model alone.
    var models: [(String, Throughput)] = []
    for model in graph.models {
      var prefill: [Double] = [], decode: [Double] = []
      for run in 0..<runs {
        progress("model \(model.name): run \(run + 1)/\(runs)")
        let session = try model.makeSession()
        var logits: [Float] = []
        prefill.append(try seconds { logits = try session.append(prompt) })
        decode.append(try seconds {
          for _ in 0..<newTokens { logits = try session.append([try Sampler.argmax(Array(logits[0..<graph.vocabSize]))]) }
        })
      }
      models.append((model.name, Throughput(prefillTokensPerSecond: Double(promptTokens) / median(prefill),
                                            decodeTokensPerSecond: Double(newTokens) / median(decode))))
    }
    return BenchmarkResult(graph: graph.name, promptTokens: promptTokens, newTokens: newTokens, runs: runs,
                           graphThroughput: graphThroughput, models: models)
  }
}
