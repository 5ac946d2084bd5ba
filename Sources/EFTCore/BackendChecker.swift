import CEFTBackend

/// The conformance checks `eft backend-check` runs against a backend plugin: through the real
/// host loader, then straight at the C table, so that a backend author learns which promise of
/// eft_backend.h is broken and where.
public struct BackendChecker {
  public struct Check: Sendable, Codable {
    public let name: String
    public let passed: Bool
    public let detail: String
    public init(name: String, passed: Bool, detail: String) {
      self.name = name
      self.passed = passed
      self.detail = detail
    }
  }

  public let pluginPath: String
  public let modelPath: String?
  public let options: [UInt8]
  /// Largest tolerated |a − b| / max(1, |a|) between logits that must agree.
  public var tolerance: Float = 1e-4

  public init(pluginPath: String, modelPath: String?, options: [UInt8] = []) {
    self.pluginPath = pluginPath
    self.modelPath = modelPath
    self.options = options
  }

  /// The checks, in the order they run. Each needs the ones before it up to "describe", and the
  /// reference logits of "one by one = all at once".
  public static let checkNames = ["load", "open", "describe", "one by one = all at once", "truncate and re-append",
                                  "sessions independent", "batched = separate calls", "a deadline changes no result",
                                  "bad input is refused"]
  /// The checks without which the others mean nothing: a failure of one stops the run.
  public static let prerequisites: Set<String> = ["load", "open", "describe", "one by one = all at once"]

  /// Runs every check, in order; a failure that makes the rest meaningless stops the run. With
  /// `only`, runs what that check needs and reports that check alone (`eft backend-check` runs
  /// each check so, in a process of its own).
  public func run(only: String? = nil) -> [Check] {
    var checks: [Check] = []
    var finished = false  // `only` has its result
    func record(_ name: String, _ passed: Bool, _ detail: String) {
      if let only, name != only {
        if !passed {  // a check it needs failed (it passed in its own process)
          checks.append(Check(name: only, passed: false, detail: "'\(name)' failed before it: \(detail)"))
          finished = true
        }
        return
      }
      checks.append(Check(name: name, passed: passed, detail: detail))
      finished = only != nil
    }

    let plugin: Plugin
    do {
      plugin = try Plugin(path: pluginPath)
      record("load", true, "'\(plugin.name)' \(plugin.version), ABI \(plugin.abiMajor).\(plugin.abiMinor) (host \(EFT_ABI_VERSION_MAJOR).\(EFT_ABI_VERSION_MINOR)), every required slot set")
    } catch {
      record("load", false, "\(error)")
      return checks
    }
    guard let modelPath, !finished else { return checks }
    let t = plugin.table.pointee

    // Open and describe.
    var model: OpaquePointer?
    var error: OpaquePointer?
    let opened = options.withUnsafeBufferPointer { t.model_open(modelPath, $0.count == 0 ? nil : $0.baseAddress, $0.count, &model, &error) }
    guard opened == EFT_OK, let model else {
      record("open", false, plugin.error(opened, error, "model_open(\(modelPath))").message)
      return checks
    }
    defer { t.model_free(model) }
    record("open", true, modelPath)
    if finished { return checks }

    var info = eft_model_info()
    info.struct_size = MemoryLayout<eft_model_info>.size
    let described = t.model_describe(model, &info, &error)
    guard described == EFT_OK else {
      record("describe", false, plugin.error(described, error, "model_describe").message)
      return checks
    }
    let vocab = Int(info.vocab_size), context = Int(info.context_length)
    var problems: [String] = []
    if vocab <= 0 { problems.append("vocab_size \(vocab) ≤ 0") }
    if context <= 1 { problems.append("context_length \(context) ≤ 1") }
    for (field, id) in [("bos_token_id", info.bos_token_id), ("eos_token_id", info.eos_token_id)] where id < -1 || id >= info.vocab_size {
      problems.append("\(field) \(id) is neither -1 nor a token id")
    }
    var eosList: [Int32] = []
    if info.n_eos_token_ids > 0 {
      if let ids = info.eos_token_ids, info.n_eos_token_ids <= vocab {
        eosList = Array(UnsafeBufferPointer(start: ids, count: info.n_eos_token_ids))
        if let bad = eosList.first(where: { $0 < 0 || $0 >= info.vocab_size }) { problems.append("eos_token_ids holds \(bad), not a token id") }
        if eosList.first != info.eos_token_id { problems.append("eos_token_id \(info.eos_token_id) is not the first of eos_token_ids \(eosList)") }
        if Set(eosList).count != eosList.count { problems.append("eos_token_ids \(eosList) repeats an id") }
      } else {
        problems.append("n_eos_token_ids is \(info.n_eos_token_ids) with eos_token_ids \(info.eos_token_ids == nil ? "NULL" : "longer than the vocabulary")")
      }
    }
    if info.architecture == nil { problems.append("architecture is NULL") }
    if info.tokenizer_fingerprint == nil { problems.append("tokenizer_fingerprint is NULL (use \"\")") }
    let architecture = info.architecture.map { String(cString: $0) } ?? "?"
    record("describe", problems.isEmpty, problems.isEmpty
           ? "vocab \(vocab), context \(context), bos \(info.bos_token_id), eos \(eosList.count > 1 ? eosList.map(String.init).joined(separator: " ") : "\(info.eos_token_id)"), architecture \(architecture), "
             + (info.session_bytes_per_token > 0 ? "\(info.session_bytes_per_token) bytes per session token" : "session bytes per token unknown (ABI < 1.2 or 0)")
           : problems.joined(separator: "; "))
    guard problems.isEmpty, !finished else { return checks }

    // Raw session helpers: every failure becomes a message instead of a crash of the checker.
    final class RawSession {
      let t: eft_backend
      let handle: OpaquePointer
      init(_ t: eft_backend, _ handle: OpaquePointer) { self.t = t; self.handle = handle }
      deinit { t.session_free(handle) }
      var length: Int { t.session_length(handle) }
    }
    func newSession() throws -> RawSession {
      var s: OpaquePointer?
      let status = t.session_new(model, &s, &error)
      guard status == EFT_OK, let s else { throw plugin.error(status, error, "session_new") }
      return RawSession(t, s)
    }
    func append(_ s: RawSession, _ tokens: [Int32], _ mode: eft_logits_mode) throws -> [[Float]] {
      let rows = mode == EFT_LOGITS_ALL ? tokens.count : mode == EFT_LOGITS_LAST ? 1 : 0
      var logits = [Float](repeating: .nan, count: max(1, rows * vocab))
      let status = tokens.withUnsafeBufferPointer { tk in
        logits.withUnsafeMutableBufferPointer { t.session_append(s.handle, tk.baseAddress, tk.count, mode, $0.baseAddress, &error) }
      }
      guard status == EFT_OK else { throw plugin.error(status, error, "session_append(\(tokens.count) tokens)") }
      return (0..<rows).map { Array(logits[($0 * vocab)..<(($0 + 1) * vocab)]) }
    }
    func truncate(_ s: RawSession, _ n: Int) throws {
      let status = t.session_truncate(s.handle, n, &error)
      guard status == EFT_OK else { throw plugin.error(status, error, "session_truncate(\(n))") }
    }
    /// nil when the rows agree; else where and by how much they differ first.
    func difference(_ a: [[Float]], _ b: [[Float]]) -> String? {
      guard a.count == b.count else { return "\(a.count) rows against \(b.count)" }
      for (p, (x, y)) in zip(a, b).enumerated() {
        for i in 0..<vocab {
          if x[i].isNaN || y[i].isNaN || x[i] == .infinity || y[i] == .infinity { return "position \(p), token \(i): non-finite logit (\(x[i]), \(y[i]))" }
          if x[i] == y[i] { continue }
          let d = abs(x[i] - y[i]) / max(1, abs(x[i]))
          if !(d <= tolerance) { return "position \(p), token \(i): \(x[i]) against \(y[i])" }
        }
      }
      return nil
    }
    func check(_ name: String, _ body: () throws -> String) {
      if let only, name != only, !Self.prerequisites.contains(name) { return }
      do { record(name, true, try body()) } catch let e as RuntimeError { record(name, false, e.message) } catch { record(name, false, "\(error)") }
    }
    struct Mismatch: Error, CustomStringConvertible { let description: String }

    // Deterministic token sequences.
    var rng = SeededGenerator(seed: 7)
    let length = min(12, context - 1)
    func sequence() -> [Int32] { (0..<length).map { _ in Int32(rng.next() % UInt64(vocab)) } }
    let tokens = sequence(), other = sequence()

    var reference: [[Float]] = []  // after each token of `tokens`, appended one by one
    check("one by one = all at once") {
      let a = try newSession()
      reference = try tokens.flatMap { try append(a, [$0], EFT_LOGITS_LAST) }
      let b = try newSession()
      let all = try append(b, tokens, EFT_LOGITS_ALL)
      if let d = difference(reference, all) { throw Mismatch(description: "\(tokens.count) tokens appended one by one and at once disagree at \(d)") }
      let c = try newSession()
      _ = try append(c, Array(tokens.prefix(length / 2)), EFT_LOGITS_NONE)
      let last = try append(c, Array(tokens.dropFirst(length / 2)), EFT_LOGITS_LAST)
      if let d = difference([reference[length - 1]], last) { throw Mismatch(description: "NONE then LAST disagrees with one by one: \(d)") }
      guard a.length == length, b.length == length, c.length == length else {
        throw Mismatch(description: "session_length says \(a.length)/\(b.length)/\(c.length) after \(length) tokens")
      }
      return "\(length) tokens: LAST per token, ALL, NONE+LAST agree within \(tolerance); lengths right"
    }
    guard reference.count == length, !finished else { return checks }

    if finished { return checks }
    check("truncate and re-append") {
      let s = try newSession()
      _ = try append(s, tokens, EFT_LOGITS_NONE)
      let keep = length / 3
      try truncate(s, keep)
      guard s.length == keep else { throw Mismatch(description: "session_length is \(s.length) after truncating to \(keep)") }
      let again = try append(s, Array(tokens.dropFirst(keep)), EFT_LOGITS_ALL)
      if let d = difference(Array(reference.dropFirst(keep)), again) { throw Mismatch(description: "after truncating to \(keep) and re-appending: \(d)") }
      try truncate(s, 0)
      let fresh = try append(s, tokens, EFT_LOGITS_ALL)
      if let d = difference(reference, fresh) { throw Mismatch(description: "after truncating to 0 and re-appending: \(d)") }
      return "truncate to \(keep) and to 0, re-append: same logits"
    }

    if finished { return checks }
    check("sessions independent") {
      let alone = try newSession()
      let otherReference = try append(alone, other, EFT_LOGITS_ALL)
      let x = try newSession(), y = try newSession()
      var xs: [[Float]] = [], ys: [[Float]] = []
      for i in 0..<length {
        xs += try append(x, [tokens[i]], EFT_LOGITS_LAST)
        ys += try append(y, [other[i]], EFT_LOGITS_LAST)
      }
      if let d = difference(reference, xs) { throw Mismatch(description: "interleaved session 1: \(d)") }
      if let d = difference(otherReference, ys) { throw Mismatch(description: "interleaved session 2: \(d)") }
      return "two sessions appended in turn match each one alone"
    }

    if finished { return checks }
    check("batched = separate calls") {
      guard let batch = plugin.appendBatch else {
        return "no session_append_batch (ABI 1.0, or the slot is NULL): the host appends one session at a time"
      }
      // Three sessions at different lengths; one batch appends a different number of tokens to
      // each, with a different logits mode; each must match what it gives alone.
      let half = length / 2
      let otherAlone = try append(try newSession(), other, EFT_LOGITS_ALL)
      let a = try newSession(), b = try newSession(), c = try newSession()
      _ = try append(a, Array(tokens.prefix(half)), EFT_LOGITS_NONE)
      _ = try append(c, [other[0]], EFT_LOGITS_NONE)
      let parts: [(RawSession, [Int32], eft_logits_mode, expected: [[Float]])] = [
        (a, Array(tokens.dropFirst(half)), EFT_LOGITS_ALL, Array(reference.dropFirst(half))),
        (b, [tokens[0]], EFT_LOGITS_LAST, [reference[0]]),
        (c, Array(other[1..<min(4, length)]), EFT_LOGITS_LAST, [otherAlone[min(4, length) - 1]]),
      ]
      func run(_ parts: [(RawSession, [Int32], eft_logits_mode, expected: [[Float]])]) -> (eft_status, [[Float]]) {
        var outs = parts.map { [Float](repeating: .nan, count: max(1, ($0.2 == EFT_LOGITS_ALL ? $0.1.count : 1) * vocab)) }
        let tokenBuffers = parts.map { p in UnsafeMutableBufferPointer<Int32>.allocate(capacity: p.1.count) }
        let outBuffers = outs.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0.count) }
        defer { tokenBuffers.forEach { $0.deallocate() }; outBuffers.forEach { $0.deallocate() } }
        for (i, p) in parts.enumerated() { _ = tokenBuffers[i].initialize(from: p.1) }
        let items = parts.indices.map { i in
          eft_append(session: parts[i].0.handle, tokens: UnsafePointer(tokenBuffers[i].baseAddress), n_tokens: parts[i].1.count,
                     mode: parts[i].2, logits: outBuffers[i].baseAddress)
        }
        let status = items.withUnsafeBufferPointer { batch(model, $0.baseAddress, $0.count, MemoryLayout<eft_append>.stride, &error) }
        for i in outs.indices { outs[i] = Array(outBuffers[i]) }
        return (status, outs)
      }
      // Refusals first: a bad token in one append, or a session twice, changes no session.
      for (what, bad) in [("a token id = vocab_size in append 1", [parts[0], (b, [Int32(vocab)], EFT_LOGITS_LAST, [])]),
                          ("the same session twice", [parts[1], parts[1]])] {
        let before = [a.length, b.length, c.length]
        let (status, _) = run(bad)
        guard status != EFT_OK else { throw Mismatch(description: "a batch with \(what) was accepted") }
        _ = plugin.error(status, error, "")  // frees the error object
        error = nil
        guard [a.length, b.length, c.length] == before else { throw Mismatch(description: "a refused batch (\(what)) changed session lengths \(before) to \([a.length, b.length, c.length])") }
      }
      let (status, outs) = run(parts)
      guard status == EFT_OK else { throw plugin.error(status, error, "session_append_batch") }
      var exact = true
      for (i, p) in parts.enumerated() {
        let rows = p.2 == EFT_LOGITS_ALL ? p.1.count : 1
        let got = (0..<rows).map { Array(outs[i][($0 * vocab)..<(($0 + 1) * vocab)]) }
        if let d = difference(p.expected, got) { throw Mismatch(description: "append \(i) (\(p.1.count) tokens) differs from separate calls at \(d)") }
        exact = exact && got == p.expected
      }
      guard a.length == length, b.length == 1, c.length == min(4, length) else {
        throw Mismatch(description: "session lengths \(a.length)/\(b.length)/\(c.length) after the batch")
      }
      return "3 sessions at lengths \(half)/0/1 appending \(length - half)/1/\(min(4, length) - 1) tokens (ALL/LAST/LAST) match separate calls \(exact ? "bit for bit" : "within \(tolerance)"); bad batches refused whole"
    }

    if finished { return checks }
    check("a deadline changes no result") {
      guard let setDeadline = plugin.setDeadline else {
        return "no session_set_deadline (ABI < 1.5, or the slot is NULL): a request past its deadline stops between calls"
      }
      let hour = Session.monotonicNanoseconds(.now + .seconds(3600))
      let s = try newSession()
      setDeadline(s.handle, hour)
      let half = try append(s, Array(tokens.prefix(length / 2)), EFT_LOGITS_ALL)
      setDeadline(s.handle, 0)
      let rest = try append(s, Array(tokens.dropFirst(length / 2)), EFT_LOGITS_ALL)
      if let d = difference(reference, half + rest) { throw Mismatch(description: "appends under a deadline an hour away, then none, differ from the reference at \(d)") }
      return "appends under a deadline an hour away, then with it cleared, match the reference"
    }

    if finished { return checks }
    check("bad input is refused") {
      let s = try newSession()
      _ = try append(s, Array(tokens.prefix(2)), EFT_LOGITS_NONE)
      var refused: [String] = []
      func expectRefusal(_ what: String, _ call: () -> eft_status) throws {
        var e: OpaquePointer?
        error = nil
        let status = call()
        e = error
        guard status != EFT_OK else { throw Mismatch(description: "\(what) was accepted") }
        guard let e else { throw Mismatch(description: "\(what) returned status \(status.rawValue) with no error object") }
        let message = t.error_message(e).map { String(cString: $0) } ?? ""
        let code = t.error_status(e)
        t.error_free(e)
        guard !message.isEmpty else { throw Mismatch(description: "\(what): the error has an empty message") }
        guard code == status else { throw Mismatch(description: "\(what): error_status \(code.rawValue) differs from the returned \(status.rawValue)") }
        guard s.length == 2 else { throw Mismatch(description: "\(what) changed the session's length to \(s.length)") }
        refused.append(what)
      }
      var logits = [Float](repeating: 0, count: vocab)  // LAST writes one row; NONE none
      func raw(_ ids: [Int32], _ mode: eft_logits_mode = EFT_LOGITS_LAST) -> eft_status {
        ids.withUnsafeBufferPointer { tk in logits.withUnsafeMutableBufferPointer { t.session_append(s.handle, tk.baseAddress, tk.count, mode, $0.baseAddress, &error) } }
      }
      try expectRefusal("token id \(vocab) (= vocab_size)") { raw([Int32(vocab)]) }
      try expectRefusal("token id -1") { raw([-1]) }
      try expectRefusal("an empty append") { raw([]) }
      try expectRefusal("truncate past the end") { t.session_truncate(s.handle, 3, &error) }
      try expectRefusal("\(context - 1) tokens past a 2-token session (context \(context))") {
        raw([Int32](repeating: tokens[0], count: context - 1), EFT_LOGITS_NONE)
      }
      // Still usable after the refusals.
      let next = try append(s, Array(tokens[2..<min(3, length)]), EFT_LOGITS_LAST)
      if length >= 3, let d = difference([reference[2]], next) { throw Mismatch(description: "after the refusals the session gives different logits: \(d)") }
      return "refused with a message and the session unchanged: " + refused.joined(separator: ", ")
    }
    return checks
  }
}
