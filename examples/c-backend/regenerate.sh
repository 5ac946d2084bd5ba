#!/usr/bin/env bash
# Regenerates the protobuf-c code for the backend's options from proto/eft/v1/ngram_options.proto.
# The output is committed, so building the backend never runs protoc-c.
# Needs Debian's protobuf-c-compiler (apt-get install protobuf-c-compiler).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$here/generated"
protoc-c -I "$root/proto" --c_out="$here/generated" "$root/proto/eft/v1/ngram_options.proto"
echo "generated: $(cd "$here/generated" && find . -name '*.pb-c.*' | sort | tr '\n' ' ')" >&2
