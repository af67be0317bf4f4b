# shellcheck shell=bash
# Sourced by hack/*.sh and by test harnesses to find the pinned tool binaries.
#   source hack/lib.sh
#   "$KUBE_APISERVER_BIN" --version
# Sets (each overridable from the environment beforehand):
#   WATERLINE_CACHE_DIR  default $HOME/.cache/waterline
#   WL_BIN_DIR           $WATERLINE_CACHE_DIR/bin
#   KUBE_APISERVER_BIN ETCD_BIN ETCDCTL_BIN KWOK_BIN HELM_BIN  versioned binary paths
#   KUBE_SCHEDULER_BIN KUBE_CONTROLLER_MANAGER_BIN  (the peer tools of bench/fleet)
# and the *_VERSION variables from hack/versions.env.

WL_HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WL_REPO_ROOT="$(cd "$WL_HACK_DIR/.." && pwd)"
export WL_HACK_DIR WL_REPO_ROOT
# shellcheck source=hack/versions.env
source "$WL_HACK_DIR/versions.env"

: "${WATERLINE_CACHE_DIR:=${HOME:-/root}/.cache/waterline}"
: "${WL_BIN_DIR:=$WATERLINE_CACHE_DIR/bin}"
export WATERLINE_CACHE_DIR WL_BIN_DIR

# tool name -> "version binary..." ; the directory is $WL_BIN_DIR/<tool>-<version>/.
wl_tool_dir() { # <tool>
  case "$1" in
    kube-apiserver) echo "$WL_BIN_DIR/kube-apiserver-$KUBE_VERSION" ;;
    etcd) echo "$WL_BIN_DIR/etcd-$ETCD_VERSION" ;;
    kwok) echo "$WL_BIN_DIR/kwok-$KWOK_VERSION" ;;
    helm) echo "$WL_BIN_DIR/helm-$HELM_VERSION" ;;
    kube-scheduler) echo "$WL_BIN_DIR/kube-scheduler-$KUBE_VERSION" ;;
    kube-controller-manager) echo "$WL_BIN_DIR/kube-controller-manager-$KUBE_VERSION" ;;
    *) echo "unknown tool: $1" >&2; return 1 ;;
  esac
}

: "${KUBE_APISERVER_BIN:=$(wl_tool_dir kube-apiserver)/kube-apiserver}"
: "${ETCD_BIN:=$(wl_tool_dir etcd)/etcd}"
: "${ETCDCTL_BIN:=$(wl_tool_dir etcd)/etcdctl}"
: "${KWOK_BIN:=$(wl_tool_dir kwok)/kwok}"
: "${HELM_BIN:=$(wl_tool_dir helm)/helm}"
# The peer tools (bench/fleet only; hack/build-tools.sh kube-scheduler kube-controller-manager).
: "${KUBE_SCHEDULER_BIN:=$(wl_tool_dir kube-scheduler)/kube-scheduler}"
: "${KUBE_CONTROLLER_MANAGER_BIN:=$(wl_tool_dir kube-controller-manager)/kube-controller-manager}"
# ETCDCTL_BIN is deliberately not exported: etcdctl treats every ETCDCTL_* variable as a flag.
export KUBE_APISERVER_BIN ETCD_BIN KWOK_BIN HELM_BIN KUBE_SCHEDULER_BIN KUBE_CONTROLLER_MANAGER_BIN

# kubectl: the one on PATH unless KUBECTL is set.
: "${KUBECTL:=kubectl}"

wl_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
wl_die() { echo "error: $*" >&2; exit 1; }

# Fails with a hint when a pinned binary has not been built yet.
wl_require_bin() { # <path>...
  local b
  for b in "$@"; do
    [[ -x "$b" ]] || wl_die "$b missing: run hack/build-tools.sh (or make tools)"
  done
}

# Is the TCP port taken by any local socket (v4 or v6)? Reads /proc, needs no tools.
# TIME_WAIT (state 06) does not count: our servers set SO_REUSEADDR, so after a restart
# they get their old ports back.
wl_port_in_use() { # <port>
  local hex
  hex="$(printf '%04X' "$1")"
  awk -v h=":$hex" 'FNR > 1 && $4 != "06" && substr($2, length($2) - 4) == h { found = 1 }
    END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
