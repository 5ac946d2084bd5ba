/// The `added_tokens` of tokenizer.json: strings matched in the raw text before any other stage
/// (longest first) and mapped straight to their ids.
struct AddedTokens: Sendable {
  struct Token: Sendable {
    let id: Int32
    let content: String
    let special: Bool
  }

  enum Piece {
    case text(Substring)
    case added(Int32)
  }

  let tokens: [Token]
  let byID: [Int32: Token]
  let byContent: [String: Int32]
  let maxID: Int
  /// Contents, longest first, so that "<|assistant|>" wins over a shorter token it starts with.
  private let ordered: [Token]

  init(json: [JSONObject]) throws {
    var tokens: [Token] = []
    for entry in json {
      let id = try entry.required("id", as: Int.self), content = try entry.required("content", as: String.self)
      guard id >= 0, id < Tokenizer.maxTokenID, !content.isEmpty else {
        throw entry.error("\(entry.path) needs an 'id' in [0, \(Tokenizer.maxTokenID)) and a non-empty 'content'")
      }
      tokens.append(Token(id: Int32(id), content: content, special: try entry.value("special", default: false)))
    }
    self.tokens = tokens
    byID = Dictionary(tokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    byContent = Dictionary(tokens.map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
    maxID = tokens.map { Int($0.id) }.max() ?? -1
    ordered = tokens.sorted { $0.content.utf8.count > $1.content.utf8.count }
  }

  /// Splits text into runs of plain text and added tokens. Matching is by Unicode scalars, as
  /// HF does (a Swift Character comparison would miss a token followed by a combining mark).
  func split(_ text: String) -> [Piece] {
    guard !ordered.isEmpty else { return text.isEmpty ? [] : [.text(text[...])] }
    let scalars = text.unicodeScalars
    var pieces: [Piece] = []
    var plainStart = scalars.startIndex
    var i = scalars.startIndex
    while i < scalars.endIndex {
      var matched: (id: Int32, end: String.Index)? = nil
      for token in ordered {
        var j = i
        var k = token.content.unicodeScalars.startIndex
        let content = token.content.unicodeScalars
        while j < scalars.endIndex, k < content.endIndex, scalars[j] == content[k] {
          j = scalars.index(after: j)
          k = content.index(after: k)
        }
        if k == content.endIndex {
          matched = (token.id, j)
          break
        }
      }
      if let matched {
        if plainStart < i { pieces.append(.text(text[plainStart..<i])) }
        pieces.append(.added(matched.id))
        i = matched.end
        plainStart = i
      } else {
        i = scalars.index(after: i)
      }
    }
    if plainStart < scalars.endIndex { pieces.append(.text(text[plainStart...])) }
    return pieces
  }
}
