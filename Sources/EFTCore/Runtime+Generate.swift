import EFTTokenizer
import Foundation

extension Runtime {
  /// Generates from `request`, calling `onToken` for each token as it is chosen; `onToken`
  /// returns false to stop (finish reason `.cancelled`). Runs on the calling thread; its model
  /// appends run in the scheduler's steps, batched with other requests' (so `onToken` should
  /// return quickly: the others' next step waits for it). `cancellation` is polled while the
  /// request waits for a step (a cancelled prefill throws `.cancelled`).
  public func generate(_ request: GenerationRequest, cancellation: (any CancellationSignal)? = nil,
                       onToken: (TokenEvent) throws -> Bool = { _ in true }) throws -> GenerationResult {
    let graph = try graph(named: request.graph)
    let settings = try settings(for: request, graph: graph)
    let evaluator = try GraphEvaluator(graph: graph, parameters: try parameterValues(request.parameters, graph: graph))

    let start = DispatchTime.now()
    let state: DecodeState
    do {
      if let ids = request.promptTokens {
        state = try DecodeState(graph: graph, prompts: graph.sessions.map { _ in ids }, scheduler: scheduler, cancellation: cancellation)
      } else {
        state = try DecodeState(graph: graph, prompt: request.prompt, scheduler: scheduler, cancellation: cancellation)
      }
    } catch let error as RuntimeError where error.code == .cancelled {
      // Cancelled while waiting for its prefill: a generation of no tokens.
      return GenerationResult(tokens: [], text: "", finishReason: .cancelled, promptTokens: [],
                              prefillSeconds: Timing.seconds(since: start), decodeSeconds: 0, stats: DecodeStats(),
                              speculation: settings.speculation)
    }
    let prefillEnd = DispatchTime.now()

    guard (0...GenerationRequest.maxTopLogProbs).contains(request.topLogProbs) else {
      throw RuntimeError(.request, .invalidArgument, "top_logprobs = \(request.topLogProbs) is outside [0, \(GenerationRequest.maxTopLogProbs)]")
    }
    var decoder = try Decoder(state: state, evaluator: evaluator, settings: settings, nodeValues: request.returnNodeValues,
                          topLogProbs: request.topLogProbs)
    var tokens: [Int32] = []
    var text = ""
    var streaming = StreamingDecoder(tokenizer: graph.tokenizer)
    var stops = StopMatcher(stops: settings.stop)
    var finish = FinishReason.length
    decoding: while tokens.count < settings.maxTokens {
      guard state.room >= 0 else {
        finish = .context
        break
      }
      let chosenTokens: [ChosenToken]
      do {
        chosenTokens = try decoder.step(limit: settings.maxTokens - tokens.count)
      } catch let error as RuntimeError where error.code == .cancelled {
        finish = .cancelled  // while waiting for a step
        break decoding
      }
      for chosen in chosenTokens {
        if settings.stopAtEOS, graph.eosTokens.contains(chosen.token) {
          finish = .eos
          break decoding
        }
        tokens.append(chosen.token)
        let (piece, stopped) = stops.push(streaming.push(chosen.token))
        text += piece
        let event = TokenEvent(token: chosen.token, text: piece, logProb: chosen.logProb, nodeValues: chosen.nodeValues,
                               topLogProbs: chosen.top)
        if stopped {
          _ = try onToken(event)
          finish = .stop
          break decoding
        }
        guard try onToken(event) else {
          finish = .cancelled
          break decoding
        }
      }
    }
    state.finishModelWork()
    if finish != .stop {
      // Flush what the UTF-8 decoder and the stop matcher held back.
      let (tail, stoppedInTail) = stops.push(streaming.finish())
      let rest = stoppedInTail ? tail : tail + stops.finish()
      if stoppedInTail { finish = .stop }
      if !rest.isEmpty {
        text += rest
        if finish != .cancelled {
          _ = try onToken(TokenEvent(token: -1, text: rest, logProb: 0, nodeValues: nil))
        }
      }
    }
    let end = DispatchTime.now()
    var result = GenerationResult(
      tokens: tokens, text: text, finishReason: finish, promptTokens: state.promptLengths,
      prefillSeconds: Double(prefillEnd.uptimeNanoseconds - start.uptimeNanoseconds) / 1e9,
      decodeSeconds: Double(end.uptimeNanoseconds - prefillEnd.uptimeNanoseconds) / 1e9,
      stats: decoder.stats, speculation: settings.speculation)
    result.modelSeconds = state.modelSeconds
    return result
  }
}
