#!/usr/bin/env bash
# Fuzz smoke run (CI): builds the libFuzzer targets (tests/fuzz/) with clang
# into build-fuzz/ (-DIRQLAB_FUZZ=ON: ASan + UBSan + coverage), then runs each
# target for SECONDS (default 20) on a scratch copy of its corpus
# tests/fuzz/corpus/<target>/ — which first replays every seed and every
# regression input kept there. Fails if any target reports a crash, a
# sanitizer error (ASan, UBSan, LSan), a timeout (-timeout=10) or an
# out-of-memory (-rss_limit_mb=2048); the reproducer is printed.
#
#   bash scripts/fuzz_smoke.sh [SECONDS]
#   FUZZ_TARGETS="fuzz_vtd fuzz_pci" bash scripts/fuzz_smoke.sh 60
#
# Leak detection stays on everywhere: Unicorn's known per-engine leak is
# suppressed by the LSan hooks in emu/cpu/vcpu.cc / emu/cpu/fw_cpu.cc.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-20}
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
TARGETS=${FUZZ_TARGETS:-"fuzz_lapic fuzz_ioapic fuzz_vtd fuzz_pci fuzz_wcn6855 fuzz_wcn6855_fw fuzz_vfio fuzz_scenario"}

scripts/setup.sh
start=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DIRQLAB_FUZZ=ON >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target irqlab_fuzz
echo "fuzz-smoke: build took $(( $(date +%s) - start )) s"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in $TARGETS; do
  bin="$BUILD_DIR/tests/fuzz/$t"
  corpus="$work/$t"
  mkdir -p "$corpus" "$work/artifacts-$t"
  cp tests/fuzz/corpus/"$t"/* "$corpus"/
  log="$work/$t.log"
  t0=$(date +%s)
  if "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$work/artifacts-$t/" "$corpus" >"$log" 2>&1; then
    stats=$( (grep -E '^#[0-9]+[[:space:]]+DONE' "$log" || true) | tail -1 |
            sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+/runs \1 /')
    echo "fuzz-smoke: $t ok in $(( $(date +%s) - t0 )) s: $stats"
  else
    echo "fuzz-smoke: $t FAILED; log tail:"
    tail -n 60 "$log"
    for a in "$work/artifacts-$t"/*; do
      [ -f "$a" ] || continue
      echo "fuzz-smoke: reproducer $(basename "$a") (base64): $(base64 -w0 "$a")"
      echo "fuzz-smoke: replay with: $bin <file>"
    done
    failed+=("$t")
  fi
done
echo "fuzz-smoke: total $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz-smoke: all targets clean"
