import EFTCore
import EFTRPC
import EFTWire
import Foundation
import GRPCCore

/// The `eft.v1.Models` service: sessions on the config's models, one bidirectional stream per
/// session, for RemoteBackend plugins of other servers. An append runs under the server's
/// admission (as a call of its own) and through its step scheduler, so it shares the batched
/// steps of the server's own generations.
final class ModelsService: Eft_V1_Models.SimpleServiceProtocol {
  let service: RuntimeService

  init(service: RuntimeService) { self.service = service }

  func listModels(request: Eft_V1_ListModelsRequest, context: ServerContext) async throws -> Eft_V1_ListModelsResponse {
    let runtime = service.runtime
    return .with { $0.models = runtime.modelOrder.compactMap { runtime.models[$0].map(Eft_V1_ModelDescription.init) } }
  }

  func session(request: RPCAsyncSequence<Eft_V1_SessionRequest, any Error>, response: RPCWriter<Eft_V1_SessionResponse>,
               context: ServerContext) async throws {
    try await service.serving("session", protocol: "grpc") { note in
      try await service.withCallCancellation { cancellation in
        var session: SessionBox?
        var appends = 0
        defer { session?.worker.stop() }
        for try await message in request {
          switch message.op {
          case .open(let open):
            guard session == nil else { throw RPCError(code: .failedPrecondition, message: "the session is already open (one open per stream)") }
            guard let model = service.runtime.models[open.model] else {
              throw RPCError(code: .notFound, message: "no model '\(open.model)' in the server's config (models: \(service.runtime.modelOrder.joined(separator: ", ")))")
            }
            session = SessionBox(try model.makeSession())
            note.graph = "model:\(model.name)"
            try await response.write(.with { $0.model = Eft_V1_ModelDescription(model) })
          case .append(let append):
            guard let session else { throw RPCError(code: .failedPrecondition, message: "append before open: the first message opens the session") }
            try service.checkSize(message)
            appends += 1
            try await response.write(try await run(append, on: session, cancellation: cancellation))
          case .truncate(let truncate):
            guard let session else { throw RPCError(code: .failedPrecondition, message: "truncate before open: the first message opens the session") }
            try await response.write(truncated(session.value, to: truncate.length))
          case nil:
            throw RPCError(code: .invalidArgument, message: "a session message with no operation (open, append or truncate)")
          }
        }
        note.text = "\(appends) appends"
      }
    }
  }

  /// One append, admitted and on a thread, through the step scheduler; a bad argument, a backend
  /// failure or an append that could not run within its `timeout_ms` is answered (the session is
  /// unchanged), a cancellation of the stream ends it.
  private func run(_ m: Eft_V1_AppendTokens, on box: SessionBox, cancellation: CallCancellation) async throws -> Eft_V1_SessionResponse {
    let session = box.value
    if let problem = check(m, session) { return failure(problem) }
    let mode: LogitsMode = m.mode == .logitsAll ? .all : m.mode == .logitsLast ? .last : .none
    let scheduler = service.runtime.scheduler
    let tokens = m.tokens
    let deadline = m.timeoutMs == 0 ? nil : ContinuousClock.now + .milliseconds(m.timeoutMs)
    func late() -> Eft_V1_SessionResponse {
      failure(RuntimeError(.request, .deadlineExceeded, "the append did not run within its timeout_ms = \(m.timeoutMs) (its caller's deadline)"))
    }
    let result: Result<[Float], EFTCore.RuntimeError>
    do {
      result = try await cancellation.withPart(until: deadline) { part in
        try await service.admission.run(part) {
          try await box.worker.run {
            let member = scheduler.join(cancellation: part)
            defer { member.leave() }
            do {
              return .success(try scheduler.run([Append(box.value, tokens, mode)], for: member)[0])
            } catch let error as EFTCore.RuntimeError {
              return .failure(error)
            }
          }
        }
      }
    } catch let error as RPCError where error.code == .deadlineExceeded && !cancellation.isCancelled {
      return late()  // its deadline passed while it waited for a slot
    }
    switch result {
    case .success(let logits):
      let format = m.format
      return .with {
        $0.length = Int64(session.count)
        $0.logits = LogitsCodec.encode(logits, as: format)
      }
    case .failure(let error) where error.code == .cancelled:
      if !cancellation.isCancelled { return late() }  // its deadline passed while it waited for a step
      throw cancellation.error(error.message)
    case .failure(let error):
      return failure(error)
    }
  }

  /// What the host would refuse before calling a backend (a C backend need not check).
  private func check(_ m: Eft_V1_AppendTokens, _ session: Session) -> EFTCore.RuntimeError? {
    let model = session.model
    guard !m.tokens.isEmpty else { return RuntimeError(.request, .invalidArgument, "append: no tokens") }
    if let i = m.tokens.firstIndex(where: { $0 < 0 || Int($0) >= model.vocabSize }) {
      return RuntimeError(.request, .invalidArgument, "append: tokens[\(i)] = \(m.tokens[i]) is outside [0, \(model.vocabSize)) of model '\(model.name)'")
    }
    guard session.count + m.tokens.count <= model.contextLength else {
      return RuntimeError(.request, .outOfRange, "append: \(session.count) + \(m.tokens.count) tokens exceed the context length \(model.contextLength) of model '\(model.name)'")
    }
    return nil
  }

  private func truncated(_ session: Session, to length: Int64) -> Eft_V1_SessionResponse {
    guard length >= 0, length <= session.count else {
      return failure(RuntimeError(.request, .outOfRange, "truncate: length \(length) is outside [0, \(session.count)]"))
    }
    do {
      try session.truncate(to: Int(length))
    } catch let error as EFTCore.RuntimeError {
      return failure(error)
    } catch {
      return failure(RuntimeError(.backend, .internal, "\(error)"))
    }
    return .with { $0.length = Int64(session.count) }
  }

  private func failure(_ error: EFTCore.RuntimeError) -> Eft_V1_SessionResponse {
    .with {
      $0.error.code = Int32(RPCError.Code(error.code).rawValue)
      $0.error.message = error.message
    }
  }
}

/// A session and the thread its appends run on (one at a time), for the stream's life.
final class SessionBox: @unchecked Sendable {
  let value: Session
  let worker = Worker()
  init(_ value: Session) { self.value = value }
}

/// One thread that runs jobs in order: a session's appends, without a thread started per append
/// (`onThread`'s cost, ~0.1 ms, on every token of a remote model). The stack is `onThread`'s.
final class Worker: @unchecked Sendable {
  private let condition = NSCondition()
  private var jobs: [() -> Void] = []
  private var stopped = false

  init() {
    let thread = Thread { [self] in loop() }
    thread.name = "eft-session"
    thread.stackSize = 8 << 20
    thread.start()
  }

  private func loop() {
    while true {
      condition.lock()
      while jobs.isEmpty, !stopped { condition.wait() }
      if jobs.isEmpty {
        condition.unlock()
        return
      }
      let job = jobs.removeFirst()
      condition.unlock()
      job()
    }
  }

  func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
      condition.lock()
      jobs.append { continuation.resume(with: Result { try body() }) }
      condition.signal()
      condition.unlock()
    }
  }

  /// The thread ends once the jobs queued so far have run.
  func stop() {
    condition.lock()
    stopped = true
    condition.signal()
    condition.unlock()
  }
}

extension Eft_V1_ModelDescription {
  init(_ m: Model) {
    self.init()
    name = m.name
    architecture = m.architecture
    vocabSize = Int32(m.vocabSize)
    contextLength = Int32(m.contextLength)
    bosTokenID = m.bosTokenID ?? -1
    eosTokenIds = m.eosTokenIDs
    tokenizerFingerprint = m.tokenizer.taggedFingerprint
    sessionBytesPerToken = UInt64(m.sessionBytesPerToken)
    plugin = m.plugin.name
  }
}
