import EFTTestSupport
import Foundation
import Synchronization
import Testing

/// `eft-server` as a process and `eft-client` against it: the client prints what `eft` prints
/// for the same arguments, and the server shuts down cleanly on SIGTERM.
final class ServerProcess: Sendable {
  let process: Process
  private let log = LogBuffer()

  init(_ arguments: [String]) throws {
    process = Process()
    process.executableURL = URL(fileURLWithPath: buildDirectory + "/eft-server")
    process.arguments = arguments
    process.currentDirectoryURL = repoRoot
    let err = Pipe()
    process.standardError = err
    process.standardOutput = FileHandle.nullDevice
    err.fileHandleForReading.readabilityHandler = { [log] handle in
      let data = handle.availableData
      log.append(String(decoding: data, as: UTF8.self))
    }
    try process.run()
  }

  var stderr: String { log.text }

  /// Waits until stderr contains `text` (or the process exits, or 30 s pass).
  func waitFor(_ text: String) -> Bool {
    let deadline = Date().addingTimeInterval(30)
    while Date() < deadline, process.isRunning {
      if stderr.contains(text) { return true }
      Thread.sleep(forTimeInterval: 0.02)
    }
    return stderr.contains(text)
  }

  /// Sends `signal` and waits for the exit status.
  func stop(_ signal: Int32 = SIGTERM) -> Int32 {
    kill(process.processIdentifier, signal)
    process.waitUntilExit()
    Thread.sleep(forTimeInterval: 0.05)  // let the reader drain the last lines
    return process.terminationStatus
  }

  deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

final class LogBuffer: Sendable {
  private let buffer = Mutex("")
  func append(_ s: String) { buffer.withLock { $0 += s } }
  var text: String { buffer.withLock { $0 } }
}

let facts = "examples/configs/facts.pbtxt"
let question = "<|user|>\\nWhere does Fenyar Balutam live?\\n<|assistant|>\\n"

/// A short scratch path for a socket (socket paths are limited to 107 bytes).
func socketPath() -> String { "/tmp/eft-cli-\(UUID().uuidString.prefix(8)).sock" }

@Suite struct ServerCLITests {
  @Test func clientPrintsWhatEftPrintsAndSIGTERMStopsTheServerCleanly() throws {
    let socket = socketPath()
    let server = try ServerProcess([facts, "--listen", "unix:\(socket)", "--listen", "tcp:0"])
    #expect(server.waitFor("listening on tcp:"), "\(server.stderr)")
    #expect(server.stderr.contains("listening on unix:\(socket)"))
    #expect(server.stderr.contains("serving 4 graphs (upscaled, small_ft, large_base, large_ft)"))
    let connect = ["--connect", "unix:\(socket)"]

    let runs: [[String]] = [
      ["-e", "--prompt", question],
      ["-e", "--prompt", question, "--set", "beta=1.5", "--speculative", "off"],
      ["--prompt", "Fenyar", "--graph", "large_base", "--temperature", "1", "--seed", "11", "--max-tokens", "20"],
      ["--prompt", "The", "--temperature", "0.9", "--seed", "4", "--max-tokens", "12", "--stop", "e"],
    ]
    for arguments in runs {
      let local = try eft(["run", facts, "-v"] + arguments)
      let remote = try tool("eft-client", ["generate", "-v"] + connect + arguments)
      #expect(local.status == 0 && remote.status == 0, "\(arguments): \(local.stderr) \(remote.stderr)")
      #expect(remote.stdout == local.stdout, "\(arguments)")
      // Same counts and finish reason; the timings are each run's own.
      func head(_ text: String) -> String { text.components(separatedBy: ", prefill").first ?? "" }
      #expect(head(remote.stderr) == head(local.stderr), "\(arguments)")
      #expect(remote.stderr.hasPrefix("eft: "), "\(remote.stderr)")
    }
    #expect(try tool("eft-client", ["generate"] + connect + ["-e", "--prompt", question]).stdout == "The answer is Frostmoor.\n")
    // --trace: the same table of per-token node values on stderr.
    let localTrace = try eft(["run", facts, "--trace", "-e", "--prompt", question])
    let remoteTrace = try tool("eft-client", ["generate", "--trace"] + connect + ["-e", "--prompt", question])
    #expect(remoteTrace.stdout == localTrace.stdout)
    #expect(remoteTrace.stderr == localTrace.stderr)
    #expect(localTrace.stderr.hasPrefix("token  text  logprob  large  ft  base  eft\n"))

    var scored: [String] = []
    for extra in [[], ["--json"], ["-e", "--json"]] {
      let arguments = ["--prompt", question, "--continuation", "The answer is Frostmoor."] + extra
      let local = try eft(["score", facts] + arguments)
      let remote = try tool("eft-client", ["score"] + connect + arguments)
      #expect(remote.status == 0, "\(remote.stderr)")
      #expect(remote.stdout == local.stdout)
      scored.append(local.stdout)
    }
    // -e reads the prompt's \n as newlines (the chat format the models know): another score.
    #expect(scored[1] != scored[2])

    let check = try eft(["check", facts]).stdout
    let graphs = try tool("eft-client", ["graphs"] + connect)
    #expect(graphs.status == 0, "\(graphs.stderr)")
    #expect(graphs.stdout == check[check.range(of: "graph upscaled")!.lowerBound...])
    let one = try tool("eft-client", ["graphs", "large_ft"] + connect)
    #expect(one.stdout.hasPrefix("graph large_ft: the large model fine-tuned"))

    let text = FileManager.default.temporaryDirectory.appendingPathComponent("eft-cli-\(UUID().uuidString).txt").path
    try "Where does Fenyar Balutam live?\nThe answer is Frostmoor.\n".write(toFile: text, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: text) }
    let localIDs = try eft(["tokenize", "--tokenizer", "examples/models/facts/large_base/tokenizer.json", text])
    let remoteIDs = try tool("eft-client", ["tokenize"] + connect + [text])
    #expect(remoteIDs.status == 0, "\(remoteIDs.stderr)")
    #expect(remoteIDs.stdout == localIDs.stdout)
    let firstLine = localIDs.stdout.split(separator: "\n")[0].split(separator: " ").map(String.init)
    #expect(try tool("eft-client", ["detokenize"] + connect + firstLine).stdout == "Where does Fenyar Balutam live?\n")

    let health = try tool("eft-client", ["health"] + connect)
    #expect(health.status == 0 && health.stdout == "SERVING\n", "\(health.stderr)")

    // Over TCP, on the port the server chose.
    let port = server.stderr.components(separatedBy: "listening on tcp:127.0.0.1:").last?.prefix { $0.isNumber } ?? ""
    let overTCP = try tool("eft-client", ["generate", "--connect", "tcp:\(port)", "-e", "--prompt", question])
    #expect(overTCP.stdout == "The answer is Frostmoor.\n", "\(overTCP.stderr)")

    // Errors: one line, the server's message and the status; the server goes on.
    let noGraph = try tool("eft-client", ["generate"] + connect + ["--graph", "nope", "--prompt", "x"])
    #expect(noGraph.status == 1)
    #expect(noGraph.stderr.hasPrefix("eft-client: error: no graph 'nope'"))
    #expect(noGraph.stderr.hasSuffix("(NOT_FOUND)\n"))
    let badParameter = try tool("eft-client", ["generate"] + connect + ["--prompt", "x", "--set", "gamma=1"])
    #expect(badParameter.stderr.contains("no parameter 'gamma'") && badParameter.stderr.contains("(INVALID_ARGUMENT)"))
    let nobody = try tool("eft-client", ["graphs", "--connect", "unix:/tmp/eft-nobody-\(UUID().uuidString.prefix(6)).sock"])
    #expect(nobody.status == 1)
    #expect(nobody.stderr.contains("(UNAVAILABLE)"), "\(nobody.stderr)")

    // A second server on the same socket is refused while the first lives.
    let second = try tool("eft-server", [facts, "--listen", "unix:\(socket)"])
    #expect(second.status == 1)
    #expect(second.stderr.contains("another server is listening"), "\(second.stderr)")

    #expect(server.stop(SIGTERM) == 0, "\(server.stderr)")
    #expect(server.stderr.contains("SIGTERM: shutting down"))
    #expect(server.stderr.contains("eft-server: stopped"))
    #expect(!FileManager.default.fileExists(atPath: socket), "the socket file is removed")
  }

  @Test func badServerArgumentsAreOneLine() throws {
    let badConfig = try tool("eft-server", ["examples/configs/nope.pbtxt", "--listen", "unix:\(socketPath())"])
    #expect(badConfig.status == 1)
    #expect(badConfig.stderr.hasPrefix("eft-server: error: "), "\(badConfig.stderr)")
    #expect(badConfig.stderr.contains("nope.pbtxt"))
    let badListen = try tool("eft-server", [facts, "--listen", "udp:9"])
    #expect(badListen.status != 0)
    #expect(badListen.stderr.contains("expected tcp:HOST:PORT, tcp:PORT or unix:PATH"), "\(badListen.stderr)")
    // One endpoint that cannot be bound: the error names it, and the others leave no socket file.
    let good = socketPath()
    let unbindable = try tool("eft-server", [facts, "--listen", "unix:\(good)", "--listen", "unix:/nonexistent-\(UUID().uuidString.prefix(6))/x.sock"])
    #expect(unbindable.status == 1)
    #expect(unbindable.stderr.contains("x.sock: bind: No such file or directory"), "\(unbindable.stderr)")
    #expect(!FileManager.default.fileExists(atPath: good))
  }
}
