#!/usr/bin/env bash
# make test-sanitize: builds with GCC, AddressSanitizer and UndefinedBehaviorSanitizer
# (-fno-sanitize-recover=all: any report fails) in build-sanitize/, and runs the unit
# tests and the fuzz corpus replays (ctest -L unit). Integration tests and benchmarks are
# not built. Not part of .ci/run: see docs/testing.md for how long it takes.
#
# Environment: SANITIZE_BUILD (default build-sanitize), JOBS (default nproc),
# SANITIZE_TARGETS (default: everything; e.g. "waterline_api_test fuzz_harnesses" with
# CTEST_ARGS="-R ^(api|fuzz)\." for a quick partial run), CTEST_ARGS (extra ctest arguments).
set -euo pipefail
cd "$(dirname "$0")/.."
SANITIZE_BUILD=${SANITIZE_BUILD:-build-sanitize}
start=$(date +%s)
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
if [[ ! -f $SANITIZE_BUILD/build.ninja ]]; then
  cmake -S . -B "$SANITIZE_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWATERLINE_SANITIZE=ON "${launcher[@]}"
fi
targets=()
for t in ${SANITIZE_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$SANITIZE_BUILD" "${targets[@]}" -j "${JOBS:-$(nproc)}"
built=$(date +%s)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/hack/lsan-suppressions.txt}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
set +e
# shellcheck disable=SC2086
(cd "$SANITIZE_BUILD" && ctest --output-on-failure -L unit -j "${JOBS:-$(nproc)}" ${CTEST_ARGS:-})
rc=$?
set -e
end=$(date +%s)
echo "test-sanitize: build $((built - start))s, tests $((end - built))s, total $((end - start))s, rc $rc"
exit $rc
