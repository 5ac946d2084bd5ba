import EFTPluginKit
import EFTProto
import EFTRPC
import EFTWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix

// The remote backend: a model that lives in another eft-server, reached through its
// `eft.v1.Models` service. The model holds one gRPC connection; each session is one `Session`
// stream, and the remote session dies with it. The ABI is synchronous: a call sends its
// message(s) and waits on the calling (host) thread for the answers; a batched append sends every
// session's message before waiting for any, so the remote server can batch them.

@_cdecl("eft_backend_entry")
public func eftBackendEntry() -> UnsafePointer<eft_backend> {
  PluginExport.table(name: "remote", version: "1.0.0", open: { path, options in try RemoteModel(path: path, options: options) })
}

final class RemoteModel: BackendModel, @unchecked Sendable {
  let description: ModelDescription
  /// The model's name on the remote server, and where that is (for messages).
  let remoteName: String
  let endpoint: ServerEndpoint
  let timeout: Duration
  let format: Eft_V1_LogitsFormat
  let client: GRPCClient<HTTP2ClientTransport.Posix>
  /// Where the model's tasks run (its connection, its sessions' streams).
  let executor = ThreadExecutor(name: "eft-remote")
  private let connections: Task<Void, Never>

  init(path: String, options bytes: [UInt8]) throws {
    let options: Eft_V1_RemoteOptions
    do {
      options = try Eft_V1_RemoteOptions(serializedBytes: bytes)
    } catch {
      throw BackendError(EFT_INVALID_ARGUMENT, "remote options: not an eft.v1.RemoteOptions message (\(error))")
    }
    guard !options.model.isEmpty else {
      throw BackendError(EFT_INVALID_ARGUMENT, "remote options: `model` is empty; name the model in the remote server's config")
    }
    guard options.timeoutSeconds >= 0, options.timeoutSeconds.isFinite else {
      throw BackendError(EFT_INVALID_ARGUMENT, "remote options: timeout_seconds = \(options.timeoutSeconds) must be a positive number of seconds (0: 30)")
    }
    do {
      endpoint = try ServerEndpoint(parsing: path)
    } catch {
      throw BackendError(EFT_INVALID_ARGUMENT, "path \(error) (a remote model's path is the server's endpoint)")
    }
    remoteName = options.model
    timeout = .milliseconds(Int64((options.timeoutSeconds == 0 ? 30 : options.timeoutSeconds) * 1000))
    format = options.f16Logits ? .logitsF16 : .logitsF32
    let security: ClientSecurity
    do {
      let token = options.tokenFile.isEmpty ? nil : try readToken(file: options.tokenFile)
      security = try ClientSecurity(trustRootsFile: options.tlsCaFile.isEmpty ? nil : options.tlsCaFile, token: token)
    } catch {
      throw BackendError(EFT_INVALID_ARGUMENT, "remote options: \(error)")
    }
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    do {
      client = try makeClient(endpoint, security: security)
    } catch {
      throw BackendError(EFT_INVALID_ARGUMENT, "\(endpoint): \(error)")
    }
    self.client = client
    connections = Task(executorPreference: executor) { try? await client.runConnections() }
    let place = "remote model '\(options.model)' at \(endpoint)"
    let list: Eft_V1_ListModelsResponse
    do {
      list = try Blocking.wait(timeout, what: place, on: executor) { try await ModelsClient(wrapping: client).listModels(.init()) }
    } catch {
      Self.shutDown(client, connections, executor)
      throw error
    }
    guard let m = list.models.first(where: { $0.name == options.model }) else {
      Self.shutDown(client, connections, executor)
      throw BackendError(EFT_NOT_FOUND, "\(place): the server has no such model (models: \(list.models.map(\.name).joined(separator: ", ")))")
    }
    // Sessions hold their memory on the remote server: none here.
    description = ModelDescription(vocabSize: Int(m.vocabSize), contextLength: Int(m.contextLength), bosTokenID: m.bosTokenID,
                                   eosTokenIDs: m.eosTokenIds, architecture: m.architecture,
                                   tokenizerFingerprint: m.tokenizerFingerprint, sessionBytesPerToken: 0, isRemote: true)
  }

  deinit { Self.shutDown(client, connections, executor) }

  /// Closes the connection; the executor's thread ends once the connection's task has (after
  /// the last tasks that could run on it).
  static func shutDown(_ client: GRPCClient<HTTP2ClientTransport.Posix>, _ connections: Task<Void, Never>, _ executor: ThreadExecutor) {
    client.beginGracefulShutdown()
    connections.cancel()
    Task(executorPreference: executor) {
      await connections.value
      executor.stop()
    }
  }

  var place: String { "remote model '\(remoteName)' at \(endpoint)" }

  func makeSession() throws -> any BackendSession { try RemoteSession(model: self) }

  /// Every session's message goes out before any answer is awaited; all or nothing: when one
  /// fails, the others are truncated back.
  func append(batch: [BackendAppend]) throws {
    let sessions = batch.compactMap { $0.session as? RemoteSession }
    guard sessions.count == batch.count else { throw BackendError(EFT_INTERNAL, "a batch holds a session of another backend") }
    let lengths = sessions.map(\.count)
    var due: [ContinuousClock.Instant?] = []
    var failure: BackendError?
    for (i, (s, a)) in zip(sessions, batch).enumerated() {
      do {
        let by = try s.due()
        s.send(request(Array(a.tokens), a.mode, by: by))
        due.append(by)
      } catch {
        failure = failure ?? BackendError(error.status, "append \(i): \(error.message)")
        due.append(nil)
      }
    }
    for (i, (s, a)) in zip(sessions, batch).enumerated() {
      guard let by = due[i] else { continue }
      do {
        try s.accept(try s.receive(by: by), tokens: a.tokens.count, mode: a.mode, logits: a.logits)
      } catch {
        failure = failure ?? BackendError(error.status, "append \(i): \(error.message)")
      }
    }
    if let failure {
      for (i, s) in sessions.enumerated() where s.count != lengths[i] { try? s.truncate(to: lengths[i]) }
      throw failure
    }
  }

  /// An append that the remote server gives up on (DEADLINE_EXCEEDED) if it has not run `by`.
  func request(_ tokens: [Int32], _ mode: eft_logits_mode, by: ContinuousClock.Instant) -> Eft_V1_SessionRequest {
    let (seconds, attoseconds) = ContinuousClock.now.duration(to: by).components
    let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
    return .with {
      $0.append.tokens = tokens
      $0.append.mode = mode == EFT_LOGITS_ALL ? .logitsAll : mode == EFT_LOGITS_LAST ? .logitsLast : .logitsNone
      $0.append.format = format
      $0.append.timeoutMs = UInt32(clamping: max(1, milliseconds))
    }
  }
}

/// One remote session: a `Session` stream. The calling (host) thread sends a request into the
/// stream and waits for the answer that the stream's task delivers to the session's mailbox: one
/// thread hop each way.
final class RemoteSession: BackendSession, @unchecked Sendable {
  let model: RemoteModel
  private let requests: AsyncStream<Eft_V1_SessionRequest>.Continuation
  private let answers = Mailbox()
  private var call: Task<Void, Never>?
  private(set) var count = 0
  /// When the request this session serves must end (`session_set_deadline`), if it has a deadline.
  private var deadline: ContinuousClock.Instant?
  /// Set once the stream failed or an answer was late: every later call fails with it.
  private var lost: BackendError?

  init(model: RemoteModel) throws {
    self.model = model
    let (outgoing, requests) = AsyncStream.makeStream(of: Eft_V1_SessionRequest.self)
    self.requests = requests
    let client = ModelsClient(wrapping: model.client)
    let answers = self.answers
    let place = model.place
    call = Task(executorPreference: model.executor) {
      do {
        try await client.session(requestProducer: { writer in
          for await request in outgoing { try await writer.write(request) }
        }, onResponse: { response in
          for try await message in response.messages { answers.deliver(message) }
        })
        answers.close(BackendError(EFT_UNAVAILABLE, "\(place): the server ended the session"))
      } catch {
        answers.close(Blocking.error(error, what: place))
      }
    }
    send(.with { $0.open.model = model.remoteName })
    guard try receive(by: try due()).hasModel else {
      throw BackendError(EFT_INTERNAL, "\(model.place): the server did not answer the session's open")
    }
  }

  deinit { requests.finish() }  // the stream ends, and the remote session with it

  func setDeadline(_ deadline: ContinuousClock.Instant?) { self.deadline = deadline }

  /// When the next call's answer is due: `RemoteOptions.timeout_seconds` from now, or the
  /// request's deadline if that is sooner. A deadline already past fails the call before it is sent.
  func due() throws(BackendError) -> ContinuousClock.Instant {
    let now = ContinuousClock.now
    guard let deadline, deadline < now + model.timeout else { return now + model.timeout }
    guard deadline > now else { throw BackendError(EFT_DEADLINE_EXCEEDED, "\(model.place): DEADLINE_EXCEEDED: the request's deadline passed") }
    return deadline
  }

  func send(_ request: Eft_V1_SessionRequest) {
    if lost == nil { requests.yield(request) }
  }

  /// The answer to the oldest request not yet answered. An error answer is a failure that leaves
  /// the session as it was; a failed stream, or no answer by `deadline`, loses the session.
  func receive(by due: ContinuousClock.Instant) throws(BackendError) -> Eft_V1_SessionResponse {
    if let lost { throw lost }
    let response: Eft_V1_SessionResponse
    switch answers.take(by: due) {
    case .answer(let r): response = r
    case .closed(let error): throw lose(error)
    case .late:
      if let deadline, deadline <= ContinuousClock.now {
        throw lose(BackendError(EFT_DEADLINE_EXCEEDED, "\(model.place): DEADLINE_EXCEEDED: the request's deadline passed before the remote answered"))
      }
      throw lose(BackendError(EFT_DEADLINE_EXCEEDED, "\(model.place): DEADLINE_EXCEEDED: no answer within \(model.timeout.components.seconds) s (RemoteOptions.timeout_seconds)"))
    }
    if response.hasError {
      throw BackendError(Blocking.status(Status.Code(rawValue: Int(response.error.code)).flatMap(RPCError.Code.init)), "\(model.place): \(response.error.message)")
    }
    return response
  }

  /// The session is gone: the stream is cancelled, so that the remote server stops its work on
  /// it at once and frees its session.
  private func lose(_ error: BackendError) -> BackendError {
    lost = error
    requests.finish()
    call?.cancel()
    return error
  }

  /// Takes an append's answer: checks the length and writes the logits.
  func accept(_ response: Eft_V1_SessionResponse, tokens: Int, mode: eft_logits_mode, logits: UnsafeMutablePointer<Float>?) throws(BackendError) {
    guard response.length == count + tokens else {
      throw lose(BackendError(EFT_DATA_LOSS, "\(model.place): the session holds \(response.length) tokens after an append of \(tokens) to \(count)"))
    }
    count += tokens
    let rows = mode == EFT_LOGITS_ALL ? tokens : mode == EFT_LOGITS_LAST ? 1 : 0
    let values = rows * model.description.vocabSize
    if values > 0, let logits {
      guard LogitsCodec.decode(response.logits, as: model.format, count: values, into: logits) else {
        throw lose(BackendError(EFT_DATA_LOSS, "\(model.place): an append's answer holds \(response.logits.count) bytes of logits, not \(values) values"))
      }
    }
  }

  func append(_ tokens: UnsafeBufferPointer<Int32>, mode: eft_logits_mode, logits: UnsafeMutablePointer<Float>?) throws {
    let by = try due()
    send(model.request(Array(tokens), mode, by: by))
    try accept(try receive(by: by), tokens: tokens.count, mode: mode, logits: logits)
  }

  func truncate(to n: Int) throws {
    // Not bound by the request's deadline: a truncate is how a failed batch rolls back, and the
    // remote answers it at once (no slot, no step).
    send(.with { $0.truncate.length = Int64(n) })
    let response = try receive(by: ContinuousClock.now + model.timeout)
    guard response.length == n else {
      throw lose(BackendError(EFT_DATA_LOSS, "\(model.place): the session holds \(response.length) tokens after a truncate to \(n)"))
    }
    count = n
  }
}

/// Answers in arrival order, from the stream's task to the waiting host thread.
final class Mailbox: @unchecked Sendable {
  enum Taken { case answer(Eft_V1_SessionResponse), closed(BackendError), late }
  private let condition = NSCondition()
  private var queue: [Eft_V1_SessionResponse] = []
  private var head = 0
  private var closed: BackendError?

  func deliver(_ answer: Eft_V1_SessionResponse) {
    condition.lock()
    queue.append(answer)
    condition.signal()
    condition.unlock()
  }

  func close(_ error: BackendError) {
    condition.lock()
    if closed == nil { closed = error }
    condition.broadcast()
    condition.unlock()
  }

  func take(by deadline: ContinuousClock.Instant) -> Taken {
    condition.lock()
    defer { condition.unlock() }
    while head == queue.count {
      if let closed { return .closed(closed) }
      let left = ContinuousClock.now.duration(to: deadline)
      guard left > .zero else { return .late }
      let (seconds, attoseconds) = left.components
      _ = condition.wait(until: Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) / 1e18))
    }
    let answer = queue[head]
    head += 1
    if head > 64, head * 2 > queue.count {  // drop what was taken
      queue.removeFirst(head)
      head = 0
    }
    return .answer(answer)
  }
}

/// Waiting on a host thread for async work (opening a model), and the statuses of what goes wrong.
enum Blocking {
  /// Runs `body` on `executor` and waits for it on the calling thread; past `timeout` it gives up
  /// with a DEADLINE_EXCEEDED error naming `what`.
  static func wait<T: Sendable>(_ timeout: Duration, what: String, on executor: ThreadExecutor,
                                _ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let outcome = Outcome<T>()
    let task = Task(executorPreference: executor) {
      do {
        outcome.set(.success(try await body()))
      } catch {
        outcome.set(.failure(error))
      }
      done.signal()
    }
    let (seconds, attoseconds) = timeout.components
    let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
    guard done.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else {
      task.cancel()
      throw BackendError(EFT_DEADLINE_EXCEEDED, "\(what): DEADLINE_EXCEEDED: no answer within \(seconds) s (RemoteOptions.timeout_seconds)")
    }
    switch outcome.value! {
    case .success(let value): return value
    case .failure(let error as BackendError): throw error
    case .failure(let error): throw Self.error(error, what: what)
    }
  }

  /// A transport or call failure as a backend error naming the remote model and its status.
  static func error(_ error: any Error, what: String) -> BackendError {
    guard let rpc = error as? RPCError else { return BackendError(EFT_INTERNAL, "\(what): \(error)") }
    return BackendError(status(rpc.code), "\(what): \(statusName(rpc.code)): \(rpc.message)")
  }

  /// The ABI status of a gRPC code (those the ABI has no word for are INTERNAL; the message
  /// names them).
  static func status(_ code: RPCError.Code?) -> eft_status {
    switch code {
    case .invalidArgument?: return EFT_INVALID_ARGUMENT
    case .notFound?: return EFT_NOT_FOUND
    case .dataLoss?: return EFT_DATA_LOSS
    case .outOfRange?: return EFT_OUT_OF_RANGE
    case .resourceExhausted?: return EFT_RESOURCE_EXHAUSTED
    case .unimplemented?: return EFT_UNIMPLEMENTED
    case .unavailable?: return EFT_UNAVAILABLE
    case .deadlineExceeded?: return EFT_DEADLINE_EXCEEDED
    default: return EFT_INTERNAL
    }
  }
}

/// A result handed from a task to the waiting thread.
final class Outcome<T>: @unchecked Sendable {
  private let lock = NSLock()
  private var result: Result<T, any Error>?
  func set(_ r: Result<T, any Error>) { lock.withLock { result = r } }
  var value: Result<T, any Error>? { lock.withLock { result } }
}

/// One thread that runs a remote model's tasks. The host calls the plugin synchronously and its
/// thread waits until the answer comes; the tasks that bring it must not need a thread the host
/// may be holding: a host calling from Swift async code blocks a thread of the cooperative pool
/// (two, on a 2-core machine), and with those all blocked, tasks queued there would never run.
/// Child tasks of these tasks inherit the preference.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
  private let condition = NSCondition()
  private var jobs: [UnownedJob] = []
  private var stopped = false

  init(name: String) {
    let thread = Thread { [self] in loop() }
    thread.name = name
    thread.start()
  }

  func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    condition.lock()
    jobs.append(job)
    condition.signal()
    condition.unlock()
  }

  /// The thread ends once the jobs queued so far have run.
  func stop() {
    condition.lock()
    stopped = true
    condition.signal()
    condition.unlock()
  }

  private func loop() {
    while true {
      condition.lock()
      while jobs.isEmpty, !stopped { condition.wait() }
      if jobs.isEmpty {
        condition.unlock()
        return
      }
      let batch = jobs
      jobs.removeAll(keepingCapacity: true)
      condition.unlock()
      for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
    }
  }
}
