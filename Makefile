# The two commands of the README: `make demo` (build, generate a small synthetic H2OVL checkpoint, convert it,
# run it on a bundled image) and `make test` (the whole test suite). Both install missing build
# prerequisites first (scripts/install-prereqs.sh: cmake + libclang for llama-cpp-sys-2).
CARGO ?= cargo
BIN := target/release/h2ovl
DEMO := demo
DEMO_MODEL := $(DEMO)/h2ovl-demo-small
DEMO_IMAGE := quant-tests/fixtures/golden/images/gradient_640x480.png

.PHONY: all prereqs build demo test clean-demo test-aarch64 test-aarch64-ci build-aarch64-pi5 dist install test-dist test-old-cpu test-webui
PREFIX ?= /usr/local
all: build

prereqs:
	@scripts/install-prereqs.sh

build: prereqs
	$(CARGO) build --release --locked

$(DEMO_MODEL)/config.json: | build
	$(BIN) gen-model --preset small --out $(DEMO_MODEL) --seed 7

demo: build $(DEMO_MODEL)/config.json
	$(BIN) convert $(DEMO_MODEL) --outdir $(DEMO)/gguf --quant q8_0 --vision-quant f16
	$(BIN) run -m $(DEMO)/gguf/h2ovl-demo-small-Q8_0.gguf --mmproj $(DEMO)/gguf/mmproj-h2ovl-demo-small-F16.gguf \
		--image $(DEMO_IMAGE) -p "Describe this image in detail." -n 24 --temp 0
	@echo "(random weights: the text above is noise; the pipeline is real — see README for real checkpoints)"

# The whole suite: unit + golden tests, the relocatable dist (moved, then run), the chat page in headless
# Chromium (installs chromium; playwright-core from webui-test/package-lock.json), and the golden tests on
# an emulated pre-AVX CPU (qemu-x86_64 -cpu Westmere; installs qemu-user like the other prerequisites).
# Every step runs even when an earlier one failed (cargo's --no-fail-fast likewise runs every test
# binary), so one report shows every failure; the exit status is non-zero if any step failed.
test: prereqs
	@failed=""; \
	$(CARGO) test --release --locked --workspace --no-fail-fast || failed="$$failed cargo-test"; \
	scripts/test-dist.sh || failed="$$failed test-dist"; \
	scripts/test-webui.sh || failed="$$failed test-webui"; \
	scripts/test-old-cpu.sh || failed="$$failed test-old-cpu"; \
	if [ -n "$$failed" ]; then echo "error: make test failed in:$$failed" >&2; exit 1; fi

# A relocatable folder + tarball in dist/: h2ovl, its llama.cpp libraries and CPU variants.
dist: build
	@scripts/dist.sh dist

# PREFIX/lib/h2ovl/ (binary + libraries) and the PREFIX/bin/h2ovl symlink.
install: build
	@scripts/dist.sh --install $(PREFIX)

test-dist: build
	@scripts/test-dist.sh

test-old-cpu: build
	@scripts/test-old-cpu.sh

# The chat page of `h2ovl serve` in headless Chromium; SCREENSHOT=docs/webui.png refreshes the README's two (desktop, phone).
test-webui: build
	@scripts/test-webui.sh

# Cross-build for aarch64 (Raspberry Pi) in target/aarch64 and run the kernel/vision/preprocess/quant
# and golden tests under qemu-aarch64 (installs the cross toolchain and qemu-user with apt when allowed).
test-aarch64:
	@scripts/cross-aarch64.sh

# The aarch64 subset CI runs after `make test` (.ci/run): vision kernel + preprocess unit tests and the
# vision/preprocess/e2e golden tests under qemu-aarch64; fails with the apt command to run if the cross
# toolchain or qemu-user is missing and cannot be installed.
test-aarch64-ci:
	@scripts/cross-aarch64.sh --ci

# Raspberry Pi 5 (Cortex-A76) cross build with llama.cpp's dotprod kernels, in target/aarch64-pi5; checks
# with objdump that ggml-cpu contains sdot (docs/raspberry-pi.md).
build-aarch64-pi5:
	@scripts/cross-aarch64.sh --pi5

clean-demo:
	rm -rf $(DEMO)
