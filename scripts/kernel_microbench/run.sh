#!/usr/bin/env bash
# One core's AVX2 FMA peak against the prefill register tiles of the CPU backend's two kernel
# builds (AVX2: two rows × four tokens in 8 lanes; AVX-512: four rows × four tokens in 8 lanes,
# which its 32 registers hold) and a 16-lane AVX-512 tile, alternated --rounds times (default 3).
# README, Speed: on the Zen 4 VM the AVX2 tile ran at ~55-70% of the peak, the AVX-512 build's
# at ~80% (the registers, not the width: the 16-lane tile gains little more, as Zen 4 runs
# 512-bit FMAs on 256-bit units).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/eft-kernel-microbench
mkdir -p "$out"
swiftc -O -target-cpu haswell "$here/peak.swift" -o "$out/peak"
swiftc -O -target-cpu haswell "$here/tile.swift" -o "$out/tile8"
avx512=$(grep -qw avx512f /proc/cpuinfo && echo yes || echo no)
[ "$avx512" = yes ] && swiftc -O -target-cpu cascadelake -D ROWS4 "$here/tile.swift" -o "$out/tile8x4"
[ "$avx512" = yes ] && swiftc -O -target-cpu znver4 -D AVX512 "$here/tile.swift" -o "$out/tile16"
for _ in $(seq "${1:-3}"); do
  "$out/peak"; "$out/tile8"
  [ "$avx512" = yes ] && "$out/tile8x4" && "$out/tile16"
done
