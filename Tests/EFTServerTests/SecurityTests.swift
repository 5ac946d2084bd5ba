import EFTCore
import EFTRPC
@testable import EFTServer
import Foundation
import GRPCCore
import Testing

/// TLS on TCP and the bearer token, with the test certificates of Tests/Fixtures/TLS
/// (scripts/make-test-certificates.sh).
@Suite struct SecurityTests {
  let tls = repoRoot.appendingPathComponent("Tests/Fixtures/TLS").path
  let token = "test-token-0123456789abcdef"

  @Test func tlsAndTokenOnEveryCall() async throws {
    let dir = try SocketDirectory()
    let serverTLS = try ServerTLS(certificateChainFile: "\(tls)/server.pem", privateKeyFile: "\(tls)/server.key")
    let running = try await RunningServer.start(try facts(), [.unix(path: dir.socket), .tcp(host: "127.0.0.1", port: 0)]) {
      $0.tls = serverTLS
      $0.token = token
    }
    let trusted = try ClientSecurity(trustRootsFile: "\(tls)/ca.pem", token: token)

    // The right CA and token: every service answers, over TLS on TCP and plaintext on the socket.
    for endpoint in running.endpoints {
      let text = try await connect(endpoint, security: trusted) { connection in
        let health = try await HealthClient(wrapping: connection).check(.with { $0.service = "" })
        #expect(health.status == .serving)
        let request = Eft_V1_GenerateRequest.with { $0.prompt = question }
        return try await generate(RuntimeClient(wrapping: connection), request).text
      }
      #expect(text == "The answer is Frostmoor.", "\(endpoint)")
    }

    // No token, a wrong one, one that is a prefix of the right one: UNAUTHENTICATED, for the
    // health service too.
    for wrong in [nil, "test-token-0123456789abcdeX", "test-token-0123456789abcde", token + "0"] {
      let security = try ClientSecurity(trustRootsFile: "\(tls)/ca.pem", token: wrong)
      for endpoint in running.endpoints {
        let error = await rpcError {
          _ = try await connect(endpoint, security: security) { try await RuntimeClient(wrapping: $0).listGraphs(.init()) }
        }
        #expect(error?.code == .unauthenticated, "\(wrong ?? "no token") on \(endpoint)")
        #expect(error?.message.contains(token) == false, "the error must not echo the server's token")
        let health = await rpcCode {
          _ = try await connect(endpoint, security: security) { try await HealthClient(wrapping: $0).check(.init()) }
        }
        #expect(health == .unauthenticated)
      }
    }

    // A client that trusts another CA, or talks plaintext to the TLS port, gets no answer.
    var options = CallOptions.defaults
    options.timeout = .seconds(5)
    for security in [try ClientSecurity(trustRootsFile: "\(tls)/other-ca.pem", token: token), try ClientSecurity(token: token)] {
      let code = await rpcCode {
        _ = try await connect(running.tcpEndpoint, security: security) {
          try await RuntimeClient(wrapping: $0).listGraphs(.init(), options: options)
        }
      }
      #expect(code == .unavailable || code == .deadlineExceeded)
    }
    try await running.stop()
  }

  @Test func badFilesAreErrorsThatNameThem() throws {
    func message(_ body: () throws -> Void) -> String {
      do { try body(); return "" } catch { return "\(error)" }
    }
    #expect(message { _ = try ServerTLS(certificateChainFile: "/nonexistent.pem", privateKeyFile: "\(tls)/server.key") }
      == "/nonexistent.pem: cannot read the certificate chain file")
    #expect(message { _ = try ServerTLS(certificateChainFile: "\(tls)/server.key", privateKeyFile: "\(tls)/server.key") }
      .hasPrefix("\(tls)/server.key: not a PEM certificate chain"))
    #expect(message { _ = try ServerTLS(certificateChainFile: "\(tls)/server.pem", privateKeyFile: "\(tls)/server.pem") }
      .hasPrefix("\(tls)/server.pem: not a PEM private key"))
    #expect(message { _ = try ServerTLS(certificateChainFile: "\(tls)/ca.pem", privateKeyFile: "\(tls)/server.key") }
      .contains("the key does not fit the certificate"))
    #expect(message { _ = try ClientSecurity(trustRootsFile: "\(tls)/server.key") }.hasPrefix("\(tls)/server.key: not a PEM certificate"))

    let dir = try SocketDirectory()
    let file = dir.path + "/token"
    for (text, error) in [("short\n", "a token must be 16 to 4096 bytes (this one is 5)"),
                          ("has a space 0123456789", "a token may hold only printable ASCII characters without spaces"),
                          ("jeton-très-secret-0123", "a token may hold only printable ASCII characters without spaces")] {
      try text.write(toFile: file, atomically: true, encoding: .utf8)
      #expect(message { _ = try readToken(file: file) } == "\(file): \(error)")
    }
    try "  \(token)\n".write(toFile: file, atomically: true, encoding: .utf8)
    #expect(try readToken(file: file) == token)
  }

  @Test func constantTimeComparison() {
    #expect(constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
    #expect(!constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
    #expect(!constantTimeEqual(Array("abc".utf8), Array("ab".utf8)))
    #expect(!constantTimeEqual([], Array("a".utf8)))
    #expect(constantTimeEqual([], []))
  }
}
