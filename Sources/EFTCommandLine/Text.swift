import ArgumentParser
import EFTAPI
import Foundation

// Text the command-line tools (`eft`, `eft-client`) read and print, kept in one place so that a
// local run and the same run through a server take the same arguments and read the same.

/// What the command-line tools print about a result. `eft` and `eft-client` both print through
/// here, so a local run and the same run through a server read the same.
public enum Report {
  /// The `-v` lines after a generation (a client's result is rebuilt from the server's `Finish`).
  public static func generationSummary(_ r: GenerationResult) -> [String] {
    let s = r.stats
    var lines = [String(format: "eft: %d tokens, finish %@, prompt %@ tokens, prefill %.3f s, decode %.3f s (%.1f tokens/s), %d model calls",
                        r.tokens.count, r.finishReason.rawValue, r.promptTokens.map(String.init).joined(separator: "/"),
                        r.prefillSeconds, r.decodeSeconds, r.decodeTokensPerSecond, s.modelCalls)]
    if let spec = r.speculation {
      lines.append(String(format: "eft: speculative (draft %@, lookahead %d%@): %d steps, %d drafted, %d accepted (%.1f%%)",
                          spec.draft, spec.lookahead, spec.adaptive ? ", adaptive" : "",
                          s.steps, s.drafted, s.accepted, 100 * s.acceptanceRate))
    }
    if !r.modelSeconds.isEmpty {
      lines.append("eft: model time: " + r.modelSeconds.sorted { $0.key < $1.key }
        .map { String(format: "%@ %.1f ms", $0.key, 1000 * $0.value) }.joined(separator: ", "))
    }
    return lines
  }

  /// The `--trace` header: one column per node.
  public static func traceHeader(nodes: [String]) -> String {
    "token  text  logprob  " + nodes.joined(separator: "  ")
  }

  /// The `--trace` line of one token: id, its own text, its log-prob and every node's value.
  public static func traceLine(token: Int32, piece: String, logProb: Float, nodeValues: [Float]) -> String {
    "\(token)  \(String(reflecting: piece))  " + ([logProb] + nodeValues).map { String(format: "%.4f", $0) }.joined(separator: "  ")
  }

  /// One line per scored token (id, log-prob, its text alone), then the total.
  public static func scoreTable(_ r: ScoreResult, pieces: [String]) -> [String] {
    zip(zip(r.tokens, r.logProbs), pieces).map { pair, piece in
      String(format: "%6d  %10.4f  %@", pair.0, pair.1, String(reflecting: piece))
    } + [String(format: "total %.4f over %d tokens", r.total, r.tokens.count)]
  }

  /// `{"tokens": [ids], "logprobs": [...], "total": x}` (a masked token's log-prob is null).
  public static func scoreJSON(_ r: ScoreResult) -> String {
    let tokens = r.tokens.map(String.init).joined(separator: ",")
    let logProbs = r.logProbs.map { jsonNumber($0) }.joined(separator: ",")
    return "{\"tokens\":[\(tokens)],\"logprobs\":[\(logProbs)],\"total\":\(jsonNumber(r.total))}"
  }
}

extension GraphSummary {
  /// What `eft check` and `eft-client graphs` print about a graph.
  public func render(isDefault: Bool) -> String {
    var lines = ["graph \(name)\(isDefault ? " (default)" : "")\(description.isEmpty ? "" : ": \(description)")"]
    for p in parameters {
      lines.append("  parameter \(p.name) = \(p.defaultValue)\(p.description.isEmpty ? "" : "  — \(p.description)")")
    }
    for node in nodes {
      lines.append("  \(node.name) = \(node.operation)\(node.name == output ? "  ← output" : "")")
    }
    let s = defaults
    // The values that turn a filter off (0, and 1 for top_p) print as "off".
    let topK = s.sampling.topK > 0 ? "\(s.sampling.topK)" : "off"
    let topP = s.sampling.topP > 0 && s.sampling.topP < 1 ? "\(s.sampling.topP)" : "off"
    let minP = s.sampling.minP > 0 ? "\(s.sampling.minP)" : "off"
    let temperature = s.sampling.temperature == 0 ? "0 (greedy)" : "\(s.sampling.temperature)"
    lines.append("  sampling: temperature \(temperature), top_k \(topK), top_p \(topP), min_p \(minP), max_tokens \(s.maxTokens), seed \(s.sampling.seed)\(s.stop.isEmpty ? "" : ", stop \(s.stop)")")
    if let spec = s.speculation {
      lines.append("  speculative: draft \(spec.draft), lookahead \(spec.lookahead)\(spec.adaptive ? ", adaptive" : "")")
    }
    lines.append("  vocabulary \(vocabSize) tokens, context \(contextLength), models: \(models.map(\.name).joined(separator: ", "))")
    return lines.joined(separator: "\n")
  }
}

/// A JSON number with `decimals` digits after the point (nil: Swift's shortest exact form).
/// JSON has no infinity or NaN: those (a masked token's −inf log-prob) are written as null.
public func jsonNumber(_ x: Double, decimals: Int? = nil) -> String {
  guard x.isFinite else { return "null" }
  guard let decimals else { return "\(x)" }
  return String(format: "%.\(decimals)f", x)
}

/// `\n`, `\t`, `\r` and `\\` turned into the characters they name; other backslashes stay.
public func unescape(_ text: String) -> String {
  var out = ""
  var iterator = text.makeIterator()
  while let c = iterator.next() {
    guard c == "\\" else {
      out.append(c)
      continue
    }
    switch iterator.next() {
    case "n": out.append("\n")
    case "t": out.append("\t")
    case "r": out.append("\r")
    case "\\": out.append("\\")
    case let other?: out.append("\\"); out.append(other)
    case nil: out.append("\\")
    }
  }
  return out
}

/// `name=value` assignments (`--set beta=0.5`) as a dictionary.
public func parseAssignments(_ assignments: [String]) throws -> [String: Double] {
  var values: [String: Double] = [:]
  for a in assignments {
    let parts = a.split(separator: "=", maxSplits: 1)
    guard parts.count == 2, let v = Double(parts[1].trimmingCharacters(in: .whitespaces)) else {
      throw ValidationError("--set \(a): expected name=number, e.g. --set beta=0.5")
    }
    values[parts[0].trimmingCharacters(in: .whitespaces)] = v
  }
  return values
}
