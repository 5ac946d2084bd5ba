/// Finds stop strings in streamed text. Text that could be the start of a stop string is held
/// back until it is known not to be one, so a stop string is never streamed to the client.
struct StopMatcher {
  let stops: [String]
  private var held = ""

  init(stops: [String]) { self.stops = stops }

  /// Feeds newly decoded text; returns the text that is safe to emit, and whether a stop
  /// string was found (then the returned text ends just before it, and nothing more comes).
  mutating func push(_ text: String) -> (emit: String, stopped: Bool) {
    guard !stops.isEmpty else { return (text, false) }
    held += text
    // The earliest complete stop string.
    var earliest: String.Index? = nil
    for stop in stops {
      if let r = held.range(of: stop), earliest.map({ r.lowerBound < $0 }) ?? true { earliest = r.lowerBound }
    }
    if let earliest {
      let emit = String(held[..<earliest])
      held = ""
      return (emit, true)
    }
    // Hold back the longest suffix that is a proper prefix of some stop string.
    var keep = 0
    for stop in stops {
      for length in stride(from: min(stop.count - 1, held.count), to: keep, by: -1)
      where held.hasSuffix(stop.prefix(length)) {
        keep = length
        break
      }
    }
    let cut = held.index(held.endIndex, offsetBy: -keep)
    let emit = String(held[..<cut])
    held = String(held[cut...])
    return (emit, false)
  }

  /// The held-back text, at the end of generation.
  mutating func finish() -> String {
    defer { held = "" }
    return held
  }
}
