// The server's Prometheus metrics (GET /metrics on the HTTP endpoint, or --metrics alone).
import EFTCore
import Foundation
import Prometheus

/// Counters and histograms the fronts and the scheduler feed, rendered in Prometheus's text
/// format. The registry is the server's own (no process-wide metrics system), so several
/// servers in one process (the tests) keep theirs apart.
public final class ServerMetrics: Sendable {
  let registry: PrometheusCollectorRegistry

  /// Latency buckets from 1 ms to 2 min.
  static let buckets: [Duration] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
    .map { Duration.nanoseconds(Int64($0 * 1e9)) }

  /// Per model of the config, its step histogram and token counter, made once: the scheduler
  /// reports every step of every model, and a registry lookup takes a lock.
  private let steps: [String: (time: DurationHistogram, tokens: Counter)]

  init(models: [String]) {
    let registry = PrometheusCollectorRegistry()
    self.registry = registry
    func step(_ model: String) -> (DurationHistogram, Counter) {
      let labels = [("model", model)]
      return (registry.makeDurationHistogram(descriptor: MetricNameDescriptor(metricName: "eft_model_step_seconds",
                                                helpText: "Seconds of one batched append to a model (one scheduler step's call)."),
                                             labels: labels, buckets: Self.buckets),
              registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "eft_model_step_tokens_total",
                                                                    helpText: "Tokens appended to a model's sessions."), labels: labels))
    }
    steps = Dictionary(models.map { ($0, step($0)) }, uniquingKeysWith: { a, _ in a })
  }

  private func counter(_ name: String, _ help: String, _ labels: [(String, String)]) -> Counter {
    registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, helpText: help), labels: labels)
  }

  private func histogram(_ name: String, _ help: String, _ labels: [(String, String)]) -> DurationHistogram {
    registry.makeDurationHistogram(descriptor: MetricNameDescriptor(metricName: name, helpText: help), labels: labels, buckets: Self.buckets)
  }

  private func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
    registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, helpText: help), labels: labels)
  }

  /// A call finished with `status` (gRPC's name of it: OK, INVALID_ARGUMENT, …).
  func request(graph: String, protocol: String, status: String) {
    counter("eft_requests_total", "Calls finished, by graph, protocol (grpc, http-completions, http-chat) and gRPC status name.",
            [("graph", graph), ("protocol", `protocol`), ("status", status)]).increment()
  }

  /// A generation ran to its end or was cancelled.
  func generation(graph: String, result: GenerationResult) {
    let labels = [("graph", graph)]
    counter("eft_generated_tokens_total", "Tokens generated.", labels).increment(by: Int64(result.tokens.count))
    histogram("eft_prefill_seconds", "Seconds from a generation's start to its prompt being read.", labels).record(seconds(result.prefillSeconds))
    histogram("eft_decode_seconds", "Seconds a generation spent decoding, after its prefill.", labels).record(seconds(result.decodeSeconds))
    if result.speculation != nil {
      counter("eft_speculative_drafted_tokens_total", "Tokens drafted by speculative decoding.", labels).increment(by: Int64(result.stats.drafted))
      counter("eft_speculative_accepted_tokens_total", "Drafted tokens the graph's output accepted.", labels).increment(by: Int64(result.stats.accepted))
    }
  }

  /// One batched backend call of a scheduler step.
  func modelCall(model: String, tokens: Int, time: Duration) {
    guard let step = steps[model] else { return }
    step.time.record(time)
    step.tokens.increment(by: Int64(tokens))
  }

  /// The text exposition, with the gauges read now.
  func render(service: RuntimeService) -> [UInt8] {
    gauge("eft_running_requests", "Calls running model code now.").set(to: Double(service.runningRequests))
    gauge("eft_queued_requests", "Calls waiting for a slot.").set(to: Double(service.queuedRequests))
    gauge("eft_reserved_memory_bytes", "Memory the running calls' estimates reserve.").set(to: Double(service.reservedMemory))
    for (name, model) in service.runtime.models {
      gauge("eft_live_sessions", "Sessions (KV states) that exist now, by model.", [("model", name)]).set(to: Double(model.liveSessions))
    }
    return registry.emitToBuffer()
  }

  private func seconds(_ s: Double) -> Duration { .nanoseconds(Int64((s * 1e9).rounded())) }
}
