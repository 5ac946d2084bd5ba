#!/usr/bin/env bash
# Builds the fuzz targets (Tests/Fuzz) with libFuzzer and AddressSanitizer and runs each for a
# bounded time on its seed corpus (Tests/Fuzz/Corpus/<target>, plus examples/configs for the
# config target). New inputs go to a scratch corpus (not committed); a crash, a leak, a broken
# invariant or a slow input stops the run, saves the input under .build/fuzz-findings/ and exits 1.
#
#   scripts/fuzz.sh [SECONDS per target (60)] [TARGET...]   targets: config tokenizer checkpoint request
#
# A finding becomes a regression test: copy the saved input into Tests/Fuzz/Corpus/<target>/
# (a normal build's `fuzz-<target> DIR` replays it; CI replays every corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config tokenizer checkpoint request)

# The config and request targets load the bundled tiny models through the normal build's plugin.
swift build --product BigramBackend > /dev/null
# Inputs are at most 16 KiB and one may take 30 s: under ASan and coverage a 12 KiB text takes
# ~2.5 s through the tokenizer target (encode twice, decode, stream), linear in its length; what
# runs past 30 s is a hang worth a look.
# Not -sanitize=fuzzer: it links libFuzzer's main, which clashes with the main SwiftPM gives every
# executable; the targets start libFuzzer's driver from their own main instead (fuzzMain), so
# they get libFuzzer's coverage instrumentation and its no-main library.
fuzzer_lib=$(ls "$(dirname "$(readlink -f "$(which swiftc)")")"/../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a | head -1)
flags=(--scratch-path .build/fuzz -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp
       -Xswiftc -DFUZZING -Xlinker "$fuzzer_lib" -Xlinker -lstdc++)
for t in "${targets[@]}"; do swift build "${flags[@]}" --product "fuzz-$t"; done
bin=$(swift build "${flags[@]}" --show-bin-path)

mkdir -p .build/fuzz-findings
status=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  seeds=(Tests/Fuzz/Corpus/"$t")
  [ "$t" = config ] && seeds+=(examples/configs)
  echo "fuzz-$t: $seconds s"
  # The Swift runtime's backtracer is off: it can hang on an ASan report. Leak detection is off:
  # Swift keeps pointers with tag bits in enum payloads (the weight expressions' indirect enum
  # nodes) and weak-reference side tables, which LeakSanitizer cannot follow, so it reports
  # objects the runtime still holds (scripts/soak.py watches memory growth instead).
  if ! SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$bin/fuzz-$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -max_len=16384 -detect_leaks=0 \
       -artifact_prefix=".build/fuzz-findings/$t-" -print_final_stats=1 "$work" "${seeds[@]}" > ".build/fuzz-findings/$t.log" 2>&1; then
    echo "fuzz-$t: FOUND a problem (.build/fuzz-findings/$t.log):"
    grep -E "ERROR|invariant broken|Test unit written|SUMMARY" ".build/fuzz-findings/$t.log" | head -20
    status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' ".build/fuzz-findings/$t.log" | tail -1)
  echo "fuzz-$t: ${runs:-?} inputs run, corpus $(ls "$work" | wc -l) new inputs"
  rm -rf "$work"
done
exit $status
