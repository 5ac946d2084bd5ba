import Foundation

/// The `BPE` model of tokenizer.json: a vocabulary and ranked merges, applied to each
/// pre-tokenized word (lowest rank first). Reference: huggingface/tokenizers
/// `tokenizers/src/models/bpe/word.rs` (`merge_all`).
final class BPEModel: Sendable {
  let vocab: [String: Int32]
  let idToToken: [String?]
  let mergeList: [(String, String)]
  /// "left right" → (rank, merged id)
  let ranks: [Pair: (rank: Int, id: Int32)]
  let unkID: Int32?
  /// Characters missing from the vocabulary become their UTF-8 bytes as `<0xHH>` tokens.
  let byteFallback: Bool
  /// Consecutive unknown characters become one unk token.
  let fuseUnknown: Bool
  /// A word that is itself in the vocabulary is one token, whatever the merges say (Llama-3).
  let ignoreMerges: Bool
  let cache = WordCache()

  struct Pair: Hashable, Sendable {
    let left: Int32
    let right: Int32
  }

  init(json: JSONObject) throws {
    let source = json.source
    let type = try json.type()
    guard type == "BPE" else {
      throw json.error("model type '\(type)' is not supported yet (supported: BPE)")
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
      if let v = try json.optional(key, as: String.self), !v.isEmpty {
        throw json.error("BPE \(key) is not supported")
      }
    }
    byteFallback = try json.value("byte_fallback", default: false)
    fuseUnknown = try json.value("fuse_unk", default: false)
    ignoreMerges = try json.value("ignore_merges", default: false)
    let vocabJSON = try json.required("vocab", as: [String: Any].self)
    var vocab: [String: Int32] = [:]
    var maxID = -1
    for (token, value) in vocabJSON {
      guard let id = (value as? NSNumber)?.intValue, id >= 0, id < Tokenizer.maxTokenID else {
        throw TokenizerError("\(source): model.vocab['\(token)'] is not an integer in [0, \(Tokenizer.maxTokenID))")
      }
      vocab[token] = Int32(id)
      maxID = max(maxID, id)
    }
    var idToToken = [String?](repeating: nil, count: maxID + 1)
    for (token, id) in vocab { idToToken[Int(id)] = token }

    var mergeList: [(String, String)] = []
    for (i, entry) in try json.value("merges", default: [Any]()).enumerated() {
      if let s = entry as? String {
        let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw TokenizerError("\(source): model.merges[\(i)] '\(s)' is not 'left right'") }
        mergeList.append((String(parts[0]), String(parts[1])))
      } else if let pair = entry as? [String], pair.count == 2 {
        mergeList.append((pair[0], pair[1]))
      } else {
        throw TokenizerError("\(source): model.merges[\(i)] is neither 'left right' nor [left, right]")
      }
    }
    var ranks: [Pair: (rank: Int, id: Int32)] = [:]
    for (rank, (left, right)) in mergeList.enumerated() {
      guard let l = vocab[left], let r = vocab[right], let m = vocab[left + right] else {
        throw TokenizerError("\(source): model.merges[\(rank)] '\(left) \(right)' uses tokens missing from the vocabulary")
      }
      if ranks[Pair(left: l, right: r)] == nil { ranks[Pair(left: l, right: r)] = (rank, m) }
    }
    if let unk = try json.optional("unk_token", as: String.self) {
      unkID = vocab[unk]
    } else {
      unkID = nil
    }
    self.vocab = vocab
    self.idToToken = idToToken
    self.mergeList = mergeList
    self.ranks = ranks
  }

  func token(for id: Int32) -> String? {
    guard id >= 0, Int(id) < idToToken.count else { return nil }
    return idToToken[Int(id)]
  }

  /// Appends the ids of one pre-tokenized word.
  func tokenize(_ word: String, into ids: inout [Int32]) {
    if let cached = cache.get(word) {
      ids.append(contentsOf: cached)
      return
    }
    if ignoreMerges, let id = vocab[word] {
      cache.put(word, [id])
      ids.append(id)
      return
    }
    // Start from single characters. One missing from the vocabulary becomes its bytes as
    // <0xHH> tokens (byte fallback), else unk (fused when consecutive), else is dropped, as HF does.
    // Characters are Unicode scalars, as in HF (a Swift Character may hold several: "e\u{301}").
    var symbols: [Int32] = []
    for c in word.unicodeScalars {
      let s = String(c)
      if let id = vocab[s] {
        symbols.append(id)
        continue
      }
      if byteFallback {
        let bytes = s.utf8.compactMap { vocab[String(format: "<0x%02X>", $0)] }
        if bytes.count == s.utf8.count {
          symbols += bytes
          continue
        }
      }
      if let unkID {
        if fuseUnknown, symbols.last == unkID { continue }
        symbols.append(unkID)
      }
    }
    symbols = merge(symbols)
    if word.utf8.count <= WordCache.longestWord { cache.put(word, symbols) }
    ids.append(contentsOf: symbols)
  }

  /// Applies the merges to a word's symbols as HF tokenizers does: always the adjacent pair of
  /// lowest rank next (leftmost first among equals), until no pair has a merge. A heap of
  /// candidate pairs over a linked list of symbols: O(n log n) in the word's length. (One pass
  /// over the word per merge rank used was O(n · r): for a long text in a tokenizer that does not
  /// split words — SentencePiece style — with a large merge table, thousands of passes over the
  /// whole text.)
  func merge(_ symbols: [Int32]) -> [Int32] {
    guard symbols.count > 1 else { return symbols }
    var symbols = symbols
    var next = Array(1...symbols.count), previous = Array(-1..<(symbols.count - 1))
    next[symbols.count - 1] = -1
    var removed = [Bool](repeating: false, count: symbols.count)
    var candidates = MinHeap<Candidate>()
    func consider(_ left: Int) {
      let right = next[left]
      guard right >= 0, let m = ranks[Pair(left: symbols[left], right: symbols[right])] else { return }
      candidates.push(Candidate(rank: m.rank, position: left, id: m.id))
    }
    for i in 0..<(symbols.count - 1) { consider(i) }
    while let c = candidates.pop() {
      // Stale candidates: the left symbol was merged away, or the pair has changed since.
      let right = next[c.position]
      guard !removed[c.position], right >= 0,
            ranks[Pair(left: symbols[c.position], right: symbols[right])]?.id == c.id else { continue }
      symbols[c.position] = c.id
      removed[right] = true
      next[c.position] = next[right]
      if next[right] >= 0 { previous[next[right]] = c.position }
      if previous[c.position] >= 0 { consider(previous[c.position]) }
      consider(c.position)
    }
    var out: [Int32] = []
    var i = 0
    while i >= 0 {
      out.append(symbols[i])
      i = next[i]
    }
    return out
  }

  /// A pair that may merge: ordered by rank, then position (HF's order).
  struct Candidate: Comparable {
    let rank: Int
    let position: Int
    let id: Int32
    static func < (a: Candidate, b: Candidate) -> Bool { (a.rank, a.position) < (b.rank, b.position) }
  }
}

/// A binary min-heap.
struct MinHeap<Element: Comparable> {
  private var items: [Element] = []

  mutating func push(_ item: Element) {
    items.append(item)
    var child = items.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      guard items[child] < items[parent] else { break }
      items.swapAt(child, parent)
      child = parent
    }
  }

  mutating func pop() -> Element? {
    guard let top = items.first else { return nil }
    let last = items.removeLast()
    if !items.isEmpty {
      items[0] = last
      var parent = 0
      while true {
        let left = 2 * parent + 1, right = left + 1
        var smallest = parent
        if left < items.count, items[left] < items[smallest] { smallest = left }
        if right < items.count, items[right] < items[smallest] { smallest = right }
        guard smallest != parent else { break }
        items.swapAt(parent, smallest)
        parent = smallest
      }
    }
    return top
  }
}

/// A bounded word → ids cache shared by threads: at most `capacity` words of at most
/// `longestWord` bytes each (longer words are not cached, so the cache's memory is bounded).
final class WordCache: @unchecked Sendable {
  static let longestWord = 256
  private let lock = NSLock()
  private var storage: [String: [Int32]] = [:]
  private let capacity = 50_000

  func get(_ word: String) -> [Int32]? {
    lock.lock()
    defer { lock.unlock() }
    return storage[word]
  }

  func put(_ word: String, _ ids: [Int32]) {
    lock.lock()
    defer { lock.unlock() }
    if storage.count >= capacity { storage.removeAll(keepingCapacity: true) }
    storage[word] = ids
  }
}
