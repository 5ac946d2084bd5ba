import EFTProto
import EFTTokenizer

/// Validates a graph of a config and compiles it into a `CompiledGraph`.
///
/// Checked before the first token: names are unique and resolve, every operator's arguments are
/// in range, no cycles (the error names the nodes on the cycle), the output node exists, weight
/// expressions parse and use declared parameters, and every model of the graph shares one
/// tokenizer with an output head at least as large as the vocabulary. Errors say file:line and
/// the graph and node.
struct GraphCompiler {
  let file: ConfigFile
  let models: [String: Model]

  func compile(_ graph: Eft_V1_Graph) throws -> CompiledGraph {
    let graphLine = file.line(ofName: graph.name) ?? 0
    func fail(_ node: String?, _ message: String, code: StatusCode = .invalidArgument) -> RuntimeError {
      if let node {
        return RuntimeError(.graph, code, "\(file.location(ofName: node, after: graphLine))graph '\(graph.name)', node '\(node)': \(message)")
      }
      return RuntimeError(.graph, code, "\(file.location(ofName: graph.name))graph '\(graph.name)': \(message)")
    }

    // Parameters.
    var parameters: [GraphParameter] = []
    for p in graph.parameters {
      guard p.name.first.map({ $0.isLetter || $0 == "_" }) == true,
            p.name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
        throw fail(nil, "parameter name '\(p.name)' is not an identifier")
      }
      guard !parameters.contains(where: { $0.name == p.name }) else { throw fail(nil, "parameter '\(p.name)' is declared twice") }
      guard p.defaultValue.isFinite else { throw fail(nil, "parameter '\(p.name)' has a non-finite default") }
      parameters.append(GraphParameter(name: p.name, defaultValue: p.defaultValue, description: p.description_p))
    }
    let parameterNames = Set(parameters.map(\.name))

    // Names.
    guard !graph.nodes.isEmpty else { throw fail(nil, "has no nodes") }
    var indexByName: [String: Int] = [:]
    for (i, node) in graph.nodes.enumerated() {
      guard !node.name.isEmpty else { throw fail(nil, "node #\(i + 1) has no name") }
      guard indexByName[node.name] == nil else { throw fail(node.name, "the name is used by two nodes") }
      indexByName[node.name] = i
    }
    func ref(_ name: String, of node: String, as role: String) throws -> Int {
      guard !name.isEmpty else { throw fail(node, "\(role) is empty") }
      guard let i = indexByName[name] else {
        let known = indexByName.keys.sorted().joined(separator: ", ")
        throw fail(node, "\(role) '\(name)' is not a node of this graph (nodes: \(known))")
      }
      return i
    }

    // Operators, with inputs as indices into graph.nodes (declaration order).
    var sessionSpecs: [SessionSpec] = []
    var declared: [Operation] = []
    for node in graph.nodes {
      let n = node.name
      guard let op = node.op else { throw fail(n, "no operator set (one of model, linear, normalize, temperature, top_k, top_p, min_p, plausibility, max, min)") }
      switch op {
      case .model(let m):
        guard !m.model.isEmpty else { throw fail(n, "model is empty") }
        guard let model = models[m.model] else {
          throw fail(n, "model '\(m.model)' is not declared (models: \(models.keys.sorted().joined(separator: ", ")))")
        }
        let template = m.template.isEmpty ? "{prompt}" : m.template
        let spec = SessionSpec(model: model, template: template, addSpecialTokens: m.hasAddSpecialTokens ? m.addSpecialTokens : true)
        let index = sessionSpecs.firstIndex(of: spec) ?? { sessionSpecs.append(spec); return sessionSpecs.count - 1 }()
        declared.append(.model(session: index))
      case .linear(let l):
        guard !l.terms.isEmpty else { throw fail(n, "linear needs at least one term") }
        var terms: [LinearTerm] = []
        for t in l.terms {
          let input = try ref(t.input, of: n, as: "term input")
          if !t.expr.isEmpty {
            guard !t.hasWeight else { throw fail(n, "term '\(t.input)' sets both weight and expr") }
            let e: WeightExpression
            do { e = try WeightExpression.parse(t.expr) } catch {
              throw fail(n, "term '\(t.input)': expr \"\(t.expr)\": \(error.message)")
            }
            if let unknown = e.parameters.subtracting(parameterNames).sorted().first {
              throw fail(n, "term '\(t.input)': expr \"\(t.expr)\" uses '\(unknown)', which is not a parameter of the graph (parameters: \(parameterNames.sorted().joined(separator: ", ")))")
            }
            terms.append(LinearTerm(input: input, weight: .expression(e, source: t.expr)))
          } else {
            let w = t.hasWeight ? t.weight : 1
            guard w.isFinite else { throw fail(n, "term '\(t.input)': weight must be finite") }
            terms.append(LinearTerm(input: input, weight: .constant(w)))
          }
        }
        declared.append(.linear(terms))
      case .normalize(let x):
        declared.append(.normalize(try ref(x.input, of: n, as: "input")))
      case .temperature(let x):
        guard x.temperature > 0, x.temperature <= SamplingOptions.maxTemperature else {
          throw fail(n, "temperature must be in (0, \(Int(SamplingOptions.maxTemperature))], got \(x.temperature)")
        }
        declared.append(.temperature(try ref(x.input, of: n, as: "input"), Float(x.temperature)))
      case .topK(let x):
        guard x.k >= 1 else { throw fail(n, "k must be ≥ 1, got \(x.k)") }
        declared.append(.topK(try ref(x.input, of: n, as: "input"), Int(x.k)))
      case .topP(let x):
        guard x.p > 0, x.p <= 1 else { throw fail(n, "p must be in (0, 1], got \(x.p)") }
        declared.append(.topP(try ref(x.input, of: n, as: "input"), x.p))
      case .minP(let x):
        guard x.p >= 0, x.p <= 1 else { throw fail(n, "p must be in [0, 1], got \(x.p)") }
        declared.append(.minP(try ref(x.input, of: n, as: "input"), x.p))
      case .plausibility(let x):
        guard x.alpha >= 0, x.alpha <= 1 else { throw fail(n, "alpha must be in [0, 1], got \(x.alpha)") }
        declared.append(.plausibility(input: try ref(x.input, of: n, as: "input"),
                                      reference: try ref(x.reference, of: n, as: "reference"), alpha: x.alpha))
      case .max(let x), .min(let x):
        guard !x.inputs.isEmpty else { throw fail(n, "needs at least one input") }
        let inputs = try x.inputs.map { try ref($0, of: n, as: "input") }
        if case .max = op { declared.append(.max(inputs)) } else { declared.append(.min(inputs)) }
      }
    }
    guard !graph.output.isEmpty else { throw fail(nil, "output is empty (name the node to sample from)") }
    guard let outputDeclared = indexByName[graph.output] else {
      throw fail(nil, "output '\(graph.output)' is not a node of this graph")
    }

    // Topological order (depth-first; a node on the current path seen again closes a cycle).
    var order: [Int] = []
    var state = [UInt8](repeating: 0, count: declared.count)  // 0 new, 1 on path, 2 done
    var path: [Int] = []
    func visit(_ i: Int) throws {
      if state[i] == 2 { return }
      if state[i] == 1 {
        let start = path.firstIndex(of: i) ?? 0
        // The path runs from readers to their inputs; show it the way data flows.
        let names = (path[start...] + [i]).reversed().map { graph.nodes[$0].name }
        throw fail(graph.nodes[i].name, "cycle: \(names.joined(separator: " → ")) (each node feeds the next)")
      }
      state[i] = 1
      path.append(i)
      for j in declared[i].inputs { try visit(j) }
      path.removeLast()
      state[i] = 2
      order.append(i)
    }
    for i in declared.indices { try visit(i) }
    var position = [Int](repeating: 0, count: declared.count)
    for (p, i) in order.enumerated() { position[i] = p }
    func remap(_ op: Operation) -> Operation {
      switch op {
      case .model: return op
      case .linear(let terms): return .linear(terms.map { LinearTerm(input: position[$0.input], weight: $0.weight) })
      case .normalize(let x): return .normalize(position[x])
      case .temperature(let x, let t): return .temperature(position[x], t)
      case .topK(let x, let k): return .topK(position[x], k)
      case .topP(let x, let p): return .topP(position[x], p)
      case .minP(let x, let p): return .minP(position[x], p)
      case .plausibility(let x, let r, let a): return .plausibility(input: position[x], reference: position[r], alpha: a)
      case .max(let xs): return .max(xs.map { position[$0] })
      case .min(let xs): return .min(xs.map { position[$0] })
      }
    }

    guard !sessionSpecs.isEmpty else { throw fail(nil, "has no model node") }

    // One vocabulary: every model reads the same tokenizer, and its head covers it.
    let first = sessionSpecs[0].model
    for spec in sessionSpecs {
      let m = spec.model
      if m.tokenizer.fingerprint != first.tokenizer.fingerprint {
        throw fail(nil, "vocabulary mismatch: model '\(first.name)' has a tokenizer of \(first.tokenizer.vocabSize) tokens (fingerprint \(first.tokenizer.fingerprint)), model '\(m.name)' one of \(m.tokenizer.vocabSize) tokens (fingerprint \(m.tokenizer.fingerprint)); models composed in one graph must share a tokenizer", code: .failedPrecondition)
      }
      if m.vocabSize < m.tokenizer.vocabSize {
        throw fail(nil, "vocabulary mismatch: model '\(m.name)' has \(m.vocabSize) output rows but its tokenizer has \(m.tokenizer.vocabSize) tokens", code: .failedPrecondition)
      }
    }

    // Sampling defaults: the built-in ones, overridden by the config's.
    var defaults = GenerationSettings()
    let s = graph.sampling
    if s.hasTemperature { defaults.sampling.temperature = s.temperature }
    if s.hasTopK { defaults.sampling.topK = Int(s.topK) }
    if s.hasTopP { defaults.sampling.topP = s.topP }
    if s.hasMinP { defaults.sampling.minP = s.minP }
    if s.hasSeed { defaults.sampling.seed = s.seed }
    do { try defaults.sampling.validate() } catch let e as RuntimeError { throw fail(nil, e.message) }
    if s.hasMaxTokens {
      guard s.maxTokens >= 0 else { throw fail(nil, "sampling.max_tokens must be ≥ 0, got \(s.maxTokens)") }
      defaults.maxTokens = Int(s.maxTokens)
    }
    defaults.stop = s.stop
    guard !s.stop.contains("") else { throw fail(nil, "sampling.stop holds an empty string") }
    guard s.stop.count <= GenerationSettings.maxStopStrings, s.stop.allSatisfy({ $0.utf8.count <= GenerationSettings.maxStopBytes }) else {
      throw fail(nil, "sampling.stop may hold at most \(GenerationSettings.maxStopStrings) strings of at most \(GenerationSettings.maxStopBytes) bytes each")
    }
    if s.hasStopAtEos { defaults.stopAtEOS = s.stopAtEos }

    let models = sessionSpecs.map(\.model)
    var compiled = CompiledGraph(
      name: graph.name,
      description: graph.description_p,
      nodeNames: order.map { graph.nodes[$0].name },
      operations: order.map { remap(declared[$0]) },
      output: position[outputDeclared],
      parameters: parameters,
      defaults: defaults,
      sessions: sessionSpecs,
      tokenizer: first.tokenizer,
      vocabSize: first.tokenizer.vocabSize,
      eosTokens: Set(models.flatMap(\.eosTokenIDs)),
      contextLength: models.map(\.contextLength).min() ?? 0)

    if graph.hasChat {
      do {
        compiled.chat = try ChatFormat(system: graph.chat.system, user: graph.chat.user, assistant: graph.chat.assistant,
                                       generationPrompt: graph.chat.generationPrompt)
      } catch {
        throw fail(nil, error.message)
      }
    }
    if graph.hasSpeculative {
      let spec = graph.speculative
      guard !spec.draft.isEmpty else { throw fail(nil, "speculative.draft is empty (name the node that drafts)") }
      do {
        // Checked even when `lookahead: 0` turns speculation off, so that a typo is found now.
        let settings = try compiled.speculation(
          draft: spec.draft, lookahead: spec.hasLookahead && spec.lookahead != 0 ? Int(spec.lookahead) : SpeculationSettings.defaultLookahead,
          adaptive: spec.adaptive)
        compiled.defaults.speculation = spec.hasLookahead && spec.lookahead == 0 ? nil : settings
      } catch let e as RuntimeError {
        throw fail(spec.draft, e.message)
      }
    }
    return compiled
  }
}
