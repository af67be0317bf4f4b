# shellcheck shell=bash
# Shared by the helm chart tests: tool paths, a scratch directory, rendering to JSON and
# small assertions. Sourced by template_test.sh and install_test.sh.
set -euo pipefail
WL_TEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib.sh
source "$WL_TEST_DIR/../../../hack/lib.sh"
ROOT="$WL_REPO_ROOT"
CHART="${WL_TEST_CHART:-$ROOT/charts/waterline}"   # override to test a modified copy
wl_require_bin "$HELM_BIN"
command -v jq >/dev/null || wl_die "jq missing (hack/deps.sh installs it)"
command -v "$KUBECTL" >/dev/null || wl_die "kubectl missing"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/wl-helm-test.XXXXXX")"
# Helm keeps its caches and its (empty) repository config in the scratch directory.
export HELM_CACHE_HOME="$TMP/helm/cache" HELM_CONFIG_HOME="$TMP/helm/config" HELM_DATA_HOME="$TMP/helm/data"
# The chart's kubeVersion constraint; helm template defaults to an old version otherwise.
KUBE_VER="${KUBE_VERSION#v}"

FAILS=0
CHECKS=0
T0=$SECONDS
ok() { CHECKS=$((CHECKS + 1)); }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL: $*" >&2; }
# check <description> <command...>: runs the command, records pass/fail (with the end of
# its output on failure).
check() {
  local what="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then ok; else bad "$what: $(tail -n 5 <<<"$out")"; fi
}
# jq helpers available to every jqcheck expression (input: the array of objects).
# shellcheck disable=SC2016  # jq, not shell
JQ_PRELUDE='
  # kinds: the sorted kinds of the objects, CRDs left out (the CRD checks count those).
  def kinds: [.[].kind | select(. != "CustomResourceDefinition")] | sort;
  def one($k; $n): [.[] | select(.kind == $k and .metadata.name == $n)] |
    if length == 1 then .[0] else error("want one \($k)/\($n), have \(length)") end;
  def none($k): [.[] | select(.kind == $k)] | length == 0;
  def container($d; $c): one("Deployment"; $d).spec.template.spec.containers[] | select(.name == $c);
  def args($d; $c): container($d; $c).args;
  def env($d; $c): container($d; $c).env // [] | map({(.name): .value}) | add // {};
  # subset($small; $big): every key/value of $small is in $big (call it where . is the array).
  def subset($small; $big): $small | to_entries | all(.key as $k | .value as $v | $big[$k] == $v);
'
# jqcheck <description> <file> [jq args (--arg N V)...] <jq boolean expression>
jqcheck() {
  local what="$1" file="$2"; shift 2
  local expr="${*: -1}" got
  set -- "${@:1:$#-1}"
  if got="$(jq -e "$@" "$JQ_PRELUDE $expr" "$file" 2>&1)"; then ok
  else bad "$what: jq '$expr' gave ${got:-nothing}"; fi
}
finish() {
  echo "$(basename "$0"): $CHECKS checks, $FAILS failed, $((SECONDS - T0)) s"
  ((FAILS == 0))
}

helm() { "$HELM_BIN" "$@"; }
kc() { "$KUBECTL" "$@"; }

# YAML stream -> one JSON array of objects, offline: `kubectl annotate --local` parses
# any kind without a server (create --dry-run=client would need discovery). It adds the
# annotation wl-test/rendered, which the assertions ignore.
yaml_to_json() { # < yaml > json
  KUBECONFIG=/dev/null "$KUBECTL" annotate --local -f - -o json wl-test/rendered=1 |
    jq -s '[.[] | (.items // [.])[]]'
}

# render <name> [--with-tests] [helm template args...]: renders the chart as release "wl"
# in namespace "wl-sys" to $TMP/<name>.json (an array of objects); the helm test Pods
# (templates/tests) only with --with-tests.
render() {
  local name="$1" skip=--skip-tests; shift
  if [[ "${1:-}" == --with-tests ]]; then skip=""; shift; fi
  helm template wl "$CHART" --namespace wl-sys --kube-version "$KUBE_VER" ${skip:+"$skip"} "$@" >"$TMP/$name.yaml"
  yaml_to_json <"$TMP/$name.yaml" >"$TMP/$name.json"
  echo "$TMP/$name.json"
}
