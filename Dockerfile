# Waterline container image: waterline-operator (the ENTRYPOINT) and, when the source
# tree has it, waterline-router, in /usr/local/bin. Two stages:
#   build    Debian 12 with the build dependencies of hack/deps.sh, CMake + Ninja build
#            of the requested targets only (no tests), stripped binaries in /out
#   runtime  debian:bookworm-slim with only the shared libraries the binaries load
#            (checked with ldd during the build), ca-certificates, non-root user 65532
#
#   docker build -t waterline:0.1.0 .
#   buildah bud --storage-driver vfs --isolation chroot -t waterline:0.1.0 .
#   # base images from elsewhere (a mirror, or a local rootfs import; docs/install.md):
#   buildah bud --build-arg BUILD_IMAGE=localhost/debian:bookworm \
#     --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim -t waterline:0.1.0 .
#
# Build arguments:
#   TARGETS     CMake targets to build and ship; a target the tree does not define is
#               skipped with a message (default: waterline-operator waterline-router)
#   BUILD_TYPE  CMake build type (default Release)
#   JOBS        parallel compile jobs (default: number of cores)
ARG BUILD_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
# The build dependencies of hack/deps.sh (the top-level CMakeLists.txt finds GTest and
# benchmark unconditionally, so they are needed to configure even though no test is built).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libcpprest-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev libboost-dev libcli11-dev prometheus-cpp-dev \
      googletest libgtest-dev libgmock-dev libbenchmark-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG TARGETS="waterline-operator waterline-router"
ARG BUILD_TYPE=Release
ARG JOBS=
# WATERLINE_TEST_FILTER='^$' configures no test folder: only the shipped targets are built.
RUN set -eu; \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE}" -DWATERLINE_TEST_FILTER='^$'; \
    known="$(ninja -C /build -t targets all | sed 's/:.*//')"; \
    build=""; \
    for t in ${TARGETS}; do \
      if printf '%s\n' "$known" | grep -qx "$t"; then build="$build $t"; \
      else echo "Dockerfile: target $t is not defined in this tree, skipped"; fi; \
    done; \
    if [ -z "$build" ]; then echo "Dockerfile: none of TARGETS (${TARGETS}) exists" >&2; exit 1; fi; \
    cmake --build /build --parallel "${JOBS:-$(nproc)}" --target $build; \
    mkdir -p /out; \
    for t in $build; do \
      f="$(find /build -type f -name "$t" -perm -u+x | head -n1)"; \
      if [ -z "$f" ]; then echo "Dockerfile: no binary for $t" >&2; exit 1; fi; \
      install -s -m 0755 "$f" "/out/$t"; \
    done; \
    ls -l /out

FROM ${RUNTIME_IMAGE} AS runtime
# libcpprest2.10 pulls libbrotli1 and zlib1g; Boost is header-only for these binaries
# (ldd lists no libboost_*); libstdc++6 and libgcc-s1 are in the slim base.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcpprest2.10 libssl3 libyaml-cpp0.7 libprometheus-cpp-core1.0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot
COPY --from=build /out/ /usr/local/bin/
# Fail the build if a binary needs a library this stage does not have.
RUN if ldd /usr/local/bin/waterline-* | grep -F "not found"; then exit 1; fi \
 && /usr/local/bin/waterline-operator --version
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/waterline-operator"]
