#!/usr/bin/env bash
# Local Kubernetes control plane for tests: etcd + kube-apiserver (TLS, RBAC) + kwok.
# No kubelet, scheduler or kube-controller-manager: kwok fakes the nodes and pods.
#
#   hack/controlplane.sh up      [--dir DIR]          start (no-op when already up)
#   hack/controlplane.sh down    [--dir DIR] [--purge] stop everything; --purge removes DIR
#   hack/controlplane.sh status  [--dir DIR]          exit 0 when up, 1 otherwise
#   hack/controlplane.sh compact [--dir DIR]          compact etcd at its current revision
#   hack/controlplane.sh env     [--dir DIR]          print `export KUBECONFIG=...` lines
#
# DIR defaults to $WL_CP_DIR, else ${WATERLINE_CACHE_DIR:-$HOME/.cache/waterline}/controlplane.
# Everything is written under DIR: pki/, etcd/ (data), logs/, run/*.pid, ports.env,
# token.csv, kubeconfig. Ports are random free loopback ports, kept across restarts.
# Environment knobs:
#   WL_CP_WATCH_CACHE=true   keep the apiserver watch cache (default off, so that watches
#                            from a compacted resourceVersion get 410 Gone deterministically)
#   WL_CP_TIMEOUT=90         seconds to wait for each component to become ready
#   WL_CP_APISERVER_ARGS     extra kube-apiserver flags (space separated)
#   WL_CP_POD_CIDR           kwok's pod IP range (default 10.64.0.0/12)
#   WL_CP_AUDIT=true         audit log of ServiceAccount requests (default on): Metadata
#                            level, JSON lines in DIR/logs/audit.log (rotated at 100 MB, one
#                            backup). Only users in system:serviceaccounts are logged, so
#                            the admin traffic of the tests costs nothing; the RBAC test
#                            (tests/integration/helm/rbac_audit_test.sh) reads it.
set -euo pipefail

# shellcheck source=hack/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

TIMEOUT="${WL_CP_TIMEOUT:-90}"
SERVICE_CIDR=10.96.0.0/16     # --service-cluster-ip-range
# kwok hands out fake pod IPs from here. A loopback range (WL_CP_POD_CIDR=127.1.0.0/16)
# makes them reachable: a test can serve a pod's IP on this host.
POD_CIDR="${WL_CP_POD_CIDR:-10.64.0.0/12}"
KWOK_SELECTOR=kwok.x-k8s.io/node=fake
COMPONENTS=(etcd kube-apiserver kwok) # start order; stopped in reverse

# ---------------------------------------------------------------- helpers


# Random free port below the kernel's ephemeral range (so no outgoing connection can
# grab it between our check and the server's bind).
PICKED=" "
free_port() {
  local p i lo=32768
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  ((lo > 12000)) || lo=32768
  for ((i = 0; i < 200; i++)); do
    p=$(((RANDOM * 32768 + RANDOM) % (lo - 11000) + 10000))
    [[ "$PICKED" == *" $p "* ]] && continue
    wl_port_in_use "$p" && continue
    PICKED+="$p "
    echo "$p"
    return 0
  done
  wl_die "no free port found"
}

pidfile() { echo "$DIR/run/$1.pid"; }

# Pid of a running component, or nothing. A pid file is trusted only if that process
# still exists and its command line mentions DIR (so a recycled pid is ignored).
live_pid() { # <component>
  local f pid
  f="$(pidfile "$1")"
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [[ -r "/proc/$pid/cmdline" ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/" || return 0
  echo "$pid"
}

# Pid of a component this shell has just spawned while it is still starting, or nothing.
# Unlike live_pid it also accepts our own child before it has exec'd the component: in
# the moment between fork and exec the child's command line is this script's, which
# need not mention DIR (that race made a loaded CI machine report "kwok exited").
starting_pid() { # <component>
  local pid stat
  pid="$(live_pid "$1")"
  [[ -n "$pid" ]] && { echo "$pid"; return 0; }
  pid="$(cat "$(pidfile "$1")" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
  stat="${stat##*) }" # "<state> <ppid> ...", after the command name
  [[ -n "$stat" && "${stat%% *}" != Z ]] || return 0
  stat="${stat#* }"
  [[ "${stat%% *}" == "${SPAWNER_PID:-$$}" ]] && echo "$pid"
  return 0
}

# Start a component detached from this shell (own session, no stdin), log to
# DIR/logs/<component>.log (the previous run's log is kept as .log.prev).
spawn() { # <component> <cmd...>
  local name="$1"
  shift
  [[ -f "$DIR/logs/$name.log" ]] && mv -f "$DIR/logs/$name.log" "$DIR/logs/$name.log.prev"
  SPAWNER_PID="$BASHPID" # the parent of what `&` forks below (see starting_pid)
  if command -v setsid >/dev/null; then
    setsid "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  else
    nohup "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  fi
  echo $! >"$(pidfile "$name")"
}

# Stop a process: SIGTERM, wait up to <grace> s, then SIGKILL.
stop_pid() { # <pid> <name> [grace]
  local pid="$1" name="$2" grace="${3:-15}" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  wl_log "$name ($pid) ignored SIGTERM for ${grace}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# Wait until <cmd...> succeeds, or the component dies / TIMEOUT passes.
wait_for() { # <component> <cmd...>
  local name="$1" deadline=$((SECONDS + TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    if [[ -z "$(starting_pid "$name")" ]]; then
      # Lost a race for a port: let cmd_up pick new ports and retry.
      grep -q 'address already in use' "$DIR/logs/$name.log" 2>/dev/null && return 2
      if [[ -s "$DIR/logs/$name.log" ]]; then tail -n 30 "$DIR/logs/$name.log" >&2
      else echo "($name wrote no log; exit status unknown)" >&2; fi
      wl_die "$name exited during startup (log: $DIR/logs/$name.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -n 30 "$DIR/logs/$name.log" >&2 || true
      wl_die "$name not ready after ${TIMEOUT}s (log: $DIR/logs/$name.log)"
    fi
    sleep 0.2
  done
}

load_ports() {
  ETCD_CLIENT_PORT="" ETCD_PEER_PORT="" APISERVER_PORT=""
  # shellcheck source=/dev/null
  [[ -f "$DIR/ports.env" ]] && source "$DIR/ports.env"
  return 0
}

# ---------------------------------------------------------------- pki + kubeconfig

# Sign a leaf certificate with the CA. <name> <subject> <extensions>
sign_leaf() {
  local name="$1" subj="$2" ext="$3" pki="$DIR/pki"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key" 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  printf '%b\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

# CA, apiserver serving cert, admin client cert, SA keys, admin token. Generated once per
# DIR so kubeconfigs stay valid across down/up.
ensure_pki() {
  local pki="$DIR/pki"
  [[ -f "$pki/.complete" ]] && return 0
  command -v openssl >/dev/null || wl_die "openssl not found"
  rm -rf "$pki"
  mkdir -p "$pki"
  chmod 700 "$pki"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=waterline-test-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$pki/ca.crt" 2>/dev/null
  sign_leaf apiserver "/CN=kube-apiserver" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign_leaf admin "/O=system:masters/CN=admin" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  # Static token: user admin-token in group system:masters (token,user,uid,"groups").
  openssl rand -hex 24 >"$pki/admin.token"
  printf '%s,admin-token,admin-token,"system:masters"\n' "$(cat "$pki/admin.token")" >"$DIR/token.csv"
  chmod 600 "$pki"/*.key "$pki/admin.token" "$DIR/token.csv"
  touch "$pki/.complete"
}

b64() { base64 <"$1" | tr -d '\n'; }

# kubeconfig with embedded certs. Context "waterline" (default) = admin client cert,
# context "waterline-token" = the static admin token.
write_kubeconfig() {
  local pki="$DIR/pki" tmp="$DIR/kubeconfig.tmp"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: waterline
  cluster:
    server: https://127.0.0.1:${APISERVER_PORT}
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
- name: admin-token
  user:
    token: $(cat "$pki/admin.token")
contexts:
- name: waterline
  context: {cluster: waterline, user: admin}
- name: waterline-token
  context: {cluster: waterline, user: admin-token}
current-context: waterline
EOF
  chmod 600 "$tmp"
  mv -f "$tmp" "$DIR/kubeconfig"
}

# ---------------------------------------------------------------- components

etcd_url() { echo "http://127.0.0.1:${ETCD_CLIENT_PORT}"; }

start_etcd() {
  # Loopback only, plain HTTP (nothing else can reach it). --unsafe-no-fsync: test speed.
  # env -u: etcd reads every ETCD_* variable as a flag (lib.sh exports ETCD_BIN).
  spawn etcd env -u ETCD_BIN "$ETCD_BIN" --name waterline --data-dir "$DIR/etcd" \
    --listen-client-urls "$(etcd_url)" --advertise-client-urls "$(etcd_url)" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster "waterline=http://127.0.0.1:${ETCD_PEER_PORT}" --initial-cluster-state new \
    --unsafe-no-fsync --log-level warn
  wait_for etcd curl -sf --max-time 2 "$(etcd_url)/health"
}

# Audit policy: who asked for what and the answer (Metadata: no bodies), for service
# accounts only; the RequestReceived stage is dropped (ResponseComplete carries the code).
write_audit_policy() {
  cat >"$DIR/audit-policy.yaml" <<'EOF2'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
EOF2
}

start_apiserver() {
  local pki="$DIR/pki" watch_cache=false extra=()
  [[ "${WL_CP_WATCH_CACHE:-false}" == true ]] && watch_cache=true
  # shellcheck disable=SC2206 # intentional word splitting of user-supplied flags
  [[ -n "${WL_CP_APISERVER_ARGS:-}" ]] && extra=(${WL_CP_APISERVER_ARGS})
  mkdir -p "$pki/generated"
  if [[ "${WL_CP_AUDIT:-true}" == true ]]; then
    write_audit_policy
    extra+=(--audit-policy-file="$DIR/audit-policy.yaml" --audit-log-path="$DIR/logs/audit.log"
      --audit-log-format=json --audit-log-maxsize=100 --audit-log-maxbackup=1 --audit-log-mode=blocking)
  fi
  # Admission: ServiceAccount is off (no token controller, so no `default` SA would ever
  # exist and every pod create would fail); TaintNodesByCondition is off (nothing would
  # ever remove the node.kubernetes.io/not-ready taint it adds at node creation).
  spawn kube-apiserver "$KUBE_APISERVER_BIN" \
    --etcd-servers="$(etcd_url)" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --cert-dir="$pki/generated" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --token-auth-file="$DIR/token.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --disable-admission-plugins=ServiceAccount,TaintNodesByCondition \
    --allow-privileged=true \
    --watch-cache="$watch_cache" \
    --max-requests-inflight=1000 --max-mutating-requests-inflight=500 \
    --profiling=false \
    "${extra[@]}"
  wait_for kube-apiserver curl -sf --max-time 2 --cacert "$pki/ca.crt" \
    "https://127.0.0.1:${APISERVER_PORT}/readyz"
}

start_kwok() {
  # HOME is redirected so a developer's ~/.kwok/kwok.yaml is never merged in.
  mkdir -p "$DIR/kwok-home"
  spawn kwok env HOME="$DIR/kwok-home" "$KWOK_BIN" \
    --kubeconfig="$DIR/kubeconfig" \
    --config="$WL_HACK_DIR/kwok/stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector="$KWOK_SELECTOR" \
    --cidr="$POD_CIDR" \
    --node-lease-duration-seconds=40
  # Ready once it has logged that its controllers started (it has no health endpoint here).
  wait_for kwok grep -qE 'Starting|Watch|started' "$DIR/logs/kwok.log"
}

apiserver_ready() {
  load_ports
  [[ -n "$APISERVER_PORT" ]] &&
    curl -sf --max-time 3 --cacert "$DIR/pki/ca.crt" "https://127.0.0.1:${APISERVER_PORT}/readyz" >/dev/null 2>&1
}

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do [[ -n "$(live_pid "$c")" ]] || return 1; done
  apiserver_ready
}

# ---------------------------------------------------------------- commands

cmd_up() {
  wl_require_bin "$ETCD_BIN" "$KUBE_APISERVER_BIN" "$KWOK_BIN"
  command -v curl >/dev/null || wl_die "curl not found"
  mkdir -p "$DIR/logs" "$DIR/run"
  if all_running; then
    wl_log "control plane already up in $DIR (https://127.0.0.1:$APISERVER_PORT)"
    return 0
  fi
  # Partial or stale state: stop what is left, keep data, pki and (free) ports.
  cmd_down_quiet
  ensure_pki
  load_ports
  local p t0=$SECONDS attempt rc
  for attempt in 1 2 3; do
    for p in ETCD_CLIENT_PORT ETCD_PEER_PORT APISERVER_PORT; do
      if [[ -z "${!p}" ]] || wl_port_in_use "${!p}"; then printf -v "$p" '%s' "$(free_port)"; fi
      PICKED+="${!p} "
    done
    printf 'ETCD_CLIENT_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' \
      "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" >"$DIR/ports.env"
    write_kubeconfig
    rc=0
    { start_etcd && start_apiserver && start_kwok; } || rc=$?
    ((rc == 0)) && break
    ((rc == 2 && attempt < 3)) || wl_die "control plane did not start (logs in $DIR/logs)"
    wl_log "port conflict, retrying with new ports"
    cmd_down_quiet
    ETCD_CLIENT_PORT="" ETCD_PEER_PORT="" APISERVER_PORT=""
  done
  wl_log "control plane up in $((SECONDS - t0))s: https://127.0.0.1:$APISERVER_PORT, etcd $(etcd_url)"
  wl_log "export KUBECONFIG=$DIR/kubeconfig"
}

# Stop components (reverse order) and sweep any leftover of ours: a process of one of
# our binaries whose command line names DIR (covers lost pid files).
cmd_down_quiet() {
  local i c pid exe cmdline
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c="${COMPONENTS[i]}"
    pid="$(live_pid "$c")"
    [[ -n "$pid" ]] && stop_pid "$pid" "$c"
    rm -f "$(pidfile "$c")"
  done
  local p
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    [[ "$pid" == "$$" ]] && continue
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    case "${exe##*/}" in etcd | kube-apiserver | kwok) ;; *) continue ;; esac
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$DIR/"* ]] || continue
    wl_log "stopping leftover ${exe##*/} ($pid)"
    stop_pid "$pid" "${exe##*/}" 5
  done
}

cmd_down() {
  [[ -d "$DIR" ]] || { wl_log "nothing in $DIR"; return 0; }
  cmd_down_quiet
  if ((PURGE)); then
    rm -rf "$DIR"
    wl_log "control plane stopped, $DIR removed"
  else
    wl_log "control plane stopped (state kept in $DIR; --purge removes it)"
  fi
}

cmd_status() {
  local c pid up=1
  load_ports
  for c in "${COMPONENTS[@]}"; do
    pid="$(live_pid "$c")"
    if [[ -n "$pid" ]]; then echo "$c: running (pid $pid)"; else echo "$c: stopped"; up=0; fi
  done
  if apiserver_ready; then
    echo "kube-apiserver: https://127.0.0.1:$APISERVER_PORT ready"
  else
    up=0
  fi
  if ((up)); then
    echo "control plane: up ($DIR)"
    echo "etcd: $(etcd_url) revision $(etcd_revision || echo '?')"
    return 0
  fi
  echo "control plane: down ($DIR)"
  return 1
}

etcdctl_() { env -u ETCDCTL_BIN "$ETCDCTL_BIN" --endpoints="$(etcd_url)" "$@"; }

etcd_revision() {
  etcdctl_ endpoint status -w json 2>/dev/null | jq -r '.[0].Status.header.revision'
}

# Compact etcd's key space so that every resourceVersion handed out before this call
# is gone: a watch (or a list with resourceVersionMatch=Exact) from it gets 410 Gone.
# A watch from RV X starts at revision X+1, and etcd keeps the compaction revision
# itself, so two throw-away writes (put + delete of a key outside /registry) first lift
# the revision to R+2 for the last handed-out R; compacting there leaves no RV <= R
# watchable. (Compacting at R+1 would hand a watch from R the event at R+1 without
# its previous value: the apiserver answers that with a 500, not a 410.) Prints the
# compaction revision.
cmd_compact() {
  load_ports
  [[ -n "$(live_pid etcd)" ]] || wl_die "etcd is not running in $DIR"
  local rev
  etcdctl_ put /waterline-compact-marker "$(date +%s%N)" >/dev/null
  etcdctl_ del /waterline-compact-marker >/dev/null
  rev="$(etcd_revision)"
  [[ "$rev" =~ ^[0-9]+$ ]] || wl_die "could not read the etcd revision"
  etcdctl_ compact "$rev" --physical >/dev/null
  echo "compacted etcd at revision $rev"
}

cmd_env() {
  load_ports
  echo "export KUBECONFIG=$DIR/kubeconfig"
  echo "export WL_CP_DIR=$DIR"
  echo "export WL_APISERVER_URL=https://127.0.0.1:${APISERVER_PORT}"
  echo "export WL_ADMIN_TOKEN_FILE=$DIR/pki/admin.token"
  echo "export WL_CA_FILE=$DIR/pki/ca.crt"
  echo "export ETCDCTL_ENDPOINTS=$(etcd_url)"
  echo "export PATH=$WL_BIN_DIR/current:\$PATH"
}

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

main() {
  local cmd="${1:-}"
  [[ -n "$cmd" ]] || { usage; exit 2; }
  shift
  DIR="${WL_CP_DIR:-$WATERLINE_CACHE_DIR/controlplane}"
  PURGE=0
  while (($#)); do
    case "$1" in
      --dir) DIR="$2"; shift ;;
      --dir=*) DIR="${1#--dir=}" ;;
      --purge) PURGE=1 ;;
      *) usage; exit 2 ;;
    esac
    shift
  done
  mkdir -p "$(dirname "$DIR")"
  DIR="$(cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")" # absolute, for pid matching
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    compact) cmd_compact ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
