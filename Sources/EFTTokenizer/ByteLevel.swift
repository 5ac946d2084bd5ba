/// GPT-2's byte-level mapping: every byte is shown as a printable Unicode character, so that BPE
/// works on strings without losing bytes. Reference: openai/gpt-2 `encoder.py` `bytes_to_unicode`.
enum ByteLevel {
  /// byte → character.
  static let byteToChar: [Character] = {
    var printable: [Int] = Array(33...126) + Array(161...172) + Array(174...255)
    var table = [Int](repeating: 0, count: 256)
    for b in printable { table[b] = b }
    var next = 0
    for b in 0..<256 where !printable.contains(b) {
      table[b] = 256 + next
      next += 1
      printable.append(b)
    }
    return table.map { Character(Unicode.Scalar(UInt32($0))!) }
  }()

  /// character → byte.
  static let charToByte: [Character: UInt8] = {
    var map: [Character: UInt8] = [:]
    for (b, c) in byteToChar.enumerated() { map[c] = UInt8(b) }
    return map
  }()

  /// The byte-level string of `text`'s UTF-8 bytes.
  static func encode<S: StringProtocol>(_ text: S) -> String {
    var out = String()
    out.reserveCapacity(text.utf8.count)
    for b in text.utf8 { out.append(byteToChar[Int(b)]) }
    return out
  }

  /// Appends the bytes a byte-level token stands for; characters outside the map (which a
  /// byte-level vocabulary never holds) are copied as their UTF-8.
  static func decode(_ token: String, into out: inout [UInt8]) {
    for c in token {
      if let b = charToByte[c] { out.append(b) } else { out.append(contentsOf: Array(String(c).utf8)) }
    }
  }
}

/// GPT-2's split pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// written out as a scanner, branch by branch (the `ByteLevel` pre-tokenizer with use_regex).
enum ByteLevelPreTokenizer {
  static func isLetter(_ s: Unicode.Scalar) -> Bool {
    switch s.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
  }

  static func isNumber(_ s: Unicode.Scalar) -> Bool {
    switch s.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
  }

  static let contractions = ["s", "t", "re", "ve", "m", "ll", "d"]

  static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

  /// The pieces GPT-2's pattern matches, in order (they cover the text exactly).
  static func gpt2Pieces(_ text: String) -> [Substring] {
    let scalars = Array(text.unicodeScalars)
    var pieces: [Substring] = []
    var indices: [String.Index] = []
    indices.reserveCapacity(scalars.count + 1)
    var idx = text.unicodeScalars.startIndex
    while idx < text.unicodeScalars.endIndex {
      indices.append(idx)
      idx = text.unicodeScalars.index(after: idx)
    }
    indices.append(text.endIndex)
    let n = scalars.count
    func run(from start: Int, while predicate: (Unicode.Scalar) -> Bool) -> Int {
      var j = start
      while j < n, predicate(scalars[j]) { j += 1 }
      return j
    }
    let isOther: (Unicode.Scalar) -> Bool = { !isSpace($0) && !isLetter($0) && !isNumber($0) }
    var i = 0
    while i < n {
      var end = i
      let c = scalars[i]
      // 's 't 're 've 'm 'll 'd
      if c == "'" {
        for suffix in Self.contractions {
          let tail = Array(suffix.unicodeScalars)
          if i + 1 + tail.count <= n, Array(scalars[(i + 1)..<(i + 1 + tail.count)]) == tail {
            end = i + 1 + tail.count
            break
          }
        }
      }
      if end == i {
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        let start = (c == " " && i + 1 < n) ? i + 1 : i
        for predicate in [isLetter, isNumber, isOther] where start < n && predicate(scalars[start]) {
          end = run(from: start, while: predicate)
          break
        }
      }
      if end == i {
        // `\s+(?!\S)` then `\s+`
        let j = run(from: i, while: isSpace)
        if j == n || j - 1 == i {
          end = j
        } else {
          end = j - 1
        }
      }
      pieces.append(text[indices[i]..<indices[end]])
      i = end
    }
    return pieces
  }
}
