import ArgumentParser
import EFTCommandLine
import EFTCore
import EFTServer
import Foundation
#if canImport(Glibc)
import Glibc
#endif

@main
struct EFTServerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eft-server",
    abstract: "Serve a config's graphs over gRPC (eft.v1.Runtime and grpc.health.v1.Health) on TCP and Unix sockets.",
    subcommands: [Serve.self, Bench.self], defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Serve a config's graphs (the default command: `eft-server CONFIG --listen …`).",
    discussion: """
      Runs until SIGINT or SIGTERM, then stops accepting calls, lets running ones finish for \
      --shutdown-grace seconds, cancels the rest and removes its Unix socket files.
      """)

  @OptionGroup var configOptions: ConfigOptions

  @Option(help: ArgumentHelp("Where to listen (repeatable): tcp:PORT (loopback), tcp:HOST:PORT, tcp:[IPV6]:PORT or unix:PATH (created owner-only). Default: tcp:127.0.0.1:50051.", valueName: "endpoint"))
  var listen: [String] = []

  @Option(help: "The largest request message in bytes; larger ones get RESOURCE_EXHAUSTED (over 4× this the transport resets the stream unread).")
  var maxMessageBytes = 4 << 20

  @Option(help: "The longest text a request may give the tokenizer (prompt, continuation, Tokenize text), in bytes; longer ones get RESOURCE_EXHAUSTED.")
  var maxPromptBytes = 1 << 20

  @Option(help: "The largest max_tokens a request may ask for (RESOURCE_EXHAUSTED above it); graph defaults above it are capped.")
  var maxTokensLimit = 4096

  @Option(help: "Calls running at once (Generate, Score, Tokenize, Detokenize); the next ones wait in a queue.")
  var maxConcurrent = 32

  @Option(help: "Calls that may wait for a slot (first come, first served); more get RESOURCE_EXHAUSTED.")
  var maxQueued = 64

  @Option(help: "Calls one connection may have open at once (HTTP/2 max concurrent streams); its further calls wait in the client.")
  var maxStreamsPerConnection = 100

  @Option(help: "MiB of KV cache and logits the running calls may hold, by estimates made before each starts; calls that do not fit wait. Default: half the machine's memory.")
  var memoryBudget: Int?

  @Option(help: "Tokens one decoding step may append over all running calls: their decode and verification rows first, then chunks of waiting prompts.")
  var maxBatchTokens = 512

  @Option(help: "Seconds running calls may go on after SIGINT/SIGTERM before they are cancelled.")
  var shutdownGrace = 10.0

  @Option(help: ArgumentHelp("TLS on the TCP listeners: the server's certificate chain (PEM). Needs --tls-key.", valueName: "file"))
  var tlsCert: String?

  @Option(help: ArgumentHelp("The private key (PEM) of --tls-cert.", valueName: "file"))
  var tlsKey: String?

  @Option(help: ArgumentHelp("A file holding a bearer token (16-4096 printable ASCII bytes): every call must then send `authorization: Bearer TOKEN`, else UNAUTHENTICATED.", valueName: "file"))
  var tokenFile: String?

  @Option(help: ArgumentHelp("Serve the OpenAI-compatible HTTP API here too (repeatable; the --listen syntax): POST /v1/completions, /v1/chat/completions, GET /v1/models, /metrics. Off by default.", valueName: "endpoint"))
  var http: [String] = []

  @Option(help: ArgumentHelp("Serve the Prometheus metrics (GET /metrics) alone here (repeatable; the --listen syntax).", valueName: "endpoint"))
  var metrics: [String] = []

  @Flag(help: "Log a line per call to stderr (graph, tokens, finish or status, time).")
  var logRequests = false

  func validate() throws {
    guard maxMessageBytes > 0 else { throw ValidationError("--max-message-bytes must be positive") }
    guard maxPromptBytes > 0 else { throw ValidationError("--max-prompt-bytes must be positive") }
    guard maxTokensLimit >= 0 else { throw ValidationError("--max-tokens-limit must not be negative") }
    guard maxConcurrent > 0 else { throw ValidationError("--max-concurrent must be positive") }
    guard maxQueued >= 0 else { throw ValidationError("--max-queued must not be negative") }
    if let memoryBudget { guard memoryBudget > 0 else { throw ValidationError("--memory-budget must be a positive number of MiB") } }
    guard maxStreamsPerConnection > 0 else { throw ValidationError("--max-streams-per-connection must be positive") }
    guard maxBatchTokens > 0 else { throw ValidationError("--max-batch-tokens must be positive") }
    guard shutdownGrace >= 0, shutdownGrace.isFinite else { throw ValidationError("--shutdown-grace must be a number of seconds ≥ 0") }
    guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
  }

  func run() async throws {
    tuneMalloc()
    var options: ServerOptions
    do {
      options = ServerOptions(endpoints: try (listen.isEmpty ? ["tcp:127.0.0.1:50051"] : listen).map { try ServerEndpoint(parsing: $0) })
    } catch {
      throw ValidationError("--listen \(error)")
    }
    do {
      options.http = try http.map { try ServerEndpoint(parsing: $0) }
      options.metrics = try metrics.map { try ServerEndpoint(parsing: $0) }
    } catch {
      throw ValidationError("--http/--metrics \(error)")
    }
    options.limits.maxMessageBytes = maxMessageBytes
    options.limits.maxPromptBytes = maxPromptBytes
    options.limits.maxTokens = maxTokensLimit
    options.limits.maxConcurrent = maxConcurrent
    options.limits.maxQueued = maxQueued
    options.limits.maxStreamsPerConnection = maxStreamsPerConnection
    let budgetMiB = memoryBudget ?? Int((ProcessInfo.processInfo.physicalMemory / 2) >> 20)
    options.limits.memoryBudget = budgetMiB.multipliedReportingOverflow(by: 1 << 20).overflow ? .max : budgetMiB << 20
    options.shutdownGrace = .milliseconds(Int64(shutdownGrace * 1000))
    if logRequests { options.requestLog = { log($0) } }
    do {
      if let tlsCert, let tlsKey { options.tls = try ServerTLS(certificateChainFile: tlsCert, privateKeyFile: tlsKey) }
      if let tokenFile { options.token = try readToken(file: tokenFile) }
    } catch {
      throw ValidationError("\(error)")
    }
    for endpoint in options.endpoints + options.http + options.metrics {
      guard case .tcp(let host, _) = endpoint, !isLoopback(host) else { continue }
      let missing = [options.tls == nil ? "TLS (--tls-cert, --tls-key)" : nil, options.token == nil ? "a token (--token-file)" : nil].compactMap { $0 }
      if !missing.isEmpty { log("warning: \(endpoint) is reachable from other hosts, without \(missing.joined(separator: " or "))") }
    }

    let runtime = try loadRuntime(configOptions, maxBatchTokens: maxBatchTokens)
    let configPath = configOptions.config
    let server = RuntimeServer(runtime: runtime, options: options)

    // SIGINT and SIGTERM begin a graceful shutdown (a second one does not hurry it).
    let signals = DispatchQueue(label: "eft-server.signals")
    let sources = [SIGINT, SIGTERM].map { number in
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: signals)
      source.setEventHandler {
        log("\(number == SIGINT ? "SIGINT" : "SIGTERM"): shutting down (running calls have \(shutdownGrace) s)")
        server.shutdown()
      }
      source.resume()
      return source
    }
    defer { sources.forEach { $0.cancel() } }

    do {
      try await server.run { bound in
        let graphs = runtime.graphs.map(\.name).joined(separator: ", ")
        log("serving \(runtime.graphs.count) graph\(runtime.graphs.count == 1 ? "" : "s") (\(graphs)) from \(configPath)")
        log("memory budget \(budgetMiB) MiB for the running calls' KV caches and logits (--memory-budget)")
        for endpoint in bound.grpc { log("listening on \(endpoint)") }
        for endpoint in bound.http { log("HTTP (OpenAI API, /metrics) on \(endpoint)") }
        for endpoint in bound.metrics { log("metrics on \(endpoint)") }
      }
    } catch {
      log("error: \(error)")
      throw ExitCode(1)
    }
    log("stopped")
  }
}

/// Whether `host` (an address or a name) is this machine's loopback.
func isLoopback(_ host: String) -> Bool {
  host == "localhost" || host == "::1" || host.hasPrefix("127.")
}

/// The config's runtime, or its error on stderr and exit status 1.
func loadRuntime(_ options: ConfigOptions, maxBatchTokens: Int) throws -> Runtime {
  do {
    return try Runtime(configPath: options.config, pluginDirectories: options.pluginDirs, maxBatchTokens: maxBatchTokens)
  } catch let error as RuntimeError {
    log("error: \(error.message)")
    throw ExitCode(1)
  }
}

/// Keeps the server's memory from creeping under load, through glibc's malloc settings:
/// - large buffers (request messages up to --max-message-bytes, prompts' logits) stay mmapped and
///   go back to the system when freed: glibc's default raises its mmap threshold after each such
///   free, so later large buffers came from the heap and stayed resident;
/// - at most one arena per core: each call runs on a thread of its own, and glibc's default (8
///   arenas per core) spread allocations over many arenas that each kept their own free memory.
/// Measured by scripts/soak.py (32 clients, release build): RSS grew 161 → 191 MiB in 5 minutes
/// with neither, 95 → 108 MiB with the first, 80 → 81 MiB in 2.5 minutes with both.
func tuneMalloc() {
  #if canImport(Glibc)
  // malloc.h is not in Swift's Glibc module: mallopt by symbol, its parameters from malloc.h.
  typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
  let M_MMAP_THRESHOLD: Int32 = -3, M_ARENA_MAX: Int32 = -8
  if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    _ = mallopt(M_MMAP_THRESHOLD, 1 << 20)
    _ = mallopt(M_ARENA_MAX, Int32(max(2, ProcessInfo.processInfo.activeProcessorCount)))
  }
  #endif
}

/// A line on stderr, prefixed with the program's name. Tests and scripts read "listening on".
func log(_ text: String) {
  FileHandle.standardError.write(Data("eft-server: \(text)\n".utf8))
}
