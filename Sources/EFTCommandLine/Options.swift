import ArgumentParser
import EFTAPI

// Option groups shared by `eft` and `eft-client`: the two take the same arguments for the same
// request because they parse them with the same code.

/// The config a command loads: `eft`'s commands and `eft-server`'s.
public struct ConfigOptions: ParsableArguments {
  public init() {}

  @Argument(help: "The config file (.pbtxt).")
  public var config: String

  @Option(name: .customLong("plugin-dir"), help: "A directory to search for plugins (repeatable; searched before the config's plugin_dirs and the executable's directory).")
  public var pluginDirs: [String] = []
}

/// Graph selection and parameter overrides.
public struct GraphOptions: ParsableArguments {
  public init() {}

  @Option(help: "The graph to use (default: the config's default graph, or its only graph).")
  public var graph: String?

  @Option(name: .customLong("set"), help: ArgumentHelp("Override a graph parameter, e.g. --set beta=0.5 (repeatable).", valueName: "name=value"))
  public var assignments: [String] = []

  public func parameters() throws -> [String: Double] { try parseAssignments(assignments) }
}

/// Speculative decoding overrides.
public struct SpeculationOptions: ParsableArguments {
  public init() {}

  public enum Switch: String, ExpressibleByArgument, CaseIterable { case on, off }

  @Option(help: "Speculative decoding on or off (default: the graph's speculative section).")
  public var speculative: Switch?

  @Option(help: "Draft from this node of the graph (turns speculation on unless --speculative off).")
  public var draft: String?

  @Option(help: "Tokens drafted per step (0 turns speculation off).")
  public var lookahead: Int?

  @Flag(inversion: .prefixedNo, help: "Adapt the lookahead to the acceptance (default: the graph's).")
  public var adaptiveLookahead: Bool?

  public func apply(to request: inout GenerationRequest) {
    request.speculative = speculative.map { $0 == .on }
    request.draft = draft
    request.lookahead = lookahead
    request.adaptiveLookahead = adaptiveLookahead
  }
}

/// What to generate and how to sample: `eft run` and `eft-client generate`.
public struct GenerationOptions: ParsableArguments {
  public init() {}

  @Option(help: "The prompt text.")
  public var prompt: String

  @Flag(name: [.customShort("e"), .customLong("escape")], help: "Process escapes in the prompt: \\n, \\t, \\\\ (as llama.cpp's -e), to type chat formats on one line.")
  public var escape = false

  @Option(help: "Maximum tokens to generate (default: the graph's, else 256).")
  public var maxTokens: Int?

  @Option(help: "Random seed; the same seed reproduces a run.")
  public var seed: UInt64?

  @Option(help: "Sampling temperature; 0 is greedy.")
  public var temperature: Double?

  @Option(help: "Top-k sampling (0 = off).")
  public var topK: Int?

  @Option(help: "Top-p (nucleus) sampling (0 or 1 = off).")
  public var topP: Double?

  @Option(help: "Min-p sampling (0 = off).")
  public var minP: Double?

  @Option(help: "Stop when the text contains this string (repeatable).")
  public var stop: [String] = []

  @Flag(help: "Go on past end-of-sequence tokens (until --max-tokens, a stop string or the context), as llama.cpp's --ignore-eos.")
  public var ignoreEos = false

  /// The request these options, the graph options and the speculation options describe.
  public func request(_ graph: GraphOptions, _ speculation: SpeculationOptions) throws -> GenerationRequest {
    var request = GenerationRequest(graph: graph.graph, prompt: escape ? unescape(prompt) : prompt)
    request.parameters = try graph.parameters()
    request.maxTokens = maxTokens
    request.seed = seed
    request.temperature = temperature
    request.topK = topK
    request.topP = topP
    request.minP = minP
    if !stop.isEmpty { request.stop = stop }
    if ignoreEos { request.stopAtEOS = false }
    speculation.apply(to: &request)
    return request
  }
}

/// What to score: `eft score` and `eft-client score`.
public struct ScoreOptions: ParsableArguments {
  public init() {}

  @Option(help: "The prompt (context).")
  public var prompt: String

  @Option(help: "The continuation to score (tokenized on its own, without special tokens).")
  public var continuation: String

  @Flag(name: [.customShort("e"), .customLong("escape")], help: "Process escapes in the prompt and the continuation: \\n, \\t, \\\\ (as `run -e`).")
  public var escape = false

  @Flag(help: "Print JSON: {\"tokens\": [ids], \"logprobs\": [...], \"total\": x} (a masked token's log-prob is null).")
  public var json = false

  /// The prompt and continuation to score, escapes processed with `-e`.
  public var texts: (prompt: String, continuation: String) {
    escape ? (unescape(prompt), unescape(continuation)) : (prompt, continuation)
  }
}

/// What `eft run` and `eft-client generate` print besides the text.
public struct ReportOptions: ParsableArguments {
  public init() {}

  @Flag(name: .shortAndLong, help: "Print statistics (tokens, speed, finish reason) to stderr.")
  public var verbose = false

  @Flag(help: "Print, per generated token, its id, text, log-prob and every node's value at it to stderr.")
  public var trace = false
}
