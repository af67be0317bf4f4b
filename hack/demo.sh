#!/usr/bin/env bash
# The local demo: Waterline's whole story on one machine in a few minutes.
#
#   hack/demo.sh run     bring everything up, play the story, print a summary, tear it all
#                        down (make demo)
#   hack/demo.sh up      the same, but leave everything running (make demo-up); run again
#                        while up, it only prints the summary
#   hack/demo.sh down    stop everything the demo started and remove its state, logs kept
#                        (make demo-down)
#   hack/demo.sh status  what is running, and where
#
# What runs, all on loopback, all state under the demo dir (control plane, pid files in
# run/, logs in logs/, Prometheus config and data in prometheus/):
#   - etcd + kube-apiserver + kwok (hack/controlplane.sh) with simulated GPU nodes in three
#     regions and two data zones (hack/fixtures/gpu-nodes.sh --profile demo); kwok hands out
#     pod IPs from a loopback range (127.N.0.0/16), so worker pods are reachable here;
#   - Prometheus (Debian's prometheus) scraping the operator, the router and the simulators;
#   - waterline-operator with --prometheus-url (autoscaling, routing load, DCGM XID watcher);
#   - waterline-sim, one per running worker pod, listening on the pod's IP and port: it
#     serves that pod's vLLM and DCGM metrics and answers its OpenAI requests. A loop
#     (`hack/demo.sh sim-sync`) follows the pods and keeps Prometheus's target file current;
#   - waterline-router reading the operator's /v1/routes.
# The story: deploy/samples (with the demo patches of hack/demo/) placed on the fleet;
# requests through the router; a repeated prompt answered from the router's cache; load
# that scales llama-8b-global up; a PTU reservation that
# spills over; a GPU XID error and a NotReady node, with the workers moved and replaced;
# a summary. Every wait is bounded; a step that does not happen fails the demo with the
# relevant log tails.
#
# Environment:
#   WL_DEMO_DIR              state dir (default $WATERLINE_CACHE_DIR/demo)
#   BUILD                    build dir with the binaries (default ./build)
#   WL_DEMO_OPERATOR_PORT, WL_DEMO_PROMETHEUS_PORT, WL_DEMO_ROUTER_PORT
#                            loopback ports (default: free ports picked at the first `up`,
#                            kept in DIR/ports.env until `down`)
#   WL_DEMO_POD_CIDR         kwok's pod range (default: a loopback 127.N.0.0/16 nobody uses)
#   WL_DEMO_TIMEOUT          seconds any one wait may take (default 120)
#   WATERLINE_PROMETHEUS     the prometheus binary (default: prometheus on PATH)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"
BUILD="${BUILD:-$ROOT/build}"
DEMO_DIR="$(realpath -m "${WL_DEMO_DIR:-$WATERLINE_CACHE_DIR/demo}")"
CP_DIR="$DEMO_DIR/controlplane"
RUN="$DEMO_DIR/run"
LOGS="$DEMO_DIR/logs"
SIMS="$DEMO_DIR/sims"
PROM_DIR="$DEMO_DIR/prometheus"
LOAD_DIR="$DEMO_DIR/load"
OPERATOR="$BUILD/operator/main/waterline-operator"
ROUTER="$BUILD/operator/router/waterline-router"
SIM="$BUILD/tests/sim/waterline-sim"
PROMETHEUS="${WATERLINE_PROMETHEUS:-$(command -v prometheus || echo /usr/bin/prometheus)}"
TIMEOUT="${WL_DEMO_TIMEOUT:-120}"
NS=demo
MODE="${1:-run}"
MD=modeldeployments.waterline.dev
export KUBECONFIG="$CP_DIR/kubeconfig"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# ---------------------------------------------------------------- processes

# Field 22 of /proc/PID/stat (start time): with the pid it names one process for good.
proc_start() {
  local s
  s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  s="${s##*) }"
  # shellcheck disable=SC2086
  set -- $s
  echo "${20:-}"
}
proc_state() {
  local s
  s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  s="${s##*) }"
  echo "${s%% *}"
}

# Pid of a running component from RUN/<name>.pid ("PID STARTTIME"), or nothing. A
# recycled pid or a zombie does not count.
live_pid() { # <name>
  local f="$RUN/$1.pid" pid="" start=""
  [[ -f "$f" ]] || return 0
  read -r pid start <"$f" 2>/dev/null || true
  [[ "$pid" =~ ^[0-9]+$ && -n "$start" ]] || return 0
  [[ "$(proc_start "$pid")" == "$start" ]] || return 0
  [[ "$(proc_state "$pid")" != Z ]] || return 0
  echo "$pid"
}

# Start a component in its own session, stdout and stderr to LOGS/<name>.log.
spawn() { # <name> <cmd...>
  local name="$1" pid
  shift
  mkdir -p "$RUN" "$LOGS"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid $(proc_start "$pid")" >"$RUN/$name.pid"
}

# SIGTERM, up to <grace> s, then SIGKILL. Only the pid in the component's pid file.
stop() { # <name> [grace]
  local name="$1" grace="${2:-10}" pid i
  pid="$(live_pid "$name")"
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      [[ -n "$(live_pid "$name")" ]] || break
      sleep 0.1
    done
    if [[ -n "$(live_pid "$name")" ]]; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$RUN/$name.pid"
}

# ---------------------------------------------------------------- waiting and failing

# Print the message, the tails of the given logs, and exit 1 (run: the trap tears down).
fail() { # <message> [log...]
  local msg="$1" l
  shift
  for l in "$@"; do
    [[ -f "$l" ]] || continue
    printf '\n--- last lines of %s\n' "$l" >&2
    tail -n 25 "$l" >&2
  done
  printf '\n\033[1;31mdemo failed: %s\033[0m\n' "$msg" >&2
  [[ "$MODE" == up ]] && echo "(what started is still running: make demo-down stops it; logs in $LOGS)" >&2
  exit 1
}

# wait_for <seconds> <what> [log...] -- <cmd...>: run cmd every second until it succeeds.
wait_for() {
  local secs="$1" what="$2" logs=() deadline
  shift 2
  while [[ "$1" != -- ]]; do logs+=("$1"); shift; done
  shift
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what: not after ${secs}s" "${logs[@]}"
    sleep 1
  done
}

# Fail at once when a component has died.
require_alive() { # <name>...
  local n
  for n in "$@"; do
    [[ -n "$(live_pid "$n")" ]] || fail "$n is not running" "$LOGS/$n.log"
  done
}

# ---------------------------------------------------------------- ports


# Sets <var> to a random free port below the ephemeral range, unless it is set already.
PICKED=" "
pick_port() { # <var>
  local p i
  [[ -n "${!1}" ]] && return 0
  for ((i = 0; i < 200; i++)); do
    p=$((RANDOM % 12000 + 20000))
    [[ "$PICKED" == *" $p "* ]] && continue
    wl_port_in_use "$p" && continue
    PICKED+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  wl_die "no free port found"
}

# A 127.N.0.0/16 with no socket bound in it yet (kwok's pod IPs; the simulators bind them).
free_pod_cidr() {
  local n i
  for ((i = 0; i < 100; i++)); do
    n=$((RANDOM % 150 + 100))
    awk -v h="$(printf '%02X7F' "$n")" 'FNR > 1 && substr($2, 5, 4) == h { found = 1 } END { exit !found }' \
      /proc/net/tcp 2>/dev/null && continue
    echo "127.$n.0.0/16"
    return 0
  done
  wl_die "no free loopback /16 for pod IPs"
}

# DIR/ports.env: picked once, kept until `down`, so that `up` again finds everything.
load_ports() {
  OPERATOR_PORT="" PROMETHEUS_PORT="" ROUTER_PORT="" POD_CIDR=""
  # shellcheck source=/dev/null
  [[ -f "$DEMO_DIR/ports.env" ]] && source "$DEMO_DIR/ports.env"
  return 0
}

setup_ports() {
  load_ports
  OPERATOR_PORT="${WL_DEMO_OPERATOR_PORT:-$OPERATOR_PORT}"
  PROMETHEUS_PORT="${WL_DEMO_PROMETHEUS_PORT:-$PROMETHEUS_PORT}"
  ROUTER_PORT="${WL_DEMO_ROUTER_PORT:-$ROUTER_PORT}"
  PICKED=" $OPERATOR_PORT $PROMETHEUS_PORT $ROUTER_PORT "
  pick_port OPERATOR_PORT
  pick_port PROMETHEUS_PORT
  pick_port ROUTER_PORT
  POD_CIDR="${WL_DEMO_POD_CIDR:-${POD_CIDR:-$(free_pod_cidr)}}"
  printf 'OPERATOR_PORT=%s\nPROMETHEUS_PORT=%s\nROUTER_PORT=%s\nPOD_CIDR=%s\n' \
    "$OPERATOR_PORT" "$PROMETHEUS_PORT" "$ROUTER_PORT" "$POD_CIDR" >"$DEMO_DIR/ports.env"
}

# ---------------------------------------------------------------- small clients

prom_url() { echo "http://127.0.0.1:$PROMETHEUS_PORT"; }
operator_url() { echo "http://127.0.0.1:$OPERATOR_PORT"; }
router_url() { echo "http://127.0.0.1:$ROUTER_PORT"; }

# The first value of an instant query, or nothing.
prom_value() { # <promql>
  curl -sf --max-time 5 "$(prom_url)/api/v1/query" --data-urlencode "query=$1" |
    jq -r '.data.result[0].value[1] // empty'
}

# Lines of the operator's or router's /metrics whose name matches the regex.
metrics_grep() { # <url> <regex>
  curl -sf --max-time 5 "$1/metrics" | grep -E "$2" || true
}

md_field() { # <deployment> <jsonpath>
  kubectl -n "$NS" get "$MD" "$1" -o jsonpath="$2" 2>/dev/null
}

ready_at_least() { # <deployment> <n>
  local r
  r="$(md_field "$1" '{.status.readyReplicas}')"
  ((${r:-0} >= $2))
}

# Ready replicas equal spec.replicas, and no worker is left over (draining or terminating).
settled() { # <deployment>
  local want ready pods
  want="$(md_field "$1" '{.spec.replicas}')"
  ready="$(md_field "$1" '{.status.readyReplicas}')"
  pods="$(kubectl -n "$NS" get pods -l "waterline.dev/deployment=$1" -o name | wc -l)"
  [[ -n "$want" && "${ready:-0}" == "$want" && "$pods" == "$want" ]]
}

# Messages of the Events with this reason about an object (oldest first).
events_of() { # <namespace> <name> <reason>
  kubectl -n "$1" get events --field-selector "involvedObject.name=$2,reason=$3" -o json |
    jq -r '.items | sort_by(.lastTimestamp // .eventTime // .metadata.creationTimestamp)[] | .message'
}
has_event() { # <namespace> <name> <reason> [substring]
  events_of "$1" "$2" "$3" | grep -qF -- "${4:-}"
}

# Worker pods as a table (all of the namespace, or one deployment's).
pods_table() { # [deployment]
  local sel="app.kubernetes.io/managed-by=waterline"
  [[ -n "${1:-}" ]] && sel+=",waterline.dev/deployment=$1"
  kubectl -n "$NS" get pods -l "$sel" -o json | jq -r '
    ["DEPLOYMENT", "POD", "POOL", "NODE", "GPU", "POD-IP", "READY", "STATE"],
    (.items | sort_by(.metadata.labels["waterline.dev/deployment"], .metadata.name)[] |
      [.metadata.labels["waterline.dev/deployment"], .metadata.name,
       (.metadata.labels["waterline.dev/pool"] // "-"), (.spec.nodeName // "-"),
       ((.metadata.annotations["waterline.dev/gpu-assignment"] // "") | split(";")
         | map(select(startswith("gpu")))[0] // "-"),
       (.status.podIP // "-"),
       ((.status.conditions // []) | map(select(.type == "Ready"))[0].status // "-"),
       (if .metadata.deletionTimestamp then "terminating"
        elif .metadata.annotations["waterline.dev/draining-since"] then "draining"
        else .status.phase // "-" end)]) | @tsv' | column -t -s $'\t'
}

# One request through the router; prints where it went.
ask() { # <model> [prompt chars] [max_tokens]
  local model="$1" chars="${2:-400}" maxtok="${3:-16}" h b code
  h="$LOAD_DIR/ask.headers" b="$LOAD_DIR/ask.body"
  code="$(curl -s -o "$b" -D "$h" -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
    --data-binary "$(request_body "$model" "$chars" "$maxtok")" "$(router_url)/v1/chat/completions" || true)"
  hdr() { grep -i "^$1:" "$h" 2>/dev/null | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }
  printf '  %-22s -> HTTP %s  deployment=%s pool=%s worker=%s remaining-tokens=%s%s\n' "$model" "$code" \
    "$(hdr x-waterline-deployment)" "$(r="$(hdr x-waterline-pool)"; echo "${r:--}")" \
    "$(jq -r '.waterline_sim.pod // "-"' "$b" 2>/dev/null || echo -)" "$(r="$(hdr x-ratelimit-remaining-tokens)"; echo "${r:--}")" \
    "$(r="$(hdr x-waterline-cache)"; [[ -n "$r" ]] && echo " cache=$r")"
  [[ "$code" == 200 ]]
}

request_body() { # <model> <prompt chars> <max_tokens>
  printf '{"model":"%s","max_tokens":%d,"messages":[{"role":"user","content":"%s"}]}' \
    "$1" "$3" "$(head -c "$2" /dev/zero | tr '\0' x)"
}

# Closed-loop load through the router: <concurrency> clients, <n> requests in all, one
# curl process. Each finished request is a line in LOGS/load-<name>.log:
# "code=200 deployment=D pool=P spilled=S".
load_start() { # <name> <model> <concurrency> <n> <prompt chars> <max_tokens>
  local name="$1" i
  mkdir -p "$LOAD_DIR"
  request_body "$2" "$5" "$6" >"$LOAD_DIR/$name.json"
  {
    echo 'header = "Content-Type: application/json"'
    echo "data-binary = \"@$LOAD_DIR/$name.json\""
    echo 'max-time = 120'
    # shellcheck disable=SC2028 # curl expands the \n
    echo 'write-out = "code=%{http_code} deployment=%header{x-waterline-deployment} pool=%header{x-waterline-pool} spilled=%header{x-waterline-spilled}\n"'
    for ((i = 0; i < $4; i++)); do
      echo "url = \"$(router_url)/v1/chat/completions\""
      echo 'output = "/dev/null"'
    done
  } >"$LOAD_DIR/$name.curl"
  : >"$LOGS/load-$name.log"
  spawn "load-$name" curl --parallel --parallel-immediate --parallel-max "$3" -s --no-progress-meter \
    -K "$LOAD_DIR/$name.curl"
}
load_done() { grep -c '^code=.* spilled=' "$LOGS/load-$1.log" 2>/dev/null || true; }

# Count finished requests by deployment, pool, status (and spill): the <from>th to the
# <to>th finished request.
load_tally() { # <name> [from] [to]
  grep '^code=' "$LOGS/load-$1.log" | sed -n "${2:-1},${3:-\$}p" |
    awk 'NF == 4 && $4 ~ /^spilled=/ { k = $2 "  " $3 "  " $1; if ($4 != "spilled=") k = k "  " $4; n[k]++ }
      END { for (k in n) printf "  %5d  %s\n", n[k], k }' | sort -k2
}

# ---------------------------------------------------------------- sim-sync

# The API server with the admin client certificate (cheaper than kubectl in a loop).
api_get() { # <path>
  curl -sf --max-time 10 --cacert "$CP_DIR/pki/ca.crt" --cert "$CP_DIR/pki/admin.crt" \
    --key "$CP_DIR/pki/admin.key" "https://127.0.0.1:${APISERVER_PORT}$1"
}
api_watch() { # <path>: streamed, unbuffered
  curl -sfN --max-time 5 --cacert "$CP_DIR/pki/ca.crt" --cert "$CP_DIR/pki/admin.crt" \
    --key "$CP_DIR/pki/admin.key" "https://127.0.0.1:${APISERVER_PORT}$1"
}

# Running worker pods: uid ns pod ip port node pool deployment gpus (from the assignment).
# shellcheck disable=SC2016 # a jq program
SIM_PODS_JQ='.items[]
  | select((.status.podIP // "") != "" and (.spec.nodeName // "") != "")
  | (.metadata.annotations["waterline.dev/gpu-assignment"] // "") as $a
  | ([$a | split(";")[] | select(contains("=")) | {key: (split("=")[0]), value: (split("=")[1:] | join("="))}]
     | from_entries) as $kv
  | [.metadata.uid, .metadata.namespace, .metadata.name, .status.podIP,
     ((.spec.containers[0].ports // [])[0].containerPort // 8000 | tostring),
     .spec.nodeName, (.metadata.labels["waterline.dev/pool"] // ""),
     (.metadata.labels["waterline.dev/deployment"] // .metadata.name),
     (([($kv.gpus // $kv.gpu // "") | split(",")[] | select(test("^[0-9]+$"))] | join(",")))]
  | @tsv'

WORKER_SELECTOR="labelSelector=app.kubernetes.io%2Fmanaged-by%3Dwaterline"

# One round: list the worker pods, start a simulator for each new one, stop those whose pod
# is gone, rewrite Prometheus's target file. Sets POD_RV (the list's resourceVersion).
sim_sync_once() {
  local json lines uid ns pod ip port node pool dep gpus n tp gpu f new
  local -A want=()
  local addrs=()
  json="$(api_get "/api/v1/pods?$WORKER_SELECTOR")" || return 0
  POD_RV="$(jq -r '.metadata.resourceVersion // ""' <<<"$json")"
  lines="$(jq -r "$SIM_PODS_JQ" <<<"$json")" || return 0
  # Simulators of gone pods stop first: kwok gives a gone pod's IP to the next pod on its
  # node, and the new pod's simulator could not listen while the old one holds the address.
  while IFS=$'\t' read -r uid _; do
    [[ -n "$uid" ]] && want[$uid]=1
  done <<<"$lines"
  for f in "$RUN"/sim-pod-*.pid; do
    [[ -e "$f" ]] || continue
    uid="${f##*/sim-pod-}"
    uid="${uid%.pid}"
    [[ -n "${want[$uid]:-}" ]] && continue
    stop "sim-pod-$uid" 5
    echo "[$(date +%T)] stopped waterline-sim for $(cut -d' ' -f1 "$SIMS/$uid.info" 2>/dev/null) (pod gone)"
    rm -f "$SIMS/$uid.json" "$SIMS/$uid.info"
  done
  while IFS=$'\t' read -r uid ns pod ip port node pool dep gpus; do
    [[ -n "$uid" ]] || continue
    if [[ -z "$(live_pid "sim-pod-$uid")" ]]; then
      # The perf model knows tensor parallelism 2, 4 and 8; GPUs from the assignment.
      n="$(tr ',' '\n' <<<"$gpus" | grep -c . || true)"
      tp=8
      ((n <= 4)) && tp=4
      ((n <= 2)) && tp=2
      gpu=H100
      [[ "$node" == *a100* ]] && gpu=A100
      jq -n --arg pod "$pod" --arg ns "$ns" --arg dep "$dep" --arg pool "$pool" --arg node "$node" \
        --arg gpu "$gpu" --argjson tp "$tp" --arg gpus "$gpus" \
        '{workers: [{pod: $pod, namespace: $ns, deployment: $dep, pool: $pool, node: $node, gpu: $gpu,
          tp: $tp, gpus: ($gpus | split(",") | map(select(. != "") | tonumber))}]}' >"$SIMS/$uid.json"
      echo "$ns/$pod $ip:$port $node ${gpus:-?}" >"$SIMS/$uid.info"
      : >"$LOGS/sim-pod-$uid.log"
      spawn "sim-pod-$uid" "$SIM" --listen "$ip:$port" --config "$SIMS/$uid.json" --tick-ms 20
      echo "[$(date +%T)] started waterline-sim for $ns/$pod on $ip:$port (node $node, GPU ${gpus:-?})"
    fi
    addrs+=("$ip:$port")
  done <<<"$lines"
  new="$(jq -cn '[{targets: $ARGS.positional, labels: {}}]' --args "${addrs[@]}")"
  if [[ "$new" != "$(cat "$PROM_DIR/sims.json" 2>/dev/null)" ]]; then
    printf '%s\n' "$new" >"$PROM_DIR/sims.json.tmp"
    mv -f "$PROM_DIR/sims.json.tmp" "$PROM_DIR/sims.json"
  fi
}

# Follows the worker pods: a round after every pod event (a watch from the last list's
# resourceVersion; its first line ends the wait), and at least every 2 s. A new pod gets
# its simulator within a fraction of a second of getting its IP.
sim_sync() {
  local APISERVER_PORT="" POD_RV=""
  # shellcheck source=/dev/null
  source "$CP_DIR/ports.env"
  mkdir -p "$SIMS" "$PROM_DIR"
  trap 'exit 0' TERM INT
  while :; do
    sim_sync_once || true
    if [[ -n "$POD_RV" ]]; then
      read -r -t 2 _ < <(api_watch "/api/v1/pods?$WORKER_SELECTOR&watch=1&resourceVersion=$POD_RV&timeoutSeconds=2" 2>/dev/null) || true
    else
      sleep 1
    fi
  done
}

# ---------------------------------------------------------------- components

write_prometheus_config() {
  mkdir -p "$PROM_DIR/data"
  [[ -f "$PROM_DIR/sims.json" ]] || echo '[]' >"$PROM_DIR/sims.json"
  cat >"$PROM_DIR/prometheus.yml" <<EOF
# Generated by hack/demo.sh.
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: waterline-operator
    static_configs:
      - targets: ['127.0.0.1:$OPERATOR_PORT']
  - job_name: waterline-router
    static_configs:
      - targets: ['127.0.0.1:$ROUTER_PORT']
  # One waterline-sim per running worker pod, on the pod's IP (written by sim-sync).
  - job_name: waterline-sim
    file_sd_configs:
      - files: ['$PROM_DIR/sims.json']
        refresh_interval: 5s
    metric_relabel_configs:
      # One DCGM series per GPU, from the simulator of the worker holding it, as one DCGM
      # exporter per node would give (each simulator also lists its node's other GPUs).
      - source_labels: [__name__, pod]
        regex: 'DCGM_.+;'
        action: drop
EOF
}

start_prometheus() {
  if [[ -z "$(live_pid prometheus)" ]]; then
    write_prometheus_config
    spawn prometheus "$PROMETHEUS" --config.file="$PROM_DIR/prometheus.yml" \
      --storage.tsdb.path="$PROM_DIR/data" --storage.tsdb.retention.time=1d \
      --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --log.level=warn
  fi
  wait_for 60 "Prometheus ready on $(prom_url)" "$LOGS/prometheus.log" -- \
    curl -sf --max-time 2 "$(prom_url)/-/ready"
}

start_operator() {
  if [[ -z "$(live_pid operator)" ]]; then
    spawn operator "$OPERATOR" --kubeconfig="$KUBECONFIG" --bind-address="127.0.0.1:$OPERATOR_PORT" \
      --identity=demo --prometheus-url="$(prom_url)" --prometheus-timeout=2s \
      --autoscaler-sync-period=3s --xid-poll-period=3s --routing-heartbeat=2s
  fi
  wait_for 60 "operator ready on $(operator_url)/readyz" "$LOGS/operator.log" -- \
    curl -sf --max-time 2 "$(operator_url)/readyz"
  echo "operator ready (pid $(live_pid operator), log $LOGS/operator.log)"
}

start_sim_sync() {
  [[ -n "$(live_pid sim-sync)" ]] ||
    spawn sim-sync env WL_DEMO_DIR="$DEMO_DIR" BUILD="$BUILD" bash "$ROOT/hack/demo.sh" sim-sync
  echo "sim-sync running (pid $(live_pid sim-sync), log $LOGS/sim-sync.log)"
}

start_router() {
  if [[ -z "$(live_pid router)" ]]; then
    spawn router "$ROUTER" --listen="127.0.0.1:$ROUTER_PORT" --threads=1 \
      --routes-url="$(operator_url)/v1/routes" --routes-poll-interval=500ms --log-level=warn
  fi
  wait_for 60 "router up on $(router_url)" "$LOGS/router.log" -- curl -sf --max-time 2 "$(router_url)/healthz"
  echo "router ready (pid $(live_pid router), log $LOGS/router.log)"
}

# ---------------------------------------------------------------- the story

T0=$SECONDS
elapsed() { printf '%dm%02ds' $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60)); }

infrastructure() {
  say "Control plane (etcd + kube-apiserver + kwok) on loopback; pod IPs in $POD_CIDR"
  WL_CP_POD_CIDR="$POD_CIDR" bash "$ROOT/hack/controlplane.sh" up --dir "$CP_DIR"
  say "CRDs"
  kubectl apply --server-side -f "$ROOT/crds/"
  kubectl wait --for condition=Established --timeout=60s -f "$ROOT/crds/" >/dev/null
  kubectl create namespace waterline-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  say "Simulated GPU nodes (kwok): eu-west, eu-north (EU), us-east (US)"
  bash "$ROOT/hack/fixtures/gpu-nodes.sh" --profile demo
  # The sample H100 pools in eu-west select nodes labelled for them.
  for n in $(kubectl get nodes -l topology.kubernetes.io/region=eu-west,waterline.dev/shape=h100 -o name); do
    kubectl label --overwrite "$n" waterline.dev/pool=h100-eu-west >/dev/null
  done
  kubectl get nodes -L topology.kubernetes.io/region,nvidia.com/gpu.product,nvidia.com/gpu.count
  say "DRA: the eu-west H100 nodes publish ResourceSlices in the NVIDIA driver's shape, so their pool runs in DRA mode"
  bash "$ROOT/hack/fixtures/dra-slices.sh" --selector topology.kubernetes.io/region=eu-west,waterline.dev/shape=h100
  say "Prometheus on $(prom_url) (scrapes the operator, the router and every waterline-sim)"
  start_prometheus
  say "Operator (leader election on, metrics on $(operator_url), --prometheus-url $(prom_url))"
  start_operator
  say "waterline-sim: one simulated vLLM worker per running worker pod, on the pod's IP"
  start_sim_sync
  say "Router on $(router_url), reading $(operator_url)/v1/routes"
  start_router
}

step_placement() {
  say "Samples (deploy/samples + hack/demo patches): pools, model deployments, reservations"
  kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -n "$NS" -k "$ROOT/hack/demo"

  say "Placement: the operator's scheduler binds every worker pod to GPUs"
  wait_for "$TIMEOUT" "llama-8b-eu has 3 ready replicas" "$LOGS/operator.log" -- ready_at_least llama-8b-eu 3
  wait_for "$TIMEOUT" "llama-8b-global has 1 ready replica" "$LOGS/operator.log" -- ready_at_least llama-8b-global 1
  wait_for "$TIMEOUT" "llama-70b has 2 ready replicas" "$LOGS/operator.log" -- ready_at_least llama-70b 2
  kubectl get cpool
  echo
  kubectl -n "$NS" get "$MD"
  echo
  pods_table
  echo
  echo "Not placed, and why (the demo fleet has no H100 MIG node in eu-west and no L40S):"
  kubectl -n "$NS" get "$MD" -o json | jq -r '.items[] | select((.status.readyReplicas // 0) == 0)
    | .metadata.name as $n | (.status.conditions // [])[] | select(.type == "Scheduled")
    | "  \($n): \(.reason): \(.message)"' | cut -c1-220
  kubectl -n "$NS" get ptu
  echo
  echo "DRA mode (pool h100-eu-west): each worker's ResourceClaim holds its exact devices:"
  wait_for "$TIMEOUT" "llama-8b-eu's workers hold ResourceClaims" "$LOGS/operator.log" -- dra_claims_at_least 1
  kubectl -n "$NS" get resourceclaims -o json | jq -r '.items[] | "  \(.metadata.name): \([.status.allocation.devices.results[]? | .pool + "/" + .device] | join(", ")) reserved for \([.status.reservedFor[]?.name] | join(","))"'

  say "Prometheus scrapes one simulator per worker pod"
  local pods
  pods="$(kubectl -n "$NS" get pods -l app.kubernetes.io/managed-by=waterline --field-selector status.phase=Running -o name | wc -l)"
  wait_for "$TIMEOUT" "Prometheus scraping $pods simulators" "$LOGS/sim-sync.log" "$LOGS/prometheus.log" -- \
    test_prom_ge "count(up{job=\"waterline-sim\"} == 1)" "$pods"
  wait_for 60 "Prometheus scraping the operator and the router" "$LOGS/prometheus.log" -- \
    test_prom_ge 'count(up{job=~"waterline-operator|waterline-router"} == 1)' 2
  tail -n "$pods" "$LOGS/sim-sync.log" | sed 's/^/  /'
  echo "  up: operator $(prom_value 'up{job="waterline-operator"}'), router $(prom_value 'up{job="waterline-router"}'), simulators $(prom_value 'count(up{job="waterline-sim"} == 1)')"
}

dra_claims_at_least() { # <n>: worker claims with an allocation, reserved for their pod
  local n
  n="$(kubectl -n "$NS" get resourceclaims -o json | jq '[.items[] | select(.status.allocation != null and (.status.reservedFor // [] | length) > 0)] | length')"
  ((n >= $1))
}

test_prom_ge() { # <promql> <n>
  local v
  v="$(prom_value "$1")"
  [[ -n "$v" ]] && ((${v%.*} >= $2))
}

step_requests() {
  say "Routing: OpenAI requests through the router (x-waterline-pool tells where each went)"
  wait_for "$TIMEOUT" "the router serves demo/llama-8b-eu" "$LOGS/router.log" "$LOGS/operator.log" -- \
    ask demo/llama-8b-eu
  local m
  for m in demo/llama-8b-eu demo/llama-8b-eu demo/llama-8b-global llama-70b; do
    ask "$m" || fail "request for $m through the router failed" "$LOGS/router.log"
  done
  echo "  (llama-8b-eu: DataZone EU, charged to PTU reservation llama-8b-eu-fabrikam; llama-8b-global: any pool;"
  echo "   llama-70b: Standard, eu-west only; a bare deployment name works as the model too)"
}

step_cache() {
  say "Response cache: llama-70b answers a repeated prompt from the router, without a GPU"
  echo "  spec.cache of llama-70b: $(kubectl -n "$NS" get modeldeployment llama-70b -o jsonpath='{.spec.cache}')"
  ask llama-70b 300 12 || fail "request for llama-70b through the router failed" "$LOGS/router.log"
  ask llama-70b 300 12 || fail "request for llama-70b through the router failed" "$LOGS/router.log"
  grep -qi '^x-waterline-cache: hit' "$LOAD_DIR/ask.headers" ||
    fail "the repeated request was not answered from the cache" "$LOGS/router.log"
  echo "  (the second answer came from the router's cache: no worker, no reservation charge)"
  metrics_grep "$(router_url)" '^waterline_router_cache_(lookups|tokens_saved)_total' | sed 's/^/  /'
}

step_autoscale() {
  local dep=llama-8b-global from to donescaled
  from="$(md_field "$dep" '{.spec.replicas}')"
  say "Autoscaling: 96 concurrent clients on demo/$dep through the router"
  echo "  $dep scales on running + waiting requests of its workers (target 32 per replica), from Prometheus"
  load_start autoscale "demo/$dep" 96 5000 200 100
  wait_for "$TIMEOUT" "a SuccessfulRescale Event for $dep" "$LOGS/operator.log" "$LOGS/load-autoscale.log" -- \
    has_event "$NS" "$dep" SuccessfulRescale "from $from to"
  require_alive load-autoscale
  to="$(md_field "$dep" '{.spec.replicas}')"
  kubectl -n "$NS" get events --field-selector "involvedObject.name=$dep,reason=SuccessfulRescale"
  echo
  echo "  metric: $(metrics_grep "$(operator_url)" "^waterline_autoscaler_metric_value\\{namespace=\"$NS\",deployment=\"$dep\"")"
  say "Placement of the new replicas ($from -> $to)"
  wait_for "$TIMEOUT" "$dep has $to ready replicas" "$LOGS/operator.log" -- ready_at_least "$dep" "$to"
  local pods
  pods="$(kubectl -n "$NS" get pods -l app.kubernetes.io/managed-by=waterline --field-selector status.phase=Running -o name | wc -l)"
  wait_for "$TIMEOUT" "Prometheus scraping $pods simulators" "$LOGS/sim-sync.log" -- \
    test_prom_ge "count(up{job=\"waterline-sim\"} == 1)" "$pods"
  pods_table "$dep"
  donescaled="$(load_done autoscale)"
  wait_for "$TIMEOUT" "150 more requests served after the scale-up" "$LOGS/router.log" -- \
    test_load_ge autoscale $((donescaled + 150))
  stop load-autoscale
  say "Routing decisions under load (requests per deployment and pool, from the router's headers)"
  echo "  before the new replicas were ready:"
  load_tally autoscale 1 "$donescaled"
  echo "  after:"
  load_tally autoscale "$((donescaled + 1))"
  echo "  ($(load_done autoscale) requests in all; load stopped)"
  say "Per-pool utilisation the operator publishes (load from Prometheus / capacity)"
  wait_for "$TIMEOUT" "a non-zero utilisation for $dep" "$LOGS/operator.log" -- \
    test_prom_ge "count(max by (pool) (waterline_pool_utilization_ratio{deployment=\"$NS/$dep\"}) > 0)" 1
  routes_table "$dep"
  echo
  metrics_grep "$(operator_url)" '^waterline_pool_utilization_ratio' | sed 's/^/  /'
}

# The RoutingTable entries of deployments: what the router chooses from.
routes_table() { # <deployment>...
  local d
  for d in "$@"; do kubectl get rtab "$NS.$d" -o json; done | jq -rs '
    ["DEPLOYMENT", "POOL", "REGION", "ENDPOINTS", "LOAD-TPM", "CAPACITY-TPM", "UTILISATION", "MAX", "HEALTHY"],
    (.[] | .spec.deployment.name as $d | .spec.entries[] | [$d, .pool, .region, (.endpoints | length),
      (.loadTokensPerMinute // 0 | floor), (.capacityTokensPerMinute // 0 | floor),
      ((.utilization // 0) * 1000 | round / 1000), .maxUtilization, .healthy]) | @tsv' |
    column -t -s $'\t' | sed 's/^/  /'
}

test_load_ge() { (($(load_done "$1") >= $2)); }

step_ptu() {
  local dep=llama-8b-eu n=30
  say "PTU reservation: a burst of $n requests of ~10k tokens on demo/$dep"
  kubectl -n "$NS" get ptu llama-8b-eu-fabrikam
  echo "  200000 tokens/min are reserved for $dep; what does not fit spills over to llama-8b-global"
  load_start ptu "demo/$dep" "$n" "$n" 40000 16
  wait_for "$TIMEOUT" "the $n requests of the burst" "$LOGS/router.log" "$LOGS/load-ptu.log" -- test_load_ge ptu "$n"
  stop load-ptu
  load_tally ptu
  grep -q 'spilled=[a-z]' "$LOGS/load-ptu.log" ||
    fail "no request of the burst spilled over" "$LOGS/load-ptu.log" "$LOGS/router.log"
  metrics_grep "$(router_url)" '^waterline_router_(ptu_(admitted|spilled|throttled)_total|spillovers_total)' | sed 's/^/  /'
}

step_gpu_failure() {
  local dep=llama-8b-eu line uid ns pod ip port node pool d gpus g
  say "GPU failure: DCGM reports XID 79 (fallen off the bus) on a GPU of $dep"
  line="$(kubectl -n "$NS" get pods -l "waterline.dev/deployment=$dep" -o json |
    jq -r '.items |= sort_by(.metadata.name) | '"$SIM_PODS_JQ" | head -n 1)"
  IFS=$'\t' read -r uid ns pod ip port node pool d gpus <<<"$line"
  [[ -n "$pod" && -n "$gpus" ]] || fail "no running worker of $dep to break"
  g="${gpus%%,*}"
  echo "  $pod runs on $node GPU $g (pool $pool); its simulator at $ip:$port reports the XID"
  curl -sf -X POST "http://$ip:$port/inject/xid?node=$node&gpu=$g&xid=79" >/dev/null ||
    fail "could not inject the XID into $ip:$port" "$LOGS/sim-pod-$uid.log"
  wait_for "$TIMEOUT" "the operator marks $node GPU $g unhealthy (waterline.dev/xid-unhealthy-gpus)" \
    "$LOGS/operator.log" "$LOGS/prometheus.log" -- node_xid_has "$node" "$g"
  wait_for "$TIMEOUT" "a WorkerMoved Event for $pod" "$LOGS/operator.log" -- has_event "$NS" "$dep" WorkerMoved "$pod"
  wait_for "$TIMEOUT" "$pod replaced and drained" "$LOGS/operator.log" -- moved_away "$dep" "$uid"
  echo "  node annotation: waterline.dev/xid-unhealthy-gpus=$(kubectl get node "$node" -o jsonpath='{.metadata.annotations.waterline\.dev/xid-unhealthy-gpus}')"
  kubectl get events -A --field-selector reason=GpuXidError
  kubectl -n "$NS" get events --field-selector "involvedObject.name=$dep,reason=WorkerMoved"
  echo
  pods_table "$dep"
  echo
  kubectl get cpool "$pool" -o json | jq -r '"  pool \(.metadata.name): GPUs \(.status.gpus | tostring)",
    (.status.conditions[] | select(.type == "Degraded") | "  Degraded=\(.status) \(.reason): \(.message)")'
}

node_xid_has() { # <node> <gpu>
  kubectl get node "$1" -o jsonpath='{.metadata.annotations.waterline\.dev/xid-unhealthy-gpus}' |
    tr ',' '\n' | grep -qx "$2"
}

# The pod with this uid is gone and the deployment is back at its count.
moved_away() { # <deployment> <uid>
  ! kubectl -n "$NS" get pods -l "waterline.dev/deployment=$1" -o jsonpath='{.items[*].metadata.uid}' | grep -qw "$2" &&
    settled "$1"
}

step_node_failure() {
  local dep=llama-8b-global node victims p
  # A node with a worker of $dep and, if there is one, none of llama-70b (its 4-GPU workers
  # may have nowhere else to go in eu-west).
  node="$(kubectl -n "$NS" get pods -l app.kubernetes.io/managed-by=waterline -o json | jq -r --arg d "$dep" '
    [.items[] | select(.spec.nodeName != null)] as $p
    | ([$p[] | select(.metadata.labels["waterline.dev/deployment"] == "llama-70b") | .spec.nodeName] | unique) as $big
    | [$p[] | select(.metadata.labels["waterline.dev/deployment"] == $d) | .spec.nodeName] | unique as $mine
    | (($mine - $big) + $mine)[0] // empty')"
  [[ -n "$node" ]] || fail "no worker of $dep to take down"
  victims="$(kubectl -n "$NS" get pods -l app.kubernetes.io/managed-by=waterline --field-selector "spec.nodeName=$node" \
    -o jsonpath='{range .items[*]}{.metadata.labels.waterline\.dev/deployment}{" "}{.metadata.name}{"\n"}{end}')"
  say "Node failure: $node goes NotReady (kwok's node-not-ready stage)"
  echo "  workers on it:"
  # shellcheck disable=SC2001 # a prefix on every line
  sed 's/^/    /' <<<"$victims"
  kubectl label node "$node" node-not-ready.stage.kwok.x-k8s.io=true >/dev/null
  wait_for "$TIMEOUT" "$node NotReady" "$CP_DIR/logs/kwok.log" -- node_ready_is "$node" False
  while read -r d p; do
    [[ -n "$p" ]] || continue
    wait_for "$TIMEOUT" "a WorkerReplaced Event for $p" "$LOGS/operator.log" -- has_event "$NS" "$d" WorkerReplaced "$p"
  done <<<"$victims"
  while read -r d; do
    wait_for "$TIMEOUT" "$d back at its replica count off $node" "$LOGS/operator.log" -- settled_off "$d" "$node"
  done < <(awk '{print $1}' <<<"$victims" | sort -u)
  kubectl -n "$NS" get events --field-selector reason=WorkerReplaced
  echo
  pods_table
  echo
  kubectl get cpool -o json | jq -r --arg n "$node" '.items[] | select(.status.nodes != .status.readyNodes)
    | "  pool \(.metadata.name): \(.status.readyNodes)/\(.status.nodes) nodes ready, GPUs \(.status.gpus | tostring)"'
  say "Node repaired: $node Ready again, its GPUs back in the pool"
  kubectl label node "$node" node-not-ready.stage.kwok.x-k8s.io- >/dev/null
  wait_for "$TIMEOUT" "$node Ready" "$CP_DIR/logs/kwok.log" -- node_ready_is "$node" True
  wait_for "$TIMEOUT" "every pool with all its nodes ready" "$LOGS/operator.log" -- all_pool_nodes_ready
  kubectl get cpool
}

node_ready_is() { # <node> <True|False>
  [[ "$(kubectl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == "$2" ]]
}
# Ready replicas at spec.replicas, and none of the deployment's live pods on the node (pods
# deleted on a NotReady node stay Terminating until the node is back, as with a kubelet).
settled_off() { # <deployment> <node>
  local want ready on
  want="$(md_field "$1" '{.spec.replicas}')"
  ready="$(md_field "$1" '{.status.readyReplicas}')"
  on="$(kubectl -n "$NS" get pods -l "waterline.dev/deployment=$1" -o json |
    jq --arg n "$2" '[.items[] | select(.metadata.deletionTimestamp == null and .spec.nodeName == $n)] | length')"
  [[ -n "$want" && "${ready:-0}" == "$want" && "$on" == 0 ]]
}
all_pool_nodes_ready() {
  kubectl get cpool -o json | jq -e '[.items[] | select(.status.nodes != .status.readyNodes)] | length == 0'
}

step_routing_after() {
  local n=40
  say "Routing after the repairs: $n requests each to demo/llama-8b-eu and demo/llama-8b-global"
  routes_table llama-8b-eu llama-8b-global
  echo "  (the router sends new requests only to healthy, fresh entries below MAX utilisation)"
  load_start after-eu demo/llama-8b-eu 8 "$n" 400 16
  load_start after-global demo/llama-8b-global 8 "$n" 400 16
  wait_for "$TIMEOUT" "$n requests to llama-8b-eu" "$LOGS/router.log" -- test_load_ge after-eu "$n"
  wait_for "$TIMEOUT" "$n requests to llama-8b-global" "$LOGS/router.log" -- test_load_ge after-global "$n"
  stop load-after-eu
  stop load-after-global
  load_tally after-eu
  load_tally after-global
  echo "  (llama-8b-eu stays in the EU data zone; its reservation's window may still be full from the"
  echo "   burst above, and then it spills over to llama-8b-global)"
}

summary() {
  say "kubectl get waterline -A"
  kubectl get waterline -A
  say "Report"
  echo "Worker pods per pool:"
  kubectl -n "$NS" get pods -l app.kubernetes.io/managed-by=waterline -o json | jq -r '
    .items | group_by(.metadata.labels["waterline.dev/pool"])[]
    | "  \(.[0].metadata.labels["waterline.dev/pool"]): \(length) (\(map(.metadata.name) | join(", ")))"'
  echo "Autoscaling, repairs and GPU faults (Events):"
  kubectl get events -A -o json | jq -r '.items[]
    | select(.reason | IN("SuccessfulRescale", "WorkerMoved", "WorkerReplaced", "GpuXidError"))
    | "  \(.reason)\t\(.involvedObject.kind)/\(.involvedObject.name)\t\(.message)"' | cut -c1-200 | sort | column -t -s $'\t'
  echo "Pools not healthy:"
  kubectl get cpool -o json | jq -r '.items[] | .metadata.name as $n | (.status.conditions // [])[]
    | select((.type == "Degraded" and .status == "True") or (.type == "Ready" and .status != "True"))
    | "  \($n): \(.type)=\(.status) \(.reason): \(.message)"' | cut -c1-200
  echo "Operator metrics:"
  metrics_grep "$(operator_url)" '^waterline_(repairs_total|xid_gpus_marked_total)' | grep -v ' 0$' | sed 's/^/  /'
  metrics_grep "$(operator_url)" '^waterline_autoscaler_desired_replicas' | sed 's/^/  /'
  echo "Router metrics (requests by deployment, pool and code; PTU):"
  metrics_grep "$(router_url)" '^waterline_router_(requests_total|ptu_(admitted|spilled)_total)' | sed 's/^/  /'
  echo "Prometheus (scraping $(prom_value 'count(up == 1)') targets):"
  echo "  tokens/s per pool now: $(curl -sf --max-time 5 "$(prom_url)/api/v1/query" \
    --data-urlencode 'query=sum by (pool) (rate(vllm:generation_tokens_total[1m]) + rate(vllm:prompt_tokens_total[1m]))' |
    jq -r '[.data.result[] | "\(.metric.pool)=\(.value[1] | tonumber | floor)"] | join(" ")')"
  echo
  echo "Prometheus UI:   $(prom_url)/graph?g0.expr=waterline_pool_utilization_ratio&g0.tab=0&g0.range_input=15m"
  [[ "$MODE" == run ]] && echo "                 (make demo stops everything now; make demo-up keeps it all running)"
  echo "Router:          $(router_url)/v1/chat/completions   (try: curl $(router_url)/v1/models)"
  echo "Operator:        $(operator_url)/metrics   $(operator_url)/v1/routes"
  echo "KUBECONFIG=$KUBECONFIG"
  echo "Logs:            $LOGS"
}

# ---------------------------------------------------------------- commands

require_bins() {
  local b
  for b in "$OPERATOR" "$ROUTER" "$SIM"; do
    [[ -x "$b" ]] || wl_die "$b missing: run make build"
  done
  [[ -x "$PROMETHEUS" ]] || wl_die "prometheus not found: run make deps (Debian package prometheus)"
  command -v setsid >/dev/null || wl_die "setsid not found (util-linux)"
}

up() {
  require_bins
  mkdir -p "$DEMO_DIR" "$RUN" "$LOGS" "$SIMS" "$PROM_DIR" "$LOAD_DIR"
  setup_ports
  if [[ -f "$DEMO_DIR/story.done" && -n "$(live_pid operator)" ]]; then
    echo "The demo is already up in $DEMO_DIR (make demo-down stops it); its summary:"
    summary
    return 0
  fi
  if [[ -z "$(live_pid operator)" && -z "$(live_pid prometheus)" ]]; then
    rm -rf "$LOGS" # a fresh start: no logs of an earlier run
    mkdir -p "$LOGS"
  fi
  infrastructure
  step_placement
  step_requests
  step_cache
  step_autoscale
  step_ptu
  step_gpu_failure
  step_node_failure
  step_routing_after
  touch "$DEMO_DIR/story.done"
  summary
  say "Done in $(elapsed)"
}

down() {
  local f name pid
  # Load generators and the sim-sync loop first (it would start simulators again).
  for f in "$RUN"/load-*.pid; do [[ -e "$f" ]] && stop "$(basename "$f" .pid)" 5; done
  stop sim-sync 5
  for f in "$RUN"/sim-pod-*.pid; do [[ -e "$f" ]] && stop "$(basename "$f" .pid)" 5; done
  stop router
  stop operator
  stop prometheus
  # The operator of an older demo.sh (pid file directly in the demo dir).
  if [[ -f "$DEMO_DIR/operator.pid" ]]; then
    pid="$(cat "$DEMO_DIR/operator.pid")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CP_DIR/"; then
      kill "$pid" 2>/dev/null || true
    fi
    rm -f "$DEMO_DIR/operator.pid"
  fi
  if [[ -d "$CP_DIR" ]]; then bash "$ROOT/hack/controlplane.sh" down --dir "$CP_DIR" --purge; fi
  for name in "$RUN" "$SIMS" "$PROM_DIR" "$LOAD_DIR" "$DEMO_DIR/ports.env" "$DEMO_DIR/story.done"; do
    rm -rf "$name"
  done
  if [[ -d "$LOGS" ]]; then echo "demo stopped (logs kept in $LOGS)"; else echo "demo stopped"; fi
}

status() {
  local n pid
  load_ports
  for n in prometheus operator sim-sync router; do
    pid="$(live_pid "$n")"
    if [[ -n "$pid" ]]; then printf '%-11s running (pid %s)\n' "$n" "$pid"; else printf '%-11s stopped\n' "$n"; fi
  done
  echo "simulators  $(find "$RUN" -name 'sim-pod-*.pid' 2>/dev/null | wc -l)"
  if [[ -d "$CP_DIR" ]]; then bash "$ROOT/hack/controlplane.sh" status --dir "$CP_DIR" || true; fi
  if [[ -n "$OPERATOR_PORT" ]]; then
    echo "Prometheus $(prom_url)   operator $(operator_url)   router $(router_url)   pod IPs $POD_CIDR"
  fi
}

case "${1:-run}" in
  up) up ;;
  down) down ;;
  status) status ;;
  sim-sync) sim_sync ;;
  run)
    # shellcheck disable=SC2154 # rc is set inside the trap
    trap 'rc=$?; trap - EXIT; echo; down; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    up
    ;;
  *) echo "usage: $0 run|up|down|status" >&2; exit 2 ;;
esac
