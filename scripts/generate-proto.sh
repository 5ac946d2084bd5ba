#!/usr/bin/env bash
# Regenerates the Swift code generated from proto/: config and backend-option messages into
# Sources/EFTProto, the wire protocol (messages and gRPC stubs) into Sources/EFTRPC. The output
# is committed, so builds never run protoc. Needs Debian's protoc (apt-get install
# protobuf-compiler libprotobuf-dev) and the two protoc plugins, which this script builds in a scratch package
# unless PROTOC_GEN_SWIFT and PROTOC_GEN_GRPC_SWIFT name them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PROTOC_GEN_SWIFT:-}" ] || [ -z "${PROTOC_GEN_GRPC_SWIFT:-}" ]; then
  tools=${EFT_TOOLS_DIR:-/tmp/eft-proto-tools}
  mkdir -p "$tools"
  cat > "$tools/Package.swift" <<'PKG'
// swift-tools-version:6.1
import PackageDescription
let package = Package(name: "tools", dependencies: [
  .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
  .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
], targets: [])
PKG
  swift build --package-path "$tools" -c release --product protoc-gen-swift >&2
  swift build --package-path "$tools" -c release --product protoc-gen-grpc-swift-2 >&2
  PROTOC_GEN_SWIFT="$tools/.build/release/protoc-gen-swift"
  PROTOC_GEN_GRPC_SWIFT="$tools/.build/release/protoc-gen-grpc-swift-2"
fi

# runtime.proto imports config.proto (for `Sampling`): code generated into EFTRPC imports the
# EFTProto module for it instead of generating the messages twice.
mappings=$(mktemp)
trap 'rm -f "$mappings"' EXIT
cat > "$mappings" <<'MAP'
mapping { module_name: "EFTProto" proto_file_path: "eft/v1/config.proto" }
MAP

messages() {  # OUT FILES...
  local out=$1; shift
  rm -f "$out"/*.pb.swift "$out"/*.grpc.swift
  protoc -I "$root/proto" \
    --plugin=protoc-gen-swift="$PROTOC_GEN_SWIFT" \
    --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath --swift_opt=ProtoPathModuleMappings="$mappings" \
    --swift_out="$out" "$@"
}

messages "$root/Sources/EFTProto" \
  "$root"/proto/eft/v1/config.proto "$root"/proto/eft/v1/backend_options.proto "$root"/proto/eft/v1/ngram_options.proto \
  "$root"/proto/eft/v1/remote_options.proto

rpc=(proto/eft/v1/runtime.proto proto/grpc/health/v1/health.proto)
messages "$root/Sources/EFTRPC" "${rpc[@]/#/$root/}"
protoc -I "$root/proto" \
  --plugin=protoc-gen-grpc-swift-2="$PROTOC_GEN_GRPC_SWIFT" \
  --grpc-swift-2_opt=Visibility=Public --grpc-swift-2_opt=FileNaming=DropPath \
  --grpc-swift-2_opt=ProtoPathModuleMappings="$mappings" \
  --grpc-swift-2_out="$root/Sources/EFTRPC" "${rpc[@]/#/$root/}"
echo "generated: $(ls "$root/Sources/EFTProto" "$root/Sources/EFTRPC")" >&2
