#!/usr/bin/env bash
# The Python virtual environment of the OpenAI SDK tests (tests/integration/sdk):
#
#   openai_venv.sh ensure          create it unless a valid one is there; print its path
#   openai_venv.sh path            print its path (whether or not it exists)
#   openai_venv.sh run ARGS...     exec the venv's python with ARGS (fails when the venv
#                                  is missing: the ctest fixture sdk.venv makes it)
#
# Where: ${WATERLINE_CACHE_DIR:-$HOME/.cache/waterline}/venv-openai-<OPENAI_VERSION>, made
# with `python3 -m venv` (PYTHON overrides python3) and `pip install openai==<version>`
# from PyPI (pip's own settings apply: PIP_INDEX_URL for a mirror, etc.).
#
# Creation is atomic: the venv is built in a temporary sibling directory, checked, marked
# complete and renamed into place, so a killed run or two runs at once never leave a
# half-made venv under the final name. Two runs that both build: the first rename wins,
# the second finds the target taken, drops its copy and uses the winner's. `ensure`
# counts a venv as valid when it carries the marker and its python imports openai at
# exactly the pinned version; an invalid one is renamed aside and replaced. `run` only
# checks the marker (importing openai takes seconds).
#
# A venv is not relocatable in general: console scripts (bin/pip, bin/httpx2) keep the
# temporary path in their #! line. Only bin/python is used here (`python -m pip`,
# `python test.py`), which finds its environment from its own location.
set -euo pipefail

# Pinned: the newest openai on PyPI when these tests were written. Changing it makes a
# new venv next to the old one (delete the old one by hand). Its dependencies are
# whatever pip resolved when the venv was made; the venv is kept until it is invalid.
OPENAI_VERSION=3.63.0

CACHE="${WATERLINE_CACHE_DIR:-${HOME:-/root}/.cache/waterline}"
VENV="$CACHE/venv-openai-$OPENAI_VERSION"
MARKER=.waterline-openai-version  # written last, once the venv was checked
PY="${PYTHON:-python3}"

imports() {  # imports DIR: its python imports the pinned openai
  [[ -x "$1/bin/python" ]] || return 1
  "$1/bin/python" - "$OPENAI_VERSION" >/dev/null 2>&1 <<'PYEOF'
import sys
import openai
sys.exit(0 if openai.__version__ == sys.argv[1] else 1)
PYEOF
}

made() {  # made DIR: marked complete for the pinned version
  [[ -x "$1/bin/python" && "$(cat "$1/$MARKER" 2>/dev/null)" == "$OPENAI_VERSION" ]]
}

valid() { made "$1" && imports "$1"; }

ensure() {
  if valid "$VENV"; then
    echo "$VENV"
    return 0
  fi
  mkdir -p "$CACHE"
  # What killed runs left (under temporary names only); no build takes 2 hours.
  find "$CACHE" -maxdepth 1 -name ".venv-openai-*.tmp.*" -mmin +120 -exec rm -rf {} + 2>/dev/null || true
  # Global, not local: the EXIT trap runs after ensure() has returned.
  tmp="$(mktemp -d "$CACHE/.venv-openai-$OPENAI_VERSION.tmp.XXXXXX")"
  # Removed on any exit but a successful rename; a run killed with -9 leaves it behind
  # under its temporary name (removed by a later run), never under the final one.
  trap 'rm -rf "$tmp"' EXIT
  echo "openai_venv: creating $VENV (python: $(command -v "$PY"), openai==$OPENAI_VERSION from PyPI)" >&2
  if ! "$PY" -m venv "$tmp" >&2; then
    echo "openai_venv: FAILED: '$PY -m venv' did not work (Debian: apt-get install python3-venv)" >&2
    return 1
  fi
  if ! "$tmp/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
      "openai==$OPENAI_VERSION" >&2; then
    echo "openai_venv: FAILED: 'pip install openai==$OPENAI_VERSION' did not work (is PyPI reachable?)." >&2
    echo "openai_venv: these tests need PyPI (or a mirror in PIP_INDEX_URL) once, to make the venv;" >&2
    echo "openai_venv: afterwards $VENV is reused offline." >&2
    return 1
  fi
  if ! imports "$tmp"; then
    echo "openai_venv: FAILED: the new venv does not import openai $OPENAI_VERSION" >&2
    return 1
  fi
  echo "$OPENAI_VERSION" >"$tmp/$MARKER"
  # An invalid venv under the final name is renamed aside (atomic), then removed.
  if [[ -e "$VENV" ]] && ! valid "$VENV"; then
    local old
    old="$(mktemp -d "$CACHE/.venv-openai-$OPENAI_VERSION.old.XXXXXX")"
    mv -T "$VENV" "$old/venv" 2>/dev/null || true
    rm -rf "$old"
  fi
  if mv -T "$tmp" "$VENV" 2>/dev/null; then
    trap - EXIT
  elif valid "$VENV"; then
    echo "openai_venv: another run made $VENV first; using it" >&2
  else
    echo "openai_venv: FAILED: cannot rename $tmp to $VENV" >&2
    return 1
  fi
  echo "openai_venv: ready: $VENV ($("$VENV/bin/python" -m pip freeze --disable-pip-version-check | tr '\n' ' '))" >&2
  echo "$VENV"
}

case "${1:-}" in
  ensure) ensure ;;
  path) echo "$VENV" ;;
  run)
    shift
    if ! made "$VENV"; then
      echo "openai_venv: no venv at $VENV (openai==$OPENAI_VERSION): run '$0 ensure'" \
           "(in ctest: the fixture test sdk.venv) first" >&2
      exit 1
    fi
    exec "$VENV/bin/python" "$@"
    ;;
  *)
    echo "usage: $0 ensure|path|run ARGS..." >&2
    exit 2
    ;;
esac
