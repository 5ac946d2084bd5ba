import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOSSL

/// TLS for a server's TCP listeners: the certificate chain it presents and the chain's private
/// key, both PEM, read and checked when the options are made (so a bad file is an error naming the
/// file before anything listens).
public struct ServerTLS: Sendable {
  let certificateChain: [UInt8]
  let privateKey: [UInt8]

  public init(certificateChainFile: String, privateKeyFile: String) throws(SecurityError) {
    certificateChain = try readPEM(certificateChainFile, what: "certificate chain")
    privateKey = try readPEM(privateKeyFile, what: "private key")
    let certificates: [NIOSSLCertificate]
    do {
      certificates = try NIOSSLCertificate.fromPEMBytes(certificateChain)
    } catch {
      throw SecurityError("\(certificateChainFile): not a PEM certificate chain (\(error))")
    }
    guard !certificates.isEmpty else { throw SecurityError("\(certificateChainFile): no certificate in the file") }
    let key: NIOSSLPrivateKey
    do {
      key = try NIOSSLPrivateKey(bytes: privateKey, format: .pem)
    } catch {
      throw SecurityError("\(privateKeyFile): not a PEM private key (\(error))")
    }
    // The context checks that the key belongs to the leaf certificate.
    do {
      _ = try NIOSSLContext(configuration: .makeServerConfiguration(
        certificateChain: certificates.map { .certificate($0) }, privateKey: .privateKey(key)))
    } catch {
      throw SecurityError("\(privateKeyFile) and \(certificateChainFile): the key does not fit the certificate (\(error))")
    }
  }

  /// The same certificate and key for NIOSSL (the HTTP front).
  var configuration: TLSConfiguration {
    get throws {
      .makeServerConfiguration(certificateChain: try NIOSSLCertificate.fromPEMBytes(certificateChain).map { .certificate($0) },
                               privateKey: .privateKey(try NIOSSLPrivateKey(bytes: privateKey, format: .pem)))
    }
  }

  var transportSecurity: HTTP2ServerTransport.Posix.TransportSecurity {
    .tls(certificateChain: [.bytes(certificateChain, format: .pem)], privateKey: .bytes(privateKey, format: .pem))
  }
}

/// How a client reaches a server: the certificates it trusts for TLS on TCP (nil: plaintext) and
/// the bearer token it sends with every call (nil: none).
public struct ClientSecurity: Sendable {
  var trustRoots: [UInt8]?
  public var token: String?

  public static let none = ClientSecurity()

  public init(trustRootsFile: String? = nil, token: String? = nil) throws(SecurityError) {
    if let trustRootsFile {
      let pem = try readPEM(trustRootsFile, what: "certificate")
      do {
        guard try !NIOSSLCertificate.fromPEMBytes(pem).isEmpty else { throw SecurityError("\(trustRootsFile): no certificate in the file") }
      } catch let error as SecurityError {
        throw error
      } catch {
        throw SecurityError("\(trustRootsFile): not a PEM certificate (\(error))")
      }
      trustRoots = pem
    }
    if let token { try checkToken(token, source: "the token") }
    self.token = token
  }

  private init() {}

  var transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
    guard let trustRoots else { return .plaintext }
    return .tls { $0.trustRoots = .certificates([.bytes(trustRoots, format: .pem)]) }
  }

  var interceptors: [any ClientInterceptor] { token.map { [BearerToken(token: $0)] } ?? [] }
}

/// A bearer token read from a file: the file's text less surrounding whitespace, which must be
/// printable ASCII without spaces (what an HTTP/2 header value can carry), 16 to 4096 bytes.
public func readToken(file path: String) throws(SecurityError) -> String {
  guard let data = FileManager.default.contents(atPath: path) else { throw SecurityError("\(path): cannot read the token file") }
  guard let text = String(data: data, encoding: .utf8) else { throw SecurityError("\(path): the token is not UTF-8 text") }
  let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
  try checkToken(token, source: path)
  return token
}

private func checkToken(_ token: String, source: String) throws(SecurityError) {
  guard (16...4096).contains(token.utf8.count) else {
    throw SecurityError("\(source): a token must be 16 to 4096 bytes (this one is \(token.utf8.count))")
  }
  guard token.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
    throw SecurityError("\(source): a token may hold only printable ASCII characters without spaces")
  }
}

private func readPEM(_ path: String, what: String) throws(SecurityError) -> [UInt8] {
  guard let data = FileManager.default.contents(atPath: path) else { throw SecurityError("\(path): cannot read the \(what) file") }
  return Array(data)
}

public struct SecurityError: Error, CustomStringConvertible, Sendable {
  public let description: String
  init(_ description: String) { self.description = description }
}

/// Adds `authorization: Bearer TOKEN` to every call.
struct BearerToken: ClientInterceptor {
  let token: String
  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingClientRequest<Input>, context: ClientContext,
    next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
  ) async throws -> StreamingClientResponse<Output> {
    var request = request
    request.metadata.replaceOrAddString("Bearer \(token)", forKey: "authorization")
    return try await next(request, context)
  }
}

/// Refuses, with UNAUTHENTICATED, every call whose `authorization` header is not
/// `Bearer TOKEN`. The comparison takes the same time wherever the two differ.
struct TokenCheck: ServerInterceptor {
  let expected: [UInt8]

  init(token: String) { expected = Array("Bearer \(token)".utf8) }

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>, context: ServerContext,
    next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    let presented = request.metadata[stringValues: "authorization"].first { _ in true }
    guard let presented else {
      throw RPCError(code: .unauthenticated, message: "this server needs a bearer token (authorization: Bearer TOKEN)")
    }
    guard constantTimeEqual(Array(presented.utf8), expected) else {
      throw RPCError(code: .unauthenticated, message: "the bearer token is not this server's")
    }
    return try await next(request, context)
  }
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
  var difference = UInt64(a.count ^ b.count)
  for i in 0..<max(a.count, b.count) {
    let x = i < a.count ? a[i] : 0
    let y = i < b.count ? b[i] : 0
    difference |= UInt64(x ^ y)
  }
  return difference == 0
}
