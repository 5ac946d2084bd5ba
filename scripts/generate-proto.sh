#!/usr/bin/env bash
# Regenerates the Swift code under Sources/EFTProto from proto/. The output is committed, so
# builds never run protoc. Needs Debian's protoc (apt-get install protobuf-compiler) and
# swift-protobuf's protoc-gen-swift, which this script builds in a scratch package when
# PROTOC_GEN_SWIFT is not set.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PROTOC_GEN_SWIFT:-}" ]; then
  tools=${EFT_TOOLS_DIR:-/tmp/eft-proto-tools}
  mkdir -p "$tools"
  cat > "$tools/Package.swift" <<'PKG'
// swift-tools-version:6.1
import PackageDescription
let package = Package(name: "tools", dependencies: [
  .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
], targets: [])
PKG
  swift build --package-path "$tools" -c release --product protoc-gen-swift >&2
  PROTOC_GEN_SWIFT="$tools/.build/release/protoc-gen-swift"
fi
out="$root/Sources/EFTProto"
rm -f "$out"/*.pb.swift
protoc -I "$root/proto" \
  --plugin=protoc-gen-swift="$PROTOC_GEN_SWIFT" \
  --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath \
  --swift_out="$out" \
  "$root"/proto/eft/v1/config.proto "$root"/proto/eft/v1/backend_options.proto "$root"/proto/eft/v1/ngram_options.proto
echo "generated: $(ls "$out")" >&2
