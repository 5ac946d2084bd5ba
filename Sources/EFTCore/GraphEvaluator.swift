import Foundation

/// Evaluates a compiled graph at one position: model nodes take their session's logits, every
/// other node runs its operator on earlier nodes' vectors. Holds one [vocab] buffer per node,
/// reused from step to step. Weights are bound to the request's parameter values once.
struct GraphEvaluator {
  let graph: CompiledGraph
  /// Per node, per linear term: the bound weight (empty for other operators).
  let weights: [[Float]]
  /// One [vocab] vector per node, in evaluation order.
  let values: NodeVectors

  init(graph: CompiledGraph, parameters: [String: Double]) throws {
    self.graph = graph
    var weights: [[Float]] = []
    for (i, op) in graph.operations.enumerated() {
      guard case .linear(let terms) = op else {
        weights.append([])
        continue
      }
      weights.append(try terms.map { term in
        let w = term.weight.value(parameters)
        guard w.isFinite else {
          throw RuntimeError(.request, .invalidArgument, "graph '\(graph.name)', node '\(graph.nodeNames[i])': weight \(term.weight) evaluates to \(w) with the request's parameters")
        }
        return Float(w)
      })
    }
    self.weights = weights
    self.values = NodeVectors(count: graph.operations.count, vocab: graph.vocabSize)
  }

  /// Evaluates every node. `logits(s)` is session `s`'s row of logits at this position (the
  /// model's full head; rows past the vocabulary are padding and ignored).
  func evaluate(logits: (Int) -> ArraySlice<Float>) throws {
    try evaluate(graph.operations.indices, logits: logits)
  }

  /// Evaluates `nodes` (indices in evaluation order, each after the nodes it reads), calling
  /// `logits` only for the sessions they read.
  func evaluate(_ nodes: some Sequence<Int>, logits: (Int) -> ArraySlice<Float>) throws {
    let vocab = graph.vocabSize
    let input = values.vector
    for i in nodes {
      let o = values.output(i)
      switch graph.operations[i] {
      case .model(let s):
        let row = logits(s)
        try row.withUnsafeBufferPointer { r in
          let used = UnsafeBufferPointer(rebasing: r[0..<vocab])
          for v in used where v.isNaN || v == .infinity {
            throw RuntimeError(.backend, .internal, "model '\(graph.sessions[s].model.name)' returned a non-finite logit (\(v)) for node '\(graph.nodeNames[i])'")
          }
          Operators.logSoftmax(used, into: o)
        }
      case .linear(let terms):
        Operators.linear(zip(terms, weights[i]).map { (input($0.0.input), $0.1) }, into: o)
      case .normalize(let x):
        Operators.logSoftmax(input(x), into: o)
      case .temperature(let x, let t):
        Operators.temperature(input(x), t, into: o)
      case .topK(let x, let k):
        Operators.topK(input(x), k, into: o)
      case .topP(let x, let p):
        Operators.topP(input(x), p, into: o)
      case .minP(let x, let p):
        Operators.minP(input(x), p, into: o)
      case .plausibility(let x, let r, let alpha):
        Operators.mask(input(x), byReference: input(r), alpha: alpha, into: o)
      case .max(let xs):
        Operators.maximum(xs.map(input), into: o)
      case .min(let xs):
        Operators.minimum(xs.map(input), into: o)
      }
    }
  }

  /// The output node's vector, renormalised: the distribution a token is drawn from.
  func outputLogProbs() -> [Float] { logProbs(of: graph.output) }

  /// Node `i`'s vector, renormalised.
  func logProbs(of i: Int) -> [Float] {
    var out = [Float](repeating: 0, count: graph.vocabSize)
    out.withUnsafeMutableBufferPointer { Operators.logSoftmax(values.vector(i), into: $0) }
    return out
  }

  /// Every node's value at `token` (model nodes: log-probs; others: their scores).
  func nodeValues(at token: Int32) -> [Float] {
    (0..<graph.operations.count).map { values.vector($0)[Int(token)] }
  }
}

/// The node vectors of one evaluator: one allocation, [nodes × vocab].
final class NodeVectors {
  let vocab: Int
  private let storage: UnsafeMutableBufferPointer<Float>

  init(count: Int, vocab: Int) {
    self.vocab = vocab
    storage = .allocate(capacity: count * vocab)
    storage.initialize(repeating: 0)
  }

  deinit { storage.deallocate() }

  func vector(_ i: Int) -> UnsafeBufferPointer<Float> {
    UnsafeBufferPointer(rebasing: storage[(i * vocab)..<((i + 1) * vocab)])
  }

  func output(_ i: Int) -> UnsafeMutableBufferPointer<Float> {
    UnsafeMutableBufferPointer(rebasing: storage[(i * vocab)..<((i + 1) * vocab)])
  }
}
