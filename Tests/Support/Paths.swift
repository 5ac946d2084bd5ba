import Foundation

// Where the tests find the repository's files and what `swift build` built; shared by every test
// target.

/// The repository root (this file is Tests/Support/Paths.swift).
public let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Where SwiftPM put the executables, plugins and fixtures: beside the test binary, else
/// .build/debug.
public let buildDirectory: String = {
  let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
  let beside = URL(fileURLWithPath: exe).deletingLastPathComponent().path
  if FileManager.default.fileExists(atPath: beside + "/libCPUBackend.so") { return beside }
  return repoRoot.appendingPathComponent(".build/debug").path
}()

/// The dynamic library SwiftPM built for product `name`.
public func library(_ name: String) -> String { "\(buildDirectory)/lib\(name).so" }
