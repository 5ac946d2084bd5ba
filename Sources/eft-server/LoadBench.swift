import EFTCommandLine
import EFTCore
import EFTRPC
import EFTServer
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// What one concurrency level of the load benchmark measured.
struct LoadLevel {
  let streams: Int
  let tokens: Int
  let seconds: Double
  /// Each stream's tokens per second (from its first token to its last... to its finish).
  let perStream: [Double]
  /// Time between consecutive tokens of a stream, over all streams (seconds).
  let gaps: [Double]
  /// Time from sending a request to its first token (seconds).
  let firstToken: [Double]
  /// Every stream generated what the same request generates alone, in-process.
  let identical: Bool

  var aggregate: Double { Double(tokens) / seconds }
}

/// Percentile `p` (0...1) of `values`, nearest rank; 0 when empty.
func percentile(_ values: [Double], _ p: Double) -> Double {
  guard !values.isEmpty else { return 0 }
  let sorted = values.sorted()
  let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
  return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// Runs `streams` Generate calls at once against `endpoint`, each on a connection of its own
/// (as separate users would), and times every token's arrival.
func measureLoad(_ endpoint: ServerEndpoint, streams: Int, request: Eft_V1_GenerateRequest, expected: [Int32]) async throws -> LoadLevel {
  struct Stream: Sendable {
    var arrivals: [Double] = []
    var ids: [Int32] = []
    var sent = 0.0
  }
  let clock = ContinuousClock()
  let origin = clock.now
  @Sendable func now() -> Double {
    let d = (clock.now - origin).components
    return Double(d.seconds) + Double(d.attoseconds) / 1e18
  }
  let results = try await withThrowingTaskGroup(of: Stream.self) { group in
    for _ in 0..<streams {
      group.addTask {
        try await connect(endpoint) { connection in
          let client = RuntimeClient(wrapping: connection)
          _ = try await client.listGraphs(Eft_V1_ListGraphsRequest())  // connected before the clock starts
          let sent = now()
          var stream = try await client.generate(request) { response in
            var stream = Stream()
            for try await message in response.messages {
              if case .token(let t) = message.event, t.id >= 0 {
                stream.arrivals.append(now())
                stream.ids.append(t.id)
              }
            }
            return stream
          }
          stream.sent = sent
          return stream
        }
      }
    }
    var all: [Stream] = []
    for try await s in group { all.append(s) }
    return all
  }
  let start = results.map(\.sent).min() ?? 0
  let end = results.compactMap(\.arrivals.last).max() ?? start
  var gaps: [Double] = []
  for s in results { gaps += zip(s.arrivals.dropFirst(), s.arrivals).map { $0 - $1 } }
  return LoadLevel(
    streams: streams, tokens: results.reduce(0) { $0 + $1.ids.count }, seconds: end - start,
    perStream: results.map { s in Double(s.ids.count) / max(1e-9, (s.arrivals.last ?? s.sent) - s.sent) },
    gaps: gaps, firstToken: results.map { ($0.arrivals.first ?? $0.sent) - $0.sent },
    identical: results.allSatisfy { $0.ids == expected })
}

extension LoadLevel {
  func json(base: Double) -> String {
    "{\"streams\":\(streams),\"tokens\":\(tokens),\"seconds\":\(jsonNumber(seconds, decimals: 4)),"
      + "\"aggregate_tokens_per_s\":\(jsonNumber(aggregate, decimals: 2)),\"scaling\":\(jsonNumber(aggregate / base, decimals: 3)),"
      + "\"per_stream_tokens_per_s\":\(jsonNumber(perStream.reduce(0, +) / Double(max(1, perStream.count)), decimals: 2)),"
      + "\"between_tokens_p50_ms\":\(jsonNumber(percentile(gaps, 0.5) * 1e3, decimals: 3)),"
      + "\"between_tokens_p99_ms\":\(jsonNumber(percentile(gaps, 0.99) * 1e3, decimals: 3)),"
      + "\"first_token_p50_ms\":\(jsonNumber(percentile(firstToken, 0.5) * 1e3, decimals: 3)),\"identical\":\(identical)}"
  }

  func row(base: Double) -> String {
    String(format: "%7d %12.1f %8.2f× %13.1f %12.2f %12.2f %13.1f  %@", streams, aggregate, aggregate / base,
           perStream.reduce(0, +) / Double(max(1, perStream.count)), percentile(gaps, 0.5) * 1e3,
           percentile(gaps, 0.99) * 1e3, percentile(firstToken, 0.5) * 1e3, identical ? "yes" : "NO")
  }

  static let header = String(format: "%7@ %12@ %9@ %13@ %12@ %12@ %13@  %@", "streams", "aggregate/s", "scaling",
                             "per-stream/s", "gap p50 ms", "gap p99 ms", "first p50 ms", "same tokens")
}
