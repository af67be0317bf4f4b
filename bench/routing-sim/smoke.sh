#!/usr/bin/env bash
# ctest routing_sim.quick: runs `routing_sim --quick` and checks that every RESULT line the
# docs name is printed (the PTU part's and, per mode and regime, the routing ones).
# Usage: smoke.sh <routing_sim binary> <data dir>. Skips (77) without the shared data.
set -euo pipefail
BIN="$1"
DATA="$2"
if [[ ! -f "$DATA/mooncake_conversation_trace.jsonl" || ! -f "$DATA/splitwise_perf_model.csv" ]]; then
  echo "routing_sim.quick: no shared data in $DATA: skipped"
  exit 77
fi
out="$("$BIN" --quick --data-dir="$DATA")"
missing=0
want=(ptu_admitted_error_pct ptu_false_429)
for regime in "" _balanced; do
  for mode in standard datazone global; do
    for m in ttft_p50_ms ttft_p99_ms goodput_pct rate_429_pct left_region_pct e2e_p99_ms; do
      want+=("${m}_${mode}${regime}")
    done
  done
done
for w in "${want[@]}"; do
  if ! grep -Eq "^RESULT $w [0-9.]+ " <<<"$out"; then
    echo "missing: RESULT $w"
    missing=1
  fi
done
exit $missing
