/// Something a long call polls to learn that it should stop (a server call's cancellation).
public protocol CancellationSignal: Sendable {
  var isCancelled: Bool { get }
  /// When the call must end, if it has a deadline: passed on to backends whose calls wait on
  /// another machine (`session_set_deadline`), which then stop waiting by it.
  var deadline: ContinuousClock.Instant? { get }
}

extension CancellationSignal {
  public var deadline: ContinuousClock.Instant? { nil }
}
