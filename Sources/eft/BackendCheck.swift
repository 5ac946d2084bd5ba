import ArgumentParser
import EFTCore
import Foundation

struct BackendCheck: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "backend-check",
    abstract: "Check that a backend plugin keeps the ABI's promises: version and table, describe(), incremental = batched logits, truncate, independent sessions, refusal of bad input.",
    discussion: "Each check runs in a process of its own, so a backend that crashes or hangs is reported against the check it failed instead of taking the checker down.")

  @Argument(help: "The plugin library (lib<Name>.so).")
  var plugin: String

  @Option(help: "A model the backend opens (file or directory); without it only loading is checked.")
  var model: String?

  @Option(help: "A file holding the backend options in text format, e.g. [type.googleapis.com/eft.v1.NGramOptions] { discount: 0.5 }.")
  var options: String?

  @Option(help: "Largest relative difference tolerated between logits that must agree.")
  var tolerance: Float = 1e-4

  @Option(help: "Seconds one check may take before it is killed and reported as hung.")
  var checkTimeout: Double = 120

  /// Set in the child process: run this check and print its result as one JSON line.
  @Option(help: .hidden)
  var only: String?

  func validate() throws {
    guard checkTimeout > 0, checkTimeout.isFinite else { throw ValidationError("--check-timeout must be a positive number of seconds") }
    if let only, !BackendChecker.checkNames.contains(only) { throw ValidationError("--only: no check '\(only)'") }
  }

  func run() throws {
    try reportingErrors {
      var bytes: [UInt8] = []
      if let options {
        guard let data = FileManager.default.contents(atPath: options) else { throw RuntimeError(.request, .notFound, "\(options): cannot read") }
        bytes = try ConfigFile.backendOptions(text: String(decoding: data, as: UTF8.self), path: options)
      }
      if let only {
        var checker = BackendChecker(pluginPath: plugin, modelPath: model, options: bytes)
        checker.tolerance = tolerance
        for check in checker.run(only: only) { print(String(decoding: try JSONEncoder().encode(check), as: UTF8.self)) }
        return
      }
      var checks: [BackendChecker.Check] = []
      for name in model == nil ? ["load"] : BackendChecker.checkNames {
        let check = try runInChild(name)
        print("\(check.passed ? "PASS" : "FAIL")  \(check.name): \(check.detail)")
        checks.append(check)
        if !check.passed && BackendChecker.prerequisites.contains(name) { break }
      }
      let failed = checks.filter { !$0.passed }.count
      print(failed == 0 ? "\(plugin): all \(checks.count) checks passed" + (model == nil ? " (no --model: loading only)" : "")
                        : "\(plugin): \(failed) of \(checks.count) checks failed")
      if failed > 0 { throw ExitCode(1) }
    }
  }

  /// Runs this command with `--only name` in a child process and reads its result; a child that
  /// dies by a signal or outlives --check-timeout is that check's failure.
  private func runInChild(_ name: String) throws -> BackendChecker.Check {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    child.arguments = ["backend-check", plugin, "--tolerance", "\(tolerance)", "--only", name]
      + (model.map { ["--model", $0] } ?? []) + (options.map { ["--options", $0] } ?? [])
    // What the child prints is read as it comes, so that a chatty backend cannot fill a pipe.
    let output = Collected(), errors = Collected()
    child.standardOutput = output.pipe
    child.standardError = errors.pipe
    do {
      try child.run()
    } catch {
      throw RuntimeError(.request, .internal, "cannot start a process for check '\(name)': \(error)")
    }
    let deadline = Date().addingTimeInterval(checkTimeout)
    while child.isRunning && Date() < deadline { usleep(10_000) }
    let hung = child.isRunning
    if hung { kill(child.processIdentifier, SIGKILL) }
    child.waitUntilExit()
    let stdout = output.finish(), stderr = errors.finish()

    if hung { return .init(name: name, passed: false, detail: "hung: no answer in \(checkTimeout) s (killed)") }
    if child.terminationReason == .uncaughtSignal {
      let signal = child.terminationStatus
      let what = strsignal(signal).map { String(cString: $0) } ?? "?"
      // The Swift runtime's backtrace names the crashing frame: "0  0x…  session_truncate + 87 in lib….so at file.c:110:14".
      let frame = stderr.split(separator: "\n").first { $0.drop { $0 == " " }.hasPrefix("0 ") }
        .map { ": " + $0.split(separator: " ").dropFirst(2).joined(separator: " ") } ?? ""
      return .init(name: name, passed: false, detail: "crashed: signal \(signal) (\(what)) in check '\(name)'\(frame)")
    }
    guard let line = stdout.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
          let check = try? JSONDecoder().decode(BackendChecker.Check.self, from: Data(line.utf8)) else {
      let last = stderr.split(separator: "\n").last.map { ": \($0)" } ?? ""
      return .init(name: name, passed: false, detail: "the check's process exited with status \(child.terminationStatus) and no result\(last)")
    }
    return check
  }
}

/// A pipe whose bytes are collected as they arrive (on Foundation's reading thread).
private final class Collected: @unchecked Sendable {
  let pipe = Pipe()
  private let lock = NSLock()
  private var bytes = Data()

  init() {
    pipe.fileHandleForReading.readabilityHandler = { [self] handle in
      let data = handle.availableData
      lock.withLock { bytes.append(data) }
    }
  }

  /// Once the child is gone: everything it wrote, as text.
  func finish() -> String {
    pipe.fileHandleForReading.readabilityHandler = nil
    let rest = pipe.fileHandleForReading.readDataToEndOfFile()
    return lock.withLock { String(decoding: bytes + rest, as: UTF8.self) }
  }
}
