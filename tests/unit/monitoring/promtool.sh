#!/usr/bin/env bash
# Runs promtool with the given arguments; exit 77 (CTest: skipped) when it is missing.
set -euo pipefail
if ! command -v promtool >/dev/null; then
  echo "promtool not installed (make deps installs Debian's prometheus package): skipped" >&2
  exit 77
fi
exec promtool "$@"
