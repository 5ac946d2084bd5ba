import EFTCore
import EFTRPC
import EFTWire
import EFTServer
@_exported import EFTTestSupport
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix



/// The facts-world config (transformers through the CPU backend), loaded once.
let factsRuntime: Result<Runtime, any Error> = Result {
  try Runtime(configPath: repoRoot.appendingPathComponent("examples/configs/facts.pbtxt").path, pluginDirectories: [buildDirectory])
}

func facts() throws -> Runtime { try factsRuntime.get() }

/// The facts-world config loaded anew: for a test that counts live sessions, which the suites
/// running beside it would change on the shared runtime.
func factsOfItsOwn() throws -> Runtime {
  try Runtime(configPath: repoRoot.appendingPathComponent("examples/configs/facts.pbtxt").path, pluginDirectories: [buildDirectory])
}

let question = "<|user|>\nWhere does Fenyar Balutam live?\n<|assistant|>\n"

/// A scratch directory for socket files, removed at deinit. Short, because socket paths are
/// limited to 107 bytes.
final class SocketDirectory: Sendable {
  let path: String
  init() throws {
    path = "/tmp/eft-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(atPath: path) }
  var socket: String { path + "/eft.sock" }
}

/// A real server on real sockets, in this process.
final class RunningServer: Sendable {
  let server: RuntimeServer
  let bound: BoundEndpoints
  var endpoints: [ServerEndpoint] { bound.grpc }
  private let task: Task<Void, any Error>

  private init(server: RuntimeServer, bound: BoundEndpoints, task: Task<Void, any Error>) {
    self.server = server
    self.bound = bound
    self.task = task
  }

  /// Starts a server and returns once it listens on every endpoint (bound ports filled in).
  static func start(_ runtime: Runtime, _ endpoints: [ServerEndpoint], configure: (inout ServerOptions) -> Void = { _ in }) async throws -> RunningServer {
    var options = ServerOptions(endpoints: endpoints)
    configure(&options)
    let server = RuntimeServer(runtime: runtime, options: options)
    let waiter = Once<BoundEndpoints>()
    var task: Task<Void, any Error>?
    let bound = try await withCheckedThrowingContinuation { continuation in
      waiter.set(continuation)
      task = Task {
        do {
          try await server.run { waiter.resume(.success($0)) }
        } catch {
          waiter.resume(.failure(error))
          throw error
        }
      }
    }
    return RunningServer(server: server, bound: bound, task: task!)
  }

  /// Shuts down and waits for `run` to return.
  func stop() async throws {
    server.shutdown()
    try await task.value
  }

  var unixEndpoint: ServerEndpoint { endpoints.first { if case .unix = $0 { return true } else { return false } }! }
  var tcpEndpoint: ServerEndpoint { endpoints.first { if case .tcp = $0 { return true } else { return false } }! }
}

/// A continuation resumed at most once, from any thread.
final class Once<T: Sendable>: Sendable {
  private let continuation = Locked<CheckedContinuation<T, any Error>?>(nil)
  func set(_ c: CheckedContinuation<T, any Error>) { continuation.withLock { $0 = c } }
  func resume(_ result: Result<T, any Error>) {
    continuation.withLock { c in
      c?.resume(with: result)
      c = nil
    }
  }
}

/// A Runtime client on a fresh connection to `endpoint`.
func withClient<R: Sendable>(_ endpoint: ServerEndpoint, _ body: (RuntimeClient) async throws -> R) async throws -> R {
  try await connect(endpoint) { try await body(RuntimeClient(wrapping: $0)) }
}

/// A streamed generation as the client saw it.
struct Streamed: Sendable {
  var start: Eft_V1_Start?
  var tokens: [Eft_V1_Token] = []
  var finish: Eft_V1_Finish?
  var text: String { tokens.map(\.text).joined() }
  var ids: [Int32] { tokens.map(\.id).filter { $0 >= 0 } }
}

func generate(_ client: RuntimeClient, _ request: Eft_V1_GenerateRequest, options: CallOptions = .defaults) async throws -> Streamed {
  try await client.generate(request, options: options) { response in
    var s = Streamed()
    for try await message in response.messages {
      switch message.event {
      case .start(let start): s.start = start
      case .token(let token): s.tokens.append(token)
      case .finish(let finish): s.finish = finish
      case nil: break
      }
    }
    return s
  }
}

/// The RPCError a call fails with.
func rpcError(_ body: () async throws -> Void) async -> RPCError? {
  do {
    try await body()
    return nil
  } catch let error as RPCError {
    return error
  } catch {
    return RPCError(code: .unknown, message: "not an RPCError: \(error)")
  }
}

/// The status code a call fails with (nil if it succeeds).
func rpcCode(_ body: () async throws -> Void) async -> RPCError.Code? {
  await rpcError(body)?.code
}

/// Polls `condition` for up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async throws -> Bool {
  let deadline = Date().addingTimeInterval(seconds)
  while Date() < deadline {
    if condition() { return true }
    try await Task.sleep(for: .milliseconds(10))
  }
  return condition()
}

/// Calls `body` with the socket address of the Unix socket at `path`.
private func withUnixAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
  var address = sockaddr_un()
  address.sun_family = sa_family_t(AF_UNIX)
  withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
  return withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
  }
}

/// A connected Unix socket (the caller closes it).
private func connectUnix(_ path: String) throws -> Int32 {
  let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
  let status = withUnixAddress(path) { connect(fd, $0, $1) }
  guard status == 0 else {
    close(fd)
    throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
  }
  return fd
}

/// Writes `bytes` to the server at `path` and closes the connection.
func sendRaw(_ bytes: [UInt8], to path: String) throws {
  let fd = try connectUnix(path)
  defer { close(fd) }
  _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
}

/// A socket file at `path` that nobody listens on, as a killed server leaves behind.
func makeStaleSocket(_ path: String) throws {
  let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
  defer { close(fd) }
  let status = withUnixAddress(path) { bind(fd, $0, $1) }
  guard status == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
}
