import EFTCore
import EFTPluginKit
import EFTTokenizer
import EFTTestSupport
import Foundation
import Testing

@testable import Transformer

/// Checkpoints on the Hub mostly carry configs written by transformers 4: rope_theta and
/// rope_scaling at the top level (Gemma 3: rope_local_base_freq; Phi-3: "su" or "longrope" with
/// original_max_position_embeddings beside it), no layer_types (each family's default pattern).
/// The same weights under such a config give the goldens' logits.
@Suite struct TransformersFourConfigTests {
  @Test(arguments: ["mistral_sliding", "qwen2_sliding", "gemma2", "gemma3_text", "phi3_longrope"])
  func olderConfigsGiveTheSameLogits(variant: String) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eft-v4-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: checkpoints.appendingPathComponent(variant), to: dir)
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("config.json")
    var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    let rope = json.removeValue(forKey: "rope_parameters") as? [String: Any] ?? [:]
    json.removeValue(forKey: "layer_types")
    switch variant {
    case "gemma3_text":
      // Global layers: rope_theta and rope_scaling; local ones: rope_local_base_freq. The
      // fixture's layer_types (sliding, full, sliding) is the pattern of period 2.
      let full = try #require(rope["full_attention"] as? [String: Any]), local = try #require(rope["sliding_attention"] as? [String: Any])
      json["rope_theta"] = full["rope_theta"]
      json["rope_scaling"] = ["rope_type": "linear", "factor": full["factor"] ?? 1]
      json["rope_local_base_freq"] = local["rope_theta"]
      json.removeValue(forKey: "_sliding_window_pattern")
      json["sliding_window_pattern"] = 2
    case "phi3_longrope":
      json["rope_theta"] = rope["rope_theta"]
      json["rope_scaling"] = ["type": "su", "short_factor": rope["short_factor"] ?? [], "long_factor": rope["long_factor"] ?? []]
    default:
      // Gemma 2 slides layers 0, 2 by default; Qwen2 from max_window_layers (1) on.
      json["rope_theta"] = rope["rope_theta"]
    }
    try JSONSerialization.data(withJSONObject: json).write(to: url)
    let model = try TransformerModel(path: dir.path, options: [], kernels: { SIMDKernels(threads: $0) })
    for prompt in try golden(variant) {
      let got = try allLogits(try model.makeSession(), prompt.ids, vocab: model.description.vocabSize)
      let diff = maxAbsDiff(got, prompt.logits.flatMap { $0 })
      #expect(diff <= 1e-4, "\(variant) with a transformers 4 config: max abs diff \(diff)")
    }
  }
}

/// Several EOS ids (generation_config.json's list): reported through ABI 1.3, and each ends a
/// generation.
@Suite struct EOSListTests {
  /// A config over a copy of the qwen3 checkpoint whose generation_config.json lists `eos`.
  func runtime(eos: [Int], in dir: URL) throws -> Runtime {
    let model = dir.appendingPathComponent("qwen3")
    try? FileManager.default.removeItem(at: model)
    try FileManager.default.copyItem(at: checkpoints.appendingPathComponent("qwen3"), to: model)
    let generation = try JSONSerialization.data(withJSONObject: ["bos_token_id": 1, "eos_token_id": eos])
    try generation.write(to: model.appendingPathComponent("generation_config.json"))
    let config = """
      plugins { name: "cpu" path: "\(buildDirectory)/libCPUBackend.so" }
      models { name: "m" plugin: "cpu" path: "\(model.path)" }
      graphs { name: "g" nodes { name: "a" model { model: "m" } } output: "a" sampling { temperature: 0 } }
      """
    let path = dir.appendingPathComponent("config.pbtxt")
    try config.write(to: path, atomically: true, encoding: .utf8)
    return try Runtime(configPath: path.path)
  }

  @Test func everyEOSIdEndsAGeneration() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eft-eos-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    // The fixture's list, through the C ABI.
    let plain = try runtime(eos: [2, 7, 9], in: dir)
    #expect(plain.models["m"]?.eosTokenIDs == [2, 7, 9])
    #expect(plain.graphs[0].eosTokens == [2, 7, 9])
    var request = GenerationRequest(prompt: "Tomas lives in")
    request.maxTokens = 3
    let free = try plain.generate(request)
    let first = try #require(free.tokens.first)
    #expect(![2, 7, 9].contains(first) && free.finishReason == .length)
    // The same model told that its first greedy token is a second EOS id stops before it.
    let stopping = try runtime(eos: [2, Int(first)], in: dir)
    #expect(stopping.models["m"]?.eosTokenIDs == [2, first])
    let stopped = try stopping.generate(request)
    #expect(stopped.finishReason == .eos && stopped.tokens.isEmpty)
  }
}

/// Both transformer plugins, loaded through the real host and C ABI, against the HF goldens.
@Suite struct PluginParityTests {
  /// Each plugin as the checkpoint stores its weights, and the CPU plugin with them upcast to F32
  /// at load (TransformerOptions { weights: F32 }).
  @Test(arguments: [("CPUBackend", [] as [UInt8]), ("BLASBackend", []), ("CPUBackend", [0x18, 2])])
  func logitsAndGreedyMatchTransformers(plugin name: String, options: [UInt8]) throws {
    let plugin = try Plugin(path: "\(buildDirectory)/lib\(name).so")
    for variant in variants {
      let dir = checkpoints.appendingPathComponent(variant)
      let tokenizer = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
      let model = try EFTCore.Model(name: variant, plugin: plugin, path: dir.path, options: options, tokenizer: tokenizer)
      for prompt in try golden(variant) {
        let session = try model.makeSession()
        let got = try session.append(prompt.ids, allPositions: true)
        let diff = maxAbsDiff(got, prompt.logits.flatMap { $0 })
        #expect(diff <= 1e-4, "\(name) \(variant): max abs diff \(diff)")
        var last = Array(got.suffix(model.vocabSize))
        var generated: [Int32] = []
        for _ in prompt.greedy {
          let next = try Sampler.argmax(last)
          generated.append(next)
          last = try session.append([next])
        }
        #expect(generated == prompt.greedy, "\(name) \(variant)")
      }
    }
  }

  /// Quantized weights (TransformerOptions.weights Q8_0, Q4_0): log-probs near HF's f32 ones on
  /// every golden checkpoint with both plugins, which run the same kernels for them (a 40-token
  /// prefill gives the same bits).
  @Test(arguments: [(DType.q8_0, Self.q8LogProbBound), (.q4_0, Self.q4LogProbBound)])
  func quantizedWeightsStayNearTransformers(type: DType, bound: Float) throws {
    let options: [UInt8] = [0x18, type == .q8_0 ? 1 : 3]  // TransformerOptions { weights: … }
    let plugins = try ["CPUBackend", "BLASBackend"].map { try Plugin(path: "\(buildDirectory)/lib\($0).so") }
    var worst: Float = 0
    for variant in variants {
      let dir = checkpoints.appendingPathComponent(variant)
      let tokenizer = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
      let models = try plugins.map { try EFTCore.Model(name: variant, plugin: $0, path: dir.path, options: options, tokenizer: tokenizer) }
      let vocab = models[0].vocabSize
      let prompts = try golden(variant)
      for prompt in prompts {
        let want = logSoftmax(prompt.logits.flatMap { $0 }, vocab: vocab)
        for model in models {
          let got = logSoftmax(try model.makeSession().append(prompt.ids, allPositions: true), vocab: vocab)
          let diff = maxAbsDiff(got, want)
          worst = max(worst, diff)
          #expect(diff <= bound, "\(variant) \(type): max |Δ log-prob| \(diff)")
          #expect(diff > 0, "\(variant): \(type) gave the f32 log-probs exactly (not quantized?)")
        }
      }
      let long = (0..<40).map { prompts[0].ids[$0 % prompts[0].ids.count] }
      let cpu = try models[0].makeSession().append(long, allPositions: true)
      let blas = try models[1].makeSession().append(long, allPositions: true)
      #expect(cpu == blas, "\(variant): BLAS \(type) prefill against the CPU plugin's")
    }
    print("\(type): max |Δ log-prob| against transformers over the golden checkpoints: \(worst)")
  }

  /// The BLAS plugin's prefill (sgemm from 16 rows: on the weights as stored for f32, converted
  /// a slice at a time for bf16; the SIMD kernels for f16) near the CPU plugin's on every golden
  /// checkpoint, with a prompt long enough for sgemm (the goldens' are not).
  @Test func blasPrefillMatchesTheCPUPlugin() throws {
    let plugins = try ["CPUBackend", "BLASBackend"].map { try Plugin(path: "\(buildDirectory)/lib\($0).so") }
    var worst: Float = 0
    for variant in variants {
      let dir = checkpoints.appendingPathComponent(variant)
      let tokenizer = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
      let models = try plugins.map { try EFTCore.Model(name: variant, plugin: $0, path: dir.path, options: [], tokenizer: tokenizer) }
      let ids = try golden(variant)[0].ids
      let long = (0..<40).map { ids[$0 % ids.count] }
      let cpu = try models[0].makeSession().append(long, allPositions: true)
      let blas = try models[1].makeSession().append(long, allPositions: true)
      // The same products summed in another order: measured 2.1e-6 apart at most (2026-12-08).
      let diff = maxAbsDiff(cpu, blas)
      worst = max(worst, diff)
      #expect(diff <= 1e-3, "\(variant): BLAS prefill against the CPU plugin's")
    }
    print("BLAS prefill: max |Δ logit| against the CPU plugin over the golden checkpoints: \(worst)")
  }

  /// What Q8_0 may move any log-prob (every position, every vocabulary entry) on the golden
  /// checkpoints; measured (2026-12-07) 0.071 at most
  /// (llama_bf16_sharded), 0.028 on gpt2, 0.052–0.065 on the others.
  static let q8LogProbBound: Float = 0.1
  /// The same for Q4_0 (16 levels a block against Q8_0's 255); measured 0.96 (2026-12-07).
  static let q4LogProbBound: Float = 1.5

  @Test func badInputsThroughTheABIAreErrors() throws {
    let plugin = try Plugin(path: "\(buildDirectory)/libCPUBackend.so")
    let dir = checkpoints.appendingPathComponent("llama_gqa")
    let model = try EFTCore.Model(name: "m", plugin: plugin, path: dir.path, options: [],
                                  tokenizer: try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json")))
    let session = try model.makeSession()
    #expect(throws: RuntimeError.self) { try session.append([420]) }
    #expect(throws: RuntimeError.self) { try session.append([-1]) }
    #expect(throws: RuntimeError.self) { try session.truncate(to: 1) }
    #expect(session.count == 0)
    // The context length option caps sessions.
    var options: [UInt8] = [0x10, 8]  // TransformerOptions { context_length: 8 }
    let capped = try EFTCore.Model(name: "c", plugin: plugin, path: dir.path, options: options,
                                   tokenizer: model.tokenizer)
    #expect(capped.contextLength == 8)
    let s = try capped.makeSession()
    let e = try #require(try? { () -> RuntimeError? in
      do { try s.append(Array(repeating: 5, count: 9)); return nil } catch let e as RuntimeError { return e }
    }())
    #expect(e.code == .outOfRange)
    options = [0xFF]
    #expect(throws: RuntimeError.self) {
      _ = try EFTCore.Model(name: "x", plugin: plugin, path: dir.path, options: options, tokenizer: model.tokenizer)
    }
  }
}

/// Broken checkpoints are refused with the file and the tensor named.
@Suite struct CheckpointErrorTests {
  /// A copy of the llama_gqa checkpoint in a temporary directory, changed by `edit`.
  func broken(_ checkpoint: String = "llama_gqa", _ edit: (URL) throws -> Void) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eft-ckpt-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: checkpoints.appendingPathComponent(checkpoint), to: dir)
    try edit(dir)
    var message = ""
    do {
      _ = try TransformerModel(path: dir.path, options: [], kernels: { _ in ReferenceKernels() })
    } catch let e as BackendError {
      message = e.message
    }
    try? FileManager.default.removeItem(at: dir)
    return message
  }

  func editConfig(_ dir: URL, _ change: (inout [String: Any]) -> Void) throws {
    let url = dir.appendingPathComponent("config.json")
    var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    change(&json)
    try JSONSerialization.data(withJSONObject: json).write(to: url)
  }

  @Test func truncatedFileNamesTheTensorThatRunsPastTheEnd() throws {
    let message = try broken { dir in
      let url = dir.appendingPathComponent("model.safetensors")
      let data = try Data(contentsOf: url)
      try data.prefix(data.count - 1000).write(to: url)
    }
    #expect(message.contains("model.safetensors"))
    #expect(message.contains("tensor '"))
    #expect(message.contains("cut short"))
  }

  @Test func headerThatLiesAboutItsLength() throws {
    let message = try broken { dir in
      let url = dir.appendingPathComponent("model.safetensors")
      var data = try Data(contentsOf: url)
      data.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
      try data.write(to: url)
    }
    #expect(message.contains("header claims"))
  }

  /// A header length that does not fit in Int (≥ 2⁶³) is refused, not a trap.
  @Test func headerLengthBeyondInt() throws {
    let message = try broken { dir in
      let url = dir.appendingPathComponent("model.safetensors")
      var data = try Data(contentsOf: url)
      data.replaceSubrange(0..<8, with: withUnsafeBytes(of: (UInt64(1) << 63 | 5).littleEndian) { Data($0) })
      try data.write(to: url)
    }
    #expect(message.contains("header claims 9223372036854775813 bytes"), "\(message)")
  }

  /// Every value of config.json that the forward pass would divide by, allocate from or loop
  /// over is checked before use; each bad one is an error naming the file and the field (the
  /// process goes on: these run in the test process).
  @Test(arguments: [
    ("llama_gqa", "num_attention_heads", "0", "'num_attention_heads' is 0; it must be in 1...16777216"),
    ("llama_gqa", "num_attention_heads", "-4", "'num_attention_heads' is -4"),
    ("llama_gqa", "num_key_value_heads", "0", "'num_key_value_heads' is 0"),
    ("llama_gqa", "num_key_value_heads", "3", "does not divide num_attention_heads"),
    ("llama_gqa", "num_hidden_layers", "-1", "'num_hidden_layers' is -1"),
    ("llama_gqa", "head_dim", "-16", "'head_dim' is -16"),
    ("llama_gqa", "head_dim", "15", "'head_dim' is 15; rotary embeddings need an even head size"),
    ("llama_gqa", "hidden_size", "1099511627776", "'hidden_size' is 1099511627776; it must be in 1...16777216"),
    ("llama_gqa", "hidden_size", "\"64\"", "'hidden_size': expected Int"),
    ("llama_gqa", "vocab_size", "null", "'vocab_size' is missing"),
    ("llama_gqa", "rms_norm_eps", "-1", "'rms_norm_eps' is -1.0"),
    ("llama_gqa", "rope_parameters", #"{"rope_type": "default", "rope_theta": 0}"#, "'rope_theta' is 0.0"),
    ("llama_gqa", "rope_parameters", #"{"rope_type": "linear", "factor": -2, "rope_theta": 10000}"#, "'rope_parameters.factor' is -2.0"),
    ("llama_gqa", "hidden_act", "\"gelu\"", "'hidden_act' is 'gelu'; supported: silu"),
    ("llama_gqa", "partial_rotary_factor", "0.5", "'partial_rotary_factor' is 0.5; model_type llama rotates whole heads"),
    ("llama_gqa", "rope_parameters", #"{"rope_type": "yarn", "factor": 4, "rope_theta": 10000}"#, "rope type 'yarn' is not supported"),
    ("mistral_sliding", "sliding_window", "0", "'sliding_window' is 0"),
    ("qwen2_sliding", "layer_types", #"["full_attention", "sliding_attention"]"#, "'layer_types' has 2 entries for 3 layers"),
    ("qwen2_sliding", "layer_types", #"["chunked_attention", "full_attention", "full_attention"]"#, "'layer_types[0]' is 'chunked_attention'"),
    ("gemma2", "use_bidirectional_attention", "true", "'use_bidirectional_attention' is true; only causal attention is supported"),
    ("gemma2", "hidden_activation", "\"gelu\"", "'hidden_activation' is 'gelu'; supported: gelu_pytorch_tanh"),
    ("gemma2", "query_pre_attn_scalar", "-1", "'query_pre_attn_scalar' is -1.0"),
    ("gemma2", "attn_logit_softcapping", "\"50\"", "'attn_logit_softcapping' is not a number"),
    ("gemma3_text", "rope_parameters", #"{"chunked_attention": {"rope_type": "default"}}"#, "'rope_parameters.chunked_attention': unknown layer type"),
    ("phi3", "rope_parameters", #"{"rope_type": "default", "rope_theta": 10000, "partial_rotary_factor": 0.1}"#, "'partial_rotary_factor' is 0.1, which rotates 1 of 16 dimensions"),
    ("phi3_longrope", "rope_parameters", #"{"rope_type": "longrope", "short_factor": [1, 1], "long_factor": [1, 1], "original_max_position_embeddings": 8}"#,
     "'rope_parameters.short_factor' has 2 entries; it needs 8 positive numbers"),
    ("gpt2", "n_head", "0", "'n_head' is 0"),
    ("gpt2", "n_embd", "4611686018427387904", "'n_embd' is 4611686018427387904"),
    ("gpt2", "n_layer", "-2", "'n_layer' is -2"),
  ])
  func badConfigValuesAreNamed(checkpoint: String, field: String, json: String, expected: String) throws {
    let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
    let message = try broken(checkpoint) { try editConfig($0) { $0[field] = value } }
    #expect(message.contains("config.json: "), "\(message)")
    #expect(message.contains(expected), "\(field) = \(json): \(message)")
  }

  @Test func headerWithAnImpossibleShapeIsRefusedNotATrap() throws {
    let message = try broken { dir in
      let url = dir.appendingPathComponent("model.safetensors")
      let header = #"{"x": {"dtype": "F32", "shape": [4611686018427387904, 8], "data_offsets": [0, 0]}}"#
      var data = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Data($0) }
      data.append(Data(header.utf8))
      try data.write(to: url)
    }
    #expect(message.contains("impossible shape"), "\(message)")
  }

  @Test func missingTensorAndWrongShapeAreNamed() throws {
    let missing = try broken { try editConfig($0) { $0["num_hidden_layers"] = 3 } }
    #expect(missing.contains("missing tensor 'model.layers.2.input_layernorm.weight'"), "\(missing)")
    let shape = try broken { try editConfig($0) { $0["intermediate_size"] = 100 } }
    #expect(shape.contains("mlp.gate_proj.weight"), "\(shape)")
    #expect(shape.contains("[160, 64]") && shape.contains("[100, 64]"), "\(shape)")
  }

  @Test func unsupportedArchitectureAndRopeAreUnimplemented() throws {
    let arch = try broken { try editConfig($0) { $0["model_type"] = "mamba" } }
    #expect(arch.contains("model_type 'mamba' is not supported"))
    // transformers ≥ 5 writes rope_parameters; older checkpoints rope_theta + rope_scaling.
    let rope = try broken { try editConfig($0) { $0["rope_parameters"] = ["rope_type": "yarn", "factor": 2, "rope_theta": 10000] } }
    #expect(rope.contains("'yarn'"))
    let oldStyle = try broken {
      try editConfig($0) {
        $0["rope_parameters"] = nil
        $0["rope_theta"] = 10000
        $0["rope_scaling"] = ["type": "dynamic", "factor": 2]
      }
    }
    #expect(oldStyle.contains("'dynamic'"))
  }

  @Test func notADirectoryOrNoWeights() throws {
    #expect(try broken { try FileManager.default.removeItem(at: $0.appendingPathComponent("model.safetensors")) }
      .contains("neither model.safetensors"))
    #expect(throws: BackendError.self) { _ = try Checkpoint(directory: "/nonexistent") }
  }

  @Test func shardIndexListingATensorItsShardLacks() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eft-ckpt-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: checkpoints.appendingPathComponent("llama_bf16_sharded"), to: dir)
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("model.safetensors.index.json")
    var index = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    var map = index["weight_map"] as! [String: String]
    map["model.layers.9.extra.weight"] = "model-00001-of-00002.safetensors"
    index["weight_map"] = map
    try JSONSerialization.data(withJSONObject: index).write(to: url)
    let e = try #require(try? { () -> BackendError? in
      do { _ = try Checkpoint(directory: dir.path); return nil } catch let e as BackendError { return e }
    }())
    #expect(e.message.contains("model.layers.9.extra.weight"))
  }
}

/// Row-wise log-softmax of logits [n × vocab].
func logSoftmax(_ logits: [Float], vocab: Int) -> [Float] {
  var out = logits
  for start in stride(from: 0, to: logits.count, by: vocab) {
    let row = logits[start..<(start + vocab)]
    let m = row.max()!
    let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
    for i in start..<(start + vocab) { out[i] = logits[i] - lse }
  }
  return out
}
