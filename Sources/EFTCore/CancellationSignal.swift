/// Something a long call polls to learn that it should stop (a server call's cancellation).
public protocol CancellationSignal: Sendable {
  var isCancelled: Bool { get }
}
