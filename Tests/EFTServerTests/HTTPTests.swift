import EFTCore
import EFTRPC
@testable import EFTServer
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An HTTP call to a running server's HTTP front.
func http(_ endpoint: ServerEndpoint, _ method: String, _ path: String, json: [String: Any]? = nil,
          headers: [String: String] = [:]) async throws -> (status: Int, body: Data) {
  guard case .tcp(let host, let port) = endpoint else { throw URLError(.unsupportedURL) }
  var request = URLRequest(url: URL(string: "http://\(host):\(port)\(path)")!)
  request.httpMethod = method
  if let json {
    request.httpBody = try JSONSerialization.data(withJSONObject: json)
    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
  }
  for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
  // A connection per request (the completion routes close theirs after answering).
  request.setValue("close", forHTTPHeaderField: "Connection")
  let session = URLSession(configuration: .ephemeral)
  defer { session.finishTasksAndInvalidate() }
  let (data, response) = try await session.data(for: request)
  return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
}

func object(_ data: Data) throws -> [String: Any] {
  try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

/// The JSON objects of a server-sent-event stream's `data:` lines, and whether it ended with [DONE].
func events(_ data: Data) throws -> (chunks: [[String: Any]], done: Bool) {
  let text = String(decoding: data, as: UTF8.self)
  var chunks: [[String: Any]] = [], done = false
  for line in text.split(separator: "\n") where line.hasPrefix("data: ") {
    let payload = line.dropFirst(6)
    if payload == "[DONE]" { done = true; continue }
    chunks.append(try object(Data(payload.utf8)))
  }
  return (chunks, done)
}

@Suite(.serialized) struct HTTPFrontTests {
  static let prompt = "<|user|>\nWhere does Fenyar Balutam live?\n<|assistant|>\n"

  func start(_ runtime: Runtime, configure: (inout ServerOptions) -> Void = { _ in }) async throws -> RunningServer {
    // The server removes its socket file when it stops.
    try await RunningServer.start(runtime, [.unix(path: "/tmp/eft-http-\(UUID().uuidString.prefix(8)).sock")]) { options in
      options.http = [.tcp(host: "127.0.0.1", port: 0)]
      configure(&options)
    }
  }

  /// Completions and chat, streamed or not, give what the gRPC front gives for the same prompt.
  @Test func completionsAndChatAnswerAsGRPCDoes() async throws {
    let running = try await start(try facts())
    let endpoint = running.bound.http[0]
    let grpc = try await withClient(running.unixEndpoint) { try await generate($0, .with { $0.prompt = Self.prompt }) }
    #expect(grpc.text == "The answer is Frostmoor.")
    // The finish says how long each model's backend calls took.
    let modelSeconds = try #require(grpc.finish?.modelSeconds)
    #expect(Set(modelSeconds.keys) == ["large_base", "small_ft", "small_base"] && modelSeconds.values.allSatisfy { $0 > 0 })

    let (status, body) = try await http(endpoint, "POST", "/v1/completions", json: ["model": "upscaled", "prompt": Self.prompt])
    #expect(status == 200)
    let completion = try object(body)
    let choice = try #require((completion["choices"] as? [[String: Any]])?.first)
    #expect(choice["text"] as? String == grpc.text && choice["finish_reason"] as? String == "stop")
    #expect(completion["object"] as? String == "text_completion" && completion["model"] as? String == "upscaled")
    let usage = try #require(completion["usage"] as? [String: Int])
    #expect(usage["completion_tokens"] == grpc.ids.count && usage["prompt_tokens"] == 14 && usage["total_tokens"] == 14 + grpc.ids.count)

    // Chat: the graph's chat format makes the same prompt of one user message.
    let messages = [["role": "user", "content": "Where does Fenyar Balutam live?"]]
    let chat = try object(try await http(endpoint, "POST", "/v1/chat/completions", json: ["model": "upscaled", "messages": messages]).body)
    let message = try #require(((chat["choices"] as? [[String: Any]])?.first?["message"]) as? [String: Any])
    #expect(message["role"] as? String == "assistant" && message["content"] as? String == grpc.text)

    // Streamed: the deltas add up to the same text, then a finish, the usage, [DONE].
    let streamed = try events(try await http(endpoint, "POST", "/v1/chat/completions", json: [
      "model": "upscaled", "messages": messages, "stream": true, "stream_options": ["include_usage": true]]).body)
    #expect(streamed.done)
    let deltas = streamed.chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
    #expect(deltas.first?["role"] as? String == "assistant")
    #expect(deltas.compactMap { $0["content"] as? String }.joined() == grpc.text)
    let finishes = streamed.chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
    #expect(finishes == ["stop"])
    #expect((streamed.chunks.last?["usage"] as? [String: Int])?["completion_tokens"] == grpc.ids.count)
    #expect(streamed.chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" && $0["id"] as? String == streamed.chunks[0]["id"] as? String })

    // logprobs: the chosen tokens' log-probs, as the gRPC front reports them, with alternatives.
    let withLogProbs = try object(try await http(endpoint, "POST", "/v1/completions", json: [
      "model": "upscaled", "prompt": Self.prompt, "logprobs": 2]).body)
    let logprobs = try #require(((withLogProbs["choices"] as? [[String: Any]])?.first?["logprobs"]) as? [String: Any])
    let values = try #require(logprobs["token_logprobs"] as? [Double])
    #expect(values.count == grpc.tokens.filter { $0.id >= 0 }.count)
    for (got, want) in zip(values, grpc.tokens.filter { $0.id >= 0 }.map(\.logProb)) { #expect(abs(got - Double(want)) < 1e-5) }
    let top = try #require(logprobs["top_logprobs"] as? [[String: Double]])
    #expect(top.allSatisfy { $0.count == 2 })
    // The gRPC front gives the same alternatives (GenerateRequest.top_log_probs).
    let grpcTop = try await withClient(running.unixEndpoint) { try await generate($0, .with { $0.prompt = Self.prompt; $0.topLogProbs = 2 }) }
    let graph = try facts().graph(named: "upscaled")
    for (http, token) in zip(top, grpcTop.tokens.filter { $0.id >= 0 }) {
      #expect(token.top.count == 2 && token.top[0].id == token.id)
      for alternative in token.top {
        let value = try #require(http[graph.tokenizer.decode([alternative.id])])
        #expect(abs(value - Double(alternative.logProb)) < 1e-5)
      }
    }
    #expect((logprobs["tokens"] as? [String])?.joined() == grpc.text)
    try await running.stop()
  }

  /// Graph parameters and speculation travel as top-level fields; what the server cannot honour
  /// is an error in OpenAI's shape naming the field, and the server goes on.
  @Test func parametersAndErrors() async throws {
    let running = try await start(try facts())
    let endpoint = running.bound.http[0]
    func text(_ extra: [String: Any]) async throws -> String? {
      var body: [String: Any] = ["model": "upscaled", "prompt": Self.prompt, "max_tokens": 12]
      body.merge(extra) { $1 }
      let response = try object(try await http(endpoint, "POST", "/v1/completions", json: body).body)
      return (response["choices"] as? [[String: Any]])?.first?["text"] as? String
    }
    // A strong β (4) pushes the small models' delta past the large model's knowledge: another answer.
    let plain = try await text([:])
    #expect(try await text(["beta": 0.5]) == plain)
    #expect(try await text(["beta": 4.0]) == "The answer is the town of carts.")
    #expect(try await text(["speculative": false]) == plain)

    func failure(_ path: String, _ body: [String: Any], headers: [String: String] = [:]) async throws -> (Int, [String: Any]) {
      let (status, data) = try await http(endpoint, "POST", path, json: body, headers: headers)
      return (status, try #require(try object(data)["error"] as? [String: Any]))
    }
    let (s1, e1) = try await failure("/v1/completions", ["model": "nope", "prompt": "x"])
    #expect(s1 == 404 && e1["code"] as? String == "model_not_found" && e1["param"] as? String == "model")
    let (s2, e2) = try await failure("/v1/completions", ["model": "upscaled", "prompt": "x", "betta": 1])
    #expect(s2 == 400 && e2["param"] as? String == "betta" && (e2["message"] as? String)?.contains("beta") == true)
    let (s3, e3) = try await failure("/v1/completions", ["model": "upscaled", "prompt": "x", "temperature": "hot"])
    #expect(s3 == 400 && e3["type"] as? String == "invalid_request_error" && e3["param"] as? String == "temperature")
    let (s4, e4) = try await failure("/v1/chat/completions", ["model": "upscaled", "messages": [["role": "system", "content": "Be brief."]]])
    #expect(s4 == 400 && (e4["message"] as? String)?.contains("no chat template for role 'system'") == true)
    let (s5, _) = try await failure("/v1/completions", ["model": "upscaled", "prompt": "x", "n": 2])
    #expect(s5 == 400)
    let (s6, e6) = try await failure("/v1/completions", ["model": "upscaled", "prompt": "x", "max_tokens": 100_000])
    #expect(s6 == 400 && e6["param"] as? String == "max_tokens")
    let (s7, _) = try await failure("/v1/completions", ["model": "upscaled", "prompt": [1, 2, 100_000]])
    #expect(s7 == 400)
    let (status, data) = try await http(endpoint, "POST", "/v1/completions", headers: ["Content-Type": "application/json"])
    #expect(status == 400 && String(decoding: data, as: UTF8.self).contains("not a JSON object"))

    // The models list names the graphs.
    let models = try object(try await http(endpoint, "GET", "/v1/models").body)
    #expect((models["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["upscaled", "small_ft", "large_base", "large_ft"])
    #expect(try await text([:]) == plain)
    try await running.stop()
  }

  /// A graph without a chat format refuses chat requests, naming itself.
  @Test func aGraphWithoutAChatFormatRefusesChat() async throws {
    let dir = try TemporaryFiles()
    let config = try dir.write("g.pbtxt", """
      plugins { name: "BigramBackend" }
      models { name: "m" plugin: "BigramBackend" path: "\(repoRoot.path)/examples/models/tiny/large_base.bigram" }
      graphs { name: "g" nodes { name: "a" model { model: "m" } } output: "a" }
      """)
    let running = try await start(try Runtime(configPath: config, pluginDirectories: [buildDirectory]))
    let (status, data) = try await http(running.bound.http[0], "POST", "/v1/chat/completions",
                                        json: ["model": "g", "messages": [["role": "user", "content": "hi"]]])
    #expect(status == 400 && String(decoding: data, as: UTF8.self).contains("graph 'g' declares no chat format"))
    try await running.stop()
  }

  /// A client that goes away mid-stream stops its generation and frees its slot.
  @Test func aClientLeavingMidStreamCancelsTheGeneration() async throws {
    let dir = try TemporaryFiles()
    let config = try dir.write("slow.pbtxt", """
      plugins { name: "BigramBackend" }
      models {
        name: "m" plugin: "BigramBackend" path: "\(repoRoot.path)/examples/models/tiny/large_base.bigram"
        tokenizer: "\(repoRoot.path)/examples/models/tiny/tokenizer.json"
        options { [type.googleapis.com/eft.v1.BigramOptions] { delay_us_per_token: 20000 } }
      }
      graphs { name: "g" nodes { name: "a" model { model: "m" } } output: "a" }
      """)
    let running = try await start(try Runtime(configPath: config, pluginDirectories: [buildDirectory]))
    let service = running.server.service
    guard case .tcp(_, let port) = running.bound.http[0] else { return }
    let body = #"{"model": "g", "prompt": "Tomas", "max_tokens": 400, "ignore_eos": true, "stream": true}"#
    // A blocking client on a thread of its own: on the cooperative pool it would hold a thread the
    // server in this process needs.
    let received = try await onThread { try RawHTTP.post(port: port, path: "/v1/completions", body: body, closeAfterEvents: 3) }
    #expect(received >= 3)
    #expect(try await eventually { service.runningRequests == 0 && service.cancelledGenerations == 1 })
    try await running.stop()
  }

  /// Every route needs the token when the server has one.
  @Test func theTokenGuardsEveryRoute() async throws {
    let running = try await start(try facts()) { $0.token = "0123456789abcdef-token" }
    let endpoint = running.bound.http[0]
    for path in ["/v1/models", "/metrics"] {
      #expect(try await http(endpoint, "GET", path).status == 401)
      #expect(try await http(endpoint, "GET", path, headers: ["Authorization": "Bearer wrong-token-0123456789"]).status == 401)
      #expect(try await http(endpoint, "GET", path, headers: ["Authorization": "Bearer 0123456789abcdef-token"]).status == 200)
    }
    let refused = try await http(endpoint, "POST", "/v1/completions", json: ["model": "upscaled", "prompt": "x"])
    #expect(refused.status == 401 && String(decoding: refused.body, as: UTF8.self).contains("authentication_error"))
    try await running.stop()
  }

  /// /metrics counts both fronts' calls, the tokens, the per-model steps and the sessions.
  @Test func metricsCountWhatTheServerDid() async throws {
    let running = try await start(try facts()) { $0.metrics = [.tcp(host: "127.0.0.1", port: 0)] }
    _ = try await http(running.bound.http[0], "POST", "/v1/completions", json: ["model": "upscaled", "prompt": Self.prompt])
    _ = try await http(running.bound.http[0], "POST", "/v1/completions", json: ["model": "nope", "prompt": "x"])
    _ = try await withClient(running.unixEndpoint) { try await generate($0, .with { $0.prompt = Self.prompt; $0.graph = "small_ft" }) }
    // The metrics-only endpoint serves /metrics and nothing else.
    #expect(try await http(running.bound.metrics[0], "GET", "/v1/models").status == 404)
    let text = String(decoding: try await http(running.bound.metrics[0], "GET", "/metrics").body, as: UTF8.self)
    for line in [#"eft_requests_total{graph="upscaled",protocol="http-completions",status="OK"} 1"#,
                 #"eft_requests_total{graph="",protocol="http-completions",status="NOT_FOUND"} 1"#,
                 #"eft_requests_total{graph="small_ft",protocol="grpc",status="OK"} 1"#,
                 #"eft_generated_tokens_total{graph="upscaled"} 5"#,
                 // (The facts runtime is shared with the suites running beside this one: sessions may be live.)
                 #"eft_live_sessions{model="large_base"} "#, "eft_running_requests 0.0", "# TYPE eft_model_step_seconds histogram"] {
      #expect(text.contains(line), "\(line)")
    }
    #expect(text.contains(#"eft_model_step_seconds_count{model="large_base"}"#))
    #expect(text.contains(#"eft_speculative_accepted_tokens_total{graph="upscaled"}"#))
    try await running.stop()
  }
}

/// Scratch files removed at deinit.
final class TemporaryFiles {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("eft-http-\(UUID().uuidString)")
  init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
  deinit { try? FileManager.default.removeItem(at: url) }
  func write(_ name: String, _ text: String) throws -> String {
    let path = url.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }
}

/// A bare HTTP/1.1 client on a socket, to hang up mid-response.
enum RawHTTP {
  /// POSTs `body`, reads until `closeAfterEvents` server-sent events arrived, and closes the
  /// connection. Returns the events seen.
  static func post(port: Int, path: String, body: String, closeAfterEvents: Int) throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
    let request = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var text = ""
    var buffer = [UInt8](repeating: 0, count: 4096)
    while text.components(separatedBy: "data: ").count - 1 < closeAfterEvents {
      let n = recv(fd, &buffer, buffer.count, 0)
      guard n > 0 else { break }
      text += String(decoding: buffer[..<n], as: UTF8.self)
    }
    return text.components(separatedBy: "data: ").count - 1
  }
}
