import ArgumentParser
import EFTCore
import EFTTokenizer
import Foundation

struct Tokenize: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print the token ids of each line of a text file (or stdin), one line of space-separated ids per line.")

  @Option(help: "The tokenizer.json to use.")
  var tokenizer: String

  @Flag(help: "Add the tokenizer's special tokens (e.g. BOS) as its post-processor says.")
  var addSpecialTokens = false

  @Argument(help: "The text file (default: stdin).")
  var file: String?

  func run() throws {
    try reportingErrors {
      let t: Tokenizer
      do {
        t = try Tokenizer(contentsOf: URL(fileURLWithPath: tokenizer))
      } catch {
        throw RuntimeError(.tokenizer, .invalidArgument, "\(tokenizer): \(error)")
      }
      let data: Data
      if let file {
        guard let d = FileManager.default.contents(atPath: file) else { throw RuntimeError(.request, .notFound, "\(file): cannot read") }
        data = d
      } else {
        data = FileHandle.standardInput.readDataToEndOfFile()
      }
      var out = ""
      for line in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
        out += t.encode(String(line), addSpecialTokens: addSpecialTokens).map(String.init).joined(separator: " ") + "\n"
        if out.utf8.count > 1 << 16 {
          FileHandle.standardOutput.write(Data(out.utf8))
          out = ""
        }
      }
      FileHandle.standardOutput.write(Data(out.utf8))
    }
  }
}
