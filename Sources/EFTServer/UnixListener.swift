#if canImport(Glibc)
import EFTWire
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A listening Unix-domain socket that only its owner may connect to. It is bound and made 0600
/// before `listen`, so no other user can ever connect, not even between the two steps. A stale
/// socket file left by a server that died is replaced; a live one is refused.
struct UnixListener {
  let descriptor: Int32
  let path: String
  /// The socket file's inode, so that shutdown removes this file and not a successor's.
  let inode: UInt64

  init(path: String) throws(EndpointError) {
    self.path = path
    var address = try Self.claim(path)
    var status = stat()

    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw EndpointError("unix:\(path): socket: \(Self.errorText())") }
    func fail(_ step: String) -> EndpointError {
      let error = EndpointError("unix:\(path): \(step): \(Self.errorText())")
      close(fd)
      return error
    }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0 else { throw fail("bind") }
    guard chmod(path, 0o600) == 0 else { throw fail("chmod") }
    guard lstat(path, &status) == 0 else { throw fail("stat") }
    guard listen(fd, 128) == 0 else { throw fail("listen") }
    descriptor = fd
    inode = UInt64(status.st_ino)
  }

  /// The address of `path`, once it is free: a stale socket file left by a server that died is
  /// removed; a live socket, or a file that is not a socket, is refused. The HTTP fronts claim
  /// their paths here too, before Hummingbird binds them (it would replace a live socket).
  static func claim(_ path: String) throws(EndpointError) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    let bytes = Array(path.utf8)
    guard bytes.count < capacity else {
      throw EndpointError("unix:\(path): the path is \(bytes.count) bytes; Unix socket paths are limited to \(capacity - 1)")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
    var status = stat()
    if lstat(path, &status) == 0 {
      guard status.st_mode & S_IFMT == S_IFSOCK else {
        throw EndpointError("unix:\(path): the file exists and is not a socket")
      }
      guard !accepts(&address) else {
        throw EndpointError("unix:\(path): another server is listening on it")
      }
      unlink(path)  // stale: left by a server that did not shut down
    }
    return address
  }

  /// Closes the socket and removes its file (for one no transport has taken over).
  func abandon() {
    close(descriptor)
    removeFile()
  }

  /// Removes the socket file if it is still this listener's.
  func removeFile() {
    var status = stat()
    if lstat(path, &status) == 0, UInt64(status.st_ino) == inode { unlink(path) }
  }

  private static func accepts(_ address: inout sockaddr_un) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    } == 0
  }

  private static func errorText() -> String { String(cString: strerror(errno)) }
}
