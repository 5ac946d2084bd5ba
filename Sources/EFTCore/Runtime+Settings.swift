/// How a request's settings and parameters are resolved against its graph.
extension Runtime {
  /// The settings a request decodes with: the graph's defaults, overridden by the request.
  public func settings(for request: GenerationRequest, graph: CompiledGraph) throws -> GenerationSettings {
    var s = graph.defaults
    if let v = request.temperature { s.sampling.temperature = v }
    if let v = request.topK { s.sampling.topK = v }
    if let v = request.topP { s.sampling.topP = v }
    if let v = request.minP { s.sampling.minP = v }
    if let v = request.seed { s.sampling.seed = v }
    if let v = request.maxTokens { s.maxTokens = v }
    if let v = request.stop { s.stop = v }
    if let v = request.stopAtEOS { s.stopAtEOS = v }
    try s.sampling.validate()
    if let draft = request.draft {
      s.speculation = try graph.speculation(draft: draft, lookahead: s.speculation?.lookahead ?? SpeculationSettings.defaultLookahead,
                                            adaptive: s.speculation?.adaptive ?? false)
    }
    if request.speculative == true, s.speculation == nil {
      throw RuntimeError(.request, .invalidArgument, "graph '\(graph.name)' has no speculative section; name a draft node (--draft NODE)")
    }
    if request.speculative == false || request.lookahead == 0 { s.speculation = nil }
    if let k = request.lookahead, k != 0, request.speculative != false {
      guard let spec = s.speculation else {
        throw RuntimeError(.request, .invalidArgument, "lookahead = \(k) but graph '\(graph.name)' has no speculative section; name a draft node (--draft NODE)")
      }
      s.speculation = try graph.speculation(draft: spec.draft, lookahead: k, adaptive: spec.adaptive)
    }
    if let adaptive = request.adaptiveLookahead { s.speculation?.adaptive = adaptive }
    guard s.maxTokens >= 0 else { throw RuntimeError(.request, .invalidArgument, "max_tokens = \(s.maxTokens) is negative") }
    guard !s.stop.contains("") else { throw RuntimeError(.request, .invalidArgument, "stop holds an empty string") }
    guard s.stop.count <= GenerationSettings.maxStopStrings else {
      throw RuntimeError(.request, .invalidArgument, "stop holds \(s.stop.count) strings; at most \(GenerationSettings.maxStopStrings) are allowed")
    }
    if let long = s.stop.firstIndex(where: { $0.utf8.count > GenerationSettings.maxStopBytes }) {
      throw RuntimeError(.request, .invalidArgument, "stop[\(long)] is \(s.stop[long].utf8.count) bytes; at most \(GenerationSettings.maxStopBytes) are allowed")
    }
    return s
  }

  /// The parameter values of a request: defaults, overridden by the request's (names checked).
  public func parameterValues(_ overrides: [String: Double], graph: CompiledGraph) throws -> [String: Double] {
    var values = Dictionary(uniqueKeysWithValues: graph.parameters.map { ($0.name, $0.defaultValue) })
    for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
      guard values[name] != nil else {
        let known = graph.parameters.map(\.name)
        throw RuntimeError(.request, .invalidArgument, "graph '\(graph.name)' has no parameter '\(name)' (parameters: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
      }
      guard value.isFinite else { throw RuntimeError(.request, .invalidArgument, "parameter '\(name)' = \(value) is not finite") }
      values[name] = value
    }
    return values
  }
}
