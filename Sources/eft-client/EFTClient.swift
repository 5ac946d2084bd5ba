import ArgumentParser
import EFTCommandLine
import EFTRPC
import EFTWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix

@main
struct EFTClient: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eft-client",
    abstract: "Talk to an eft-server: generate, score, tokenize, list graphs, check health.",
    discussion: "Each command prints what the matching `eft` command prints for the same arguments.",
    subcommands: [Generate.self, Score.self, Tokenize.self, Detokenize.self, Graphs.self, Health.self])
}

/// Where the server is and how long a call may take.
struct ConnectionOptions: ParsableArguments {
  @Option(help: ArgumentHelp("The server: unix:PATH, tcp:HOST:PORT or tcp:PORT (loopback).", valueName: "endpoint"))
  var connect = "tcp:127.0.0.1:50051"

  @Option(help: "A deadline for the call, in seconds (the server stops working on it then).")
  var timeout: Double?

  @Option(help: ArgumentHelp("Connect over TLS, trusting the certificates (PEM) in this file (TCP only).", valueName: "file"))
  var tlsCa: String?

  @Option(help: ArgumentHelp("Send the bearer token in this file with every call (default: the EFT_TOKEN environment variable, if set).", valueName: "file"))
  var tokenFile: String?

  func validate() throws {
    if let timeout { guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") } }
  }

  var callOptions: CallOptions {
    var options = CallOptions.defaults
    if let timeout { options.timeout = .milliseconds(Int64(timeout * 1000)) }
    return options
  }

  /// Runs `body` with a Runtime client, turning a failed call into one line on stderr and exit
  /// status 1.
  func withClient<R: Sendable>(_ body: (RuntimeClient) async throws -> R) async throws -> R {
    try await withConnection { try await body(RuntimeClient(wrapping: $0)) }
  }

  func withHealthClient<R: Sendable>(_ body: (HealthClient) async throws -> R) async throws -> R {
    try await withConnection { try await body(HealthClient(wrapping: $0)) }
  }

  private func withConnection<R: Sendable>(_ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
    let endpoint: ServerEndpoint
    do {
      endpoint = try ServerEndpoint(parsing: connect)
    } catch {
      throw ValidationError("--connect \(error)")
    }
    let security: ClientSecurity
    do {
      let token = try tokenFile.map { try readToken(file: $0) } ?? ProcessInfo.processInfo.environment["EFT_TOKEN"]
      security = try ClientSecurity(trustRootsFile: tlsCa, token: token)
    } catch {
      throw ValidationError("\(error)")
    }
    do {
      return try await EFTWire.connect(endpoint, security: security, body)
    } catch let error as RPCError {
      FileHandle.standardError.write(Data("eft-client: error: \(error.message) (\(statusName(error.code)))\n".utf8))
      throw ExitCode(1)
    }
  }
}

func write(_ text: String, to handle: FileHandle = .standardOutput) {
  handle.write(Data(text.utf8))
}
