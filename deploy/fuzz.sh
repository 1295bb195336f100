#!/usr/bin/env bash
# Fuzzes the frame decoder with libFuzzer (coverage-guided, AddressSanitizer on) for a bounded
# time, starting from the committed corpus (Tests/BursarWireTests/FuzzCorpus/frames). Prints how
# many inputs were tried. A violated property (see Sources/BursarWireFuzzing) or a sanitizer report
# stops it: the failing input is left in $FUZZ_OUT/artifacts and the script exits non-zero; copy it
# into the corpus as regression-<name> so the test suite replays it forever after the fix.
#
#   deploy/fuzz.sh                 60 seconds
#   FUZZ_SECONDS=600 deploy/fuzz.sh
#   FUZZ_MERGE=1 deploy/fuzz.sh    afterwards, merge new coverage back into the committed corpus
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
out=${FUZZ_OUT:-${TMPDIR:-/tmp}/bursar-fuzz}
corpus=Tests/BursarWireTests/FuzzCorpus/frames

# Its own build directory: every Swift module is instrumented for coverage and AddressSanitizer.
swift build --product bursar-fuzz-frames --build-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DBURSAR_FUZZ 2>&1 | grep -v "Cannot export local symbol" | tail -n 3
bin=.build-fuzz/debug/bursar-fuzz-frames

rm -rf "$out" && mkdir -p "$out/work" "$out/artifacts"
cp "$corpus"/* "$out/work/"
# The Swift backtracer and ASan both want the crash; let ASan have it.
export SWIFT_BACKTRACE=enable=no
status=0
"$bin" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$out/artifacts/" "$out/work" >"$out/log" 2>&1 || status=$?
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/log" | grep -o '[0-9]*$' || echo 0)
cov=$(grep -o 'cov: [0-9]*' "$out/log" | tail -n 1 || true)
echo "fuzz: frame decoder, ${seconds}s: ${runs} inputs tried, ${cov:-cov: ?} edges, corpus $(ls "$out/work" | wc -l) inputs"
if ((status != 0)); then
  echo "fuzz: FAILED (exit $status); failing input(s):" >&2
  ls -l "$out/artifacts" >&2
  grep -E "Fatal error|ERROR: AddressSanitizer|SUMMARY" "$out/log" | head -n 5 >&2
  exit 1
fi
if [[ "${FUZZ_MERGE:-0}" == 1 ]]; then
  mkdir -p "$out/merged"
  "$bin" -merge=1 "$out/merged" "$corpus" "$out/work" >/dev/null 2>&1
  cp -n "$out/merged"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: corpus now $(ls "$corpus" | wc -l) inputs"
fi
