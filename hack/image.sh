#!/usr/bin/env bash
# Assembles the Waterline container image without a container engine: an OCI image
# layout (directory) and a `docker load`-able tarball, from binaries already built here
# and only the shared libraries they load. One layer, reproducible: the same binaries,
# libraries, CA bundle and SOURCE_DATE_EPOCH give byte-identical output (same digests).
#
#   hack/image.sh [--build DIR] [--out DIR] [--name NAME] [--tag TAG]
#                 [--operator PATH] [--router PATH] [--version V]
#
#   --build     CMake build folder (default $BUILD, else build)
#   --out       output folder (default <build>/image); it receives
#                 oci/            the OCI image layout (oci-layout, index.json, blobs/sha256/)
#                 waterline.tar   the same layout plus a Docker manifest.json: `docker load -i`,
#                                 `kind load image-archive`, `ctr images import`, `podman load`
#                 digest          the manifest digest (sha256:...), the chart's image.digest
#                                 once pushed unchanged (hack/image-push.sh prints the pushed one)
#   --name      image name in the tarball and the layout annotations (default waterline)
#   --tag       tag (default: the version)
#   --operator / --router  the binaries (default <build>/operator/main/waterline-operator,
#               <build>/operator/router/waterline-router)
#   --version   version label (default CMAKE_PROJECT_VERSION from <build>/CMakeCache.txt)
#
# Environment: SOURCE_DATE_EPOCH (default: the commit time of HEAD, else 0) is every
# file's mtime and the image's creation time. WATERLINE_IMAGE_SOURCE: the
# org.opencontainers.image.source label (default: the origin remote, as https).
#
# The image (docs/install.md, "Container image"): /usr/local/bin/waterline-operator (the
# entrypoint) and waterline-router, stripped; every library `ldd` lists for them, copied
# (symlinks resolved) to the path ldd reports, the dynamic loader at the binaries'
# PT_INTERP path; the host's CA bundle at /etc/ssl/certs/ca-certificates.crt (and
# OpenSSL's default cert.pem/certs under OPENSSLDIR pointing to it); /etc/passwd and
# /etc/group with root and nonroot (65532); /etc/nsswitch.conf; /tmp (1777); for each
# Debian package a library comes from, its copyright file and a dpkg status entry in
# /var/lib/dpkg/status.d/ (what distroless does, so image scanners see the versions).
# No shell, no package manager. Runs as 65532:65532.
#
# Needs: bash, GNU tar, gzip, sha256sum, jq, ldd, strip (binutils); optional: dpkg-query,
# git, openssl.
set -euo pipefail
export LC_ALL=C

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-build}"
out="" name="waterline" tag="" operator="" router="" version=""
while (($#)); do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --operator) operator="$2"; shift 2 ;;
    --router) router="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "image.sh: $*" >&2; exit 1; }
for t in tar gzip sha256sum jq ldd strip; do
  command -v "$t" >/dev/null || die "$t is required (make image installs what is missing)"
done

: "${operator:=$build/operator/main/waterline-operator}"
: "${router:=$build/operator/router/waterline-router}"
: "${out:=$build/image}"
[[ -x $operator ]] || die "no operator binary at $operator (build the waterline-operator target)"
[[ -x $router ]] || die "no router binary at $router (build the waterline-router target)"
if [[ -z $version ]]; then
  version="$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)"
  [[ -n $version ]] || die "no --version and no CMAKE_PROJECT_VERSION in $build/CMakeCache.txt"
fi
: "${tag:=$version}"
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "bad tag '$tag'"
[[ $name =~ ^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?$ ]] || die "bad image name '$name'"

revision=""
git() { command git -c safe.directory="$repo" "$@"; }  # a checkout owned by another user
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  revision="$(git -C "$repo" rev-parse HEAD)"
  git -C "$repo" diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
  : "${SOURCE_DATE_EPOCH:=$(git -C "$repo" log -1 --format=%ct HEAD)}"
fi
: "${SOURCE_DATE_EPOCH:=0}"
[[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be whole seconds"
created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
# org.opencontainers.image.source: WATERLINE_IMAGE_SOURCE, else the origin remote as an
# https URL, else no label (nothing is invented).
source_url="${WATERLINE_IMAGE_SOURCE:-}"
if [[ -z $source_url ]] && u="$(git -C "$repo" remote get-url origin 2>/dev/null)"; then
  case "$u" in
    https://*) source_url="${u%.git}" ;;
    git@*:*) h="${u#git@}"; source_url="https://${h%%:*}/${h#*:}"; source_url="${source_url%.git}" ;;
  esac
  source_url="$(sed -E 's#^https://[^/@]*@#https://#' <<<"$source_url")"   # no credentials
fi

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  ppc64le) arch=ppc64le ;;
  s390x) arch=s390x ;;
  *) die "unknown machine $(uname -m)" ;;
esac

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"/{etc/ssl/certs,tmp,usr/local/bin}

# --- binaries, libraries, loader -----------------------------------------------------
strip --strip-unneeded -o "$root/usr/local/bin/waterline-operator" "$operator"
strip --strip-unneeded -o "$root/usr/local/bin/waterline-router" "$router"

declare -A libs=()     # paths ldd reports (the image uses the same paths)
declare -A loaders=()  # the dynamic loader(s): executable
for bin in "$operator" "$router"; do
  ldd_out="$(ldd "$bin")" || die "ldd $bin failed"
  if grep -F "not found" <<<"$ldd_out" >&2; then die "$bin needs a library this machine lacks"; fi
  while read -r l; do
    case "$l" in
      *"=> /"*) p="${l#*=> }"; p="${p%% (*}" ;;   # libfoo.so.1 => /lib/.../libfoo.so.1 (0x...)
      /*) p="${l%% (*}"; loaders["$p"]=1 ;;        # the loader: its PT_INTERP path
      *) continue ;;                                # linux-vdso.so.1 (no file)
    esac
    libs["$p"]="$p"
  done <<<"$ldd_out"
done
for p in "${!libs[@]}"; do
  mkdir -p "$root$(dirname "$p")"
  cp -L "$p" "$root$p"   # follow symlinks: the file lands under its soname
done

# --- users, name service, CA bundle ---------------------------------------------------
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$root/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$root/etc/nsswitch.conf"
ca=/etc/ssl/certs/ca-certificates.crt
[[ -s $ca ]] || die "no CA bundle at $ca (apt-get install ca-certificates)"
cp -L "$ca" "$root$ca"
# OpenSSL's built-in default paths (SSL_CTX_set_default_verify_paths): OPENSSLDIR/cert.pem
# and OPENSSLDIR/certs. SSL_CERT_FILE in the config points at the bundle as well.
ssldir=/usr/lib/ssl
if command -v openssl >/dev/null; then
  d="$(openssl version -d | sed -n 's/^OPENSSLDIR: "\(.*\)"$/\1/p')"
  [[ $d == /* ]] && ssldir="$d"
fi
if [[ $ssldir != /etc/ssl ]]; then
  mkdir -p "$root$ssldir"
  ln -s /etc/ssl/certs/ca-certificates.crt "$root$ssldir/cert.pem"
  ln -s /etc/ssl/certs "$root$ssldir/certs"
else
  ln -s certs/ca-certificates.crt "$root/etc/ssl/cert.pem"
fi

# --- Debian package records (optional) -----------------------------------------------
declare -A pkgs=()
if command -v dpkg-query >/dev/null; then
  for p in "${!libs[@]}" "$(readlink -f "$ca")"; do
    for q in "$p" "$(readlink -f "$p")" "${p#/usr}" "/usr${p}"; do
      if pkg="$(dpkg-query -S "$q" 2>/dev/null | head -n1)" && [[ -n $pkg ]]; then
        pkg="${pkg%%: *}"; pkgs["${pkg%%,*}"]=1; break
      fi
    done
  done
  # the bundle is generated by update-ca-certificates, not a file of the package
  dpkg-query -W -f='${Status}' ca-certificates 2>/dev/null | grep -q "install ok installed" && pkgs[ca-certificates]=1
  for pkg in "${!pkgs[@]}"; do
    base="${pkg%%:*}"
    mkdir -p "$root/var/lib/dpkg/status.d"
    dpkg-query -W -f='Package: ${Package}\nStatus: install ok installed\nPriority: ${Priority}\nSection: ${Section}\nArchitecture: ${Architecture}\nSource: ${source:Package} (${source:Version})\nVersion: ${Version}\n' \
      "$pkg" >"$root/var/lib/dpkg/status.d/$base"
    if [[ -f /usr/share/doc/$base/copyright ]]; then
      mkdir -p "$root/usr/share/doc/$base"
      cp -L "/usr/share/doc/$base/copyright" "$root/usr/share/doc/$base/copyright"
    fi
  done
fi

# --- normalise and pack the layer ----------------------------------------------------
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root/usr/local/bin/"*
for p in "${!loaders[@]}"; do chmod 0755 "$root$p"; done
chmod 1777 "$root/tmp"

# Reproducible tar: sorted names, one mtime, owner root, GNU format (no pax atime/ctime).
rtar() { # <dir> <output> : every entry of dir, sorted, no ./ prefix
  local dir="$1" outf="$2"
  (cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\0' | sort -z |
    tar --null -T - --sort=name --format=gnu --mtime="@$SOURCE_DATE_EPOCH" \
      --owner=0 --group=0 --numeric-owner -cf "$outf")
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
lay="$work/oci"
mkdir -p "$lay/blobs/sha256"
rtar "$root" "$work/layer.tar"
diff_id="$(sha "$work/layer.tar")"
gzip -n -6 <"$work/layer.tar" >"$work/layer.tar.gz"
layer="$(sha "$work/layer.tar.gz")"
mv "$work/layer.tar.gz" "$lay/blobs/sha256/$layer"

labels="$(jq -cn --arg src "$source_url" --arg ver "$version" --arg rev "$revision" --arg created "$created" '{
  "org.opencontainers.image.source": $src, "org.opencontainers.image.version": $ver,
  "org.opencontainers.image.revision": $rev, "org.opencontainers.image.created": $created,
  "org.opencontainers.image.title": "waterline",
  "org.opencontainers.image.description": "Waterline operator (entrypoint) and router for GPU inference capacity pools"}
  | if $src == "" then del(."org.opencontainers.image.source") else . end')"
jq -cn --arg created "$created" --arg arch "$arch" --argjson labels "$labels" --arg diff "sha256:$diff_id" '{
  created: $created, architecture: $arch, os: "linux",
  config: {
    User: "65532:65532",
    Entrypoint: ["/usr/local/bin/waterline-operator"],
    Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
    WorkingDir: "/",
    ExposedPorts: {"8080/tcp": {}},
    Labels: $labels
  },
  rootfs: {type: "layers", diff_ids: [$diff]},
  history: [{created: $created, created_by: "hack/image.sh"}]
}' | tr -d '\n' >"$work/config.json"
config="$(sha "$work/config.json")"
config_size="$(size "$work/config.json")"
mv "$work/config.json" "$lay/blobs/sha256/$config"

jq -cn --arg c "sha256:$config" --argjson cs "$config_size" --arg l "sha256:$layer" \
  --argjson ls "$(size "$lay/blobs/sha256/$layer")" '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
  layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]
}' | tr -d '\n' >"$work/manifest.json"
manifest="$(sha "$work/manifest.json")"
manifest_size="$(size "$work/manifest.json")"
mv "$work/manifest.json" "$lay/blobs/sha256/$manifest"

# containerd (kind load, ctr import) names the image after io.containerd.image.name;
# skopeo's oci:DIR:TAG and `docker load` (25+) read org.opencontainers.image.ref.name.
full="$name"
first="${name%%/*}"
if [[ $name != */* ]]; then full="docker.io/library/$name"
elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then full="docker.io/$name"; fi
printf '{"imageLayoutVersion":"1.0.0"}' >"$lay/oci-layout"
jq -cn --arg m "sha256:$manifest" --argjson ms "$manifest_size" --arg tag "$tag" --arg full "$full:$tag" '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
    annotations: {"io.containerd.image.name": $full, "org.opencontainers.image.ref.name": $tag}}]
}' | tr -d '\n' >"$lay/index.json"

# The tarball: the layout plus Docker's manifest.json (what `docker save` writes since
# Docker 25; older `docker load` reads manifest.json and unpacks gzip layers as well).
tball="$work/tarball"
cp -a "$lay" "$tball"
jq -cn --arg c "blobs/sha256/$config" --arg l "blobs/sha256/$layer" --arg t "$name:$tag" \
  '[{Config: $c, RepoTags: [$t], Layers: [$l]}]' | tr -d '\n' >"$tball/manifest.json"
find "$tball" -type d -exec chmod 0755 {} + && find "$tball" -type f -exec chmod 0644 {} +
rtar "$tball" "$work/waterline.tar"

rm -rf "$out/oci"
mv "$lay" "$out/oci"
mv "$work/waterline.tar" "$out/waterline.tar"
printf 'sha256:%s\n' "$manifest" >"$out/digest"

echo "image $name:$tag ($arch, version $version, revision ${revision:-unknown}, created $created)"
echo "  OCI layout  $out/oci          (skopeo: oci:$out/oci:$tag)"
echo "  tarball     $out/waterline.tar  (docker load -i / kind load image-archive)"
echo "  manifest    sha256:$manifest"
echo "  config      sha256:$config"
echo "  layer       sha256:$layer ($(size "$out/oci/blobs/sha256/$layer") bytes gzip, diff_id sha256:$diff_id)"
