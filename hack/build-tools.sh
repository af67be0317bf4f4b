#!/usr/bin/env bash
# Builds the pinned test tools from source (Go module proxy only) into
#   ${WATERLINE_CACHE_DIR:-$HOME/.cache/waterline}/bin/<tool>-<version>/<binary>
# and points ${cache}/bin/current/<binary> at them. Idempotent: a binary that exists
# is not rebuilt. Each tool is its own Go module under hack/tools/<tool>/ (go.mod +
# go.sum committed), so their dependency graphs never meet. The exception: kube-scheduler
# and kube-controller-manager come from the same k8s.io/kubernetes release as
# kube-apiserver and are built from its module (hack/tools/kube-apiserver/).
#
#   hack/build-tools.sh                 build all missing tools (not the peer tool)
#   hack/build-tools.sh etcd kwok       build only those
#   hack/build-tools.sh kube-controller-manager
#                                       the peer tool: only bench-fleet asks for it
#   hack/build-tools.sh --print         print binary paths (nothing is built)
#   hack/build-tools.sh --force [tool]  rebuild even if present
#
# Versions live in hack/versions.env; binaries are found by sourcing hack/lib.sh.
set -euo pipefail

# shellcheck source=hack/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# kube-scheduler: bench/fleet's peer, and DraIT (a claim the real scheduler allocated for
# a pod Waterline does not manage is never double-booked).
ALL_TOOLS=(etcd kwok helm kube-apiserver kube-scheduler)
# Built only on request (bench/fleet's peer run), never by `make tools`/`make test`:
# it costs minutes of CPU and no test needs it.
PEER_TOOLS=(kube-controller-manager)

# tool -> the directory of its Go module under hack/tools/
tool_moddir() {
  case "$1" in
    kube-scheduler | kube-controller-manager) echo kube-apiserver ;;
    *) echo "$1" ;;
  esac
}

# tool -> Go module whose version is pinned
tool_module() {
  case "$1" in
    kube-apiserver | kube-scheduler | kube-controller-manager) echo k8s.io/kubernetes ;;
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    kwok) echo sigs.k8s.io/kwok ;;
    helm) echo helm.sh/helm/v3 ;;
  esac
}
tool_version() {
  case "$1" in
    kube-apiserver | kube-scheduler | kube-controller-manager) echo "$KUBE_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
  esac
}
# tool -> "binary=package" pairs
tool_binaries() {
  case "$1" in
    kube-apiserver) echo "kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver" ;;
    kube-scheduler) echo "kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler" ;;
    kube-controller-manager) echo "kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager" ;;
    etcd) echo "etcd=go.etcd.io/etcd/server/v3 etcdctl=go.etcd.io/etcd/etcdctl/v3" ;;
    kwok) echo "kwok=sigs.k8s.io/kwok/cmd/kwok" ;;
    helm) echo "helm=helm.sh/helm/v3/cmd/helm" ;;
  esac
}
# tool -> extra -X ldflags so `--version` and /version report the real version
tool_xflags() {
  local v
  v="$(tool_version "$1")"
  case "$1" in
    kube-apiserver | kube-scheduler | kube-controller-manager)
      local minor="${v#v1.}"
      minor="${minor%%.*}"
      echo "-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1" \
        "-X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" \
        "-X k8s.io/client-go/pkg/version.gitVersion=$v"
      ;;
    kwok) echo "-X sigs.k8s.io/kwok/pkg/consts.Version=${v#v}" ;;
    helm) echo "-X helm.sh/helm/v3/internal/version.version=$v -X helm.sh/helm/v3/internal/version.gitTreeState=clean" ;;
    *) echo "" ;;
  esac
}

# The version required in hack/tools/<tool>/go.mod must equal versions.env.
check_gomod() { # <tool>
  local tool="$1" mod want got
  mod="$(tool_module "$tool")"
  want="$(tool_version "$tool")"
  got="$(awk -v m="$mod" '($1 == m && $2 ~ /^v/) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' \
    "$WL_HACK_DIR/tools/$(tool_moddir "$tool")/go.mod")"
  [[ "$got" == "$want" ]] ||
    wl_die "hack/tools/$(tool_moddir "$tool")/go.mod requires $mod $got but hack/versions.env says $want"
}

build_tool() { # <tool> <force>
  local tool="$1" force="$2" dir pair bin pkg missing=() start
  dir="$(wl_tool_dir "$tool")"
  check_gomod "$tool"
  for pair in $(tool_binaries "$tool"); do
    bin="${pair%%=*}"
    if [[ "$force" == 1 || ! -x "$dir/$bin" ]]; then missing+=("$pair"); fi
  done
  if ((${#missing[@]} == 0)); then
    wl_log "$tool $(tool_version "$tool"): present in $dir"
  else
    mkdir -p "$dir"
    for pair in "${missing[@]}"; do
      bin="${pair%%=*}"
      pkg="${pair#*=}"
      wl_log "building $bin $(tool_version "$tool") ..."
      start=$SECONDS
      # Build to a temp name, then rename: an interrupted build leaves no half binary.
      (
        cd "$WL_HACK_DIR/tools/$(tool_moddir "$tool")"
        # go.sum is committed: -mod=readonly fails instead of silently re-resolving.
        # nice: the machine is usually shared (tests, other builds); WL_GO_BUILD_P
        # (go build -p, default the CPU count) bounds the parallel compiles.
        CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" \
          nice -n 10 go build -p "${WL_GO_BUILD_P:-$(nproc)}" -trimpath -ldflags="-s -w $(tool_xflags "$tool")" -o "$dir/.$bin.tmp.$$" "$pkg"
      )
      mv -f "$dir/.$bin.tmp.$$" "$dir/$bin"
      wl_log "built $dir/$bin in $((SECONDS - start))s"
    done
  fi
  # current/ symlinks point at the pinned versions.
  mkdir -p "$WL_BIN_DIR/current"
  for pair in $(tool_binaries "$tool"); do
    bin="${pair%%=*}"
    ln -sfn "$dir/$bin" "$WL_BIN_DIR/current/$bin"
  done
}

print_paths() {
  echo "KUBE_APISERVER_BIN=$KUBE_APISERVER_BIN"
  echo "ETCD_BIN=$ETCD_BIN"
  echo "ETCDCTL_BIN=$ETCDCTL_BIN"
  echo "KWOK_BIN=$KWOK_BIN"
  echo "HELM_BIN=$HELM_BIN"
  echo "KUBE_SCHEDULER_BIN=$KUBE_SCHEDULER_BIN"
  echo "KUBE_CONTROLLER_MANAGER_BIN=$KUBE_CONTROLLER_MANAGER_BIN"
  echo "PATH_PREPEND=$WL_BIN_DIR/current"
}

main() {
  local force=0 tools=() t
  while (($#)); do
    case "$1" in
      --print) print_paths; return 0 ;;
      --force) force=1 ;;
      -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
      *) tools+=("$1") ;;
    esac
    shift
  done
  ((${#tools[@]})) || tools=("${ALL_TOOLS[@]}")
  command -v go >/dev/null || wl_die "go not found on PATH (hack/deps.sh installs golang-go)"
  mkdir -p "$WL_BIN_DIR"
  # One builder at a time per cache (parallel `make` targets, two shells).
  if command -v flock >/dev/null; then
    exec 9>"$WL_BIN_DIR/.build.lock"
    flock 9
  fi
  local total=$SECONDS
  for t in "${tools[@]}"; do
    wl_tool_dir "$t" >/dev/null
    build_tool "$t" "$force"
  done
  wl_log "tools ready in $((SECONDS - total))s (binaries under $WL_BIN_DIR/current)"
}

main "$@"
