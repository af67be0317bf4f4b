#!/usr/bin/env bash
# make fuzz: builds the fuzz harnesses of tests/fuzz with clang and libFuzzer (ASan and
# UBSan) in build-fuzz/, fuzzes each for FUZZ_SECONDS, and merges the inputs that reach
# new code into its committed corpus, tests/fuzz/corpus/<name>/ (commit them).
#
# A crash (or a broken invariant, or a sanitizer report) is saved under
# build-fuzz/artifacts/<name>/crash-<sha1> and fails the run. Fix the bug, then run
# `make fuzz` again: a saved crash that no longer fails is copied into the corpus as
# crash-<sha1> (so `make test` replays it from then on) and removed from artifacts/;
# one that still fails stops that harness from fuzzing until it is fixed.
#
# Environment:
#   FUZZ_SECONDS     seconds of fuzzing per harness (default 60; 0: only re-check saved
#                    crashes and minimize the corpora)
#   FUZZ_HARNESSES   space-separated harness names (default: all, build-fuzz/fuzz_harnesses.txt)
#   FUZZ_BUILD       build directory (default build-fuzz)
#   CLANG_VERSION    Debian clang to use (default 16; 14 and 15 cannot compile libstdc++ 12's
#                    std::expected, see docs/testing.md; a new version needs a new FUZZ_BUILD)
#   FUZZ_ARGS        extra libFuzzer flags, e.g. "-max_len=8192"
#   JOBS             build parallelism (default nproc)
# A harness's libFuzzer dictionary, tests/fuzz/dict/<name>.dict (JSON tokens, field
# names), is used when present.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
CLANG_VERSION=${CLANG_VERSION:-16}
FUZZ_ARGS=${FUZZ_ARGS:-}

# clang and its runtimes (libFuzzer, ASan, UBSan) from Debian; idempotent.
pkgs=(clang-$CLANG_VERSION libclang-rt-$CLANG_VERSION-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) != 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
if [[ ! -f $FUZZ_BUILD/build.ninja ]]; then
  CC=clang-$CLANG_VERSION CXX=clang++-$CLANG_VERSION cmake -S . -B "$FUZZ_BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWATERLINE_FUZZ=ON "${launcher[@]}"
fi
cmake --build "$FUZZ_BUILD" --target fuzz_harnesses -j "${JOBS:-$(nproc)}"

read -r -a harnesses <<<"${FUZZ_HARNESSES:-$(tr '\n' ' ' <"$FUZZ_BUILD/fuzz_harnesses.txt")}"
failed=()
summary=()
for h in "${harnesses[@]}"; do
  bin=$FUZZ_BUILD/tests/fuzz/fuzz_$h
  corpus=tests/fuzz/corpus/$h
  art=$FUZZ_BUILD/artifacts/$h
  [[ -x $bin ]] || { echo "fuzz: no harness $h ($bin)"; failed+=("$h"); continue; }
  mkdir -p "$corpus" "$art"

  # Crashes saved by an earlier run: fixed ones join the corpus, open ones block fuzzing.
  open=0
  for c in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
    [[ -f $c ]] || continue
    if "$bin" -runs=1 "$c" >/dev/null 2>&1; then
      name=crash-$(sha1sum "$c" | cut -c1-40)
      cp "$c" "$corpus/$name" && rm -f "$c"
      echo "fuzz: $h: $c no longer fails; kept as $corpus/$name"
    else
      echo "fuzz: $h: $c still fails (reproduce: $bin $c)"
      open=1
    fi
  done
  if ((open)); then failed+=("$h"); continue; fi

  new=$(mktemp -d)
  before=$(find "$corpus" -type f | wc -l)
  rc=0
  : >"$art/last.log"
  if ((FUZZ_SECONDS > 0)); then
    echo "fuzz: $h for ${FUZZ_SECONDS}s"
    set +e
    # shellcheck disable=SC2086
    dict=()
    if [[ -f tests/fuzz/dict/$h.dict ]]; then dict=(-dict="tests/fuzz/dict/$h.dict"); fi
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$art/" "${dict[@]}" $FUZZ_ARGS "$new" "$corpus" >"$art/last.log" 2>&1
    rc=$?
    set -e
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$art/last.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$art/last.log" | tail -1)
  # The committed corpus becomes: the hand-written seed-* and crash-* files, plus the
  # smallest set of generated inputs (named by content hash) that, with them, covers every
  # edge the old corpus and the new inputs cover (set-cover merge on edges, not hit
  # counts: a few KB and under ~200 files instead of thousands).
  min=$(mktemp -d)
  keep=$(mktemp -d)
  cp "$corpus"/seed-* "$corpus"/crash-* "$keep"/ 2>/dev/null || true
  if "$bin" -set_cover_merge=1 -use_counters=0 "$min" "$corpus" "$new" >"$art/merge.log" 2>&1; then
    find "$corpus" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'crash-*' -delete
    declare -A kept=()
    for f in "$keep"/*; do [[ -f $f ]] && kept[$(sha1sum "$f" | cut -c1-40)]=1; done
    for f in "$min"/*; do
      [[ -f $f && -z ${kept[$(basename "$f")]:-} ]] && cp "$f" "$corpus/"
    done
    unset kept
  else
    echo "fuzz: $h: merge failed, corpus left as it was (see $art/merge.log)"
  fi
  rm -rf "$new" "$min" "$keep"
  after=$(find "$corpus" -type f | wc -l)
  line="$h: ${FUZZ_SECONDS}s, ${execs:-?} execs, ${rate:-?} exec/s, corpus $before -> $after"
  if ((rc != 0)); then
    line+=", FAILED (rc $rc): $(ls "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-* 2>/dev/null | tr "\n" " " || true)"
    grep -m3 -E "invariant broken|ERROR: |runtime error" "$art/last.log" | sed 's/^/    /' || true
    failed+=("$h")
  fi
  echo "fuzz: $line"
  summary+=("$line")
  if ((after > 200)); then
    echo "fuzz: $h: corpus has $after files even after minimizing; consider trimming its seeds"
  fi
done

echo
echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (logs in $FUZZ_BUILD/artifacts/<name>/last.log)"
  exit 1
fi
