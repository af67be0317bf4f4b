# Sourced by bench/<name>/run.sh: `bench_build <builddir> <target>...` configures the
# build directory when it is new (RelWithDebInfo, Ninja) and builds the targets.
# Sets ROOT (the repository) and BUILD.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_build() {
  BUILD="$1"
  shift
  if [[ ! -f "$BUILD/build.ninja" && ! -f "$BUILD/Makefile" ]]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  cmake --build "$BUILD" --target "$@" -j "${JOBS:-2}"
}
