# Thin wrapper over CMake/CTest and the hack/ scripts. Every target that needs
# packages or tools installs them first (idempotently).
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
CACHE_DIR ?= $(HOME)/.cache/waterline
export WATERLINE_CACHE_DIR := $(CACHE_DIR)
# make image / image-push (docs/install.md, "Container image")
IMAGE_DIR ?= $(BUILD)/image
IMAGE_NAME ?= waterline
IMAGE_TAG ?=
REGISTRY ?=
SKOPEO_FLAGS ?=

.PHONY: all deps tools build test unit integration fuzz test-sanitize demo demo-up demo-down image image-push clean help

all: build

help:
	@echo "make deps         install Debian packages (idempotent)"
	@echo "make tools        build pinned kube-apiserver, etcd, kwok, helm into $(CACHE_DIR)"
	@echo "make build        configure and build everything (CMake, Ninja)"
	@echo "make test         deps + tools + build, then every test (ctest)"
	@echo "make unit         unit tests only"
	@echo "make integration  integration tests only (real kube-apiserver)"
	@echo "make fuzz         build the fuzz harnesses with clang/libFuzzer (build-fuzz), fuzz each for"
	@echo "                  FUZZ_SECONDS (default 60) and add new inputs to tests/fuzz/corpus"
	@echo "make test-sanitize  unit tests and fuzz corpora under ASan+UBSan (GCC, build-sanitize)"
	@echo "make demo         the whole story on a local control plane (placement, autoscaling,"
	@echo "                  PTU spillover, GPU and node failures repaired, routing), then stop"
	@echo "make demo-up/down keep the demo running / stop it"
	@echo "make image        the container image, without a container engine: builds the two binaries,"
	@echo "                  writes an OCI layout ($(IMAGE_DIR)/oci) and a docker-load tarball"
	@echo "                  ($(IMAGE_DIR)/waterline.tar); IMAGE_TAG=... (default: the version)"
	@echo "make image-push REGISTRY=host[/path]  push it with skopeo and print the digest for"
	@echo "                  image.digest; SKOPEO_FLAGS=... (e.g. --dest-tls-verify=false)"
	@echo "make bench-NAME   run bench/NAME/run.sh (ends with RESULT lines); ARGS=... passes flags"

deps:
	@bash hack/deps.sh

tools: deps
	@bash hack/build-tools.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: deps tools build
	cd $(BUILD) && ctest --output-on-failure --timeout 900

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

integration: tools build
	cd $(BUILD) && ctest --output-on-failure -L integration --timeout 900

fuzz: deps
	@bash hack/fuzz.sh

test-sanitize: deps
	@bash hack/test-sanitize.sh

demo: deps tools build
	@BUILD=$(abspath $(BUILD)) bash hack/demo.sh run

demo-up: deps tools build
	@BUILD=$(abspath $(BUILD)) bash hack/demo.sh up

demo-down:
	@bash hack/demo.sh down

bench-%: deps build
	@bash bench/$*/run.sh $(BUILD) $(ARGS)

# Only the two shipped binaries are built (not the tests); the image holds them stripped.
image: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target waterline-operator waterline-router
	bash hack/image.sh --build $(BUILD) --out $(IMAGE_DIR) --name $(IMAGE_NAME) $(if $(IMAGE_TAG),--tag $(IMAGE_TAG))

image-push: image
	bash hack/image-push.sh --registry "$(REGISTRY)" --out $(IMAGE_DIR) --name $(IMAGE_NAME) $(if $(IMAGE_TAG),--tag $(IMAGE_TAG)) -- $(SKOPEO_FLAGS)

clean:
	rm -rf $(BUILD)
