import EFTTestSupport
import Foundation
import Testing

/// The executables end to end: exit codes, stdout/stderr, through the real plugin loader.
/// Needs `swift build` to have built `eft` and the plugins (swift test builds every product).



struct Outcome {
  let status: Int32
  let stdout: String
  let stderr: String
}

func eft(_ arguments: [String]) throws -> Outcome { try tool("eft", arguments) }

/// Runs one of the package's executables to completion, in `directory` (the repository root).
func tool(_ name: String, _ arguments: [String], in directory: URL = repoRoot) throws -> Outcome {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: buildDirectory + "/" + name)
  process.arguments = arguments
  process.currentDirectoryURL = directory
  let out = Pipe(), err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  let stdout = out.fileHandleForReading.readDataToEndOfFile()
  let stderr = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return Outcome(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                 stderr: String(decoding: stderr, as: UTF8.self))
}

func scratchConfig(_ text: String) throws -> String {
  let path = FileManager.default.temporaryDirectory.appendingPathComponent("eft-cli-\(UUID().uuidString).pbtxt").path
  try text.write(toFile: path, atomically: true, encoding: .utf8)
  return path
}

let upscale = "examples/configs/upscale.pbtxt"

@Suite struct CLITests {
  @Test func checkPrintsTheGraph() throws {
    let r = try eft(["check", upscale])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("graph upscale (default)"))
    #expect(r.stdout.contains("eft = linear(large·1 + ft·(beta) + base·(-beta))  ← output"))
    // Filters that are off say so, not "top_p 0.0".
    #expect(r.stdout.contains("temperature 0.8, top_k off, top_p 0.95, min_p off"), "\(r.stdout)")
  }

  /// `check` shows each model's EOS and warns when a graph's models disagree (any of them ends
  /// a generation).
  @Test func checkWarnsWhenAGraphsModelsDisagreeOnEOS() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eft-eos-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let tiny = repoRoot.appendingPathComponent("examples/models/tiny")
    try FileManager.default.copyItem(at: tiny.appendingPathComponent("tokenizer.json"), to: dir.appendingPathComponent("tokenizer.json"))
    let model = try String(contentsOf: tiny.appendingPathComponent("small_base.bigram"), encoding: .utf8)
    try model.write(to: dir.appendingPathComponent("a.bigram"), atomically: true, encoding: .utf8)
    try model.replacingOccurrences(of: "\neos 2\n", with: "\neos 3\n").write(to: dir.appendingPathComponent("b.bigram"), atomically: true, encoding: .utf8)
    try model.replacingOccurrences(of: "\neos 2\n", with: "\neos -1\n").write(to: dir.appendingPathComponent("c.bigram"), atomically: true, encoding: .utf8)
    let config = dir.appendingPathComponent("c.pbtxt").path
    try """
      plugins { name: "BigramBackend" }
      models { name: "a" plugin: "BigramBackend" path: "a.bigram" }
      models { name: "b" plugin: "BigramBackend" path: "b.bigram" }
      models { name: "c" plugin: "BigramBackend" path: "c.bigram" }
      graphs { name: "g" nodes { name: "x" model { model: "a" } } nodes { name: "y" model { model: "b" } }
               nodes { name: "s" linear { terms { input: "x" } terms { input: "y" } } } output: "s" }
      graphs { name: "h" nodes { name: "x" model { model: "a" } } nodes { name: "z" model { model: "c" } }
               nodes { name: "s" linear { terms { input: "x" } terms { input: "z" } } } output: "s" }
      """.write(toFile: config, atomically: true, encoding: .utf8)
    let r = try eft(["check", config])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("model a: bigram via bigram, 420 output rows") && r.stdout.contains("EOS 2"), "\(r.stdout)")
    #expect(r.stdout.contains("EOS none"), "\(r.stdout)")
    #expect(r.stderr.contains("warning: graph g: its models disagree on EOS (a 2, b 3)"), "\(r.stderr)")
    // A model with no EOS (not a language model) does not disagree.
    #expect(!r.stderr.contains("graph h"), "\(r.stderr)")
    let agreeing = try eft(["check", upscale])
    #expect(!agreeing.stderr.contains("warning"), "\(agreeing.stderr)")
  }

  /// A typo inside a one-line nested message is named, with the message around it, not the
  /// line's first field.
  @Test func checkNamesTheInnermostUnknownField() throws {
    let original = try String(contentsOfFile: repoRoot.appendingPathComponent("examples/configs/contrastive.pbtxt").path, encoding: .utf8)
    let text = original.replacingOccurrences(of: "alpha: 0.1 }", with: "alpah: 0.1 }")
    let line = text.components(separatedBy: "\n").firstIndex { $0.contains("alpah") }! + 1
    let r = try eft(["check", try scratchConfig(text)])
    #expect(r.status == 1)
    #expect(r.stderr.contains(":\(line): unknown field 'alpah' inside 'plausibility { … }': nodes {"), "\(r.stderr)")
  }

  @Test func checkNamesFileAndLineOfATypo() throws {
    var text = try String(contentsOfFile: repoRoot.appendingPathComponent(upscale).path, encoding: .utf8)
    text = text.replacingOccurrences(of: "  output: \"eft\"", with: "  outptu: \"eft\"")
    let line = text.components(separatedBy: "\n").firstIndex { $0.contains("outptu") }! + 1
    let path = try scratchConfig(text)
    let r = try eft(["check", path])
    #expect(r.status == 1)
    #expect(r.stderr == "eft: error: \(path):\(line): unknown field 'outptu': outptu: \"eft\"\n")
  }

  @Test func checkNamesTheNodesOfACycle() throws {
    let text = """
      plugins { name: "BigramBackend" }
      models { name: "m" plugin: "BigramBackend" path: "\(repoRoot.path)/examples/models/tiny/large_base.bigram" }
      graphs {
        name: "g"
        nodes { name: "lm" model { model: "m" } }
        nodes { name: "a" linear { terms { input: "lm" } terms { input: "b" } } }
        nodes { name: "b" normalize { input: "a" } }
        output: "b"
      }
      """
    let r = try eft(["check", try scratchConfig(text)])
    #expect(r.status == 1)
    #expect(r.stderr.contains("cycle: a → b → a") || r.stderr.contains("cycle: b → a → b"), "\(r.stderr)")
    #expect(!r.stderr.contains("Stack"))
  }

  @Test func runStreamsTextAndASeedReproducesIt() throws {
    let args = ["run", upscale, "--prompt", "Where does Tomas live?", "--seed", "5", "--max-tokens", "20", "--temperature", "1"]
    let a = try eft(args), b = try eft(args)
    #expect(a.status == 0, "\(a.stderr)")
    #expect(!a.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    #expect(a.stdout == b.stdout)
    #expect(a.stderr.isEmpty)
    let other = try eft(["run", upscale, "--prompt", "Where does Tomas live?", "--seed", "6", "--max-tokens", "20", "--temperature", "1"])
    #expect(other.stdout != a.stdout)
    let verbose = try eft(args + ["-v"])
    #expect(verbose.stdout == a.stdout)
    #expect(verbose.stderr.contains("tokens/s"))
  }

  @Test func runWithOverridesAndErrors() throws {
    let ok = try eft(["run", upscale, "--prompt", "Tomas", "--set", "beta=0.5", "--max-tokens", "5"])
    #expect(ok.status == 0, "\(ok.stderr)")
    let badParam = try eft(["run", upscale, "--prompt", "Tomas", "--set", "gamma=1"])
    #expect(badParam.status == 1)
    #expect(badParam.stderr.contains("no parameter 'gamma'"))
    let badSyntax = try eft(["run", upscale, "--prompt", "Tomas", "--set", "beta"])
    #expect(badSyntax.status != 0)
    #expect(badSyntax.stderr.contains("name=number"))
    let noGraph = try eft(["run", upscale, "--graph", "nope", "--prompt", "x"])
    #expect(noGraph.status == 1)
    #expect(noGraph.stderr.contains("no graph 'nope'"))
    // The facts answer ends at EOS after a few tokens; --ignore-eos goes on to --max-tokens.
    let facts = repoRoot.appendingPathComponent("examples/configs/facts.pbtxt").path
    let answer = ["run", facts, "-e", "--prompt", "<|user|>\\nWhere does Fenyar Balutam live?\\n<|assistant|>\\n", "--max-tokens", "20", "-v"]
    let stopped = try eft(answer)
    #expect(stopped.stderr.contains("finish eos"), "\(stopped.stderr)")
    let goesOn = try eft(answer + ["--ignore-eos"])
    #expect(goesOn.stderr.contains("eft: 20 tokens, finish length") && goesOn.stdout.hasPrefix(stopped.stdout.trimmingCharacters(in: .newlines)),
            "\(goesOn.stderr)")
  }

  @Test func escapesInThePromptAndTrace() throws {
    let escaped = try eft(["run", upscale, "-e", "--prompt", "Where\\ndoes Tomas live?", "--max-tokens", "6", "--seed", "1"])
    let literal = try eft(["run", upscale, "--prompt", "Where\ndoes Tomas live?", "--max-tokens", "6", "--seed", "1"])
    #expect(escaped.status == 0)
    #expect(escaped.stdout == literal.stdout)
    let traced = try eft(["run", upscale, "--prompt", "Tomas", "--max-tokens", "3", "--trace"])
    #expect(traced.stderr.hasPrefix("token  text  logprob  large  ft  base  eft\n"))
    #expect(traced.stderr.split(separator: "\n").count >= 2)
  }

  @Test func scoreJSON() throws {
    let r = try eft(["score", upscale, "--prompt", "Where does Tomas live?", "--continuation", " Tomas lives in Oakridge.", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    let tokens = try #require(object["tokens"] as? [Int])
    let logprobs = try #require(object["logprobs"] as? [Double])
    let total = try #require(object["total"] as? Double)
    #expect(tokens.count == logprobs.count)
    #expect(!tokens.isEmpty)
    #expect(abs(logprobs.reduce(0, +) - total) < 1e-9)
    #expect(logprobs.allSatisfy { $0 < 0 })

    let text = try eft(["score", upscale, "--prompt", "Tomas", "--continuation", " lives"])
    #expect(text.status == 0)
    #expect(text.stdout.contains("total"))
  }

  /// `score -e` reads \n in the prompt and continuation as newlines, as `run -e` does.
  @Test func scoreEscapes() throws {
    let typed = try eft(["score", upscale, "-e", "--prompt", "Where does Tomas live?\\n", "--continuation", "Oakridge.\\n", "--json"])
    let real = try eft(["score", upscale, "--prompt", "Where does Tomas live?\n", "--continuation", "Oakridge.\n", "--json"])
    let literal = try eft(["score", upscale, "--prompt", "Where does Tomas live?\\n", "--continuation", "Oakridge.\\n", "--json"])
    #expect(typed.status == 0, "\(typed.stderr)")
    #expect(typed.stdout == real.stdout)
    #expect(typed.stdout != literal.stdout)
  }

  /// A plugin named without a slash is the file in the current directory (dlopen alone would
  /// search the library path and not find it).
  @Test func backendCheckFindsABareFileName() throws {
    let model = repoRoot.appendingPathComponent("examples/models/tiny/large_base.bigram").path
    let r = try tool("eft", ["backend-check", "libBigramBackend.so", "--model", model], in: URL(fileURLWithPath: buildDirectory))
    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    #expect(r.stdout.contains("all 9 checks passed"), "\(r.stdout)")
  }

  @Test func missingConfigIsOneLine() throws {
    let r = try eft(["check", "/nonexistent.pbtxt"])
    #expect(r.status == 1)
    #expect(r.stderr == "eft: error: /nonexistent.pbtxt: cannot read the config file\n")
  }
}

@Suite struct EvalCLITests {
  @Test func evalPrintsATableAndJSON() throws {
    let data = try scratchConfig("""
      {"prompt": "Where does Tomas live?", "answer": "Oakridge", "reference": "Tomas lives in Oakridge."}
      {"prompt": "What does Ilse do?", "answer": "weaver"}
      """)
    let r = try eft(["eval", upscale, "--data", data, "--graph", "upscale", "--set", "beta=0.5", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let array = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
    #expect(array.count == 1)
    let row = array[0]
    #expect(row["graph"] as? String == "upscale")
    for key in ["accuracy", "format_compliance", "tokens_per_s"] {
      let v = try #require(row[key] as? Double, "\(key)")
      #expect(v >= 0)
    }
    #expect((row["mean_loglik"] as? Double).map { $0 < 0 } == true)
    #expect(r.stderr.contains("2/2"))
    let table = try eft(["eval", upscale, "--data", data])
    #expect(table.status == 0)
    #expect(table.stdout.contains("accuracy"))
    let missing = try eft(["eval", upscale, "--data", "/nonexistent.jsonl"])
    #expect(missing.status == 1)
  }
}

@Suite struct SpeculativeCLITests {
  let facts = "examples/configs/facts.pbtxt"
  let question = "<|user|>\\nWhere does Fenyar Balutam live?\\n<|assistant|>\\n"

  @Test func runPrintsTheSameTextWithAndWithoutSpeculation() throws {
    let on = try eft(["run", facts, "-e", "--prompt", question, "--speculative", "on", "-v"])
    let off = try eft(["run", facts, "-e", "--prompt", question, "--speculative", "off", "-v"])
    #expect(on.status == 0 && off.status == 0, "\(on.stderr)\(off.stderr)")
    #expect(on.stdout == off.stdout)
    #expect(on.stdout.hasPrefix("The answer is "))
    #expect(on.stderr.contains("speculative (draft ft, lookahead 4)") && on.stderr.contains("accepted"))
    #expect(!off.stderr.contains("speculative"))
    let bad = try eft(["run", facts, "-e", "--prompt", question, "--draft", "nope"])
    #expect(bad.status == 1 && bad.stderr.contains("speculative.draft 'nope' is not a node"))
  }

  /// The transformer backend decodes without allocating once warm: what `--count-allocations`
  /// counts over 100 decoded tokens is the KV cache growing by doubling (a few times, each a
  /// buffer per layer), not a buffer per token (before the scratch memory: 22 to 50 a token).
  @Test func decodingAllocatesNothingPerToken() throws {
    let r = try eft(["bench", facts, "--graph", "upscaled", "--prompt-tokens", "16", "--new-tokens", "100", "--runs", "1",
                     "--count-allocations", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    let models = try #require(object["models"] as? [[String: Any]])
    #expect(models.count == 3)
    for model in models {
      let perToken = try #require(model["decode_allocations_per_token"] as? Double, "\(model)")
      #expect(perToken < 0.5, "\(model["name"] ?? "?"): \(perToken) allocations per decoded token")
    }
    #expect(object["decode_allocations_per_token"] is Double, "the graph's are counted too")
  }

  /// `--append-tokens`: one timed append of each size per model, in JSON under `append_seconds`;
  /// a size below 1 is a usage error.
  @Test func benchTimesAppendsOfSeveralTokens() throws {
    let r = try eft(["bench", facts, "--graph", "upscaled", "--prompt-tokens", "8", "--new-tokens", "4", "--runs", "1",
                     "--append-tokens", "1,3", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    let models = try #require(object["models"] as? [[String: Any]])
    #expect(models.count == 3)
    for model in models {
      let appends = try #require(model["append_seconds"] as? [String: Double], "\(model)")
      #expect(appends.keys.sorted() == ["1", "3"])
      #expect(appends.values.allSatisfy { $0 > 0 && $0 < 10 })
    }
    let bad = try eft(["bench", facts, "--append-tokens", "1,0"])
    #expect(bad.status == 64 && bad.stderr.contains("--append-tokens: '0' is not a token count"), "\(bad.stderr)")
  }

  @Test func benchComparesPlainAndSpeculativeDecodingInJSON() throws {
    let r = try eft(["bench", facts, "--compare-speculative", "--data", "examples/facts/heldout.jsonl", "--limit", "4",
                     "--runs", "1", "--lookahead", "2", "--lookahead", "4", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    let plain = try #require(object["plain"] as? [String: Any])
    let speculative = try #require(object["speculative"] as? [String: Any])
    #expect((plain["decode_tokens_per_s"] as? Double).map { $0 > 0 } == true)
    #expect((speculative["decode_tokens_per_s"] as? Double).map { $0 > 0 } == true)
    #expect((speculative["acceptance_rate"] as? Double).map { $0 > 0 && $0 <= 1 } == true)
    #expect(speculative["identical_to_plain"] as? Bool == true)
    #expect(speculative["lookahead"] as? Int == 2)
    #expect((object["sweep"] as? [[String: Any]])?.count == 2)
  }
}

@Suite struct BackendCheckCLITests {

  @Test func shippedBackendsPass() throws {
    for (plugin, model) in [("CPUBackend", "examples/models/facts/small_base"), ("BLASBackend", "examples/models/facts/small_base"),
                            ("BigramBackend", "examples/models/tiny/small_base.bigram"), ("FixtureBrokenBackend", "good"),
                            ("FixtureABI10", "good")] {
      let r = try eft(["backend-check", library(plugin), "--model", model])
      #expect(r.status == 0, "\(plugin): \(r.stdout)\(r.stderr)")
      #expect(r.stdout.contains("all 9 checks passed"), "\(plugin)")
    }
    // The transformer and bigram backends batch bit for bit; an ABI 1.0 plugin has no batch slot.
    let cpu = try eft(["backend-check", library("CPUBackend"), "--model", "examples/models/facts/small_base"])
    #expect(cpu.stdout.contains("match separate calls bit for bit; bad batches refused whole"))
    let old = try eft(["backend-check", library("FixtureABI10"), "--model", "good"])
    #expect(old.stdout.contains("ABI 1.0 (host 1.") && old.stdout.contains("PASS  batched = separate calls: no session_append_batch"))
  }

  @Test func brokenBackendsAreReportedWithAReason() throws {
    let batch = try eft(["backend-check", library("FixtureBrokenBackend"), "--model", "batch-mismatch"])
    #expect(batch.status == 1)
    #expect(batch.stdout.contains("FAIL  one by one = all at once: 12 tokens appended one by one and at once disagree at position 0"))
    let truncate = try eft(["backend-check", library("FixtureBrokenBackend"), "--model", "truncate-keeps-state"])
    #expect(truncate.status == 1)
    #expect(truncate.stdout.contains("FAIL  truncate and re-append: after truncating to 4 and re-appending"))
    #expect(truncate.stdout.contains("PASS  one by one = all at once"))
    // Several EOS ids (ABI 1.3): shown when valid, each problem named when not.
    let eos = try eft(["backend-check", library("FixtureBrokenBackend"), "--model", "eos-list"])
    #expect(eos.status == 0 && eos.stdout.contains("PASS  describe: vocab 64, context 128, bos -1, eos 5 6,"), "\(eos.stdout)")
    let badEOS = try eft(["backend-check", library("FixtureBrokenBackend"), "--model", "eos-list-bad"])
    #expect(badEOS.status == 1 && badEOS.stdout.contains("FAIL  describe: eos_token_ids holds 99, not a token id"), "\(badEOS.stdout)")
    let crosstalk = try eft(["backend-check", library("FixtureBrokenBackend"), "--model", "batch-crosstalk"])
    #expect(crosstalk.status == 1)
    #expect(crosstalk.stdout.contains("FAIL  batched = separate calls: append 1 (1 tokens) differs from separate calls at position 0, token 0"))
    // A crash or a hang is its check's failure; the checker goes on with the next check.
    let crash = try eft(["backend-check", library("FixtureBrokenBackend"), "--model", "truncate-crashes"])
    #expect(crash.status == 1)
    #expect(crash.stdout.contains("FAIL  truncate and re-append: crashed: signal 11 (Segmentation fault) in check 'truncate and re-append': session_truncate"))
    #expect(crash.stdout.contains("PASS  bad input is refused") && crash.stdout.contains("1 of 9 checks failed"))
    let hang = try eft(["backend-check", library("FixtureBrokenBackend"), "--model", "batch-hangs", "--check-timeout", "1"])
    #expect(hang.status == 1)
    #expect(hang.stdout.contains("FAIL  batched = separate calls: hung: no answer in 1.0 s (killed)"))
    #expect(hang.stdout.contains("PASS  bad input is refused") && hang.stdout.contains("1 of 9 checks failed"))
    let major = try eft(["backend-check", library("FixtureWrongMajor")])
    #expect(major.status == 1)
    #expect(major.stdout.contains("FAIL  load:") && major.stdout.contains("ABI 2.0"))
    let missing = try eft(["backend-check", library("FixtureBrokenBackend"), "--model", "nonexistent"])
    #expect(missing.status == 1 && missing.stdout.contains("FAIL  open:"))
  }

  @Test func optionsFileIsParsedAndPassed() throws {
    let options = try scratchConfig("[type.googleapis.com/eft.v1.TransformerOptions] { threads: 1 }")
    let r = try eft(["backend-check", library("CPUBackend"), "--model", "examples/models/facts/small_base", "--options", options])
    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    let bad = try scratchConfig("[type.googleapis.com/eft.v1.NoSuchOptions] { x: 1 }")
    let refused = try eft(["backend-check", library("CPUBackend"), "--model", "examples/models/facts/small_base", "--options", bad])
    // A message eft does not know: the error says how to pass its bytes instead.
    #expect(refused.status == 1 && refused.stderr.contains("options of type eft.v1.NoSuchOptions"), "\(refused.stderr)")
    #expect(refused.stderr.contains("type_url: \"type.googleapis.com/eft.v1.NoSuchOptions\" value:"), "\(refused.stderr)")
    let garbled = try scratchConfig("[type.googleapis.com/eft.v1.TransformerOptions] { threads: }")
    let syntax = try eft(["backend-check", library("CPUBackend"), "--model", "examples/models/facts/small_base", "--options", garbled])
    #expect(syntax.status == 1 && syntax.stderr.contains("not backend options in text format"), "\(syntax.stderr)")
  }
}
