import EFTWire
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
