import EFTPluginKit
import Foundation

/// One session's part of a forward pass: its new tokens, its cache, and which of its tokens'
/// logits to write (indices into `tokens`), consecutively, into `out`.
struct ForwardItem {
  let tokens: UnsafeBufferPointer<Int32>
  let cache: KVCache
  let logitRows: Range<Int>
  let out: UnsafeMutablePointer<Float>?
  /// The sequence length that picks LongRoPE's frequencies (`Rope.long`): the cache's length after
  /// this pass, or, when a prefix is recomputed, the length it is recomputed for.
  var ropeLength: Int? = nil
}

/// The rows of one forward pass over several sessions. Every activation buffer of the pass is
/// [rows × width], the sessions' tokens one after the other: item i owns rows
/// `offsets[i] ..< offsets[i] + items[i].tokens.count`. Matrix products run once over all rows;
/// what depends on a session (positions, its cache, attention) goes through this type.
///
/// A row's values never depend on the other rows (every kernel computes each row on its own, in
/// the same order whatever the row count), so a session's logits are the same bit for bit
/// whether it ran alone or batched, and whether its tokens came in one call or several.
struct BatchRows {
  let items: UnsafeBufferPointer<ForwardItem>
  /// The first row of each item.
  let offsets: UnsafeMutableBufferPointer<Int>
  /// Per row: the item it belongs to, and its position in that item's sequence.
  let itemOfRow: UnsafeMutableBufferPointer<Int>
  let positions: UnsafeMutableBufferPointer<Int>
  /// Per item: the sequence length that picks LongRoPE's frequencies (`ForwardItem.ropeLength`).
  let ropeLength: UnsafeMutableBufferPointer<Int>
  /// Where the pass keeps its activations (and these tables): reused from pass to pass.
  let scratch: Scratch
  var count: Int { positions.count }

  /// Makes room in every cache for the item's tokens. The caches must be distinct.
  init(_ items: UnsafeBufferPointer<ForwardItem>, scratch: Scratch) {
    self.items = items
    self.scratch = scratch
    var rows = 0
    for item in items { rows += item.tokens.count }
    offsets = scratch.ints(.offsets, items.count)
    itemOfRow = scratch.ints(.itemOfRow, rows)
    positions = scratch.ints(.positions, rows)
    ropeLength = scratch.ints(.ropeLength, items.count)
    var row = 0
    for (i, item) in items.enumerated() {
      offsets[i] = row
      let start = item.cache.count
      for t in 0..<item.tokens.count {
        itemOfRow[row] = i
        positions[row] = start + t
        row += 1
      }
      item.cache.reserve(item.tokens.count)
      ropeLength[i] = item.ropeLength ?? item.cache.count + item.tokens.count
    }
  }

  /// The token id of each row.
  func token(_ row: Int) -> Int {
    let i = itemOfRow[row]
    return Int(items[i].tokens[row - offsets[i]])
  }

  /// Copies each row's key and value (rows of `width` floats, `stride` apart in the sources)
  /// into its session's cache at its position, for layer `layer`.
  func store(layer: Int, width: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int) {
    for row in 0..<count {
      let cache = items[itemOfRow[row]].cache
      (cache.keys[layer] + (positions[row] - cache.base) * width).update(from: keys + row * stride, count: width)
      (cache.values[layer] + (positions[row] - cache.base) * width).update(from: values + row * stride, count: width)
    }
  }

  /// The rows whose logits are wanted, in output order (items in order, each its `logitRows`).
  var logitRows: UnsafeMutableBufferPointer<Int> {
    var count = 0
    for item in items where item.out != nil { count += item.logitRows.count }
    let rows = scratch.ints(.logitRows, count)
    var r = 0
    for (i, item) in items.enumerated() where item.out != nil {
      for row in item.logitRows {
        rows[r] = offsets[i] + row
        r += 1
      }
    }
    return rows
  }

  /// Writes [logitRows.count × vocab] logits, computed for `logitRows` in order, to the items' outputs.
  func scatterLogits(_ logits: UnsafePointer<Float>, vocab: Int) {
    var r = 0
    for item in items {
      guard let out = item.out else { continue }
      out.update(from: logits + r * vocab, count: item.logitRows.count * vocab)
      r += item.logitRows.count
    }
  }

  /// Records the new tokens in every cache (after the pass has stored their keys and values).
  func advanceCaches() {
    for item in items { item.cache.advance(item.tokens) }
  }
}

extension Network {
  /// The final norm and the output head over the rows whose logits are wanted: gathers them
  /// from the residual stream `x` [rows × hidden], normalises them with `norm`, multiplies by
  /// `head`, soft-caps them as tanh(l / cap) · cap when `softcap` is set (Gemma 2) and hands each
  /// item its logits.
  func writeLogits(_ batch: BatchRows, x: UnsafePointer<Float>, hidden d: Int, head: Weight, kernels: some MatrixKernels,
                   softcap: Float? = nil,
                   norm: (_ x: UnsafePointer<Float>, _ n: Int, _ into: UnsafeMutablePointer<Float>) -> Void) {
    let rows = batch.logitRows
    guard !rows.isEmpty else { return }
    let gathered = batch.scratch.floats(.gathered, rows.count * d)
    let normed = batch.scratch.floats(.normed, rows.count * d)
    let logits = batch.scratch.floats(.logits, rows.count * vocabSize)
    for (r, row) in rows.enumerated() { (gathered + r * d).update(from: x + row * d, count: d) }
    norm(gathered, rows.count, normed)
    kernels.multiply(head, normed, n: rows.count, into: logits)
    if let softcap {
      for i in 0..<(rows.count * vocabSize) { logits[i] = Foundation.tanh(logits[i] / softcap) * softcap }
    }
    batch.scatterLogits(logits, vocab: vocabSize)
  }
}

/// Memory a forward pass reuses: named buffers that grow to the largest pass seen and stay, so
/// that decoding allocates nothing once warm (`eft bench --count-allocations`). One pass uses a
/// scratch at a time; passes running at once (other requests', other models') take others from
/// `ScratchPool`. A buffer's contents do not survive the pass that asked for it.
final class Scratch {
  /// The buffers of a pass. Activations of the forward passes (`DecoderNetwork` and `GPT2` name
  /// theirs by number), the output head's, the rotary tables, and the batch's row tables.
  enum Floats: Int, CaseIterable {
    case a0, a1, a2, a3, a4, a5, a6, a7, a8, a9
    case gathered, normed, logits
    case ropeCos0, ropeSin0, ropeCos1, ropeSin1
    case q16  // a quantized product's quantized activations (taken from a scratch of its own)
  }
  enum Ints: Int, CaseIterable { case offsets, itemOfRow, positions, ropeLength, logitRows }

  private var floats = [(pointer: UnsafeMutablePointer<Float>?, capacity: Int)](repeating: (nil, 0), count: Floats.allCases.count)
  private var ints = [(pointer: UnsafeMutablePointer<Int>?, capacity: Int)](repeating: (nil, 0), count: Ints.allCases.count)

  deinit {
    for f in floats { f.pointer?.deallocate() }
    for i in ints { i.pointer?.deallocate() }
  }

  /// Room for `count` floats (contents undefined), grown (by half again, at least) if need be.
  func floats(_ slot: Floats, _ count: Int) -> UnsafeMutablePointer<Float> {
    let (pointer, capacity) = floats[slot.rawValue]
    if let pointer, capacity >= count { return pointer }
    pointer?.deallocate()
    let grown = max(count, capacity + capacity / 2, 16)
    let fresh = UnsafeMutablePointer<Float>.allocate(capacity: grown)
    floats[slot.rawValue] = (fresh, grown)
    return fresh
  }

  func ints(_ slot: Ints, _ count: Int) -> UnsafeMutableBufferPointer<Int> {
    let (pointer, capacity) = ints[slot.rawValue]
    if let pointer, capacity >= count { return UnsafeMutableBufferPointer(start: pointer, count: count) }
    pointer?.deallocate()
    let grown = max(count, capacity + capacity / 2, 16)
    let fresh = UnsafeMutablePointer<Int>.allocate(capacity: grown)
    ints[slot.rawValue] = (fresh, grown)
    return UnsafeMutableBufferPointer(start: fresh, count: count)
  }
}

/// The scratches of the passes running now and of those that ran (kept for the next ones).
enum ScratchPool {
  private static let lock = NSLock()
  nonisolated(unsafe) private static var free: [Scratch] = []

  static func with<T>(_ body: (Scratch) throws -> T) rethrows -> T {
    let scratch = lock.withLock { free.popLast() } ?? Scratch()
    defer { lock.withLock { free.append(scratch) } }
    return try body(scratch)
  }
}

extension Network {
  /// One forward pass over `items` (see `forward(_: BatchRows)`), in a scratch of the pool.
  func forward(_ items: UnsafeBufferPointer<ForwardItem>) {
    ScratchPool.with { forward(BatchRows(items, scratch: $0)) }
  }
}
