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
  let items: [ForwardItem]
  /// The first row of each item.
  let offsets: [Int]
  /// Per row: the item it belongs to, and its position in that item's sequence.
  let itemOfRow: [Int]
  let positions: [Int]
  /// Per item: the sequence length that picks LongRoPE's frequencies (`ForwardItem.ropeLength`).
  let ropeLength: [Int]
  var count: Int { positions.count }

  /// Makes room in every cache for the item's tokens. The caches must be distinct.
  init(_ items: [ForwardItem]) {
    self.items = items
    var offsets: [Int] = [], itemOfRow: [Int] = [], positions: [Int] = []
    for (i, item) in items.enumerated() {
      offsets.append(positions.count)
      let start = item.cache.count
      for t in 0..<item.tokens.count {
        itemOfRow.append(i)
        positions.append(start + t)
      }
      item.cache.reserve(item.tokens.count)
    }
    ropeLength = items.map { $0.ropeLength ?? $0.cache.count + $0.tokens.count }
    self.offsets = offsets
    self.itemOfRow = itemOfRow
    self.positions = positions
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
  var logitRows: [Int] {
    items.indices.flatMap { i in items[i].out == nil ? [] : items[i].logitRows.map { offsets[i] + $0 } }
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
    let gathered = UnsafeMutablePointer<Float>.allocate(capacity: rows.count * d)
    let normed = UnsafeMutablePointer<Float>.allocate(capacity: rows.count * d)
    let logits = UnsafeMutablePointer<Float>.allocate(capacity: rows.count * vocabSize)
    defer { [gathered, normed, logits].forEach { $0.deallocate() } }
    for (r, row) in rows.enumerated() { (gathered + r * d).update(from: x + row * d, count: d) }
    norm(gathered, rows.count, normed)
    kernels.multiply(head, normed, n: rows.count, into: logits)
    if let softcap {
      for i in 0..<(rows.count * vocabSize) { logits[i] = Foundation.tanh(logits[i] / softcap) * softcap }
    }
    batch.scatterLogits(logits, vocab: vocabSize)
  }
}
