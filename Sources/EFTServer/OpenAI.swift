// OpenAI's completion and chat-completion APIs, as the HTTP front speaks them: requests parsed
// into the runtime's GenerationRequest (graph parameters and speculation settings as top-level
// fields), results and stream chunks in OpenAI's JSON shapes, errors in OpenAI's error shape.
import EFTWire
import EFTCore
import Foundation
import GRPCCore

enum OpenAI {
  /// An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
  struct Failure: Error {
    var status: Int
    var type: String
    var message: String
    var param: String?
    var code: String?

    static func invalid(_ message: String, param: String? = nil) -> Failure {
      Failure(status: 400, type: "invalid_request_error", message: message, param: param)
    }

    var body: [String: Any] {
      ["error": ["message": message, "type": type, "param": param ?? NSNull(), "code": code ?? NSNull()] as [String: Any]]
    }
  }

  /// A parsed /v1/completions or /v1/chat/completions request.
  struct Request {
    var generation: GenerationRequest
    var graph: CompiledGraph
    var chat: Bool
    var stream: Bool
    /// stream_options.include_usage: a last chunk with the usage.
    var includeUsage: Bool
    /// Completions: `logprobs` (the count of alternatives); chat: `logprobs` true.
    var logprobs: Bool
  }

  /// Keys every request may carry that change nothing when they hold these neutral values;
  /// any other value is refused (the runtime does not implement it).
  static let neutral: [String: @Sendable (Any) -> Bool] = [
    "n": { ($0 as? NSNumber)?.intValue == 1 },
    "best_of": { ($0 as? NSNumber)?.intValue == 1 },
    "presence_penalty": { ($0 as? NSNumber)?.doubleValue == 0 },
    "frequency_penalty": { ($0 as? NSNumber)?.doubleValue == 0 },
    "logit_bias": { ($0 as? [String: Any])?.isEmpty ?? false },
    "echo": { ($0 as? NSNumber).map { isBoolean($0) && !$0.boolValue } ?? false },
    "suffix": { $0 is NSNull },
    "tools": { ($0 as? [Any])?.isEmpty ?? false },
    "user": { $0 is String },
    "parallel_tool_calls": { _ in true },
  ]

  /// The request in `body`, checked against the runtime's graphs and the server's limits.
  static func parse(_ body: [UInt8], chat: Bool, runtime: Runtime, limits: ServiceLimits) throws -> Request {
    guard let object = try? JSONSerialization.jsonObject(with: Data(body)), let json = object as? [String: Any] else {
      throw Failure.invalid("the body is not a JSON object")
    }
    var fields = json
    func take(_ key: String) -> Any? {
      guard let value = fields.removeValue(forKey: key), !(value is NSNull) else { return nil }
      return value
    }
    func number(_ key: String) throws -> Double? {
      guard let value = take(key) else { return nil }
      guard let n = value as? NSNumber, !isBoolean(n), n.doubleValue.isFinite else { throw Failure.invalid("'\(key)' must be a number", param: key) }
      return n.doubleValue
    }
    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
      guard let value = try number(key) else { return nil }
      guard value.rounded() == value, value >= Double(range.lowerBound), value <= Double(range.upperBound) else {
        throw Failure.invalid("'\(key)' must be an integer in \(range.lowerBound)...\(range.upperBound), got \(value)", param: key)
      }
      return Int(value)
    }
    func bool(_ key: String) throws -> Bool? {
      guard let value = take(key) else { return nil }
      guard let n = value as? NSNumber, isBoolean(n) else { throw Failure.invalid("'\(key)' must be true or false", param: key) }
      return n.boolValue
    }
    func string(_ key: String) throws -> String? {
      guard let value = take(key) else { return nil }
      guard let s = value as? String else { throw Failure.invalid("'\(key)' must be a string", param: key) }
      return s
    }

    let name = try string("model") ?? ""
    let graph: CompiledGraph
    do {
      graph = try runtime.graph(named: name)
    } catch let error as EFTCore.RuntimeError {
      throw Failure(status: 404, type: "invalid_request_error", message: error.message, param: "model", code: "model_not_found")
    }
    var g = GenerationRequest(graph: graph.name, prompt: "")
    var logprobs = false

    if chat {
      guard let messages = take("messages") as? [[String: Any]] else {
        throw Failure.invalid("'messages' must be an array of {role, content} objects", param: "messages")
      }
      guard let format = graph.chat else {
        throw Failure.invalid("graph '\(graph.name)' declares no chat format (config: graphs { chat { … } }); use /v1/completions", param: "model")
      }
      let turns = try messages.enumerated().map { i, m -> (role: String, content: String) in
        guard let role = m["role"] as? String else { throw Failure.invalid("messages[\(i)].role must be a string", param: "messages") }
        return (role, try content(m["content"], at: i))
      }
      do {
        g.prompt = try format.prompt(turns, graph: graph.name)
      } catch {
        throw Failure.invalid(error.message, param: "messages")
      }
      logprobs = try bool("logprobs") ?? false
      let top = try integer("top_logprobs", in: 0...GenerationRequest.maxTopLogProbs)
      if top != nil && !logprobs { throw Failure.invalid("'top_logprobs' needs 'logprobs': true", param: "top_logprobs") }
      g.topLogProbs = top ?? 0
      if let n = try integer("max_completion_tokens", in: 0...Int(Int32.max)) { g.maxTokens = n }
    } else {
      switch take("prompt") {
      case let text as String:
        g.prompt = text
      case let list as [String] where list.count == 1:
        g.prompt = list[0]
      case let ids as [NSNumber] where !ids.isEmpty && !ids.contains(where: isBoolean):
        // A prompt of token ids, as OpenAI's API takes them.
        guard let i = ids.firstIndex(where: { $0.doubleValue.rounded() != $0.doubleValue || $0.intValue < 0 || $0.intValue >= graph.vocabSize }) else {
          g.promptTokens = ids.map { Int32($0.intValue) }
          break
        }
        throw Failure.invalid("prompt[\(i)] = \(ids[i]) is not a token id of graph '\(graph.name)' (vocabulary \(graph.vocabSize))", param: "prompt")
      case nil:
        throw Failure.invalid("'prompt' is required", param: "prompt")
      default:
        throw Failure.invalid("'prompt' must be a string, one string in an array, or an array of token ids (one prompt per request)", param: "prompt")
      }
      if let n = try integer("logprobs", in: 0...GenerationRequest.maxTopLogProbs) {
        logprobs = true
        g.topLogProbs = n
      }
    }
    if let text = g.promptTokens == nil ? g.prompt : nil, text.utf8.count > limits.maxPromptBytes {
      throw Failure(status: 413, type: "invalid_request_error",
                    message: "the prompt is \(text.utf8.count) bytes, over the server's limit of \(limits.maxPromptBytes) (eft-server --max-prompt-bytes)",
                    param: chat ? "messages" : "prompt")
    }

    if let n = try integer("max_tokens", in: 0...Int(Int32.max)) { g.maxTokens = n }
    if let n = g.maxTokens, n > limits.maxTokens {
      throw Failure(status: 400, type: "invalid_request_error", message: "max_tokens = \(n) is over the server's limit of \(limits.maxTokens) (eft-server --max-tokens-limit)", param: "max_tokens")
    } else if g.maxTokens == nil, graph.defaults.maxTokens > limits.maxTokens {
      g.maxTokens = limits.maxTokens
    }
    g.temperature = try number("temperature")
    g.topP = try number("top_p")
    g.minP = try number("min_p")
    g.topK = try integer("top_k", in: 0...Int(Int32.max))
    if let seed = try number("seed") {
      guard seed.rounded() == seed, abs(seed) < 0x1p63 else { throw Failure.invalid("'seed' must be an integer", param: "seed") }
      g.seed = UInt64(bitPattern: Int64(seed))
    }
    switch take("stop") {
    case nil: break
    case let s as String: g.stop = [s]
    case let list as [String]: g.stop = list
    default: throw Failure.invalid("'stop' must be a string or an array of strings", param: "stop")
    }
    if let ignore = try bool("ignore_eos") { g.stopAtEOS = !ignore }
    let stream = try bool("stream") ?? false
    var includeUsage = false
    if let options = take("stream_options") {
      guard let o = options as? [String: Any], o.keys.allSatisfy({ $0 == "include_usage" }),
            o["include_usage"].map({ ($0 as? NSNumber).map(isBoolean) ?? false }) ?? true else {
        throw Failure.invalid("'stream_options' may hold only include_usage (true or false)", param: "stream_options")
      }
      includeUsage = o["include_usage"] as? Bool ?? false
    }
    // Speculative decoding, as the gRPC Speculation message has it.
    g.speculative = try bool("speculative")
    g.draft = try string("draft")
    g.lookahead = try integer("lookahead", in: 0...Int(Int32.max))
    g.adaptiveLookahead = try bool("adaptive_lookahead")

    for (key, check) in neutral {
      guard let value = take(key) else { continue }
      guard check(value) else { throw Failure.invalid("'\(key)' = \(value) is not supported by this server (only its neutral value)", param: key) }
    }
    // What is left must be graph parameters: "beta": 0.5 (the openai client's extra_body).
    for key in fields.keys.sorted() {
      guard graph.parameters.contains(where: { $0.name == key }) else {
        let names = graph.parameters.map(\.name)
        throw Failure.invalid("unrecognized request argument '\(key)'"
                              + (names.isEmpty ? " (graph '\(graph.name)' has no parameters)" : " (parameters of graph '\(graph.name)': \(names.joined(separator: ", ")))"),
                              param: key)
      }
      guard let value = try number(key) else { continue }
      g.parameters[key] = value
    }
    return Request(generation: g, graph: graph, chat: chat, stream: stream, includeUsage: includeUsage, logprobs: logprobs)
  }

  /// Whether a JSON value is true or false rather than a number (Foundation gives both as NSNumber,
  /// and `1.0 is Bool` holds).
  static func isBoolean(_ n: NSNumber) -> Bool {
    let type = String(cString: n.objCType)
    return type == "c" || type == "B"
  }

  /// A message's content: a string, or an array of text parts.
  static func content(_ value: Any?, at i: Int) throws -> String {
    if let text = value as? String { return text }
    if let parts = value as? [[String: Any]] {
      return try parts.map { part in
        guard part["type"] as? String == "text", let text = part["text"] as? String else {
          throw Failure.invalid("messages[\(i)].content: only text parts ({\"type\": \"text\", \"text\": …}) are supported", param: "messages")
        }
        return text
      }.joined()
    }
    throw Failure.invalid("messages[\(i)].content must be a string or an array of text parts", param: "messages")
  }

  // MARK: Responses

  static func finishReason(_ reason: FinishReason) -> String {
    switch reason {
    case .eos, .stop: "stop"
    case .length, .context: "length"
    case .cancelled: "cancelled"
    }
  }

  /// Log-probabilities of the tokens so far, in the request's API's shape.
  struct LogProbs {
    let chat: Bool
    let tokenizer: (Int32) -> String
    private(set) var entries: [[String: Any]] = []
    private(set) var tokens: [String] = []
    private(set) var tokenLogProbs: [Float] = []
    private(set) var top: [[String: Float]] = []
    private(set) var offsets: [Int] = []
    private var offset = 0

    init(chat: Bool, tokenizer: @escaping (Int32) -> String) {
      self.chat = chat
      self.tokenizer = tokenizer
    }

    mutating func add(_ event: TokenEvent) {
      guard event.token >= 0 else { return }
      let piece = tokenizer(event.token)
      if chat {
        func entry(_ token: Int32, _ logProb: Float) -> [String: Any] {
          let text = tokenizer(token)
          return ["token": text, "logprob": logProb, "bytes": Array(text.utf8).map(Int.init)]
        }
        var e = entry(event.token, event.logProb)
        e["top_logprobs"] = event.topLogProbs.map { entry($0.token, $0.logProb) }
        entries.append(e)
      } else {
        tokens.append(piece)
        tokenLogProbs.append(event.logProb)
        top.append(Dictionary(event.topLogProbs.map { (tokenizer($0.token), $0.logProb) }, uniquingKeysWith: { a, _ in a }))
        offsets.append(offset)
        offset += piece.utf8.count
      }
    }

    var json: [String: Any] {
      chat ? ["content": entries]
        : ["tokens": tokens, "token_logprobs": tokenLogProbs, "top_logprobs": top, "text_offset": offsets]
    }

    /// Takes the entries so far (for a stream chunk).
    mutating func drain() -> [String: Any] {
      defer {
        entries = []
        tokens = []
        tokenLogProbs = []
        top = []
        offsets = []
      }
      return json
    }
  }

  /// The fields every response and chunk carries.
  static func envelope(id: String, object: String, created: Int, model: String) -> [String: Any] {
    ["id": id, "object": object, "created": created, "model": model]
  }

  static func usage(_ result: GenerationResult) -> [String: Any] {
    let prompt = result.promptTokens.max() ?? 0
    return ["prompt_tokens": prompt, "completion_tokens": result.tokens.count, "total_tokens": prompt + result.tokens.count]
  }

  static func json(_ object: [String: Any]) -> [UInt8] {
    // Sorted keys: the same response is the same bytes.
    (try? Array(JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))) ?? Array("{}".utf8)
  }
}

extension OpenAI.Failure {
  /// The HTTP status and OpenAI error type of a gRPC status (the runtime's statuses as the
  /// gRPC front sends them).
  init(_ error: RPCError) {
    let (status, type): (Int, String)
    switch error.code {
    case .invalidArgument, .outOfRange, .failedPrecondition: (status, type) = (400, "invalid_request_error")
    case .notFound: (status, type) = (404, "invalid_request_error")
    case .resourceExhausted: (status, type) = (429, "rate_limit_exceeded")
    case .unauthenticated: (status, type) = (401, "authentication_error")
    case .permissionDenied: (status, type) = (403, "permission_error")
    case .deadlineExceeded: (status, type) = (504, "timeout")
    case .cancelled: (status, type) = (499, "cancelled")
    case .unavailable: (status, type) = (503, "service_unavailable")
    case .unimplemented: (status, type) = (501, "not_implemented")
    default: (status, type) = (500, "server_error")
    }
    self.init(status: status, type: type, message: error.message, param: nil, code: statusName(error.code).lowercased())
  }

}
