#!/usr/bin/env bash
# One core's AVX2 FMA peak against the prefill register tile of the CPU backend (8 lanes) and a
# 16-lane AVX-512 tile, alternated --rounds times (default 3). README, Speed: on the Zen 4 VM the
# 8-lane tile ran at ~70% of the peak and the 16-lane one ~5% faster, so an AVX-512 build of the
# kernels would not close the prefill gap there (Zen 4 runs 512-bit FMAs on 256-bit units).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/eft-kernel-microbench
mkdir -p "$out"
swiftc -O -target-cpu haswell "$here/peak.swift" -o "$out/peak"
swiftc -O -target-cpu haswell "$here/tile.swift" -o "$out/tile8"
avx512=$(grep -qw avx512f /proc/cpuinfo && echo yes || echo no)
[ "$avx512" = yes ] && swiftc -O -target-cpu znver4 -D AVX512 "$here/tile.swift" -o "$out/tile16"
for _ in $(seq "${1:-3}"); do
  "$out/peak"; "$out/tile8"
  [ "$avx512" = yes ] && "$out/tile16"
done
