import CEFTBackend
import Foundation

/// A loaded backend plugin: a shared library whose `eft_backend_entry` returned a compatible
/// table. The library stays loaded for the life of the process (Swift plugins must not be
/// dlclosed, and every model opened from it keeps a reference to this object anyway).
public final class Plugin: @unchecked Sendable {
  /// The path the library was loaded from.
  public let path: String
  /// The backend's self-reported name and version.
  public let name: String
  public let version: String
  /// The ABI version the plugin was built against.
  public let abiMajor: UInt32
  public let abiMinor: UInt32
  let table: UnsafePointer<eft_backend>
  private let handle: UnsafeMutableRawPointer

  /// Loads and checks a plugin. Nothing is registered unless every check passes.
  ///
  /// Refuses, with the file and the reason: a file that cannot be loaded, a missing entry symbol,
  /// a NULL table, another ABI major, a newer ABI minor, a table shorter than the slots ABI
  /// 1.0 requires, a NULL required slot.
  public init(path: String) throws {
    func refuse(_ why: String) -> RuntimeError {
      RuntimeError(.plugin, .failedPrecondition, "plugin \(path): \(why)")
    }
    guard FileManager.default.fileExists(atPath: path) else {
      throw RuntimeError(.plugin, .notFound, "plugin \(path): no such file")
    }
    // A path without a slash is a file here, not a name for dlopen to look up in the library
    // search path (which would not find `libX.so` in the current directory).
    guard let handle = dlopen(path.contains("/") ? path : "./" + path, RTLD_NOW | RTLD_LOCAL) else {
      let reason = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
      throw refuse("cannot be loaded: \(reason)")
    }
    guard let symbol = dlsym(handle, EFT_BACKEND_ENTRY_SYMBOL) else {
      throw refuse("does not export the entry symbol '\(EFT_BACKEND_ENTRY_SYMBOL)' (is it an EFTRuntime backend? in Swift the entry function must be public and @_cdecl; in C it needs default visibility: __attribute__((visibility(\"default\"))))")
    }
    let entry = unsafeBitCast(symbol, to: eft_backend_entry_fn.self)
    guard let table = entry() else { throw refuse("'\(EFT_BACKEND_ENTRY_SYMBOL)' returned NULL") }

    let major = table.pointee.abi_major
    let minor = table.pointee.abi_minor
    let hostMajor = UInt32(EFT_ABI_VERSION_MAJOR)
    let hostMinor = UInt32(EFT_ABI_VERSION_MINOR)
    guard major == hostMajor else {
      throw refuse("was built for backend ABI \(major).\(minor), but this host speaks ABI \(hostMajor).\(hostMinor) (the major versions must be equal); rebuild the plugin against this eft_backend.h")
    }
    guard minor <= hostMinor else {
      throw refuse("was built for backend ABI \(major).\(minor), newer than this host's \(hostMajor).\(hostMinor); update EFTRuntime")
    }
    let required = Plugin.requiredTableSize
    guard table.pointee.struct_size >= required else {
      throw refuse("its function table is \(table.pointee.struct_size) bytes, shorter than the \(required) bytes ABI \(hostMajor).0 requires")
    }
    let t = table.pointee
    let slots: [(String, Bool)] = [
      ("name", t.name != nil), ("version", t.version != nil),
      ("model_open", t.model_open != nil), ("model_free", t.model_free != nil),
      ("model_describe", t.model_describe != nil), ("session_new", t.session_new != nil),
      ("session_free", t.session_free != nil), ("session_append", t.session_append != nil),
      ("session_truncate", t.session_truncate != nil), ("session_length", t.session_length != nil),
      ("error_message", t.error_message != nil), ("error_status", t.error_status != nil),
      ("error_free", t.error_free != nil),
    ]
    if let missing = slots.first(where: { !$0.1 }) {
      throw refuse("the required slot '\(missing.0)' of its function table is NULL")
    }
    self.path = path
    self.handle = handle
    self.table = table
    self.name = String(cString: t.name)
    self.version = String(cString: t.version)
    self.abiMajor = major
    self.abiMinor = minor
  }

  /// The plugin's `session_append_batch` (ABI 1.1), when its table has the slot and sets it.
  var appendBatch: (@convention(c) (OpaquePointer?, UnsafePointer<eft_append>?, Int, Int, UnsafeMutablePointer<OpaquePointer?>?) -> eft_status)? {
    let end = MemoryLayout<eft_backend>.offset(of: \eft_backend.session_append_batch)! + MemoryLayout<UnsafeRawPointer>.size
    guard abiMinor >= 1, table.pointee.struct_size >= end else { return nil }
    return table.pointee.session_append_batch
  }

  /// The plugin's `session_set_deadline` (ABI 1.5), when its table has the slot and sets it.
  var setDeadline: (@convention(c) (OpaquePointer?, UInt64) -> Void)? {
    let end = MemoryLayout<eft_backend>.offset(of: \eft_backend.session_set_deadline)! + MemoryLayout<UnsafeRawPointer>.size
    guard abiMinor >= 5, table.pointee.struct_size >= end else { return nil }
    return table.pointee.session_set_deadline
  }

  /// The size of the table up to and including the last slot of ABI x.0.
  static let requiredTableSize: Int = MemoryLayout<eft_backend>.offset(of: \eft_backend.error_free)!
    + MemoryLayout<UnsafeRawPointer>.size

  /// Converts a failed call's status and error object into a `RuntimeError`, freeing the object.
  func error(_ status: eft_status, _ error: OpaquePointer?, _ context: String) -> RuntimeError {
    var message = "no message"
    var code = StatusCode(status)
    if let error {
      message = table.pointee.error_message(error).map { String(cString: $0) } ?? "no message"
      code = StatusCode(table.pointee.error_status(error))
      table.pointee.error_free(error)
    }
    return RuntimeError(.backend, code, "\(context): \(message)")
  }
}

/// Finds plugin libraries by name: `lib<name>.so` in the given directories, then in the
/// directory of the running executable.
public struct PluginLocator: Sendable {
  public var directories: [String]

  public init(directories: [String] = []) {
    self.directories = directories + [PluginLocator.executableDirectory]
  }

  public static var executableDirectory: String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
      ?? CommandLine.arguments.first ?? "."
    return URL(fileURLWithPath: exe).deletingLastPathComponent().path
  }

  /// The path of `lib<name>.so`, or an error listing every place searched.
  public func locate(_ name: String) throws -> String {
    let file = "lib\(name).so"
    for dir in directories {
      let candidate = URL(fileURLWithPath: dir).appendingPathComponent(file).path
      if FileManager.default.fileExists(atPath: candidate) { return candidate }
    }
    throw RuntimeError(.plugin, .notFound,
      "plugin '\(name)': \(file) not found in \(directories.joined(separator: ", ")) (build it with `swift build`, or give the plugin a path)")
  }
}
