import Foundation
import Testing

@testable import EFTCore

let upscaleGraph = """
  graphs {
    name: "upscale"
    parameters { name: "beta" default_value: 1 }
    nodes { name: "large" model { model: "large_base" } }
    nodes { name: "ft"    model { model: "small_ft" } }
    nodes { name: "base"  model { model: "small_base" } }
    nodes { name: "eft"   linear { terms { input: "large" } terms { input: "ft" expr: "beta" } terms { input: "base" expr: "-beta" } } }
    output: "eft"
  }

  """

@Suite struct ConfigFileTests {
  @Test func typoNamesFileLineAndField() throws {
    let text = """
      plugins { name: "bigram" }
      graphs {
        name: "g"
        nodes { name: "a" model { model: "m" } }
        outptu: "a"
      }
      """
    let e = try #require(runtimeError { _ = try ConfigFile(text: text, path: "conf/x.pbtxt") })
    #expect(e.message.hasPrefix("conf/x.pbtxt:5: unknown field 'outptu'"), "\(e.message)")
    #expect(e.domain == .config)
  }

  @Test func syntaxErrorsAndTypeErrorsNameTheLine() throws {
    let cases: [(String, Int)] = [
      ("graphs {\n  name: \"g\"\n  nodes { name: \"a\" model { model: \"m\" }\n  output: \"a\"\n", 4),  // unclosed
      ("graphs {\n  name: g\n}\n", 2),  // string without quotes
      ("graphs {\n  name: \"g\"\n  nodes { name: \"a\" top_k { k: \"three\" } }\n}\n", 3),
      ("graphs {\n  name: \"g\"\n  nodes {\n    name: \"a\"\n    model { model: \"m\" }\n    linear { }\n  }\n}\n", 6),  // two operators
    ]
    for (text, line) in cases {
      let e = try #require(runtimeError { _ = try ConfigFile(text: text, path: "c.pbtxt") })
      #expect(e.message.hasPrefix("c.pbtxt:\(line):"), "\(e.message)")
    }
  }

  @Test func optionsParseAsTypedAny() throws {
    let text = """
      models { name: "m" plugin: "p" path: "x"
        options { [type.googleapis.com/eft.v1.BigramOptions] { smoothing: 0.5 } }
      }
      """
    let file = try ConfigFile(text: text, path: "c.pbtxt")
    #expect(!file.config.models[0].options.value.isEmpty)
  }

  @Test func pathsResolveAgainstTheConfigDirectory() throws {
    let file = try ConfigFile(text: "", path: "/a/b/c.pbtxt")
    #expect(file.resolve("../m/x.bigram") == "/a/m/x.bigram")
    #expect(file.resolve("/abs") == "/abs")
  }

  @Test func everyExampleConfigLoadsAndValidates() throws {
    let dir = repoRoot.appendingPathComponent("examples/configs")
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".pbtxt") }.sorted()
    #expect(files.count >= 6)
    // The configs that load the C backend need `make -C examples/c-backend` (CI runs it before
    // the tests; `swift test` alone does not build C with the system compiler).
    let cBackendBuilt = FileManager.default.fileExists(atPath: repoRoot.appendingPathComponent("examples/c-backend/build/libNGramBackend.so").path)
    for file in files {
      let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
      if text.contains("c-backend/build/"), !cBackendBuilt { continue }
      let runtime = try Runtime(configPath: dir.appendingPathComponent(file).path, pluginDirectories: [buildDirectory])
      #expect(!runtime.graphs.isEmpty, "\(file)")
      #expect(runtime.defaultGraph != nil, "\(file) has no default graph")
    }
  }
}

@Suite struct GraphValidationTests {
  func error(_ graphs: String, models: [(String, String)]? = nil) -> RuntimeError? {
    runtimeError { _ = try runtime(models.map { tinyConfig(models: $0, graphs: graphs) } ?? tinyConfig(graphs: graphs)) }
  }

  @Test func compilesInTopologicalOrderAndSharesSessions() throws {
    let r = try runtime(tinyConfig(graphs: """
      graphs {
        name: "g"
        nodes { name: "out" normalize { input: "mix" } }
        nodes { name: "mix" linear { terms { input: "a" } terms { input: "b" weight: 0.5 } } }
        nodes { name: "a" model { model: "large_base" } }
        nodes { name: "b" model { model: "large_base" } }
        output: "out"
      }
      """))
    let g = try r.graph(named: nil)
    #expect(g.nodeNames.firstIndex(of: "mix")! > g.nodeNames.firstIndex(of: "a")!)
    #expect(g.nodeNames.last == "out")
    #expect(g.sessions.count == 1)  // same model, same template: one session
  }

  /// Whole-number weights beyond Int's range are described, not trapped on.
  @Test func hugeWeightsAreDescribed() throws {
    let r = try runtime(tinyConfig(graphs: """
      graphs {
        name: "g"
        nodes { name: "mix" linear { terms { input: "a" weight: 1e20 } terms { input: "a" weight: -3 } } }
        nodes { name: "a" model { model: "large_base" } }
        output: "mix"
      }
      """))
    let g = try r.graph(named: nil)
    let description = g.describeNode(g.nodeNames.firstIndex(of: "mix")!)
    #expect(description.contains("1e+20") && description.contains("-3"), "\(description)")
  }

  @Test func unknownNodeIsNamedWithLine() throws {
    let e = try #require(error("""
      graphs {
        name: "g"
        nodes { name: "a" model { model: "large_base" } }
        nodes { name: "b" normalize { input: "aa" } }
        output: "b"
      }
      """))
    #expect(e.message.contains("node 'b'"))
    #expect(e.message.contains("'aa' is not a node"))
    #expect(e.message.contains("config.pbtxt:8:"), "\(e.message)")  // 4 config lines precede the graph
  }

  @Test func cycleNamesItsNodes() throws {
    let e = try #require(error("""
      graphs {
        name: "g"
        nodes { name: "m" model { model: "large_base" } }
        nodes { name: "x" linear { terms { input: "m" } terms { input: "z" } } }
        nodes { name: "y" temperature { input: "x" temperature: 2 } }
        nodes { name: "z" normalize { input: "y" } }
        output: "z"
      }
      """))
    #expect(e.message.contains("cycle"))
    #expect(e.message.contains("x → y → z → x") || e.message.contains("y → z → x → y") || e.message.contains("z → x → y → z"), "\(e.message)")
  }

  @Test func badArgumentsAreRefused() throws {
    let cases: [(String, String)] = [
      ("nodes { name: \"m\" model { model: \"nope\" } } output: \"m\"", "model 'nope' is not declared"),
      ("nodes { name: \"m\" model { model: \"large_base\" } } output: \"q\"", "output 'q'"),
      ("nodes { name: \"m\" model { model: \"large_base\" } } nodes { name: \"t\" top_k { input: \"m\" k: 0 } } output: \"t\"", "k must be"),
      ("nodes { name: \"m\" model { model: \"large_base\" } } nodes { name: \"t\" temperature { input: \"m\" } } output: \"t\"", "temperature must be in (0, 10000], got 0.0"),
      ("nodes { name: \"m\" model { model: \"large_base\" } } nodes { name: \"t\" temperature { input: \"m\" temperature: 1e39 } } output: \"t\"", "got 1e+39"),
      ("nodes { name: \"m\" model { model: \"large_base\" } } nodes { name: \"l\" linear { terms { input: \"m\" expr: \"gamma\" } } } output: \"l\"", "'gamma', which is not a parameter"),
      ("nodes { name: \"m\" model { model: \"large_base\" } } nodes { name: \"l\" linear { terms { input: \"m\" expr: \"1 +\" } } } output: \"l\"", "expr \"1 +\""),
      ("nodes { name: \"m\" model { model: \"large_base\" } } nodes { name: \"m\" normalize { input: \"m\" } } output: \"m\"", "used by two nodes"),
      ("nodes { name: \"m\" } output: \"m\"", "no operator set"),
      ("nodes { name: \"n\" normalize { input: \"n\" } } output: \"n\"", "cycle"),
    ]
    for (body, expected) in cases {
      let e = try #require(error("graphs { name: \"g\" \(body) }"), "\(expected)")
      #expect(e.message.contains(expected), "\(e.message)")
      #expect(e.domain == .graph)
    }
  }

  @Test func vocabularyMismatchIsRefusedWithBothSizes() throws {
    // A second tokenizer: the tiny one plus an added token (different fingerprint, 421 tokens).
    let dir = try TemporaryDirectory()
    var json = try JSONSerialization.jsonObject(with: Data(contentsOf: tinyModels.appendingPathComponent("tokenizer.json"))) as! [String: Any]
    var added = json["added_tokens"] as! [[String: Any]]
    added.append(["id": 420, "content": "<extra>", "special": true])
    json["added_tokens"] = added
    try dir.write("other/tokenizer.json", String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self))
    var bigram = try String(contentsOfFile: tinyModels.path + "/large_base.bigram", encoding: .utf8)
    bigram = bigram.replacingOccurrences(of: "vocab 420", with: "vocab 421")
    try dir.write("other/m.bigram", bigram)
    let text = tinyConfig(graphs: """
      models { name: "other" plugin: "bigram" path: "other/m.bigram" }
      graphs {
        name: "g"
        nodes { name: "a" model { model: "large_base" } }
        nodes { name: "b" model { model: "other" } }
        nodes { name: "s" linear { terms { input: "a" } terms { input: "b" } } }
        output: "s"
      }
      """)
    let e = try #require(runtimeError { _ = try runtime(text, in: dir) })
    #expect(e.message.contains("vocabulary mismatch"))
    #expect(e.message.contains("420"))
    #expect(e.message.contains("421"))
    #expect(e.message.contains("'large_base'") && e.message.contains("'other'"))
  }

  @Test func headSmallerThanTheTokenizerIsRefusedAndAPaddedHeadIsMasked() throws {
    let dir = try TemporaryDirectory()
    let original = try String(contentsOfFile: tinyModels.path + "/large_base.bigram", encoding: .utf8)
    try dir.write("small/m.bigram", original.replacingOccurrences(of: "vocab 420", with: "vocab 400")
      .components(separatedBy: "\n").filter { line in
        let f = line.split(separator: " ").compactMap { Int($0) }
        return f.count != 3 || (f[0] < 400 && f[1] < 400)
      }.joined(separator: "\n"))
    try dir.write("padded/m.bigram", original.replacingOccurrences(of: "vocab 420", with: "vocab 448"))
    let tokenizer = tinyModels.path + "/tokenizer.json"
    func config(_ sub: String) -> String {
      tinyConfig(models: [], graphs: """
        models { name: "m" plugin: "bigram" path: "\(sub)/m.bigram" tokenizer: "\(tokenizer)" }
        graphs { name: "g" nodes { name: "a" model { model: "m" } } output: "a" }
        """)
    }
    let e = try #require(runtimeError { _ = try runtime(config("small"), in: dir) })
    #expect(e.message.contains("400 output rows"))
    #expect(e.message.contains("420 tokens"))

    let padded = try runtime(config("padded"), in: dir)
    let g = try padded.graph(named: nil)
    #expect(g.vocabSize == 420)
    let score = try padded.score(graph: nil, prompt: "Tomas", continuation: " lives")
    #expect(score.logProbs.allSatisfy { $0.isFinite && $0 < 0 })
  }

  @Test func configErrorsNameTheirPlace() throws {
    let cases: [(String, String)] = [
      ("models { name: \"x\" plugin: \"nope\" path: \"m\" }\n" + upscaleGraph, "plugin 'nope' is not declared"),
      ("default_graph: \"zzz\"\n" + upscaleGraph, "default_graph 'zzz'"),
      ("", "declares no graph"),
    ]
    for (extra, expected) in cases {
      let e = try #require(runtimeError { _ = try runtime(tinyConfig(graphs: extra)) }, "\(expected)")
      #expect(e.message.contains(expected), "\(e.message)")
    }
    let missingModel = try #require(runtimeError {
      _ = try runtime(tinyConfig(models: [("m", "does_not_exist")], graphs: upscaleGraph))
    })
    #expect(missingModel.message.contains("does_not_exist.bigram does not exist"), "\(missingModel.message)")
    #expect(missingModel.message.contains("config.pbtxt:2:"), "\(missingModel.message)")
  }
}

/// A graph's chat format (config `chat`): messages become the prompt; mistakes are refused.
@Suite struct ChatFormatTests {
  @Test func messagesBecomeThePromptByTheirRolesTemplates() throws {
    let r = try runtime(tinyConfig(graphs: """
      graphs {
        name: "g" nodes { name: "a" model { model: "large_base" } } output: "a"
        chat { system: "[S]{content}\\n" user: "[U]{content}\\n" assistant: "[A]{content}\\n" generation_prompt: "[A]" }
      }
      graphs { name: "plain" nodes { name: "a" model { model: "large_base" } } output: "a" }
      """))
    let chat = try #require(try r.graph(named: "g").chat)
    let prompt = try chat.prompt([("system", "Be brief."), ("user", "Hi {content}"), ("assistant", "Hello."), ("user", "Where?")], graph: "g")
    #expect(prompt == "[S]Be brief.\n[U]Hi {content}\n[A]Hello.\n[U]Where?\n[A]")
    #expect(try r.graph(named: "plain").chat == nil)
    #expect(runtimeError { _ = try chat.prompt([("tool", "x")], graph: "g") }?.message.contains("no chat template for role 'tool'") == true)
    #expect(runtimeError { _ = try chat.prompt([], graph: "g") }?.message == "messages is empty")
  }

  @Test func aTemplateWithoutContentIsRefused() throws {
    let error = runtimeError { _ = try runtime(tinyConfig(graphs: """
      graphs { name: "g" nodes { name: "a" model { model: "large_base" } } output: "a" chat { user: "<|user|>" } }
      """)) }
    #expect(error?.message.contains("graph 'g': chat.user is \"<|user|>\", which has no {content}") == true, "\(String(describing: error))")
  }
}
