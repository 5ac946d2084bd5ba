// swift-tools-version:6.1
import PackageDescription

// Backend plugins are dynamic libraries loaded at run time through the C ABI in
// Sources/CEFTBackend; nothing links them. `swift build` builds every product, plugins included.
let package = Package(
  name: "EFTRuntime",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "eft", targets: ["eft"]),
    // The gRPC server and its command-line client: separate executables, so that building and
    // running models locally (`eft`) never compiles the network stack.
    .executable(name: "eft-server", targets: ["eft-server"]),
    .executable(name: "eft-client", targets: ["eft-client"]),
    .library(name: "EFTCore", targets: ["EFTCore"]),
    .library(name: "BigramBackend", type: .dynamic, targets: ["BigramBackend"]),
    .library(name: "CPUBackend", type: .dynamic, targets: ["CPUBackend"]),
    .library(name: "BLASBackend", type: .dynamic, targets: ["BLASBackend"]),
    // A model that lives in another eft-server (its eft.v1.Models service).
    .library(name: "RemoteBackend", type: .dynamic, targets: ["RemoteBackend"]),
    // Counts heap allocations when preloaded into a benchmark (eft bench --count-allocations).
    .library(name: "EFTAllocCounter", type: .dynamic, targets: ["EFTAllocCounter"]),
    // Broken plugins, one per refusal path of the plugin host (used by the tests).
    .library(name: "FixtureWrongMajor", type: .dynamic, targets: ["FixtureWrongMajor"]),
    .library(name: "FixtureNoEntry", type: .dynamic, targets: ["FixtureNoEntry"]),
    .library(name: "FixtureShortTable", type: .dynamic, targets: ["FixtureShortTable"]),
    .library(name: "FixtureNullSlot", type: .dynamic, targets: ["FixtureNullSlot"]),
    .library(name: "FixtureBrokenBackend", type: .dynamic, targets: ["FixtureBrokenBackend"]),
    .library(name: "FixtureABI10", type: .dynamic, targets: ["FixtureABI10"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    // Already in the graph through the gRPC transport; named to check TLS files before listening.
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
    // The OpenAI-compatible HTTP front and the Prometheus metrics of eft-server.
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
  ],
  targets: [
    // The C ABI between host and backends: one header, nothing else.
    .target(name: "CEFTBackend"),
    // malloc and friends, counted and forwarded to glibc: preloaded, never linked.
    .target(name: "EFTAllocCounter"),
    // Message code generated from proto/ by scripts/generate-proto.sh. Never edited by hand.
    .target(name: "EFTProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    .target(name: "EFTTokenizer"),
    // The runtime's vocabulary: requests, results, settings, graph summaries, status codes and
    // errors. No dependencies: clients share it with the engine without linking the engine.
    .target(name: "EFTAPI"),
    // The engine (config compiler, plugin host, graph evaluator, decoders, scheduler); re-exports
    // EFTAPI.
    .target(name: "EFTCore", dependencies: ["CEFTBackend", "EFTAPI", "EFTProto", "EFTTokenizer"]),
    // What a backend written in Swift links: turns a Swift model type into the C function table.
    .target(name: "EFTPluginKit", dependencies: ["CEFTBackend"]),
    // Option groups and output formats shared by `eft` and `eft-client`.
    .target(name: "EFTCommandLine", dependencies: [
      "EFTAPI", .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ]),
    .executableTarget(name: "eft", dependencies: [
      "EFTCore", "EFTCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ]),

    // The wire protocol: messages and gRPC stubs generated from proto/eft/v1/runtime.proto and
    // proto/grpc/health/v1/health.proto by scripts/generate-proto.sh (config.proto's messages,
    // `Sampling` among them, come from EFTProto).
    .target(name: "EFTRPC", dependencies: [
      "EFTProto",
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
    ]),
    // Wire messages <-> runtime types (both ways), the endpoint syntax, the client connection (TLS,
    // token) and the status table: what a client needs, without the server or the engine.
    .target(name: "EFTWire", dependencies: [
      "EFTAPI", "EFTProto", "EFTRPC", .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "NIOSSL", package: "swift-nio-ssl"),
    ]),
    // The Runtime service over gRPC (HTTP/2 on TCP or a Unix socket).
    .target(name: "EFTServer", dependencies: [
      "EFTCore", "EFTRPC", "EFTWire",
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      .product(name: "NIOSSL", package: "swift-nio-ssl"),
      .product(name: "Hummingbird", package: "hummingbird"),
      .product(name: "HummingbirdCore", package: "hummingbird"),
      .product(name: "HummingbirdTLS", package: "hummingbird"),
      .product(name: "Prometheus", package: "swift-prometheus"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      .product(name: "Logging", package: "swift-log"),
    ]),
    .executableTarget(name: "eft-server", dependencies: [
      "EFTServer", "EFTCore", "EFTCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ]),
    .executableTarget(name: "eft-client", dependencies: [
      "EFTAPI", "EFTRPC", "EFTWire", "EFTCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
    ]),

    .target(name: "BigramBackend", dependencies: ["EFTPluginKit", "EFTProto"], path: "Plugins/BigramBackend"),
    // Llama-family and GPT-2 forward passes over safetensors, generic over the matrix kernels;
    // linked into both transformer plugins. `-target-cpu haswell` lets SIMD code use AVX2, FMA
    // and F16C (without it `addingProduct` becomes a libm call per lane; see TOOLCHAIN notes).
    // Optimised in debug builds too: the tests run real models through it (the facts-world test
    // took 145 s unoptimised).
    .target(name: "Transformer", dependencies: ["EFTPluginKit", "EFTProto"], path: "Plugins/Transformer",
            swiftSettings: [.unsafeFlags(["-target-cpu", "haswell"]), .unsafeFlags(["-O"], .when(configuration: .debug))]),
    // The product kernels of Transformer built again for AVX-512 with VNNI (the Intel baseline
    // of that set, tuned for Zen 4, whose tuning keeps vpdpwssd fused); chosen at run time by
    // KernelSet.best, so the plugins still run on AVX2-only CPUs.
    .target(name: "TransformerAVX512", dependencies: ["Transformer"], path: "Plugins/TransformerAVX512",
            swiftSettings: [.unsafeFlags(["-target-cpu", "cascadelake", "-Xcc", "-mtune=znver4"]), .unsafeFlags(["-O"], .when(configuration: .debug))]),
    .target(name: "CPUBackend", dependencies: ["Transformer", "TransformerAVX512", "EFTPluginKit"], path: "Plugins/CPUBackend"),
    .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
    .target(name: "BLASBackend", dependencies: ["Transformer", "TransformerAVX512", "EFTPluginKit", "COpenBLAS"], path: "Plugins/BLASBackend"),

    .target(name: "RemoteBackend", dependencies: [
      "EFTPluginKit", "EFTProto", "EFTRPC", "EFTWire", .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
    ], path: "Plugins/RemoteBackend"),

    .target(name: "FixtureWrongMajor", dependencies: ["CEFTBackend"], path: "Tests/Fixtures/WrongMajor", publicHeadersPath: "."),
    .target(name: "FixtureNoEntry", path: "Tests/Fixtures/NoEntry", publicHeadersPath: "."),
    .target(name: "FixtureShortTable", dependencies: ["CEFTBackend"], path: "Tests/Fixtures/ShortTable", publicHeadersPath: "."),
    .target(name: "FixtureNullSlot", dependencies: ["CEFTBackend"], path: "Tests/Fixtures/NullSlot", publicHeadersPath: "."),
    .target(name: "FixtureBrokenBackend", dependencies: ["CEFTBackend"], path: "Tests/Fixtures/BrokenBackend", publicHeadersPath: ".",
            linkerSettings: [.linkedLibrary("m")]),
    .target(name: "FixtureABI10", dependencies: ["CEFTBackend"], path: "Tests/Fixtures/ABI10", publicHeadersPath: ".",
            linkerSettings: [.linkedLibrary("m")]),

    // Fuzz targets (Tests/Fuzz; scripts/fuzz.sh builds them with libFuzzer, a normal build makes
    // them replay their corpora).
    .target(name: "CFuzzer", path: "Tests/Fuzz/CFuzzer"),
    .target(name: "EFTFuzzSupport", dependencies: ["CFuzzer"], path: "Tests/Fuzz/Support"),
    .executableTarget(name: "fuzz-config", dependencies: ["EFTCore", "EFTFuzzSupport"], path: "Tests/Fuzz/Config"),
    .executableTarget(name: "fuzz-tokenizer", dependencies: ["EFTTokenizer", "EFTFuzzSupport"], path: "Tests/Fuzz/Tokenizer"),
    .executableTarget(name: "fuzz-checkpoint", dependencies: ["Transformer", "EFTPluginKit", "EFTProto", "EFTFuzzSupport"], path: "Tests/Fuzz/Checkpoint",
                      swiftSettings: [.unsafeFlags(["-target-cpu", "haswell"])]),
    .executableTarget(name: "fuzz-request", dependencies: [
      "EFTCore", "EFTRPC", "EFTServer", "EFTWire", "EFTFuzzSupport", .product(name: "GRPCCore", package: "grpc-swift-2"),
    ], path: "Tests/Fuzz/Request"),

    // Paths every test target uses (the repository, the build products).
    .target(name: "EFTTestSupport", path: "Tests/Support"),
    .testTarget(name: "EFTTokenizerTests", dependencies: ["EFTTokenizer", "EFTTestSupport"], exclude: ["Goldens"]),
    .testTarget(name: "EFTCoreTests", dependencies: ["EFTCore", "EFTTokenizer", "EFTTestSupport"]),
    .testTarget(name: "TransformerTests", dependencies: ["Transformer", "TransformerAVX512", "EFTCore", "EFTTokenizer", "EFTTestSupport"]),
    .testTarget(name: "EFTCLITests", dependencies: ["EFTTestSupport"]),
    // Wire conversions and the status table, without the engine.
    .testTarget(name: "EFTWireTests", dependencies: ["EFTWire", "EFTAPI", "EFTRPC", .product(name: "GRPCCore", package: "grpc-swift-2")]),
    .testTarget(name: "EFTServerTests", dependencies: [
      "EFTServer", "EFTRPC", "EFTWire", "EFTCore", "EFTTestSupport",
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
    ]),
  ]
)
