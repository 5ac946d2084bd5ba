import CFuzzer
import Foundation

/// What the fuzz targets share. Each target is one executable with a function `one(Data)` that
/// must not crash and must keep the invariants it checks with `require` on any input; its main
/// is `fuzzMain(one)`:
/// - built by `scripts/fuzz.sh` (AddressSanitizer, libFuzzer's coverage, `-D FUZZING`), libFuzzer drives it;
/// - in a normal build it replays files: `fuzz-config Tests/Fuzz/Corpus/config`, each file once
///   (how CI runs the committed seed corpora and past findings as a regression test).
public func fuzzMain(_ one: @escaping (Data) -> Void) {
  #if FUZZING
  // SwiftPM renames an executable's main and points `main` at it, so libFuzzer's own main cannot
  // be linked: scripts/fuzz.sh links libFuzzer without it, and its driver starts from here.
  target = one
  var argc = CommandLine.argc
  var argv = Optional(CommandLine.unsafeArgv)
  exit(LLVMFuzzerRunDriver(&argc, &argv) { bytes, count in
    target(bytes.map { Data(bytes: $0, count: count) } ?? Data())
    return 0
  })
  #else
  replay(one)
  #endif
}

/// The function libFuzzer calls (a C callback cannot capture it).
nonisolated(unsafe) private var target: (Data) -> Void = { _ in }

/// The files given on the command line (directories: every file in them), each passed to `one`.
public func replay(_ one: (Data) -> Void) {
  let paths = CommandLine.arguments.dropFirst()
  guard !paths.isEmpty else {
    FileHandle.standardError.write(Data("usage: \(CommandLine.arguments[0]) FILE|DIR... (replays inputs; scripts/fuzz.sh fuzzes)\n".utf8))
    exit(2)
  }
  var count = 0
  for path in paths {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      FileHandle.standardError.write(Data("\(path): no such file\n".utf8))
      exit(2)
    }
    let files = isDirectory.boolValue
      ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { "\(path)/\($0)" }
      : [path]
    for file in files {
      guard let data = FileManager.default.contents(atPath: file) else { continue }
      one(data)
      count += 1
    }
  }
  print("\(URL(fileURLWithPath: CommandLine.arguments[0]).lastPathComponent): \(count) inputs replayed, no invariant broken")
}

/// With EFT_FUZZ_VERBOSE set, what became of an input (to see which paths the seeds reach).
public func outcome(_ text: @autoclosure () -> String) {
  if verbose { print("  " + text()) }
}
private let verbose = ProcessInfo.processInfo.environment["EFT_FUZZ_VERBOSE"] != nil

/// An invariant of a fuzz target: a violation stops the process (libFuzzer saves the input).
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
  if !condition() {
    FileHandle.standardError.write(Data("invariant broken: \(message())\n".utf8))
    abort()
  }
}

/// The repository's directory of the normal debug build, where the plugins are
/// (EFT_FUZZ_PLUGIN_DIR overrides it). Fuzz targets run from the repository root.
public var pluginDirectory: String { ProcessInfo.processInfo.environment["EFT_FUZZ_PLUGIN_DIR"] ?? ".build/debug" }

/// Runs `body` for set-up that must work (loading the bundled models), stopping with the error otherwise.
public func setUp<T>(_ what: String, _ body: () throws -> T) -> T {
  do {
    return try body()
  } catch {
    FileHandle.standardError.write(Data("fuzz set-up failed: \(what): \(error)\n".utf8))
    exit(2)
  }
}
