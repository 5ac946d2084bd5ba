import Foundation

/// Runs the model work of concurrent requests in shared steps (continuous batching).
///
///     request threads            scheduler (whichever parked thread leads the step)
///     ───────────────            ──────────────────────────────────────────────────
///     A: graph, sample ─┐
///     B: graph, sample ─┼─ park with their appends ─▶ every member parked: one step
///     C: prefill ───────┘                               per model: one batched append over the
///                                                       rows of A, B and a chunk of C's prompt
///     A, B: resume ◀──────────────────────────────────── results handed back; C stays parked
///
/// A request *joins* when it first needs a model and *leaves* when it is done with models.
/// Between the two it is either busy (evaluating its graph, sampling, streaming a token) or
/// parked in `run`, waiting for its appends. A step starts when every member is parked: so each
/// step holds the work of every active request, whatever graph it runs, and all appends to one
/// model — across requests and graphs — go into one `Model.append(_:)` call. Graph evaluation
/// and sampling stay on the requests' own threads (in parallel with each other).
///
/// A step takes appends first come, first served (members in join order) up to
/// `maxBatchTokens` tokens: whole appends first (decoding and verification rows are short), then
/// as much of the first long one (a prompt) as fits, so a long prompt is prefilled in chunks
/// that share steps with the others' decoding instead of stalling them. The rest of a chunked
/// append stays queued for the next step. A member that is cancelled leaves at the next step.
///
/// Results do not depend on batching: every append is still one session's append, and the
/// backends compute a session's rows independently of the rows batched with them (the CPU
/// backend bit for bit).
public final class StepScheduler: @unchecked Sendable {
  /// The most tokens one step appends, over all models and requests (at least 1).
  public let maxBatchTokens: Int

  private let condition = NSCondition()
  // Everything below is guarded by `condition`.
  private var members: [Member] = []
  private var stepRunning = false
  private var statistics = Statistics()
  private var observer: (@Sendable (_ model: String, _ tokens: Int, _ time: Duration) -> Void)?

  public init(maxBatchTokens: Int = 512) {
    self.maxBatchTokens = max(1, maxBatchTokens)
  }

  /// Counters since the scheduler was made.
  public struct Statistics: Sendable, Equatable {
    /// Steps run, backend calls made, and the appends and tokens they carried.
    public var steps = 0
    public var calls = 0
    public var appends = 0
    public var tokens = 0
    /// The most appends and tokens one step carried.
    public var largestStepAppends = 0
    public var largestStepTokens = 0
  }

  public var statisticsSnapshot: Statistics {
    condition.lock()
    defer { condition.unlock() }
    return statistics
  }

  /// Calls `observer` after every batched append a step makes to a model, with the model's name,
  /// the tokens appended and the time the backend took (the server's step-latency metrics).
  public func observeModelCalls(_ observer: @escaping @Sendable (_ model: String, _ tokens: Int, _ time: Duration) -> Void) {
    condition.lock()
    defer { condition.unlock() }
    self.observer = observer
  }

  /// Requests holding a place in the steps now.
  public var activeMembers: Int {
    condition.lock()
    defer { condition.unlock() }
    return members.count
  }

  /// One request's place in the steps. A member must leave when it is done with models (the
  /// scheduler waits for every member to park before a step).
  public final class Member: @unchecked Sendable {
    fileprivate weak var scheduler: StepScheduler?
    fileprivate let cancellation: (any CancellationSignal)?
    fileprivate var isCancelled: Bool { cancellation?.isCancelled ?? false }
    // Guarded by the scheduler's condition.
    fileprivate var pending: [Work] = []
    fileprivate var parked = false
    fileprivate var inFlight = 0
    fileprivate var left = false
    fileprivate var modelTime: [String: Duration] = [:]

    /// Per model, the time of the backend calls that carried this member's appends (a call
    /// batched with other requests counts whole for each of them).
    public var modelSeconds: [String: Double] {
      guard let scheduler else { return [:] }
      scheduler.condition.lock()
      defer { scheduler.condition.unlock() }
      return modelTime.mapValues { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
    }

    fileprivate init(scheduler: StepScheduler, cancellation: (any CancellationSignal)?) {
      self.scheduler = scheduler
      self.cancellation = cancellation
    }

    /// Stops taking part in steps (idempotent).
    public func leave() { scheduler?.leave(self) }
  }

  /// One append of a member, possibly taken in several chunks.
  fileprivate final class Work {
    let append: Append
    /// Tokens already appended.
    var done = 0
    var logits: [Float] = []
    var error: (any Error)?
    var finished = false
    init(_ append: Append) { self.append = append }
    var remaining: Int { append.tokens.count - done }
  }

  /// One model's backend call in a step: its slices, and once run, their outcomes and its time.
  /// Run by one thread; read after it (the step waits for every call).
  private final class ModelCall: @unchecked Sendable {
    let group: [Slice]
    let model: Model
    let observer: (@Sendable (String, Int, Duration) -> Void)?
    private(set) var outcomes: [Result<[Float], any Error>] = []
    private(set) var time: Duration = .zero

    init(_ group: [Slice], observer: (@Sendable (String, Int, Duration) -> Void)?) {
      self.group = group
      self.model = group[0].work.append.session.model
      self.observer = observer
    }

    func run() {
      let clock = ContinuousClock.now
      outcomes = model.append(group.map { Append($0.work.append.session, Array($0.work.append.tokens[$0.tokens]), $0.mode) })
      time = ContinuousClock.now - clock
      observer?(model.name, group.reduce(0) { $0 + $1.tokens.count }, time)
    }
  }

  /// A chunk of a work item in a step.
  private struct Slice {
    let work: Work
    let member: Member
    let tokens: Range<Int>
    var isLast: Bool { tokens.upperBound == work.append.tokens.count }
    var mode: LogitsMode {
      switch work.append.mode {
      case .none: .none
      case .last: isLast ? .last : .none
      case .all: .all
      }
    }
  }

  /// A new member; `cancellation` is polled while it waits.
  public func join(cancellation: (any CancellationSignal)? = nil) -> Member {
    condition.lock()
    defer { condition.unlock() }
    let member = Member(scheduler: self, cancellation: cancellation)
    members.append(member)
    return member
  }

  private func leave(_ member: Member) {
    condition.lock()
    defer { condition.unlock() }
    guard !member.left else { return }
    member.left = true
    members.removeAll { $0 === member }
    condition.broadcast()  // a step may now be able to start
  }

  /// Appends for `member`, in the next steps; returns each append's logits (as
  /// `Session.append(_:mode:)` does) once all are done. Blocks the calling thread. Throws the
  /// first failed append's error, or `.cancelled` when the member is cancelled first.
  public func run(_ appends: [Append], for member: Member) throws -> [[Float]] {
    guard !appends.isEmpty else { return [] }
    let works = appends.map(Work.init)
    condition.lock()
    precondition(!member.left && member.pending.isEmpty, "a member runs one batch of appends at a time, before it leaves")
    member.pending = works
    member.parked = true
    condition.broadcast()
    while !member.pending.isEmpty {
      if member.inFlight == 0, member.isCancelled {
        for work in member.pending where !work.finished {
          work.error = RuntimeError(.request, .cancelled, "cancelled while waiting for the model")
        }
        member.pending = []
        member.parked = false
        condition.broadcast()
        break
      }
      if !stepRunning, readyForStep(), step() {
        continue
      } else {
        // Timed, to notice a cancellation while parked.
        _ = condition.wait(until: Date(timeIntervalSinceNow: 0.02))
      }
    }
    condition.unlock()
    if let error = works.first(where: { $0.error != nil })?.error { throw error }
    return works.map(\.logits)
  }

  /// Every member parked and some work waiting. Holds the lock.
  private func readyForStep() -> Bool {
    members.allSatisfy(\.parked) && members.contains { !$0.pending.isEmpty }
  }

  /// Runs one step: plans it under the lock, runs the backend calls without it, hands back the
  /// results under it. Called with the lock held; returns with it held. False when there was
  /// nothing to run (only cancelled members have work).
  private func step() -> Bool {
    let slices = plan()
    guard !slices.isEmpty else { return false }
    stepRunning = true
    let observer = self.observer
    condition.unlock()
    var byModel: [ObjectIdentifier: [Slice]] = [:]
    var order: [ObjectIdentifier] = []
    for slice in slices {
      let key = ObjectIdentifier(slice.work.append.session.model)
      if byModel[key] == nil { order.append(key) }
      byModel[key, default: []].append(slice)
    }
    // One call per model. A remote model's call waits on another machine: it goes out first,
    // on a thread of its own, and is in flight while the local models' calls run here.
    let calls = order.map { key in ModelCall(byModel[key]!, observer: observer) }
    let inFlight = DispatchGroup()
    for call in calls where call.model.isRemote {
      inFlight.enter()
      DispatchQueue.global().async {
        call.run()
        inFlight.leave()
      }
    }
    for call in calls where !call.model.isRemote { call.run() }
    inFlight.wait()
    let results = calls.flatMap { call in zip(call.group, call.outcomes) }
    let times = calls.map { ($0.model, $0.group, $0.time) }
    condition.lock()
    for (model, group, time) in times {
      var seen = Set<ObjectIdentifier>()
      for slice in group where seen.insert(ObjectIdentifier(slice.member)).inserted {
        slice.member.modelTime[model.name, default: .zero] += time
      }
    }
    statistics.steps += 1
    statistics.calls += order.count
    statistics.appends += slices.count
    let tokens = slices.reduce(0) { $0 + $1.tokens.count }
    statistics.tokens += tokens
    statistics.largestStepAppends = max(statistics.largestStepAppends, slices.count)
    statistics.largestStepTokens = max(statistics.largestStepTokens, tokens)
    for (slice, outcome) in results {
      let work = slice.work, member = slice.member
      member.inFlight -= 1
      switch outcome {
      case .success(let logits):
        work.done = slice.tokens.upperBound
        work.logits += logits
        if work.remaining == 0 { work.finished = true }
      case .failure(let error):
        work.error = error
        work.finished = true
      }
    }
    for member in members where member.parked && member.inFlight == 0 {
      // A member is done when every append finished, or as soon as one failed.
      if member.pending.allSatisfy(\.finished) || member.pending.contains(where: { $0.error != nil }) {
        member.pending = []
        member.parked = false
      }
    }
    stepRunning = false
    condition.broadcast()
    return true
  }

  /// The slices of the next step: members in join order; whole appends that fit in the token
  /// budget first, then chunks of the ones that did not. Cancelled members take no part.
  private func plan() -> [Slice] {
    var budget = maxBatchTokens
    var slices: [Slice] = []
    var deferred: [(Member, Work)] = []
    for member in members where !member.pending.isEmpty && !member.isCancelled {
      for work in member.pending where !work.finished {
        if work.remaining <= budget {
          slices.append(Slice(work: work, member: member, tokens: work.done..<work.append.tokens.count))
          budget -= work.remaining
        } else {
          deferred.append((member, work))
        }
      }
    }
    for (member, work) in deferred where budget > 0 {
      slices.append(Slice(work: work, member: member, tokens: work.done..<(work.done + budget)))
      budget = 0
    }
    for slice in slices { slice.member.inFlight += 1 }
    return slices
  }
}
