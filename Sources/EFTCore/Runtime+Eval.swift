import Foundation

/// One evaluation question (a line of a JSONL file).
public struct EvalItem: Sendable {
  /// The full prompt, as the graph's model nodes should see it (templates still apply).
  public let prompt: String
  /// The expected answer.
  public let answer: String
  /// The expected reply whose log-likelihood is measured; default: `answer`.
  public let reference: String
  /// A regular expression the whole reply must match to comply with the format; its first
  /// capture group is the answer compared with `answer`. nil: the whole reply is the answer.
  public let format: String?

  public init(prompt: String, answer: String, reference: String? = nil, format: String? = nil) {
    self.prompt = prompt
    self.answer = answer
    self.reference = reference ?? answer
    self.format = format
  }

  /// Reads a JSONL file: one object per line with `prompt` and `answer`, optional `reference`
  /// and `format`. Errors name the file and line.
  public static func load(_ path: String) throws -> [EvalItem] {
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
      throw RuntimeError(.request, .notFound, "\(path): cannot read the data file")
    }
    var items: [EvalItem] = []
    for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if trimmed.isEmpty { continue }
      guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
        throw RuntimeError(.request, .invalidArgument, "\(path):\(index + 1): not a JSON object")
      }
      guard let prompt = object["prompt"] as? String, let answer = object["answer"] as? String else {
        throw RuntimeError(.request, .invalidArgument, "\(path):\(index + 1): needs string fields 'prompt' and 'answer'")
      }
      let format = object["format"] as? String
      if let format, (try? NSRegularExpression(pattern: format)) == nil {
        throw RuntimeError(.request, .invalidArgument, "\(path):\(index + 1): 'format' is not a valid regular expression: \(format)")
      }
      items.append(EvalItem(prompt: prompt, answer: answer, reference: object["reference"] as? String, format: format))
    }
    guard !items.isEmpty else { throw RuntimeError(.request, .invalidArgument, "\(path): no questions") }
    return items
  }

  /// (answer found, format complied) for a reply that ended with `finish`.
  func judge(_ reply: String, finish: FinishReason) -> (correct: Bool, compliant: Bool) {
    let stopped = finish == .eos || finish == .stop
    let text = reply.trimmingCharacters(in: .whitespacesAndNewlines)
    guard let format, let regex = try? NSRegularExpression(pattern: format) else {
      return (text == answer, stopped)
    }
    let ns = text as NSString
    guard let match = regex.firstMatch(in: text, range: NSRange(location: 0, length: ns.length)),
          match.range.location == 0, match.range.length == ns.length else {
      return (false, false)
    }
    let extracted = match.numberOfRanges > 1 && match.range(at: 1).location != NSNotFound ? ns.substring(with: match.range(at: 1)) : text
    return (extracted == answer, stopped)
  }
}

/// How a graph did on an evaluation set.
public struct EvalResult: Sendable {
  public let graph: String
  public let questions: Int
  /// Fraction of replies whose answer equals the expected one (greedy decoding).
  public let accuracy: Double
  /// Fraction of replies that match the format and end by themselves (EOS or a stop string).
  public let formatCompliance: Double
  /// Mean over questions of the reference reply's total log-likelihood under the graph, over
  /// the references the graph can produce (NaN when it can produce none).
  public let meanLogLikelihood: Double
  /// exp(−Σ log-likelihood / Σ tokens) of those references: per-token perplexity.
  public let perplexity: Double
  /// References with a token the graph masks (log-prob −inf, e.g. outside its top_k): left out
  /// of the mean and the perplexity, which would otherwise be −inf and +inf.
  public let maskedReferences: Int
  /// Generated tokens per second of decoding.
  public let tokensPerSecond: Double
  /// The replies, in order.
  public let replies: [String]
}

extension Runtime {
  /// Greedy answers to every item under a graph, then accuracy, format compliance, mean
  /// log-likelihood of the reference and speed. `progress` is called after each item.
  public func evaluate(graph name: String?, items: [EvalItem], parameters: [String: Double] = [:],
                       maxTokens: Int? = nil, progress: (Int) -> Void = { _ in }) throws -> EvalResult {
    let graph = try graph(named: name)
    var correct = 0, compliant = 0, tokens = 0, referenceTokens = 0, masked = 0
    var logLikelihood = 0.0, decodeSeconds = 0.0
    var replies: [String] = []
    for (i, item) in items.enumerated() {
      var request = GenerationRequest(graph: graph.name, prompt: item.prompt)
      request.temperature = 0
      request.parameters = parameters
      request.maxTokens = maxTokens
      let result = try generate(request)
      let verdict = item.judge(result.text, finish: result.finishReason)
      correct += verdict.correct ? 1 : 0
      compliant += verdict.compliant ? 1 : 0
      tokens += result.tokens.count
      decodeSeconds += result.decodeSeconds
      replies.append(result.text)
      let scored = try score(graph: graph.name, prompt: item.prompt, continuation: item.reference, parameters: parameters)
      if scored.total.isFinite {
        logLikelihood += scored.total
        referenceTokens += scored.tokens.count
      } else {
        masked += 1
      }
      progress(i + 1)
    }
    let n = Double(items.count), scoredItems = items.count - masked
    return EvalResult(graph: graph.name, questions: items.count, accuracy: Double(correct) / n,
                      formatCompliance: Double(compliant) / n,
                      meanLogLikelihood: scoredItems > 0 ? logLikelihood / Double(scoredItems) : .nan,
                      perplexity: scoredItems > 0 ? Foundation.exp(-logLikelihood / Double(max(1, referenceTokens))) : .nan,
                      maskedReferences: masked,
                      tokensPerSecond: decodeSeconds > 0 ? Double(tokens) / decodeSeconds : 0, replies: replies)
  }
}
