#!/usr/bin/env bash
# Regenerates the golden traces (tests/golden/*.trace) of the scenarios
# listed in tests/golden/SCENARIOS with the irqlab in BUILD_DIR (build/).
# Run it after an intended change to the trace, and review the diff.
set -euo pipefail
cd "$(dirname "$0")/.."
IRQLAB="${BUILD_DIR:-build}/emu/irqlab"
[ -x "$IRQLAB" ] || { echo "update_golden: build first ($IRQLAB missing)" >&2; exit 2; }
grep -v '^#' tests/golden/SCENARIOS | while read -r rel; do
  [ -n "$rel" ] || continue
  out="tests/golden/${rel//\//.}.trace"
  "$IRQLAB" run --quiet "scenarios/$rel.textproto" --trace="$out" > /dev/null
  echo "update_golden: $out ($(wc -l < "$out") lines)"
done
