#!/usr/bin/env bash
# image.build (ctest -L image): builds the container image with hack/image.sh from the
# binaries of this build, twice, and checks
#   - reproducibility: both runs give byte-identical tarballs and the same digests
#   - the OCI layout: every blob's name is its sha256 and its size is as referenced;
#     index -> manifest -> config and layer; the layer's diff_id is the sha256 of the
#     uncompressed tar; config User 65532:65532, Entrypoint the operator, the labels
#   - the docker tarball: manifest.json names the same config and layer, RepoTags, and
#     the blobs it names are in the tarball
#   - the layer: owner 0/0 and the SOURCE_DATE_EPOCH mtime on every entry, /tmp 1777,
#     no shell or busybox anywhere, nonroot 65532 in /etc/passwd, a CA bundle
#   - both binaries start from inside it: unpacked, chroot into it (as 65532:65532 when
#     root; in a user namespace, `unshare -r`, otherwise) with an empty environment and
#     `--version` prints "<binary> <version>"
# Usage: image_test.sh <operator> <router> <version>
set -euo pipefail
export LC_ALL=C
operator="$1" router="$2" version="$3"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { # <description> <command...>
  local d="$1"; shift
  if "$@"; then ok "$d"; else fail "$d"; fi
}
jqe() { jq -e "$@" >/dev/null; }
blob() { echo "$1/blobs/sha256/${2#sha256:}"; }

export SOURCE_DATE_EPOCH=1767225600   # 2026-01-01T00:00:00Z
export WATERLINE_IMAGE_SOURCE=https://example.invalid/waterline
for run in a b; do
  bash "$repo/hack/image.sh" --operator "$operator" --router "$router" --version "$version" \
    --name waterline --out "$tmp/$run" >"$tmp/$run.log" 2>&1 || { cat "$tmp/$run.log"; echo "FAIL hack/image.sh ($run)"; exit 1; }
done
cat "$tmp/a.log"
check "two builds give identical tarballs" cmp -s "$tmp/a/waterline.tar" "$tmp/b/waterline.tar"
check "two builds give the same index.json" cmp -s "$tmp/a/oci/index.json" "$tmp/b/oci/index.json"

oci="$tmp/a/oci"
check "oci-layout version 1.0.0" test "$(jq -r .imageLayoutVersion "$oci/oci-layout")" = 1.0.0
bad=""
for f in "$oci"/blobs/sha256/*; do
  [[ "$(sha256sum "$f" | cut -d' ' -f1)" == "$(basename "$f")" ]] || bad="$bad $(basename "$f")"
done
check "every blob is named by its sha256${bad:+ (not:$bad)}" test -z "$bad"
check "three blobs (manifest, config, layer)" test "$(ls "$oci/blobs/sha256" | wc -l)" -eq 3

idx="$oci/index.json"
check "index: one manifest, tagged $version" jqe --arg v "$version" '.schemaVersion == 2 and (.manifests | length) == 1 and
  .manifests[0].mediaType == "application/vnd.oci.image.manifest.v1+json" and
  .manifests[0].annotations["org.opencontainers.image.ref.name"] == $v and
  .manifests[0].annotations["io.containerd.image.name"] == "docker.io/library/waterline:" + $v' "$idx"
mdigest="$(jq -r '.manifests[0].digest' "$idx")"
mf="$(blob "$oci" "$mdigest")"
check "digest file holds the manifest digest" test "$(cat "$tmp/a/digest")" = "$mdigest"
check "manifest size as the index says" test "$(stat -c %s "$mf")" -eq "$(jq '.manifests[0].size' "$idx")"
check "manifest: OCI, one gzip layer" jqe '.schemaVersion == 2 and .mediaType == "application/vnd.oci.image.manifest.v1+json" and
  .config.mediaType == "application/vnd.oci.image.config.v1+json" and (.layers | length) == 1 and
  .layers[0].mediaType == "application/vnd.oci.image.layer.v1.tar+gzip"' "$mf"
cdigest="$(jq -r .config.digest "$mf")"
ldigest="$(jq -r '.layers[0].digest' "$mf")"
cf="$(blob "$oci" "$cdigest")"
lf="$(blob "$oci" "$ldigest")"
check "config and layer sizes as the manifest says" test "$(stat -c %s "$cf") $(stat -c %s "$lf")" = "$(jq -r '"\(.config.size) \(.layers[0].size)"' "$mf")"
check "config: user 65532:65532, entrypoint the operator, linux" jqe '.os == "linux" and (.architecture | length) > 0 and
  .config.User == "65532:65532" and .config.Entrypoint == ["/usr/local/bin/waterline-operator"] and
  (.config.Cmd // null) == null and (.config.Env | index("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")) != null' "$cf"
check "config: labels source, version $version, revision; created from SOURCE_DATE_EPOCH" jqe --arg v "$version" '
  .config.Labels as $l | $l["org.opencontainers.image.version"] == $v and
  $l["org.opencontainers.image.source"] == "https://example.invalid/waterline" and
  ($l["org.opencontainers.image.revision"] | test("^[0-9a-f]{40}(-dirty)?$")) and
  .created == "2026-01-01T00:00:00Z"' "$cf"
check "config: diff_id is the sha256 of the uncompressed layer" test "$(jq -r '.rootfs.diff_ids | join(" ")' "$cf")" = "sha256:$(gzip -dc "$lf" | sha256sum | cut -d' ' -f1)"

# The docker tarball
tar -xOf "$tmp/a/waterline.tar" manifest.json >"$tmp/manifest.json"
check "tarball manifest.json: config, layer, RepoTags" jqe --arg c "blobs/sha256/${cdigest#sha256:}" \
  --arg l "blobs/sha256/${ldigest#sha256:}" --arg t "waterline:$version" \
  'length == 1 and .[0].Config == $c and .[0].Layers == [$l] and .[0].RepoTags == [$t]' "$tmp/manifest.json"
tar -tf "$tmp/a/waterline.tar" | sort >"$tmp/tarball.list"
want="$(printf '%s\n' blobs/ blobs/sha256/ "blobs/sha256/${cdigest#sha256:}" "blobs/sha256/${ldigest#sha256:}" \
  "blobs/sha256/${mdigest#sha256:}" index.json manifest.json oci-layout | sort)"
check "tarball holds the layout and manifest.json, nothing else" test "$(cat "$tmp/tarball.list")" = "$want"
check "tarball index.json is the layout's" cmp -s <(tar -xOf "$tmp/a/waterline.tar" index.json) "$idx"

# The layer
TZ=UTC tar -tvzf "$lf" --numeric-owner >"$tmp/layer.list"
check "layer: every entry owned by 0/0" test -z "$(awk '$2 != "0/0"' "$tmp/layer.list")"
check "layer: every mtime is SOURCE_DATE_EPOCH" test -z "$(awk '$4" "$5 != "2026-01-01 00:00"' "$tmp/layer.list")"
check "layer: names relative (no ./ or /)" test -z "$(tar -tzf "$lf" | grep -E '^(\./|/)')"
rootfs="$tmp/rootfs"
mkdir -m 0755 "$rootfs"
tar -xpzf "$lf" -C "$rootfs"
shells="$(find "$rootfs" \( -name sh -o -name bash -o -name dash -o -name ash -o -name busybox -o -name zsh \) -printf '%P\n')"
check "no shell in the image${shells:+ (found: $shells)}" test -z "$shells"
check "/bin/sh absent" test ! -e "$rootfs/bin/sh" -a ! -L "$rootfs/bin/sh"
check "binaries in /usr/local/bin, executable" test -x "$rootfs/usr/local/bin/waterline-operator" -a -x "$rootfs/usr/local/bin/waterline-router"
check "binaries stripped (no .symtab)" bash -c '! readelf -S "$1" "$2" | grep -q "\.symtab"' _ \
  "$rootfs/usr/local/bin/waterline-operator" "$rootfs/usr/local/bin/waterline-router"
check "/tmp is drwxrwxrwt" test "$(awk '$6 == "tmp/" {print $1}' "$tmp/layer.list")" = drwxrwxrwt
check "nonroot is 65532:65532" grep -qx 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' "$rootfs/etc/passwd"
check "CA bundle present" test -s "$rootfs/etc/ssl/certs/ca-certificates.crt"
check "OpenSSL's default cert.pem resolves to it" bash -c 'for p in "$1"/usr/lib/ssl/cert.pem "$1"/etc/ssl/cert.pem; do
  [[ -L $p && $(readlink "$p") == */ca-certificates.crt ]] && exit 0; done; exit 1' _ "$rootfs"

# Both binaries start from inside the image (empty environment: no LD_LIBRARY_PATH from here).
chroot_bin="$(command -v chroot || echo /usr/sbin/chroot)"
if [[ $(id -u) == 0 ]]; then
  runin() { timeout 60 env -i "$chroot_bin" --userspec=65532:65532 "$rootfs" "$@"; }
  how="chroot as 65532:65532"
elif unshare -r true 2>/dev/null; then
  runin() { timeout 60 env -i "$(command -v unshare)" -r "$chroot_bin" "$rootfs" "$@"; }
  how="unshare -r chroot (user namespace root; not root here)"
else
  echo "SKIP: not root and no user namespaces: cannot chroot (the image checks above ran)"
  ((fails == 0)) || exit 1
  exit 77
fi
for b in waterline-operator waterline-router; do
  got="$(runin "/usr/local/bin/$b" --version 2>&1)" || true
  check "$b --version inside the image ($how): '$got'" test "$got" = "$b $version"
done
got="$(runin /usr/local/bin/waterline-operator --kubeconfig=/nonexistent 2>&1)" && rc=0 || rc=$?
check "operator runs and fails cleanly without a kubeconfig (rc $rc)" \
  bash -c '[[ $1 != 0 && $2 == *"cannot read kubeconfig /nonexistent"* ]]' _ "$rc" "$got"

if ((fails > 0)); then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all image checks passed"
