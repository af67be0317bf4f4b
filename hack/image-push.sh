#!/usr/bin/env bash
# Pushes the image that hack/image.sh wrote (its OCI layout) to a registry with skopeo
# (Debian package `skopeo`, installed here when missing), and prints the digest to set
# as the chart's image.digest.
#
#   hack/image-push.sh --registry REGISTRY [--out DIR] [--name NAME] [--tag TAG] [-- SKOPEO_COPY_FLAGS...]
#
#   --registry  registry host and optional path, e.g. ghcr.io/acme or localhost:5000
#   --out       hack/image.sh's output folder (default $BUILD/image, else build/image)
#   --name      repository name under the registry (default waterline)
#   --tag       tag to push (default: the layout's only tag)
#   after --    passed to `skopeo copy`, e.g. --dest-tls-verify=false for a local
#               plain-HTTP registry, --dest-creds USER:TOKEN (else the credentials of
#               `skopeo login` / `docker login`)
#
# The layout's manifest is pushed unchanged, so the registry's digest is the one in
# <out>/digest; the script checks that and says so if the registry rewrote it.
set -euo pipefail
registry="" out="${BUILD:-build}/image" name="waterline" tag=""
while (($#)); do
  case "$1" in
    --registry) registry="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image-push.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "image-push.sh: $*" >&2; exit 1; }
[[ -n $registry ]] || die "--registry is required (make image-push REGISTRY=registry.example.com/team)"
registry="${registry%/}"
[[ -f $out/oci/index.json ]] || die "no OCI layout in $out/oci (run make image first)"
if [[ -z $tag ]]; then
  tag="$(jq -r '[.manifests[].annotations["org.opencontainers.image.ref.name"] // empty] | if length == 1 then .[0] else "" end' "$out/oci/index.json")"
  [[ -n $tag ]] || die "the layout in $out/oci has no single tag: pass --tag"
fi
if ! command -v skopeo >/dev/null; then
  echo "image-push: installing skopeo"
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends skopeo
fi

dest="$registry/$name:$tag"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
skopeo copy --digestfile "$tmp" "$@" "oci:$out/oci:$tag" "docker://$dest"
pushed="$(cat "$tmp")"
local_digest="$(cat "$out/digest" 2>/dev/null || true)"
echo "pushed $dest"
echo "digest $pushed"
if [[ -n $local_digest && $pushed != "$local_digest" ]]; then
  echo "note: the registry stored a converted manifest ($pushed, local $local_digest); use the pushed digest"
fi
echo
echo "helm install waterline charts/waterline -n waterline-system --create-namespace \\"
echo "  --set image.repository=$registry/$name --set image.tag=$tag --set image.digest=$pushed"
