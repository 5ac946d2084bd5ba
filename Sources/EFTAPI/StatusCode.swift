/// The one vocabulary of failure kinds, shared by the C ABI (`eft_status`; the mapping is in
/// EFTCore), the runtime's errors and the wire protocol (EFTWire maps it to gRPC's codes).
public enum StatusCode: Int, Sendable, CaseIterable, CustomStringConvertible {
  case ok = 0
  case invalidArgument = 1
  case notFound = 2
  case dataLoss = 3
  case outOfRange = 4
  case resourceExhausted = 5
  case unimplemented = 6
  case `internal` = 7
  /// A service a backend needs is unreachable (a remote model's server). ABI 1.4.
  case unavailable = 8
  /// An answer did not come in time (a remote model's, or the caller's deadline). ABI 1.4.
  case deadlineExceeded = 9
  /// Host-side only: a config or plugin that cannot be used as it is (no ABI equivalent).
  case failedPrecondition = 100
  /// Host-side only: the caller stopped the request.
  case cancelled = 101

  /// The code's name in snake case ("invalid_argument"), as errors print it.
  public var description: String {
    switch self {
    case .ok: return "ok"
    case .invalidArgument: return "invalid_argument"
    case .notFound: return "not_found"
    case .dataLoss: return "data_loss"
    case .outOfRange: return "out_of_range"
    case .resourceExhausted: return "resource_exhausted"
    case .unimplemented: return "unimplemented"
    case .internal: return "internal"
    case .unavailable: return "unavailable"
    case .deadlineExceeded: return "deadline_exceeded"
    case .failedPrecondition: return "failed_precondition"
    case .cancelled: return "cancelled"
    }
  }
}
