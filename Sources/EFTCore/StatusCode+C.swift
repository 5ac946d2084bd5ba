import CEFTBackend

/// How a `StatusCode` crosses the plugin C ABI, both ways.
extension StatusCode {
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
    case .unavailable: return EFT_UNAVAILABLE
    case .deadlineExceeded: return EFT_DEADLINE_EXCEEDED
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
    case EFT_UNAVAILABLE: self = .unavailable
    case EFT_DEADLINE_EXCEEDED: self = .deadlineExceeded
    default: self = .internal
    }
  }
}
