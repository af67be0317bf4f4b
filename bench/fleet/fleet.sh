#!/usr/bin/env bash
# Fleet-scale benchmark of waterline-operator against a local control plane
# (hack/controlplane.sh: etcd + kube-apiserver + kwok on loopback). Called by
# bench/fleet/run.sh after the build; can be run alone on prebuilt binaries:
#
#   bench/fleet/fleet.sh <builddir>          # needs <builddir>/operator/main/waterline-operator
#
# Runs the same pipeline twice, each on a fresh control plane: first the baseline at 1/10
# scale (100 nodes, 5 CapacityPools, 50 ModelDeployments, 2 PTUReservations), then the
# fleet (1000 kwok GPU nodes, about 7,400 GPUs, 50 pools, 500 deployments, 20 reservations).
# Objects come from bench/fleet/objects.jq (its header describes them). Per scale:
#
#   1. control plane up, CRDs, namespaces, nodes (hack/fixtures/gpu-nodes.sh --profile
#      fleet), the node-pool label on each pooled node;
#   2. two operator replicas with leader election (default flags: lease 15 s, renew 10 s,
#      retry 2 s, no client-side QPS limit, 4 workers); replica a is started first and leads;
#   3. t0, then every pool, deployment and reservation is POSTed (one curl process,
#      kept-alive connection); "scheduled" = every ModelDeployment has observedGeneration
#      = generation, Scheduled=True and status.scheduledReplicas = spec.replicas, as read
#      from the apiserver every 0.5 s; also timed: every worker pod Running (kwok) and
#      every reservation Active;
#   4. once the leader's modeldeployment/capacitypool/ptureservation queues are empty
#      (at most FLEET_SETTLE_TIMEOUT, 60 s) and 5 s more, a quiet window (FLEET_QUIET_S,
#      30 s) in which nothing is changed: the leader's waterline_rest_client_requests_total
#      increase / window = steady-state requests/s (per verb, and apiserver_request_total
#      increases for the operator's resources, show what they are);
#   5. leader figures at the end of the window: CPU seconds (utime + stime since process
#      start, which includes its initial list of every object), VmHWM, and the reconcile
#      duration histogram (all controllers together, whole run; quantiles interpolated
#      inside the histogram's buckets, as Prometheus' histogram_quantile does);
#   6. failover: kill -9 of the leader, then at once spec.replicas + 1 on the last
#      deployment of the list. Timed from the kill: the Lease's holder becomes replica b
#      (lease acquired: bounded below by the 15 s lease duration); b's first finished
#      modeldeployment reconcile (from its /metrics); and that deployment's status
#      showing the new replica scheduled (failover_resume_s). The new leader starts with
#      every object queued, so the last figure includes its pass over the fleet up to
#      that deployment (the modeldeployment reconciles done by then are printed).
#   Also checked: worker pods holding the same GPU (whole GPU, MIG start slot or share
#   slice) according to their waterline.dev/gpu-assignment annotations, and the
#   GpuConflict Events (a worker that lost a conflict, deleted and placed again), both
#   once all is scheduled and again at the end of the quiet window.
#
# A phase that does not finish within its limit (FLEET_SCHEDULE_TIMEOUT 300 s,
# FLEET_FAILOVER_TIMEOUT 150 s) does not stop the run: its figure is the limit, a lower
# bound, and a NOTE line names it. A leader that exits by itself (a crash) skips that
# scale's quiet window and failover, gets a NOTE with its exit status, and makes the run
# fail after the figures are printed (logs kept). A /metrics scrape that fails (the
# operator answers 500) is retried, never read as an empty queue, and counted.
# Ends with RESULT lines (fleet figures, the baseline's, and fleet/baseline ratios).
# Environment: FLEET_QUIET_S, FLEET_SCHEDULE_TIMEOUT, FLEET_SETTLE_TIMEOUT,
# FLEET_FAILOVER_TIMEOUT (above); FLEET_WORK_DIR (default ${TMPDIR:-/tmp}/fleet-bench):
# a run-<pid> directory under it holds logs and scrapes, removed at the end unless
# FLEET_KEEP=1 or the run failed; FLEET_ONLY=baseline|fleet runs one scale (no ratios).
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"

BUILD="$(cd "${1:?usage: bench/fleet/fleet.sh <builddir> [--5k] [--no-peer] [--dra]}" && pwd)"
shift
SIZE="${FLEET_SIZE:-1k}"
PEER="${FLEET_PEER:-1}"
DRA="${FLEET_DRA:-0}"
while (($#)); do
  case "$1" in
    --5k) SIZE=5k ;;
    --1k) SIZE=1k ;;
    --no-peer) PEER=0 ;;
    --peer) PEER=1 ;;
    --dra) DRA=1 ;;
    *) wl_die "unknown argument $1 (--5k, --1k, --no-peer, --dra)" ;;
  esac
  shift
done
[[ "$SIZE" == 1k || "$SIZE" == 5k ]] || wl_die "FLEET_SIZE must be 1k or 5k"
OPERATOR="$BUILD/operator/main/waterline-operator"
[[ -x "$OPERATOR" ]] || wl_die "$OPERATOR missing (build the waterline-operator target)"
for t in curl jq "$KUBECTL" awk mkfifo; do command -v "$t" >/dev/null || wl_die "$t not found"; done
((PEER == 0)) || wl_require_bin "$KUBE_SCHEDULER_BIN" "$KUBE_CONTROLLER_MANAGER_BIN"

QUIET_S="${FLEET_QUIET_S:-30}"
if [[ "$SIZE" == 5k ]]; then
  SCHEDULE_TIMEOUT="${FLEET_SCHEDULE_TIMEOUT:-900}"
  PEER_TIMEOUT="${FLEET_PEER_TIMEOUT:-900}"
else
  SCHEDULE_TIMEOUT="${FLEET_SCHEDULE_TIMEOUT:-300}"
  PEER_TIMEOUT="${FLEET_PEER_TIMEOUT:-300}"
fi
PEER_IDLE_S="${FLEET_PEER_IDLE_S:-30}"
PEER_QPS="${FLEET_PEER_QPS:-10000}"
PEER_BURST="${FLEET_PEER_BURST:-10000}"
FAILOVER_TIMEOUT="${FLEET_FAILOVER_TIMEOUT:-150}"
SETTLE_TIMEOUT="${FLEET_SETTLE_TIMEOUT:-60}"
WORK_ROOT="${FLEET_WORK_DIR:-${TMPDIR:-/tmp}/fleet-bench}"
WORK="$WORK_ROOT/run-$$"
CLK_TCK="$(getconf CLK_TCK)"
mkdir -p "$WORK"

# ---------------------------------------------------------------- cleanup

CP_DIRS=()   # control planes this run started
OP_PIDS=()   # operator processes this run started
PEER_PIDS=() # kube-scheduler and kube-controller-manager processes this run started
FAILED=1
cleanup() {
  local pid d
  for pid in "${OP_PIDS[@]}"; do stop_operator "$pid"; done
  for pid in "${PEER_PIDS[@]}"; do stop_operator "$pid"; done
  bind_watch_stop
  for d in "${CP_DIRS[@]}"; do
    bash "$ROOT/hack/controlplane.sh" down --dir "$d" --purge >/dev/null 2>&1 || true
  done
  if ((FAILED)) || [[ "${FLEET_KEEP:-0}" == 1 ]]; then
    echo "fleet bench: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'echo "fleet bench: command failed (status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
fmt() { awk -v v="$1" -v d="${2:-2}" 'BEGIN { if (v == "" || v == "nan") printf "nan"; else printf "%.*f", d, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", a / b; else print "nan" }'; }

port_in_use() {
  local hex
  hex="$(printf '%04X' "$1")"
  awk -v h=":$hex" 'FNR > 1 && $4 != "06" && substr($2, length($2) - 4) == h { found = 1 }
    END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$(((RANDOM * 32768 + RANDOM) % 20000 + 10000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  wl_die "no free port"
}

# API access with the control plane's admin token (kept-alive curl for bulk requests).
api() { # <path> [curl args...]
  local path="$1"
  shift
  curl -sS --fail --max-time 30 --cacert "$CP/pki/ca.crt" -H "Authorization: Bearer $TOKEN" \
    "$@" "$API$path"
}

# One curl process for many requests: each JSON line on stdin is {method, path, body};
# fails unless every answer's code matches <ok>.
bulk() { # <ok regex> < requests (JSON lines)
  local ok="$1" cfg="$WORK/bulk.cfg" codes="$WORK/bulk.codes" n bad
  jq -r --arg api "$API" --arg ca "$CP/pki/ca.crt" --arg tok "$TOKEN" '
      "url = \"\($api)\(.path)\"",
      "request = \"\(.method)\"",
      "header = \"Content-Type: \(if .method == "PATCH" then "application/merge-patch+json" else "application/json" end)\"",
      "header = \"Authorization: Bearer \($tok)\"",
      "cacert = \"\($ca)\"",
      "data = \(.body | tojson | tojson)",
      "output = \"/dev/null\"",
      "write-out = \"%{http_code} %{url}\\n\"",
      "silent", "show-error", "next"' | sed '$d' >"$cfg"
  n="$(grep -c '^url = ' "$cfg" || true)"
  curl -sS --http1.1 --max-time 600 -K "$cfg" >"$codes" || true
  bad="$(grep -Ev "^($ok) " "$codes" || true)"
  if [[ -n "$bad" || "$(wc -l <"$codes")" -ne "$n" ]]; then
    echo "$bad" | head -n 5 >&2
    wl_die "bulk requests failed ($(wc -l <"$codes") of $n answered)"
  fi
}

# ---------------------------------------------------------------- /metrics helpers

scrape() { curl -sS --max-time 20 "http://127.0.0.1:$1/metrics"; } # <port>

# A whole exposition of <port>'s /metrics into <file>: a failed scrape (the operator can
# answer 500, e.g. "error: std::bad_alloc") is retried up to 5 times, 1 s apart, and
# counted in R[<scale>.scrape_errors]; fails if none succeeded.
SCRAPE_ERRORS=0
scrape_ok() { # <port> <file>
  local i
  for ((i = 0; i < 5; i++)); do
    if curl -sS --fail-with-body --max-time 20 "http://127.0.0.1:$1/metrics" >"$2" 2>/dev/null &&
      grep -q '^waterline_workqueue_depth' "$2"; then
      return 0
    fi
    SCRAPE_ERRORS=$((SCRAPE_ERRORS + 1))
    log "scrape of :$1/metrics failed: $(head -c 200 "$2" | tr '\n' ' ')"
    sleep 1
  done
  return 1
}

# Sum of the samples of one metric (exact name, any labels) whose line matches <regex>.
msum() { # <file> <name> [regex]
  awk -v n="$2" -v re="${3:-.}" '
    ($1 == n || index($1, n "{") == 1) && $0 ~ re { s += $NF } END { printf "%.6f\n", s + 0 }' "$1"
}

# Quantile of a histogram in one scrape, summed over all its series (optionally only lines
# matching <regex>), with linear interpolation inside the bucket as histogram_quantile
# does. Prints seconds.
hquant() { # <scrape> <histogram name> <q> [regex]
  awk -v n="$2_bucket" -v q="$3" -v re="${4:-.}" '
    function le(line,  m) { match(line, /le="[^"]*"/); return substr(line, RSTART + 4, RLENGTH - 5) }
    index($1, n "{") == 1 && $0 ~ re {
      b = le($0); v = $NF
      if (b == "+Inf") inf += v; else { c[b + 0] += v; seen[b + 0] = 1 }
    }
    END {
      k = 0; for (b in seen) bs[++k] = b + 0
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (bs[j] < bs[i]) { t = bs[i]; bs[i] = bs[j]; bs[j] = t }
      if (inf <= 0) { print "nan"; exit }
      rank = q * inf; prev = 0; lo = 0
      for (i = 1; i <= k; i++) {
        cum = c[bs[i]]
        if (cum >= rank) {
          if (cum == prev) { printf "%.6f\n", bs[i]; exit }
          printf "%.6f\n", lo + (bs[i] - lo) * (rank - prev) / (cum - prev); exit
        }
        prev = cum; lo = bs[i]
      }
      printf "%.6f\n", bs[k]
    }' "$1"
}

# Per-series increase of a counter between two scrapes: "  {labels} <delta>" lines.
delta() { # <name> <before> <after>
  awk -v n="$1{" 'index($1, n) == 1 { k = substr($1, length(n)); if (FILENAME == ARGV[1]) a[k] = $NF; else b[k] = $NF }
    END { for (k in b) if (b[k] - a[k] > 0) printf "  %s %d\n", k, b[k] - a[k] }' "$2" "$3" | sort
}

# ---------------------------------------------------------------- process figures

cpu_s() { awk -v t="$CLK_TCK" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat"; }
hwm_mib() { awk '/^VmHWM:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }
rss_mib() { awk '/^VmRSS:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }

# CPU seconds of this scale's etcd, kube-apiserver and kwok together.
cp_cpu() {
  local c t=0 pid
  for c in etcd kube-apiserver kwok; do
    pid="$(cat "$CP/run/$c.pid" 2>/dev/null || true)"
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] && t="$(awk -v t0="$t" -v k="$CLK_TCK" '{ sub(/.*\) /, ""); printf "%.2f", t0 + ($12 + $13) / k }' "/proc/$pid/stat")"
  done
  echo "$t"
}

# GPU claims (whole GPU, MIG start slot, share slice on a node's GPU) that two or more
# live worker pods hold, from their waterline.dev/gpu-assignment annotations:
# "<claims> claims, <pods> pods".
double_booked() {
  api "/api/v1/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dwaterline" | jq -r '
    [.items[] | select(.metadata.deletionTimestamp == null)
     | "\(.metadata.namespace)/\(.metadata.name)" as $pod
     | (.metadata.annotations["waterline.dev/gpu-assignment"] // "") as $a | select($a != "")
     | ($a | split(";") | map(split("=") | {(.[0]): (.[1:] | join("="))}) | add) as $f
     | if $f.gpus then ($f.gpus | split(",")[] | {c: "\($f.node)/\(.)", $pod})
       elif $f.mig then {c: "\($f.node)/\($f.gpu)/mig@\($f.mig | split("@")[1])", $pod}
       elif $f.share then ($f.share | split("/")[0] | split(",")[] | {c: "\($f.node)/\($f.gpu)/slice\(.)", $pod})
       else empty end]
    | group_by(.c) | map(select(length > 1))
    | "\(length) claims, \([.[][].pod] | unique | length) pods"' 2>/dev/null || echo "unknown"
}

# GpuConflict Events (a worker that lost a GPU conflict, deleted to be placed again):
# "<occurrences> in <Event objects> Events" (occurrences = sum of their counts).
gpu_conflict_events() {
  api "/api/v1/events?fieldSelector=reason%3DGpuConflict" | jq -r '
    "\([.items[] | .count // 1] | add // 0) in \(.items | length) Events"' 2>/dev/null || echo "unknown"
}

lease_holder() {
  api /apis/coordination.k8s.io/v1/namespaces/waterline-system/leases/waterline-operator 2>/dev/null |
    jq -r '.spec.holderIdentity // ""' 2>/dev/null || true
}

# Counts over all ModelDeployments: "<total> <scheduled> <replicas wanted> <replicas placed>"
# where scheduled = observedGeneration current, Scheduled=True and scheduledReplicas =
# spec.replicas; placed = the sum of scheduledReplicas (at most spec.replicas each).
md_counts() {
  api /apis/waterline.dev/v1alpha1/modeldeployments | jq -r '
    [.items[] | {ok: ((.status.observedGeneration // -1) == .metadata.generation
                       and any(.status.conditions[]?; .type == "Scheduled" and .status == "True")
                       and (.status.scheduledReplicas // -1) == (.spec.replicas // 1)),
                 r: (.spec.replicas // 1),
                 p: ([(.status.scheduledReplicas // 0), (.spec.replicas // 1)] | min)}]
    | "\(length) \(map(select(.ok)) | length) \(map(.r) | add // 0) \(map(.p) | add // 0)"'
}
pods_running() {
  api "/api/v1/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dwaterline" |
    jq '[.items[] | select(.status.phase == "Running" and .metadata.deletionTimestamp == null)] | length'
}
ptus_active() {
  api /apis/waterline.dev/v1alpha1/ptureservations | jq '[.items[] | select(.status.phase == "Active")] | length'
}

# ---------------------------------------------------------------- pod binding watch

# A watch on every pod (from the list's resourceVersion, so nothing is missed however late
# the stream opens) appends "<epoch s> <namespace>/<name>" to <file> for each event of a
# pod in a team-* namespace that has spec.nodeName set; the first line of a pod is its
# bind time (as seen here: the apiserver's event, then jq, then this shell). Used for
# Waterline's workers (created already bound) and for the peer's pods alike.
WATCH_CURL=""
WATCH_READER=""
bind_watch_start() { # <file>
  local fifo="$SD/pods.fifo" rv
  rv="$(api "/api/v1/pods?limit=1" | jq -r .metadata.resourceVersion)"
  rm -f "$fifo" "$1"
  mkfifo "$fifo"
  curl -sSN --cacert "$CP/pki/ca.crt" -H "Authorization: Bearer $TOKEN" \
    "$API/api/v1/pods?watch=1&resourceVersion=$rv&timeoutSeconds=3600" >"$fifo" 2>>"$SD/watch.err" &
  WATCH_CURL=$!
  {
    jq --unbuffered -r 'select(.type == "ADDED" or .type == "MODIFIED") | .object
        | select((.spec.nodeName // "") != "" and (.metadata.namespace | startswith("team-")))
        | "\(.metadata.namespace)/\(.metadata.name)"' <"$fifo" |
      while IFS= read -r n; do printf '%s %s\n' "$EPOCHREALTIME" "$n"; done >"$1"
  } 2>>"$SD/watch.err" &
  WATCH_READER=$!
}
bind_watch_stop() {
  [[ -n "$WATCH_CURL" ]] && { kill -TERM "$WATCH_CURL" 2>/dev/null || true; wait "$WATCH_CURL" 2>/dev/null || true; }
  [[ -n "$WATCH_READER" ]] && { wait "$WATCH_READER" 2>/dev/null || true; }
  WATCH_CURL=""
  WATCH_READER=""
}
# Distinct pods bound so far in <file>.
bound_count() { awk '!s[$2]++ { n++ } END { print n + 0 }' "$1" 2>/dev/null || echo 0; }
# Seconds from <t0> until the <k>-th distinct pod was bound ("nan" if fewer were);
# k = "last": until the last distinct pod seen was bound.
bound_at() { # <file> <t0> <k>
  # Lines are appended in arrival order by one loop, so their times never decrease.
  awk -v t0="$2" -v k="$3" '!s[$2]++ { t[++n] = $1 }
    END { if (k == "last") k = n
          if (k < 1 || n < k) print "nan"; else printf "%.2f\n", t[k] - t0 }' "$1" 2>/dev/null || echo nan
}

# ---------------------------------------------------------------- one scale

declare -A R # results: R[<scale>.<name>]

start_operator() { # <identity> <port>; sets OP_PID
  "$OPERATOR" --kubeconfig "$CP/kubeconfig" --bind-address "127.0.0.1:$2" --identity "$1" \
    >"$SD/operator-$1.log" 2>&1 </dev/null &
  OP_PID=$!
  OP_PIDS+=("$OP_PID")
}
# A process that exists and is not a zombie.
alive() { [[ -r "/proc/$1/stat" ]] && [[ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)" != Z ]]; }
stop_operator() { # <pid>
  local i
  kill -TERM "$1" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do alive "$1" || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  { wait "$1"; } 2>/dev/null || true
}
wait_ready() { # <port> <pid>
  local i
  for ((i = 0; i < 240; i++)); do
    curl -fs --max-time 2 "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    alive "$2" || wl_die "operator $2 exited (logs in $SD)"
    sleep 0.25
  done
  wl_die "operator on :$1 not ready after 60 s (logs in $SD)"
}

# The leader <pid> has exited (crashed: nothing here stops it before the failover step):
# note it with its exit status, tear this scale down; the caller returns, so the figures
# from the quiet window on stay empty for this scale.
leader_exited() { # <pid> <identity> <t0>
  local st=0
  wait "$1" 2>/dev/null || st=$?
  R[$S.leader_exit]="$2 exited with status $st ($( ((st > 128)) && echo "signal $((st - 128))" || echo "no signal")), noticed $(since "$3") s after the POST"
  log "$S: leader ${R[$S.leader_exit]}; quiet window and failover skipped; last log lines:"
  tail -n 3 "$SD/operator-$2.log" | cut -c1-300 >&2 || true
  local p
  for p in "${OP_PIDS[@]}"; do stop_operator "$p"; done
  OP_PIDS=()
  bash "$ROOT/hack/controlplane.sh" down --dir "$CP" --purge >/dev/null 2>&1 || true
  CP_DIRS=()
}

# A fresh control plane in $CP (for scale $S, files in $SD) with the fleet on it: the
# namespaces, the kwok GPU nodes (hack/fixtures/gpu-nodes.sh --profile fleet) and the
# node-pool label on each pooled node; $SD/objects.json from objects.jq. The same for
# Waterline's run and the peer's, so both get identical fleets. [crds]: also the CRDs.
setup_fleet() { # <nodes> <pools> <deployments> <reservations> <namespaces> [crds]
  local nodes="$1" pools="$2" deps="$3" ptus="$4" nss="$5" crds="${6:-}" t
  CP_DIRS+=("$CP")
  bash "$ROOT/hack/controlplane.sh" up --dir "$CP" >"$SD/controlplane.log" 2>&1 ||
    { cat "$SD/controlplane.log" >&2; wl_die "control plane did not start"; }
  export KUBECONFIG="$CP/kubeconfig"
  # shellcheck disable=SC1091
  source "$CP/ports.env"
  API="https://127.0.0.1:$APISERVER_PORT"
  TOKEN="$(cat "$CP/pki/admin.token")"
  if [[ "$crds" == crds ]]; then
    "$KUBECTL" apply --server-side -f "$ROOT/crds/" >/dev/null
    "$KUBECTL" wait --for condition=Established --timeout=60s -f "$ROOT/crds/" >/dev/null
  fi
  bash "$ROOT/hack/fixtures/gpu-nodes.sh" --profile fleet --nodes "$nodes" --emit >"$SD/nodes.json"
  jq -f "$HERE/objects.jq" --argjson pools "$pools" --argjson deployments "$deps" \
    --argjson reservations "$ptus" --argjson namespaces "$nss" <"$SD/nodes.json" >"$SD/objects.json"
  log "$S: objects: $(jq -c .summary "$SD/objects.json")"
  {
    echo '{"method":"POST","path":"/api/v1/namespaces","body":{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"waterline-system"}}}'
    jq -c '[.deployments[].metadata.namespace] | unique[] |
      {method: "POST", path: "/api/v1/namespaces", body: {apiVersion: "v1", kind: "Namespace", metadata: {name: .}}}' "$SD/objects.json"
  } | bulk '201'
  t="$(now)"
  bash "$ROOT/hack/fixtures/gpu-nodes.sh" --profile fleet --nodes "$nodes" >"$SD/nodes.log" 2>&1 ||
    { tail -5 "$SD/nodes.log" >&2; wl_die "gpu-nodes.sh failed"; }
  jq -c '.labels[] | {method: "PATCH", path: "/api/v1/nodes/\(.node)",
                      body: {metadata: {labels: {"waterline.dev/node-pool": .pool}}}}' "$SD/objects.json" | bulk '200'
  log "$S: $nodes nodes Ready and labelled in $(since "$t") s"
  if [[ "$S" == *dra ]]; then
    # DRA mode: every whole-GPU H100 node publishes its GPUs as a ResourceSlice in the
    # NVIDIA driver's shape; their pools (allocation unset, sharing Exclusive) resolve to
    # DRA, so each of their workers gets its own ResourceClaim.
    t="$(now)"
    bash "$ROOT/hack/fixtures/dra-slices.sh" --selector waterline.dev/shape=h100 >"$SD/dra-slices.log" 2>&1 ||
      { tail -5 "$SD/dra-slices.log" >&2; wl_die "dra-slices.sh failed"; }
    log "$S: $(cat "$SD/dra-slices.log") in $(since "$t") s"
  fi
}

run_scale() { # <scale> <nodes> <pools> <deployments> <reservations> <namespaces>
  local S="$1" nodes="$2" pools="$3" deps="$4" ptus="$5" nss="$6"
  SD="$WORK/$S"
  CP="$SD/cp"
  mkdir -p "$SD"
  log "== $S: $nodes nodes, $pools pools, $deps deployments, $ptus reservations"

  # -- setup (not timed)
  setup_fleet "$nodes" "$pools" "$deps" "$ptus" "$nss" crds

  # -- two replicas; a leads
  local pa pb ida="$S-a" idb="$S-b" pida pidb
  pa="$(free_port)"
  pb="$(free_port)"
  while [[ "$pb" == "$pa" ]]; do pb="$(free_port)"; done
  start_operator "$ida" "$pa"
  pida="$OP_PID"
  wait_ready "$pa" "$pida"
  local i
  for ((i = 0; i < 120; i++)); do [[ "$(lease_holder)" == "$ida" ]] && break; sleep 0.25; done
  [[ "$(lease_holder)" == "$ida" ]] || wl_die "$ida did not take the lease"
  start_operator "$idb" "$pb"
  pidb="$OP_PID"
  wait_ready "$pb" "$pidb"
  log "$S: operators ready: leader $ida (pid $pida, :$pa), standby $idb (pid $pidb, :$pb)"

  # -- apply and wait for everything scheduled
  local t0 tapply c total=0 sched=0 want=0 placed=0 tsched="" t50="" t90="" last=0 pr=0 tpods="" tptu="" el
  local cpu_op0 cpu_cp0 tdone
  R[$S.missed]=""
  SCRAPE_ERRORS=0
  bind_watch_start "$SD/binds.txt"
  cpu_op0="$(cpu_s "$pida")"
  cpu_cp0="$(cp_cpu)"
  t0="$(now)"
  jq -c '
      (.pools[] | {method: "POST", path: "/apis/waterline.dev/v1alpha1/capacitypools", body: .}),
      (.deployments[] | {method: "POST", path: "/apis/waterline.dev/v1alpha1/namespaces/\(.metadata.namespace)/modeldeployments", body: .}),
      (.reservations[] | {method: "POST", path: "/apis/waterline.dev/v1alpha1/namespaces/\(.metadata.namespace)/ptureservations", body: .})' \
    "$SD/objects.json" | bulk '201'
  tapply="$(since "$t0")"
  log "$S: applied $pools pools, $deps deployments, $ptus reservations in $tapply s"
  while :; do
    c="$(md_counts)" || c="0 0 0 0"
    read -r total sched want placed <<<"$c"
    el="$(since "$t0")"
    [[ -z "$t50" ]] && ((sched * 2 >= deps)) && t50="$el"
    [[ -z "$t90" ]] && ((sched * 10 >= deps * 9)) && t90="$el"
    if ((total == deps && sched == deps)); then tsched="$el"; break; fi
    if awk -v e="$el" -v l="$last" 'BEGIN { exit !(e - l >= 15) }'; then
      log "$S: ${el}s: $sched/$deps deployments scheduled"
      last="$el"
    fi
    if awk -v e="$el" -v m="$SCHEDULE_TIMEOUT" 'BEGIN { exit !(e > m) }'; then
      log "$S: NOT all scheduled after $SCHEDULE_TIMEOUT s ($sched/$deps); some unscheduled:"
      api /apis/waterline.dev/v1alpha1/modeldeployments | jq -r '.items[] | select(any(.status.conditions[]?; .type == "Scheduled" and .status == "True") | not)
        | "  \(.metadata.namespace)/\(.metadata.name) \(.status.scheduledReplicas // 0)/\(.spec.replicas) \(.status.insufficientCapacity // "")"' | head -10 >&2 || true
      tsched="$el"
      R[$S.missed]+=" scheduled"
      break
    fi
    sleep 0.5
  done
  R[$S.sched_cpu_op]="$(awk -v a="$cpu_op0" -v b="$(cpu_s "$pida")" 'BEGIN { printf "%.1f", b - a }')"
  R[$S.sched_cpu_cp]="$(awk -v a="$cpu_cp0" -v b="$(cp_cpu)" 'BEGIN { printf "%.1f", b - a }')"
  log "$S: $sched/$deps deployments scheduled ($want replicas) after $tsched s (50%: ${t50:-never} s, 90%: ${t90:-never} s); CPU s in that time: leader ${R[$S.sched_cpu_op]}, etcd+apiserver+kwok ${R[$S.sched_cpu_cp]}"
  tdone="$(now)"
  while :; do
    [[ -z "$tpods" ]] && pr="$(pods_running || echo 0)" && ((pr >= want)) && tpods="$(since "$t0")"
    [[ -z "$tptu" ]] && (($(ptus_active || echo 0) >= ptus)) && tptu="$(since "$t0")"
    [[ -n "$tpods" && -n "$tptu" ]] && break
    if awk -v e="$(since "$tdone")" 'BEGIN { exit !(e > 60) }'; then
      [[ -n "$tpods" ]] || { tpods="nan"; R[$S.missed]+=" pods"; }
      [[ -n "$tptu" ]] || { tptu="nan"; R[$S.missed]+=" reservations"; }
      break
    fi
    sleep 0.5
  done
  log "$S: worker pods Running: $pr/$want (all after $tpods s); reservations Active: all after $tptu s"
  bind_watch_stop
  R[$S.tbound]="$(bound_at "$SD/binds.txt" "$t0" "$want")"
  R[$S.tb50]="$(bound_at "$SD/binds.txt" "$t0" $(((want + 1) / 2)))"
  R[$S.tb90]="$(bound_at "$SD/binds.txt" "$t0" $(((want * 9 + 9) / 10)))"
  R[$S.unplaced]="$((want - placed))"
  log "$S: $(bound_count "$SD/binds.txt") distinct worker pods seen bound; the ${want}th after ${R[$S.tbound]} s"
  R[$S.double_booked]="$(double_booked)"
  R[$S.conflict_logs]="$({ grep 'assignment conflict' "$SD/operator-$ida.log" || true; } | { grep -o 'worker=[^ ]* holder=[^ ]*' || true; } | sort -u | wc -l)"
  R[$S.tsched]="$tsched"
  R[$S.t50]="$t50"
  R[$S.t90]="$t90"
  R[$S.tapply]="$tapply"
  R[$S.tpods]="$tpods"
  R[$S.tptu]="$tptu"
  R[$S.replicas]="$want"
  R[$S.conflict_events]="$(gpu_conflict_events)"
  log "$S: GPU claims held by two worker pods (from their assignment annotations): ${R[$S.double_booked]}; distinct conflicts the leader logged: ${R[$S.conflict_logs]}; GpuConflict Events: ${R[$S.conflict_events]}"

  # -- quiet window, once the leader has worked off its backlog (bounded: SETTLE_TIMEOUT)
  local depth tq
  tq="$(now)"
  while :; do
    alive "$pida" || { leader_exited "$pida" "$ida" "$t0"; return 0; }
    # A failed scrape is not an empty queue.
    if scrape_ok "$pa" "$SD/settle.prom"; then
      depth="$(fmt "$(msum "$SD/settle.prom" waterline_workqueue_depth 'name="(modeldeployment|capacitypool|ptureservation)"')" 0)"
      ((depth == 0)) && break
    else
      depth="unknown"
    fi
    if awk -v e="$(since "$tq")" -v m="$SETTLE_TIMEOUT" 'BEGIN { exit !(e > m) }'; then
      log "$S: leader still has $depth modeldeployment/capacitypool/ptureservation keys queued after $SETTLE_TIMEOUT s; quiet window starts anyway"
      R[$S.missed]+=" drained_queues"
      break
    fi
    sleep 2
  done
  R[$S.window_depth]="$depth"
  R[$S.scrape_errors]="$SCRAPE_ERRORS"
  sleep 5
  local w0 w1 win a0="$SD/leader.0.prom" a1="$SD/leader.1.prom" b0="$SD/standby.0.prom" b1="$SD/standby.1.prom"
  local s0="$SD/apiserver.0.prom" s1="$SD/apiserver.1.prom" cpu0
  alive "$pida" || { leader_exited "$pida" "$ida" "$t0"; return 0; }
  api /metrics >"$s0"
  scrape_ok "$pa" "$a0" || wl_die "no /metrics from the leader"
  scrape_ok "$pb" "$b0" || wl_die "no /metrics from the standby"
  cpu0="$(cpu_s "$pida")"
  w0="$(now)"
  log "$S: quiet window ${QUIET_S}s"
  sleep "$QUIET_S"
  alive "$pida" || { leader_exited "$pida" "$ida" "$t0"; return 0; }
  scrape_ok "$pa" "$a1" || wl_die "no /metrics from the leader"
  scrape_ok "$pb" "$b1" || wl_die "no /metrics from the standby"
  w1="$(now)"
  api /metrics >"$s1"
  win="$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')"
  local req0 req1 sreq0 sreq1 cpu1
  cpu1="$(cpu_s "$pida")"
  req0="$(msum "$a0" waterline_rest_client_requests_total)"
  req1="$(msum "$a1" waterline_rest_client_requests_total)"
  sreq0="$(msum "$b0" waterline_rest_client_requests_total)"
  sreq1="$(msum "$b1" waterline_rest_client_requests_total)"
  R[$S.steady_rps]="$(awk -v a="$req0" -v b="$req1" -v w="$win" 'BEGIN { printf "%.2f", (b - a) / w }')"
  R[$S.standby_rps]="$(awk -v a="$sreq0" -v b="$sreq1" -v w="$win" 'BEGIN { printf "%.2f", (b - a) / w }')"
  R[$S.steady_cpu_pct]="$(awk -v a="$cpu0" -v b="$cpu1" -v w="$win" 'BEGIN { printf "%.1f", 100 * (b - a) / w }')"
  {
    echo "leader requests in the window by verb/code (count):"
    delta waterline_rest_client_requests_total "$a0" "$a1"
    echo "leader reconciles in the window by controller/result (count):"
    delta waterline_controller_reconcile_total "$a0" "$a1"
    echo "apiserver requests in the window, operator resources (verb resource subresource: count):"
      awk 'index($1, "apiserver_request_total{") != 1 { next }
           { m = $1; r = ""; vb = ""; sr = ""
             if (match(m, /resource="[^"]*"/)) r = substr(m, RSTART + 10, RLENGTH - 11)
             if (match(m, /verb="[^"]*"/)) vb = substr(m, RSTART + 6, RLENGTH - 7)
             if (match(m, /subresource="[^"]*"/)) sr = substr(m, RSTART + 13, RLENGTH - 14)
             if (r !~ /^(capacitypools|modeldeployments|ptureservations|routingtables|pods|events)$/) next
             k = vb " " r " " sr
             if (FILENAME == ARGV[1]) a[k] += $NF; else b[k] += $NF }
        END { for (k in b) if (b[k] - a[k] > 0) printf "  %s: %d\n", k, b[k] - a[k] }' "$s0" "$s1" | sort
  } >"$SD/window.txt" 2>/dev/null || true
  sed "s/^/[$S] /" "$SD/window.txt" >&2

  # -- placement validity again at the end of the window (after any conflict repair)
  R[$S.double_booked_end]="$(double_booked)"
  R[$S.conflict_events_end]="$(gpu_conflict_events)"
  R[$S.conflict_lines_end]="$({ grep -c 'assignment conflict' "$SD/operator-$ida.log" || true; })"
  log "$S: end of quiet window: GPU claims held by two worker pods: ${R[$S.double_booked_end]}; GpuConflict Events: ${R[$S.conflict_events_end]}; leader's conflict log lines: ${R[$S.conflict_lines_end]}"

  # -- leader figures at the end of the window
  R[$S.scrape_errors]="$SCRAPE_ERRORS"
  R[$S.cpu_s]="$(cpu_s "$pida")"
  R[$S.rss_mib]="$(hwm_mib "$pida")"
  R[$S.standby_rss_mib]="$(hwm_mib "$pidb")"
  R[$S.p50_ms]="$(awk -v s="$(hquant "$a1" waterline_controller_reconcile_duration_seconds 0.5)" 'BEGIN { printf "%.2f", s * 1000 }')"
  R[$S.p99_ms]="$(awk -v s="$(hquant "$a1" waterline_controller_reconcile_duration_seconds 0.99)" 'BEGIN { printf "%.2f", s * 1000 }')"
  R[$S.reconciles]="$(fmt "$(msum "$a1" waterline_controller_reconcile_total)" 0)"
  local ctl
  R[$S.per_controller]=""
  local ctls
  mapfile -t ctls < <({ grep -o 'waterline_controller_reconcile_duration_seconds_count{controller="[^"]*"' "$a1" || true; } |
    sed 's/.*controller="//; s/"$//' | sort -u)
  for ctl in "${ctls[@]}"; do
    R[$S.per_controller]+="$(printf '  %-18s n=%-7.0f p50=%8.2f ms  p99=%8.2f ms\n' "$ctl" \
      "$(msum "$a1" waterline_controller_reconcile_duration_seconds_count "controller=\"$ctl\"")" \
      "$(awk -v s="$(hquant "$a1" waterline_controller_reconcile_duration_seconds 0.5 "controller=\"$ctl\"")" 'BEGIN { print s * 1000 }')" \
      "$(awk -v s="$(hquant "$a1" waterline_controller_reconcile_duration_seconds 0.99 "controller=\"$ctl\"")" 'BEGIN { print s * 1000 }')")"$'\n'
  done
  R[$S.window]="$win"

  # -- failover
  local last_md ns name reps tkill tlease="" tresume="" tfirst="" h st
  last_md="$(jq -r '.deployments[-1] | "\(.metadata.namespace) \(.metadata.name) \(.spec.replicas)"' "$SD/objects.json")"
  read -r ns name reps <<<"$last_md"
  log "$S: failover: kill -9 leader $ida (pid $pida), then $ns/$name replicas $reps -> $((reps + 1))"
  tkill="$(now)"
  kill -KILL "$pida"
  { wait "$pida"; } 2>/dev/null || true
  api "/apis/waterline.dev/v1alpha1/namespaces/$ns/modeldeployments/$name" -X PATCH \
    -H 'Content-Type: application/merge-patch+json' -d "{\"spec\":{\"replicas\":$((reps + 1))}}" >/dev/null
  while :; do
    if [[ -z "$tlease" ]]; then
      h="$(lease_holder)"
      [[ "$h" == "$idb" ]] && tlease="$(since "$tkill")"
    elif [[ -z "$tfirst" ]]; then
      scrape "$pb" >"$SD/failover.prom" 2>/dev/null || true
      (($(fmt "$(msum "$SD/failover.prom" waterline_controller_reconcile_total 'controller="modeldeployment"')" 0) > 0)) &&
        tfirst="$(since "$tkill")"
    fi
    if [[ -z "$tresume" ]]; then
      st="$(api "/apis/waterline.dev/v1alpha1/namespaces/$ns/modeldeployments/$name" 2>/dev/null |
        jq -r --argjson r $((reps + 1)) '((.status.observedGeneration // -1) == .metadata.generation
          and (.status.scheduledReplicas // -1) == $r
          and any(.status.conditions[]?; .type == "Scheduled" and .status == "True"))' 2>/dev/null || echo false)"
      [[ "$st" == true ]] && tresume="$(since "$tkill")"
    fi
    [[ -n "$tlease" && -n "$tresume" && -n "$tfirst" ]] && break
    if awk -v e="$(since "$tkill")" -v m="$FAILOVER_TIMEOUT" 'BEGIN { exit !(e > m) }'; then
      log "$S: failover NOT complete after $FAILOVER_TIMEOUT s (lease: ${tlease:-not taken}, new replica: not scheduled)"
      [[ -n "$tlease" ]] || { tlease="$FAILOVER_TIMEOUT"; R[$S.missed]+=" failover_lease"; }
      [[ -n "$tresume" ]] || { tresume="$FAILOVER_TIMEOUT"; R[$S.missed]+=" failover_resume"; }
      [[ -n "$tfirst" ]] || { tfirst="$FAILOVER_TIMEOUT"; R[$S.missed]+=" failover_first_reconcile"; }
      break
    fi
    sleep 0.2
  done
  scrape "$pb" >"$SD/newleader.prom" || true
  R[$S.failover_md_reconciles]="$(fmt "$(msum "$SD/newleader.prom" waterline_controller_reconcile_total 'controller="modeldeployment"')" 0)"
  R[$S.failover_md_depth]="$(fmt "$(msum "$SD/newleader.prom" waterline_workqueue_depth 'name="modeldeployment"')" 0)"
  R[$S.failover_lease_s]="$tlease"
  R[$S.failover_resume_s]="$tresume"
  R[$S.failover_first_s]="$tfirst"
  R[$S.new_leader_rss_mib]="$(hwm_mib "$pidb")"
  log "$S: failover: $idb holds the lease after $tlease s, first modeldeployment reconcile done after $tfirst s; $name's new replica scheduled after $tresume s; new leader: ${R[$S.failover_md_reconciles]} modeldeployment reconciles done, ${R[$S.failover_md_depth]} queued"

  # -- teardown of this scale
  stop_operator "$pidb"
  OP_PIDS=()
  bash "$ROOT/hack/controlplane.sh" down --dir "$CP" --purge >/dev/null 2>&1 || true
  CP_DIRS=()
}

# ---------------------------------------------------------------- the peer

# kube-scheduler's configuration for <profile>: default = the default profile as it ships;
# binpack = NodeResourcesFit with scoringStrategy MostAllocated, the GPU resources weighted
# 10 and cpu/memory 1 (Kubernetes' "resource bin packing" recipe, as a tuned user would
# write it). Both: leader election off, and the client-side rate limit lifted (PEER_QPS,
# PEER_BURST; kube-scheduler's own default is 50/100) as Waterline has none.
scheduler_config() { # <profile> <kubeconfig>
  cat <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: "$2"
  qps: $PEER_QPS
  burst: $PEER_BURST
leaderElection:
  leaderElect: false
profiles:
- schedulerName: default-scheduler
EOF
  [[ "$1" == binpack ]] || return 0
  local r
  printf '%s\n' "  pluginConfig:" "  - name: NodeResourcesFit" "    args:" "      scoringStrategy:" \
    "        type: MostAllocated" "        resources:" "        - {name: cpu, weight: 1}" \
    "        - {name: memory, weight: 1}" "        - {name: nvidia.com/gpu, weight: 10}"
  for r in 1g.10gb 1g.20gb 2g.20gb 3g.40gb 4g.40gb 7g.80gb; do
    echo "        - {name: nvidia.com/mig-$r, weight: 10}"
  done
}

# CPU seconds (utime + stime) of the peer's kube-scheduler and kube-controller-manager.
peer_cpu() { awk -v a="$(cpu_s "$PEER_SCHED_PID")" -v b="$(cpu_s "$PEER_KCM_PID")" 'BEGIN { printf "%.2f", a + b }'; }

# Waits until https://127.0.0.1:<port>/<path> answers "ok" (60 s), or <pid> exits.
wait_healthz() { # <port> <pid> <name> <path>
  local i
  for ((i = 0; i < 240; i++)); do
    alive "$2" || { tail -n 20 "$SD/$3.log" >&2; wl_die "$3 exited during startup (log: $SD/$3.log)"; }
    [[ "$(curl -sk --max-time 2 "https://127.0.0.1:$1/$4" 2>/dev/null)" == ok ]] && return 0
    sleep 0.25
  done
  tail -n 20 "$SD/$3.log" >&2
  wl_die "$3 not healthy after 60 s (log: $SD/$3.log)"
}

# The peer: the same fleet on a fresh control plane, the same workers as Deployments
# (bench/fleet/peer.jq), placed by kube-scheduler (<profile>: default or binpack) and
# turned into pods by kube-controller-manager (deployment and replicaset controllers
# only), both $KUBE_VERSION like the apiserver. t0 = the first POST of a Deployment (one
# curl process); figures: time until the last pod got spec.nodeName (bind watch), pods
# left unbound at the end of a bounded wait (all bound, or no new bind for PEER_IDLE_S,
# or PEER_TIMEOUT after t0), and the CPU seconds of both processes from t0 to the last
# bind seen (and over their lifetime).
run_peer() { # <scale> <profile> <nodes> <pools> <deployments> <reservations> <namespaces>
  local scale="$1" prof="$2"
  local S="$scale.peer_$prof"
  SD="$WORK/$scale-peer-$prof"
  CP="$SD/cp"
  mkdir -p "$SD"
  log "== $S: kube-scheduler ($prof profile) + kube-controller-manager, $3 nodes, $5 Deployments"
  setup_fleet "$3" "$4" "$5" "$6" "$7"
  jq -c -f "$HERE/peer.jq" "$SD/objects.json" >"$SD/deployments.jsonl"
  local want
  want="$(jq -s '[.[].spec.replicas] | add' "$SD/deployments.jsonl")"
  scheduler_config "$prof" "$CP/kubeconfig" >"$SD/scheduler.yaml"

  local ps pk
  ps="$(free_port)"
  pk="$(free_port)"
  while [[ "$pk" == "$ps" ]]; do pk="$(free_port)"; done
  "$KUBE_CONTROLLER_MANAGER_BIN" --kubeconfig="$CP/kubeconfig" \
    --authentication-kubeconfig="$CP/kubeconfig" --authorization-kubeconfig="$CP/kubeconfig" \
    --controllers=deployment-controller,replicaset-controller --leader-elect=false \
    --kube-api-qps="$PEER_QPS" --kube-api-burst="$PEER_BURST" \
    --bind-address=127.0.0.1 --secure-port="$pk" --cert-dir="$SD/kcm-certs" --v=1 \
    >"$SD/kube-controller-manager.log" 2>&1 </dev/null &
  PEER_KCM_PID=$!
  PEER_PIDS+=("$PEER_KCM_PID")
  "$KUBE_SCHEDULER_BIN" --config="$SD/scheduler.yaml" \
    --authentication-kubeconfig="$CP/kubeconfig" --authorization-kubeconfig="$CP/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$ps" --cert-dir="$SD/scheduler-certs" --v=1 \
    >"$SD/kube-scheduler.log" 2>&1 </dev/null &
  PEER_SCHED_PID=$!
  PEER_PIDS+=("$PEER_SCHED_PID")
  wait_healthz "$pk" "$PEER_KCM_PID" kube-controller-manager healthz
  wait_healthz "$ps" "$PEER_SCHED_PID" kube-scheduler readyz
  log "$S: kube-controller-manager (pid $PEER_KCM_PID, :$pk) and kube-scheduler (pid $PEER_SCHED_PID, :$ps) ready"

  local t0 tapply n=0 lastn=0 tchange cpu0 cpu_cp0 cpu_last el last=0 stop=""
  bind_watch_start "$SD/binds.txt"
  cpu0="$(peer_cpu)"
  cpu_cp0="$(cp_cpu)"
  t0="$(now)"
  jq -c '{method: "POST", path: "/apis/apps/v1/namespaces/\(.metadata.namespace)/deployments", body: .}' \
    "$SD/deployments.jsonl" | bulk '201'
  tapply="$(since "$t0")"
  log "$S: applied $5 Deployments ($want replicas) in $tapply s"
  tchange="$(now)"
  cpu_last="$cpu0"
  while :; do
    n="$(bound_count "$SD/binds.txt")"
    el="$(since "$t0")"
    if ((n != lastn)); then lastn="$n"; tchange="$(now)"; cpu_last="$(peer_cpu)"; fi
    ((n >= want)) && { stop="all bound"; break; }
    alive "$PEER_SCHED_PID" || { stop="kube-scheduler exited"; break; }
    alive "$PEER_KCM_PID" || { stop="kube-controller-manager exited"; break; }
    if awk -v e="$(since "$tchange")" -v m="$PEER_IDLE_S" 'BEGIN { exit !(e >= m) }'; then
      stop="no new bind for $PEER_IDLE_S s"
      break
    fi
    if awk -v e="$el" -v m="$PEER_TIMEOUT" 'BEGIN { exit !(e > m) }'; then
      stop="limit of $PEER_TIMEOUT s"
      break
    fi
    if awk -v e="$el" -v l="$last" 'BEGIN { exit !(e - l >= 15) }'; then
      log "$S: ${el}s: $n/$want pods bound"
      last="$el"
    fi
    sleep 0.5
  done
  local cpu_end cpu_cp_end
  cpu_end="$(peer_cpu)"
  cpu_cp_end="$(cp_cpu)"
  bind_watch_stop
  n="$(bound_count "$SD/binds.txt")"
  local created unbound
  created="$(api "/api/v1/pods" | jq '[.items[] | select(.metadata.namespace | startswith("team-"))] | length')"
  unbound="$(api "/api/v1/pods?fieldSelector=spec.nodeName%3D" |
    jq '[.items[] | select(.metadata.namespace | startswith("team-"))] | length')"
  R[$S.tapply]="$tapply"
  R[$S.tlast]="$(bound_at "$SD/binds.txt" "$t0" last)"
  R[$S.t50]="$(bound_at "$SD/binds.txt" "$t0" $(((want + 1) / 2)))"
  R[$S.t90]="$(bound_at "$SD/binds.txt" "$t0" $(((want * 9 + 9) / 10)))"
  R[$S.replicas]="$want"
  R[$S.bound]="$n"
  R[$S.created]="$created"
  R[$S.unplaced]="$((want - n))"
  R[$S.pending]="$unbound"
  R[$S.stop]="$stop"
  R[$S.cpu]="$(awk -v a="$cpu0" -v b="$cpu_last" 'BEGIN { printf "%.2f", b - a }')"
  R[$S.cpu_wait]="$(awk -v a="$cpu0" -v b="$cpu_end" 'BEGIN { printf "%.2f", b - a }')"
  R[$S.cpu_life]="$cpu_end"
  R[$S.cpu_sched]="$(cpu_s "$PEER_SCHED_PID")"
  R[$S.cpu_kcm]="$(cpu_s "$PEER_KCM_PID")"
  R[$S.cpu_cp]="$(awk -v a="$cpu_cp0" -v b="$cpu_cp_end" 'BEGIN { printf "%.1f", b - a }')"
  R[$S.rss_sched]="$(hwm_mib "$PEER_SCHED_PID")"
  R[$S.rss_kcm]="$(hwm_mib "$PEER_KCM_PID")"
  log "$S: stopped waiting ($stop): $n/$want pods bound, the last after ${R[$S.tlast]} s (50%: ${R[$S.t50]} s, 90%: ${R[$S.t90]} s); $created pods created, $unbound Pending without a node; CPU s of kube-scheduler + kube-controller-manager from the POST to the last bind ${R[$S.cpu]} (to the end of the wait ${R[$S.cpu_wait]}; lifetime: scheduler ${R[$S.cpu_sched]}, controller-manager ${R[$S.cpu_kcm]}); etcd+apiserver+kwok ${R[$S.cpu_cp]}"
  if ((unbound > 0)); then
    log "$S: some Pending pods, with the scheduler's reason:"
    api "/api/v1/pods?fieldSelector=spec.nodeName%3D" | jq -r '.items[] | select(.metadata.namespace | startswith("team-"))
      | "  \(.metadata.namespace)/\(.metadata.name) \(.spec.containers[0].resources.limits | to_entries | map("\(.key)=\(.value)") | join(","))  \([.status.conditions[]? | select(.type == "PodScheduled") | .message // ""] | join(" "))"' |
      head -5 >&2 || true
  fi
  local p
  for p in "${PEER_PIDS[@]}"; do stop_operator "$p"; done
  PEER_PIDS=()
  bash "$ROOT/hack/controlplane.sh" down --dir "$CP" --purge >/dev/null 2>&1 || true
  CP_DIRS=()
}

# ---------------------------------------------------------------- main

T_START="$(now)"
echo "fleet bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), operator $OPERATOR"
SCALES=()
# F: the fleet scale of this run (its RESULT names end in SFX); the peer runs on it.
if [[ "$SIZE" == 5k ]]; then
  F=fleet5k SFX=_5k
  case "${FLEET_ONLY:-}" in
    "" | fleet) SCALES=(fleet5k) ;;
    peer) SCALES=() ;;
    *) wl_die "FLEET_ONLY=${FLEET_ONLY} does not apply to --5k (it runs the 5k fleet only)" ;;
  esac
else
  F=fleet SFX=""
  case "${FLEET_ONLY:-}" in
    "") SCALES=(baseline fleet) ;;
    baseline | fleet) SCALES=("$FLEET_ONLY") ;;
    peer) SCALES=() ;;
    *) wl_die "FLEET_ONLY must be baseline, fleet or peer" ;;
  esac
fi
# <nodes> <pools> <deployments> <reservations> <namespaces> of each scale
# --dra: the fleet once more with its H100 nodes in DRA mode (fleetdra, RESULT names
# ending in _dra), in the same run as device-plugin mode.
if ((DRA)) && [[ "$SIZE" == 1k && " ${SCALES[*]-} " == *" fleet "* ]]; then SCALES+=(fleetdra); fi
declare -A SHAPE=([baseline]="100 5 50 2 1" [fleet]="1000 50 500 20 10" [fleetdra]="1000 50 500 20 10" [fleet5k]="5000 250 2500 100 50")
for s in ${SCALES[@]+"${SCALES[@]}"}; do
  # shellcheck disable=SC2086 # the shape is five words
  run_scale "$s" ${SHAPE[$s]}
done
PEER_PROFILES=()
if ((PEER)) && [[ " ${SCALES[*]} " == *" $F "* || "${FLEET_ONLY:-}" == peer ]]; then
  PEER_PROFILES=(default binpack)
  for prof in "${PEER_PROFILES[@]}"; do
    # shellcheck disable=SC2086
    run_peer "$F" "$prof" ${SHAPE[$F]}
  done
fi

BASE_AND_FLEET=0
[[ " ${SCALES[*]-} " == *" baseline "* && " ${SCALES[*]-} " == *" fleet "* ]] && BASE_AND_FLEET=1
echo
echo "== Fleet benchmark ($(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg), $(since "$T_START") s in all)"
if ((${#SCALES[@]})); then
  printf '%-46s' "figure"
  for s in "${SCALES[@]}"; do printf '%14s' "$s"; done
  ((BASE_AND_FLEET)) && printf '%14s' "fleet/base"
  echo
  row() { # <label> <key>
    printf '%-46s' "$1"
    for s in "${SCALES[@]}"; do printf '%14s' "${R[$s.$2]:-}"; done
    ((BASE_AND_FLEET)) && printf '%14s' "$(ratio "${R[fleet.$2]:-nan}" "${R[baseline.$2]:-nan}")"
    echo
  }
  row "POST of every object (s)" tapply
  row "50% of deployments scheduled (s)" t50
  row "90% of deployments scheduled (s)" t90
  row "all deployments scheduled (s)" tsched
  row "  leader CPU s from POST to all scheduled" sched_cpu_op
  row "  etcd+apiserver+kwok CPU s in that time" sched_cpu_cp
  row "all worker pods Running (s)" tpods
  row "all reservations Active (s)" tptu
  row "worker replicas" replicas
  row "leader reconciles (until end of quiet window)" reconciles
  row "reconcile latency p50 (ms)" p50_ms
  row "reconcile latency p99 (ms)" p99_ms
  row "leader CPU seconds (process lifetime)" cpu_s
  row "leader CPU in the quiet window (% of a core)" steady_cpu_pct
  row "leader peak RSS, VmHWM (MiB)" rss_mib
  row "standby peak RSS, VmHWM (MiB)" standby_rss_mib
  row "leader queued keys at quiet window start" window_depth
  row "leader API requests/s, quiet window" steady_rps
  row "standby API requests/s, quiet window" standby_rps
  row "failover: lease taken by standby (s)" failover_lease_s
  row "failover: new leader's first reconcile (s)" failover_first_s
  row "failover: change after kill scheduled (s)" failover_resume_s
  row "  new leader: modeldeployment reconciles then" failover_md_reconciles
  row "  new leader: modeldeployment queue depth then" failover_md_depth
  row "new leader peak RSS after failover (MiB)" new_leader_rss_mib
  row "distinct GPU conflicts logged by the leader" conflict_logs
  row "leader's conflict log lines, end of window" conflict_lines_end
  row "failed /metrics scrapes (retried)" scrape_errors
  for s in "${SCALES[@]}"; do
    echo "GPU claims held by two live worker pods, $s: ${R[$s.double_booked]:-nan} when all scheduled, ${R[$s.double_booked_end]:-nan} at the end of the quiet window"
    echo "GpuConflict Events, $s: ${R[$s.conflict_events]:-nan} when all scheduled, ${R[$s.conflict_events_end]:-nan} at the end of the quiet window"
  done
  for s in "${SCALES[@]}"; do
    [[ -n "${R[$s.leader_exit]:-}" ]] && echo "NOTE $s: leader ${R[$s.leader_exit]:-nan}"
  done
  for s in "${SCALES[@]}"; do
    [[ -n "${R[$s.missed]:-}" ]] && echo "NOTE $s: not reached within the time limits:${R[$s.missed]:-} (the figures for them are lower bounds: the limit)"
  done
  for s in "${SCALES[@]}"; do
    echo "reconcile latency per controller, $s (leader, whole run):"
    printf '%s' "${R[$s.per_controller]:-}"
  done
fi
if ((${#PEER_PROFILES[@]})); then
  echo
  echo "== Against kube-scheduler + kube-controller-manager $KUBE_VERSION, $F (${SHAPE[$F]%% *} nodes; each run on a fresh control plane with the same nodes and workers)"
  printf '%-52s%14s' "figure" "waterline"
  for prof in "${PEER_PROFILES[@]}"; do printf '%14s' "peer $prof"; done
  echo
  prow() { # <label> <waterline key or -> <peer key>
    printf '%-52s%14s' "$1" "$([[ "$2" == - ]] && echo "" || echo "${R[$F.$2]:-}")"
    for prof in "${PEER_PROFILES[@]}"; do printf '%14s' "${R[$F.peer_$prof.$3]:-}"; done
    echo
  }
  prow "POST of every object (s)" tapply tapply
  prow "50% of worker pods bound (s)" tb50 t50
  prow "90% of worker pods bound (s)" tb90 t90
  prow "all worker pods bound (s; peer: the last one bound)" tbound tlast
  prow "all ModelDeployments scheduled (s)" tsched -
  prow "worker pods wanted" replicas replicas
  prow "pods created" - created
  prow "pods bound at the end of the wait" - bound
  prow "workers unplaced at the end of the wait" unplaced unplaced
  prow "scheduling CPU s, POST to all scheduled/last bind" sched_cpu_op cpu
  prow "  peer: to the end of the wait" - cpu_wait
  prow "  peer: kube-scheduler, process lifetime" - cpu_sched
  prow "  peer: kube-controller-manager, process lifetime" - cpu_kcm
  prow "etcd+apiserver+kwok CPU s in that time" sched_cpu_cp cpu_cp
  prow "peak RSS MiB (leader; kube-scheduler)" rss_mib rss_sched
  prow "peak RSS MiB (kube-controller-manager)" - rss_kcm
  for prof in "${PEER_PROFILES[@]}"; do
    echo "peer $prof: stopped waiting: ${R[$F.peer_$prof.stop]:-}; ${R[$F.peer_$prof.pending]:-nan} pods Pending without a node"
  done
fi
echo
echo "Goals: all scheduled within 60 s; operator RSS < 300 MiB; steady-state API requests near zero."
if [[ -n "${R[$F.tsched]:-}" ]]; then
  awk -v t="${R[$F.tsched]:-nan}" -v r="${R[$F.rss_mib]:-nan}" -v q="${R[$F.steady_rps]:-nan}" '
    function goal(name, v, limit, unit) {
      if (v !~ /^[0-9.]+$/) printf "  %s: not measured\n", name
      else printf "  %s: %s (%s%s)\n", name, (v + 0 < limit ? "met" : "MISSED"), v, unit }
    BEGIN {
      goal("all scheduled within 60 s", t, 60.005, " s")
      goal("operator RSS < 300 MiB", r, 300, " MiB")
      goal("steady-state API requests near zero (< 1/s)", q, 1, "/s") }'
fi
echo
print_fleet() { # <scale> <suffix>
local F="$1" SFX="$2"
if [[ -n "${R[$F.tsched]:-}" ]]; then
  echo "RESULT fleet_time_to_all_scheduled_s$SFX $(fmt "${R[$F.tsched]:-nan}") s"
  echo "RESULT fleet_time_to_all_pods_running_s$SFX $(fmt "${R[$F.tpods]:-nan}") s"
  echo "RESULT reconcile_latency_p50_ms$SFX ${R[$F.p50_ms]:-nan} ms"
  echo "RESULT reconcile_latency_p99_ms$SFX ${R[$F.p99_ms]:-nan} ms"
  echo "RESULT operator_cpu_seconds$SFX ${R[$F.cpu_s]:-nan} s"
  echo "RESULT operator_peak_rss_mib$SFX ${R[$F.rss_mib]:-nan} MiB"
  echo "RESULT steady_state_api_requests_per_sec$SFX ${R[$F.steady_rps]:-nan} 1/s"
  echo "RESULT failover_lease_acquired_s$SFX $(fmt "${R[$F.failover_lease_s]:-nan}") s"
  echo "RESULT failover_first_reconcile_s$SFX $(fmt "${R[$F.failover_first_s]:-nan}") s"
  echo "RESULT failover_resume_s$SFX $(fmt "${R[$F.failover_resume_s]:-nan}") s"
  echo "RESULT leader_quiet_cpu_pct$SFX ${R[$F.steady_cpu_pct]:-nan} %"
  echo "RESULT fleet_time_to_all_pods_bound_s$SFX ${R[$F.tbound]:-nan} s"
  echo "RESULT fleet_cpu_seconds_to_all_scheduled$SFX ${R[$F.sched_cpu_op]:-nan} s"
  echo "RESULT fleet_unplaced$SFX ${R[$F.unplaced]:-nan} pods"
  # GPU claims held by two live worker pods: the larger of the two checks (all scheduled,
  # end of the quiet window); nan when either could not be read.
  db1="${R[$F.double_booked]:-unknown}" db2="${R[$F.double_booked_end]:-unknown}"
  if [[ "$db1" =~ ^([0-9]+)\ claims && "$db2" =~ ^([0-9]+)\ claims ]]; then
    a1="${db1%% *}" a2="${db2%% *}"
    echo "RESULT double_booked_gpus$SFX $((a1 > a2 ? a1 : a2)) claims"
  else
    echo "RESULT double_booked_gpus$SFX nan claims"
  fi
fi
}
print_fleet "$F" "$SFX"
if [[ " ${SCALES[*]-} " == *" fleetdra "* ]]; then
  print_fleet fleetdra _dra
  echo "RESULT time_to_all_scheduled_ratio_dra_vs_device_plugin $(ratio "${R[fleetdra.tsched]:-nan}" "${R[fleet.tsched]:-nan}") x"
  echo "RESULT operator_cpu_seconds_ratio_dra_vs_device_plugin $(ratio "${R[fleetdra.sched_cpu_op]:-nan}" "${R[fleet.sched_cpu_op]:-nan}") x"
fi
if [[ -n "${R[baseline.tsched]:-}" ]]; then
  echo "RESULT baseline_time_to_all_scheduled_s $(fmt "${R[baseline.tsched]:-nan}") s"
  echo "RESULT baseline_operator_peak_rss_mib ${R[baseline.rss_mib]:-nan} MiB"
  echo "RESULT baseline_operator_cpu_seconds ${R[baseline.cpu_s]:-nan} s"
  echo "RESULT baseline_steady_state_api_requests_per_sec ${R[baseline.steady_rps]:-nan} 1/s"
  echo "RESULT baseline_failover_resume_s $(fmt "${R[baseline.failover_resume_s]:-nan}") s"
fi
if ((BASE_AND_FLEET)); then
  echo "RESULT time_to_all_scheduled_ratio_vs_baseline $(ratio "${R[fleet.tsched]:-nan}" "${R[baseline.tsched]:-nan}") x"
  echo "RESULT operator_peak_rss_ratio_vs_baseline $(ratio "${R[fleet.rss_mib]:-nan}" "${R[baseline.rss_mib]:-nan}") x"
  echo "RESULT operator_cpu_seconds_ratio_vs_baseline $(ratio "${R[fleet.cpu_s]:-nan}" "${R[baseline.cpu_s]:-nan}") x"
  echo "RESULT steady_state_api_requests_ratio_vs_baseline $(ratio "${R[fleet.steady_rps]:-nan}" "${R[baseline.steady_rps]:-nan}") x"
  echo "RESULT failover_resume_ratio_vs_baseline $(ratio "${R[fleet.failover_resume_s]:-nan}" "${R[baseline.failover_resume_s]:-nan}") x"
fi
if ((${#PEER_PROFILES[@]})); then
  # The faster peer run among those that bound every pod; if none did, the faster one
  # (then it is not "all scheduled": a NOTE says so).
  PEER_BEST="" PEER_BEST_T=""
  for complete in 1 0; do
    for prof in "${PEER_PROFILES[@]}"; do
      t="${R[$F.peer_$prof.tlast]:-nan}"
      [[ "$t" =~ ^[0-9.]+$ ]] || continue
      ((complete == 0)) || [[ "${R[$F.peer_$prof.unplaced]:-1}" == 0 ]] || continue
      if [[ -z "$PEER_BEST_T" ]] || awk -v a="$t" -v b="$PEER_BEST_T" 'BEGIN { exit !(a < b) }'; then
        PEER_BEST="$prof" PEER_BEST_T="$t"
      fi
    done
    [[ -n "$PEER_BEST" ]] && break
  done
  [[ -n "$PEER_BEST" && "${R[$F.peer_$PEER_BEST.unplaced]:-1}" != 0 ]] &&
    echo "NOTE peer: neither kube-scheduler run bound every pod; peer_time_to_all_scheduled_s$SFX is the faster run's time to its last bound pod"
  echo "RESULT peer_time_to_all_scheduled_s$SFX ${PEER_BEST_T:-nan} s"
  for prof in "${PEER_PROFILES[@]}"; do
    echo "RESULT peer_${prof}_time_to_last_bound_s$SFX ${R[$F.peer_$prof.tlast]:-nan} s"
    echo "RESULT peer_${prof}_unplaced$SFX ${R[$F.peer_$prof.unplaced]:-nan} pods"
    echo "RESULT peer_cpu_seconds_${prof}$SFX ${R[$F.peer_$prof.cpu]:-nan} s"
  done
  echo "RESULT time_to_all_scheduled_ratio_vs_kube_scheduler$SFX $(ratio "${R[$F.tsched]:-nan}" "${PEER_BEST_T:-nan}") x"
fi
# A leader that crashed fails the run (its logs are kept); the figures above still stand.
for s in "${SCALES[@]}"; do
  [[ -n "${R[$s.leader_exit]:-}" ]] && exit 1
done
FAILED=0
