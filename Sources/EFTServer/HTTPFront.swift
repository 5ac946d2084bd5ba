// The OpenAI-compatible HTTP front of eft-server (Hummingbird): /v1/completions,
// /v1/chat/completions (streamed as server-sent events, or not), /v1/models, and /metrics. It
// runs generations through the same path as the gRPC front (RuntimeService.runGeneration): the
// same admission, limits, request log and cancellation.
import EFTWire
import EFTCore
import Foundation
import GRPCCore
import Hummingbird
import NIOCore

struct HTTPFront: Sendable {
  let service: RuntimeService
  /// Routes served: the OpenAI API (with /metrics), or /metrics alone (`--metrics`).
  let openAI: Bool
  let token: String?

  func router() -> Router<BasicRequestContext> {
    let router = Router()
    if openAI {
      router.get("/v1/models") { request, _ in try await self.authorized(request) { self.models() } }
      router.post("/v1/completions") { request, _ in try await self.authorized(request) { try await self.complete(request, chat: false) } }
      router.post("/v1/chat/completions") { request, _ in try await self.authorized(request) { try await self.complete(request, chat: true) } }
    }
    router.get("/metrics") { request, _ in
      try await self.authorized(request) {
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(bytes: self.service.metrics.render(service: self.service))))
      }
    }
    return router
  }

  // MARK: Authentication

  /// With a token (`--token-file`), every route needs `Authorization: Bearer TOKEN`.
  private func check(_ request: Request) -> Response? {
    guard let token else { return nil }
    let header = request.headers[.authorization] ?? ""
    let presented = header.hasPrefix("Bearer ") ? Array(header.utf8.dropFirst(7)) : []
    guard constantTimeEqual(presented, Array(token.utf8)) else {
      return Self.error(OpenAI.Failure(status: 401, type: "authentication_error",
                                       message: "missing or wrong bearer token (Authorization: Bearer …)", code: "invalid_api_key"))
    }
    return nil
  }

  private func authorized(_ request: Request, _ body: () async throws -> Response) async throws -> Response {
    if let refusal = check(request) { return refusal }
    return try await body()
  }

  // MARK: Routes

  private func models() -> Response {
    let created = Int(service.started.timeIntervalSince1970)
    let data: [[String: Any]] = service.runtime.graphs.map { graph in
      ["id": graph.name, "object": "model", "created": created, "owned_by": "eft",
       "description": graph.description, "parameters": graph.parameters.map(\.name), "chat": graph.chat != nil]
    }
    return Self.json(200, ["object": "list", "data": data])
  }

  /// A completion or chat request. The connection closing while it runs (the client gave up)
  /// cancels the generation; a streamed one, which runs after the handler has returned its
  /// response, stops at its first failed write instead.
  private func complete(_ request: Request, chat: Bool) async throws -> Response {
    let cancellation = CallCancellation(deadline: nil)
    let watching = Locked(true)
    var response = try await request.body.consumeWithInboundCloseHandler({ body in
      try await complete(body, chat: chat, cancellation: cancellation, watching: watching)
    }, onInboundClosed: {
      if watching.withLock({ $0 }) { cancellation.cancel() }
    })
    // Watching the connection consumes it: Hummingbird closes it after this response, so the
    // client must not send another request on it.
    response.headers[.connection] = "close"
    return response
  }

  private func complete(_ requestBody: RequestBody, chat: Bool, cancellation: CallCancellation, watching: Locked<Bool>) async throws -> Response {
    let protocolName = chat ? "http-chat" : "http-completions"
    let body: ByteBuffer
    do {
      body = try await requestBody.collect(upTo: service.limits.maxMessageBytes)
    } catch {
      service.metrics.request(graph: "", protocol: protocolName, status: "RESOURCE_EXHAUSTED")
      return Self.error(OpenAI.Failure(status: 413, type: "invalid_request_error",
                                       message: "the request body is over the server's limit of \(service.limits.maxMessageBytes) bytes (eft-server --max-message-bytes)"))
    }
    let parsed: OpenAI.Request
    do {
      parsed = try OpenAI.parse(Array(buffer: body), chat: chat, runtime: service.runtime, limits: service.limits)
    } catch let failure as OpenAI.Failure {
      service.metrics.request(graph: "", protocol: protocolName, status: failure.status == 404 ? "NOT_FOUND" : "INVALID_ARGUMENT")
      service.requestLog?(escapedForLog("\(protocolName): \(failure.status) \(failure.message)"))
      return Self.error(failure)
    }
    let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.lowercased()
    let created = Int(Date().timeIntervalSince1970)
    let envelope = OpenAI.envelope(id: id, object: chat ? "chat.completion" : "text_completion", created: created, model: parsed.graph.name)
    let tokenizer = parsed.graph.tokenizer
    let service = self.service

    if !parsed.stream {
      do {
        let (result, logprobs) = try await service.serving(protocolName) { note in
          note.graph = parsed.graph.name
          var logprobs = OpenAI.LogProbs(chat: chat) { tokenizer.decode([$0]) }
          let result = try await service.runGeneration(parsed.generation, graph: parsed.graph, cancellation: cancellation, note: note) { event in
            if parsed.logprobs { logprobs.add(event) }
          }
          return (result, logprobs)
        }
        var choice: [String: Any] = ["index": 0, "finish_reason": OpenAI.finishReason(result.finishReason),
                                     "logprobs": parsed.logprobs ? logprobs.json : NSNull()]
        if chat {
          choice["message"] = ["role": "assistant", "content": result.text]
        } else {
          choice["text"] = result.text
        }
        var response = envelope
        response["choices"] = [choice]
        response["usage"] = OpenAI.usage(result)
        return Self.json(200, response)
      } catch let error as RPCError {
        return Self.error(OpenAI.Failure(error))
      }
    }

    // Streamed: server-sent events, a chunk per token (text, or logprobs when asked), a last
    // chunk with the finish reason (then one with the usage when stream_options asks), and
    // "[DONE]". A failure after the headers went out is an event with the error object.
    let model = parsed.graph.name, chunkObject = chat ? "chat.completion.chunk" : "text_completion"
    watching.withLock { $0 = false }
    return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: ResponseBody { writer in
      func send(_ object: [String: Any]) async throws {
        try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + OpenAI.json(object) + Array("\n\n".utf8)))
      }
      func chunk(text: String?, role: Bool = false, finish: String? = nil, logprobs: [String: Any]? = nil) -> [String: Any] {
        var choice: [String: Any] = ["index": 0, "finish_reason": finish ?? NSNull(), "logprobs": logprobs ?? NSNull()]
        if chat {
          var delta: [String: Any] = [:]
          if role { delta["role"] = "assistant" }
          if let text { delta["content"] = text }
          choice["delta"] = delta
        } else {
          choice["text"] = text ?? ""
        }
        var c = OpenAI.envelope(id: id, object: chunkObject, created: created, model: model)
        c["choices"] = [choice]
        return c
      }
      do {
        let result = try await service.serving(protocolName) { note in
          note.graph = parsed.graph.name
          var logprobs = OpenAI.LogProbs(chat: chat) { tokenizer.decode([$0]) }
          return try await service.runGeneration(parsed.generation, graph: parsed.graph, cancellation: cancellation, note: note) {
            if chat { try await send(chunk(text: "", role: true)) }
          } write: { event in
            if parsed.logprobs { logprobs.add(event) }
            guard !event.text.isEmpty || (parsed.logprobs && event.token >= 0) else { return }
            try await send(chunk(text: event.text, logprobs: parsed.logprobs ? logprobs.drain() : nil))
          }
        }
        try await send(chunk(text: chat ? nil : "", finish: OpenAI.finishReason(result.finishReason)))
        if parsed.includeUsage {
          var last = OpenAI.envelope(id: id, object: chunkObject, created: created, model: model)
          last["choices"] = [[String: Any]]()
          last["usage"] = OpenAI.usage(result)
          try await send(last)
        }
        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
      } catch let error as RPCError {
        // Cancelled: the client is gone, nobody to tell. Else the stream says why it stopped.
        if error.code != .cancelled { try? await send(OpenAI.Failure(error).body) }
      }
      try await writer.finish(nil)
    })
  }

  // MARK: Responses

  static func json(_ status: Int, _ object: [String: Any]) -> Response {
    Response(status: .init(code: status), headers: [.contentType: "application/json"],
             body: .init(byteBuffer: ByteBuffer(bytes: OpenAI.json(object))))
  }

  static func error(_ failure: OpenAI.Failure) -> Response { json(failure.status, failure.body) }
}
