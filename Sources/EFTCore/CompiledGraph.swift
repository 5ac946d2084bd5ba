import EFTTokenizer

/// A validated graph, ready to evaluate: nodes in topological order (inputs before the nodes that
/// read them), each reading the outputs of earlier nodes by index.
public struct CompiledGraph: Sendable {
  public let name: String
  public let description: String
  /// Node names, in evaluation order.
  public let nodeNames: [String]
  let operations: [Operation]
  /// Index of the output node.
  let output: Int
  public let parameters: [GraphParameter]
  /// The graph's sampling defaults.
  public internal(set) var defaults: GenerationSettings
  /// One session per distinct (model, template, add_special_tokens) of the model nodes.
  let sessions: [SessionSpec]
  /// The shared tokenizer of every model in the graph.
  public let tokenizer: Tokenizer
  /// Entries of every vector: the tokenizer's vocabulary size.
  public let vocabSize: Int
  /// Token ids that end generation (each model's EOS).
  public let eosTokens: Set<Int32>
  /// The shortest context length of the graph's models.
  public let contextLength: Int
  /// How chat messages become the prompt; nil: the graph takes no chat requests.
  public internal(set) var chat: ChatFormat?

  public var outputName: String { nodeNames[output] }

  /// The evaluation-order index of the node called `name`.
  func nodeIndex(_ name: String) -> Int? { nodeNames.firstIndex(of: name) }

  /// Node `i` and every node it reads, directly or not, in evaluation order.
  func subgraph(of i: Int) -> [Int] {
    var needed = Set([i])
    for j in stride(from: i, through: 0, by: -1) where needed.contains(j) {
      needed.formUnion(operations[j].inputs)
    }
    return needed.sorted()
  }

  /// Speculation drafting from the node called `draft`, or the reason it cannot.
  public func speculation(draft: String, lookahead: Int, adaptive: Bool) throws -> SpeculationSettings {
    guard let node = nodeIndex(draft) else {
      throw RuntimeError(.request, .invalidArgument, "speculative.draft '\(draft)' is not a node of graph '\(name)' (nodes: \(nodeNames.joined(separator: ", ")))")
    }
    guard (1...SpeculationSettings.maxLookahead).contains(lookahead) else {
      throw RuntimeError(.request, .invalidArgument, "speculative.lookahead = \(lookahead) is outside [1, \(SpeculationSettings.maxLookahead)]")
    }
    let reads = Set(subgraph(of: node).compactMap { if case .model(let s) = operations[$0] { return s } else { return nil } })
    guard reads.count < sessions.count else {
      throw RuntimeError(.request, .invalidArgument, "speculative.draft '\(draft)' reads every model of graph '\(name)', so drafting would cost as much as decoding; draft from a node that reads fewer models (typically the small fine-tuned one)")
    }
    return SpeculationSettings(draft: draft, lookahead: lookahead, adaptive: adaptive)
  }
  /// The nodes that read a model, in evaluation order.
  public var modelNodeNames: [String] {
    nodeNames.indices.compactMap { if case .model = operations[$0] { return nodeNames[$0] } else { return nil } }
  }

  /// Each session's model name, in session order (the order of a result's `promptTokens`).
  public var sessionModelNames: [String] { sessions.map(\.model.name) }

  /// The distinct models the graph reads, in session order.
  public var models: [Model] {
    var seen = Set<ObjectIdentifier>()
    return sessions.map(\.model).filter { seen.insert(ObjectIdentifier($0)).inserted }
  }

  /// A one-line summary of node `i` ("linear(large_base·1, small_ft·beta, small_base·-beta)").
  public func describeNode(_ i: Int) -> String {
    func n(_ j: Int) -> String { nodeNames[j] }
    switch operations[i] {
    case .model(let s):
      let spec = sessions[s]
      let template = spec.template == "{prompt}" ? "" : ", template \(String(reflecting: spec.template))"
      return "model(\(spec.model.name)\(template))"
    case .linear(let terms):
      return "linear(" + terms.map { "\(n($0.input))·\($0.weight)" }.joined(separator: " + ") + ")"
    case .normalize(let x): return "normalize(\(n(x)))"
    case .temperature(let x, let t): return "temperature(\(n(x)), \(t))"
    case .topK(let x, let k): return "top_k(\(n(x)), \(k))"
    case .topP(let x, let p): return "top_p(\(n(x)), \(p))"
    case .minP(let x, let p): return "min_p(\(n(x)), \(p))"
    case .plausibility(let x, let r, let a): return "plausibility(\(n(x)), reference \(n(r)), alpha \(a))"
    case .max(let xs): return "max(" + xs.map(n).joined(separator: ", ") + ")"
    case .min(let xs): return "min(" + xs.map(n).joined(separator: ", ") + ")"
    }
  }
}

/// A model node's session: which model, and how it sees the prompt.
struct SessionSpec: Sendable, Hashable {
  let model: Model
  /// The prompt wrapping, with "{prompt}" where the request's prompt goes.
  let template: String
  let addSpecialTokens: Bool

  static func == (a: SessionSpec, b: SessionSpec) -> Bool {
    a.model === b.model && a.template == b.template && a.addSpecialTokens == b.addSpecialTokens
  }

  func hash(into hasher: inout Hasher) {
    hasher.combine(ObjectIdentifier(model))
    hasher.combine(template)
    hasher.combine(addSpecialTokens)
  }

  func render(_ prompt: String) -> String { template.replacingOccurrences(of: "{prompt}", with: prompt) }
}

/// One operator, reading earlier nodes by index.
enum Operation: Sendable {
  case model(session: Int)
  case linear([LinearTerm])
  case normalize(Int)
  case temperature(Int, Float)
  case topK(Int, Int)
  case topP(Int, Double)
  case minP(Int, Double)
  case plausibility(input: Int, reference: Int, alpha: Double)
  case max([Int])
  case min([Int])

  var inputs: [Int] {
    switch self {
    case .model: return []
    case .linear(let terms): return terms.map(\.input)
    case .normalize(let x), .temperature(let x, _), .topK(let x, _), .topP(let x, _), .minP(let x, _): return [x]
    case .plausibility(let x, let r, _): return [x, r]
    case .max(let xs), .min(let xs): return xs
    }
  }
}

struct LinearTerm: Sendable {
  let input: Int
  let weight: Weight
}

enum Weight: Sendable, CustomStringConvertible {
  case constant(Double)
  case expression(WeightExpression, source: String)

  func value(_ parameters: [String: Double]) -> Double {
    switch self {
    case .constant(let v): return v
    case .expression(let e, _): return e.evaluate(parameters)
    }
  }

  var description: String {
    switch self {
    case .constant(let v): return Int(exactly: v).map(String.init) ?? String(v)
    case .expression(_, let source): return "(\(source))"
    }
  }
}

extension GraphSummary {
  /// What `graph` is, for `eft check` and the wire.
  public init(_ g: CompiledGraph) {
    self.init(name: g.name, description: g.description, parameters: g.parameters,
              nodes: g.nodeNames.indices.map { Node(name: g.nodeNames[$0], operation: g.describeNode($0)) },
              output: g.outputName, defaults: g.defaults, vocabSize: g.vocabSize, contextLength: g.contextLength,
              models: g.models.map {
                ModelSummary(name: $0.name, plugin: $0.plugin.name, architecture: $0.architecture,
                             vocabSize: $0.vocabSize, contextLength: $0.contextLength)
              })
  }
}
