#!/usr/bin/env bash
# Installs the Debian packages Waterline builds and tests with. Idempotent: does nothing
# when everything is present.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config
  libcpprest-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev libboost-dev libcli11-dev prometheus-cpp-dev
  libhnswlib-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  openssl curl jq prometheus golang-go
  nginx-light redis-server libhiredis-dev
  python3 python3-venv
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Go may come from outside Debian (e.g. /usr/local/go); only install golang-go if no go.
if command -v go >/dev/null 2>&1; then
  missing=("${missing[@]/golang-go}")
fi
missing=($(printf '%s\n' "${missing[@]}" | sed '/^$/d'))
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) != 0 ]]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
