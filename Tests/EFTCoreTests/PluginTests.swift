import CEFTBackend
import Foundation
import Testing
import EFTTokenizer

@testable import EFTCore

/// The plugin host's refusal paths, each against a real broken shared library built by SwiftPM
/// (Tests/Fixtures), and the bigram backend through the real loader.
@Suite struct PluginHostTests {
  func refusal(_ name: String) -> RuntimeError? { runtimeError { _ = try Plugin(path: library(name)) } }

  @Test func loadsTheBigramBackend() throws {
    let plugin = try Plugin(path: library("BigramBackend"))
    #expect(plugin.name == "bigram")
    #expect(plugin.abiMajor == UInt32(EFT_ABI_VERSION_MAJOR))
  }

  @Test func refusesAnotherMajorNamingBothVersions() throws {
    let e = try #require(refusal("FixtureWrongMajor"))
    #expect(e.code == .failedPrecondition)
    #expect(e.message.contains("libFixtureWrongMajor.so"))
    #expect(e.message.contains("ABI 2.0"))
    #expect(e.message.contains("ABI \(EFT_ABI_VERSION_MAJOR).\(EFT_ABI_VERSION_MINOR)"))
  }

  /// A plugin of ABI 1.0 (no `session_append_batch`) loads, and a batched append falls back to
  /// one call per session with the same results.
  @Test func loadsAnABI10PluginAndBatchesByFallingBack() throws {
    let plugin = try Plugin(path: library("FixtureABI10"))
    #expect(plugin.abiMinor == 0)
    #expect(plugin.appendBatch == nil)
    #expect(try Plugin(path: library("FixtureBrokenBackend")).appendBatch != nil)
    let model = try Model(name: "toy", plugin: plugin, path: "good", options: [], tokenizer: try Tokenizer(contentsOf: tinyModels.appendingPathComponent("tokenizer.json")))
    let a = try model.makeSession(), b = try model.makeSession()
    let batched = model.append([Append(a, [1, 2, 3], .all), Append(b, [4], .last)])
    #expect(try batched[0].get() == (try model.makeSession().append([1, 2, 3], mode: .all)))
    #expect(try batched[1].get() == (try model.makeSession().append([4], mode: .last)))
    #expect(a.count == 3 && b.count == 1)
  }

  @Test func refusesAMissingEntrySymbol() throws {
    let e = try #require(refusal("FixtureNoEntry"))
    #expect(e.message.contains("libFixtureNoEntry.so"))
    #expect(e.message.contains("eft_backend_entry"))
    #expect(e.message.contains("__attribute__((visibility(\"default\")))"), "the hint covers C too")
  }

  @Test func refusesAShortTable() throws {
    let e = try #require(refusal("FixtureShortTable"))
    #expect(e.message.contains("shorter than"))
  }

  @Test func refusesANullRequiredSlot() throws {
    let e = try #require(refusal("FixtureNullSlot"))
    #expect(e.message.contains("'model_open'"))
  }

  @Test func refusesAMissingFileAndAFileThatIsNotALibrary() throws {
    let missing = try #require(runtimeError { _ = try Plugin(path: "/nonexistent/libX.so") })
    #expect(missing.code == .notFound)
    let dir = try TemporaryDirectory()
    let path = try dir.write("libtext.so", "not an ELF file")
    let notLibrary = try #require(runtimeError { _ = try Plugin(path: path) })
    #expect(notLibrary.message.contains("cannot be loaded"))
  }

  @Test func locatorSearchesDirectoriesInOrder() throws {
    let located = try PluginLocator(directories: ["/nonexistent", buildDirectory]).locate("BigramBackend")
    #expect(located == library("BigramBackend"))
    let e = try #require(runtimeError { _ = try PluginLocator(directories: ["/nonexistent"]).locate("Nope") })
    #expect(e.message.contains("libNope.so"))
    #expect(e.message.contains("/nonexistent"))
  }

  @Test func statusCodesRoundTripThroughTheCABI() {
    let abiCodes: [StatusCode] = [.ok, .invalidArgument, .notFound, .dataLoss, .outOfRange, .resourceExhausted, .unimplemented, .internal, .unavailable, .deadlineExceeded]
    for code in abiCodes {
      #expect(StatusCode(code.cStatus) == code)
      #expect(Int(code.cStatus.rawValue) == code.rawValue)
    }
    #expect(StatusCode(eft_status(rawValue: 999)) == .internal)
    #expect(Set(StatusCode.allCases.map(\.description)).count == StatusCode.allCases.count)
  }
}

/// The bigram backend through the ABI: the invariants every backend must keep.
@Suite struct BigramBackendTests {
  let plugin: Plugin
  let tokenizer: Tokenizer

  init() throws {
    plugin = try Plugin(path: library("BigramBackend"))
    tokenizer = try Tokenizer(contentsOf: tinyModels.appendingPathComponent("tokenizer.json"))
  }

  func open(_ file: String, options: [UInt8] = []) throws -> Model {
    try Model(name: "m", plugin: plugin, path: file, options: options, tokenizer: tokenizer)
  }

  @Test func describesItself() throws {
    let m = try open(tinyModels.path + "/small_base.bigram")
    #expect(m.vocabSize == 420)
    #expect(m.bosTokenID == 1)
    #expect(m.eosTokenIDs == [2])
    #expect(m.architecture == "bigram")
    #expect(m.contextLength == 4096)
  }

  @Test func oneByOneEqualsAllAtOnceAndTruncateRestores() throws {
    let m = try open(tinyModels.path + "/large_base.bigram")
    let ids = tokenizer.encode("Tomas lives in Oakridge.")
    let all = try m.makeSession().append(ids, allPositions: true)
    let s = try m.makeSession()
    var stepwise: [Float] = []
    for id in ids { stepwise += try s.append([id]) }
    #expect(all == stepwise)
    try s.truncate(to: 2)
    #expect(s.count == 2)
    let again = try s.append(Array(ids[2...]), allPositions: true)
    #expect(Array(all[(2 * m.vocabSize)...]) == again)
    // Every row is a distribution.
    let row = Array(all[0..<m.vocabSize]).map(Double.init)
    #expect(abs(row.map(exp).reduce(0, +) - 1) < 1e-4)
  }

  @Test func badInputsAreErrorsNotCrashes() throws {
    let m = try open(tinyModels.path + "/small_base.bigram")
    let s = try m.makeSession()
    let outOfRange = try #require(runtimeError { try s.append([420]) })
    #expect(outOfRange.code == .invalidArgument)
    #expect(outOfRange.message.contains("420"))
    #expect(s.count == 0)
    let past = try #require(runtimeError { try s.truncate(to: 5) })
    #expect(past.code == .outOfRange)
  }

  @Test func truncatedOrCorruptFilesNameFileAndLine() throws {
    let dir = try TemporaryDirectory()
    let original = try String(contentsOfFile: tinyModels.path + "/small_base.bigram", encoding: .utf8)
    let header = original.components(separatedBy: "counts")[0]
    let cut = try dir.write("cut.bigram", header)
    let e1 = try #require(runtimeError { _ = try open(cut) })
    #expect(e1.code == .dataLoss)
    #expect(e1.message.contains("cut.bigram"))
    #expect(e1.message.contains("cut short"))
    let bad = try dir.write("bad.bigram", header + "counts\n1 2 3\n4 five 6\n")
    let e2 = try #require(runtimeError { _ = try open(bad) })
    #expect(e2.message.contains("bad.bigram:10"))
    let missing = try #require(runtimeError { _ = try open(dir.url.path + "/none.bigram") })
    #expect(missing.code == .notFound)
  }

  @Test func optionsTravelAsProtobufBytes() throws {
    // BigramOptions { smoothing: 1000 } as bytes: field 1, wire type 1 (fixed64 double).
    var bytes: [UInt8] = [0x09]
    withUnsafeBytes(of: (1000.0).bitPattern.littleEndian) { bytes += $0 }
    let smooth = try open(tinyModels.path + "/small_base.bigram", options: bytes)
    let plain = try open(tinyModels.path + "/small_base.bigram")
    let a = try smooth.makeSession().append([1]), b = try plain.makeSession().append([1])
    // Heavy smoothing flattens the row towards uniform.
    #expect(a.max()! - a.min()! < b.max()! - b.min()!)
    let garbage = try #require(runtimeError { _ = try open(tinyModels.path + "/small_base.bigram", options: [0xFF, 0xFF]) })
    #expect(garbage.message.contains("BigramOptions"))
  }
}

