import CEFTBackend

/// The one vocabulary of failure kinds, shared by the C ABI (`eft_status`), the runtime's errors
/// and (through `grpcName`) the wire protocol. The mapping lives here and nowhere else.
public enum StatusCode: Int, Sendable, CaseIterable, CustomStringConvertible {
  case ok = 0
  case invalidArgument = 1
  case notFound = 2
  case dataLoss = 3
  case outOfRange = 4
  case resourceExhausted = 5
  case unimplemented = 6
  case `internal` = 7
  /// Host-side only: a config or plugin that cannot be used as it is (no ABI equivalent).
  case failedPrecondition = 100
  /// Host-side only: the caller stopped the request.
  case cancelled = 101

  /// The C status this code travels as; host-only codes travel as `EFT_INTERNAL`.
  public var cStatus: eft_status {
    switch self {
    case .ok: return EFT_OK
    case .invalidArgument: return EFT_INVALID_ARGUMENT
    case .notFound: return EFT_NOT_FOUND
    case .dataLoss: return EFT_DATA_LOSS
    case .outOfRange: return EFT_OUT_OF_RANGE
    case .resourceExhausted: return EFT_RESOURCE_EXHAUSTED
    case .unimplemented: return EFT_UNIMPLEMENTED
    case .internal, .failedPrecondition, .cancelled: return EFT_INTERNAL
    }
  }

  /// The code of a C status; an unknown value (a plugin of a newer minor) reads as `.internal`.
  public init(_ status: eft_status) {
    switch status {
    case EFT_OK: self = .ok
    case EFT_INVALID_ARGUMENT: self = .invalidArgument
    case EFT_NOT_FOUND: self = .notFound
    case EFT_DATA_LOSS: self = .dataLoss
    case EFT_OUT_OF_RANGE: self = .outOfRange
    case EFT_RESOURCE_EXHAUSTED: self = .resourceExhausted
    case EFT_UNIMPLEMENTED: self = .unimplemented
    default: self = .internal
    }
  }

  /// The gRPC status name (google.rpc.Code) a server reports for this code.
  public var grpcName: String {
    switch self {
    case .ok: return "OK"
    case .invalidArgument: return "INVALID_ARGUMENT"
    case .notFound: return "NOT_FOUND"
    case .dataLoss: return "DATA_LOSS"
    case .outOfRange: return "OUT_OF_RANGE"
    case .resourceExhausted: return "RESOURCE_EXHAUSTED"
    case .unimplemented: return "UNIMPLEMENTED"
    case .internal: return "INTERNAL"
    case .failedPrecondition: return "FAILED_PRECONDITION"
    case .cancelled: return "CANCELLED"
    }
  }

  public var description: String { grpcName.lowercased() }
}
