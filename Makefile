# medvlm - top-level entry points. `make test` on a fresh Debian 12 machine installs what is
# missing (apt-get as root; otherwise prints the sudo line), configures, builds and tests.
#
#   make            build (Release) into build/
#   make test       install deps if needed, build, run the whole test suite
#   make browser-deps    Chromium + chromedriver for the page's browser test (tests/cli/
#                   test_browser.sh; skipped without them, except under CI=true; .ci/run
#                   installs them)
#   make test-sanitize   the same suite under AddressSanitizer + UBSan (build-asan/)
#   make fuzz       run every libFuzzer target for FUZZ_SECONDS each (build-fuzz/)
#   make demo       the main job end to end on a generated model and data set, fine-tuning
#                   included (MODEL=vinid/plip DATA=SICAPv2 for the real thing)
#   make bench      the standard benchmark (medvlm bench)
#   make compat     fine-tuning files vs transformers + peft from PyPI (not CI; needs PyPI;
#                   COMPAT_VENV=/tmp/medvlm-compat-venv, see docs/finetune-compat.md)
#   make install    cmake --install (PREFIX=/usr/local)

BUILD ?= build
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=

DEB_PACKAGES = build-essential cmake pkg-config clang clang-format libclang-rt-14-dev \
	libopenblas-openmp-dev libcjson-dev libutf8proc-dev libzip-dev libexpat1-dev \
	libjpeg62-turbo-dev libpng-dev libtiff-dev libopenmpi-dev openmpi-bin \
	libmicrohttpd-dev curl libxml2-utils python3-venv apache2-utils iproute2

# the browser test's: heavy (about 300 MB installed), so not part of every `make test`
BROWSER_PACKAGES = chromium chromium-driver

.PHONY: all deps browser-deps build test test-sanitize fuzz fuzz-ci demo bench compat install clean format format-check

all: build

deps:
	@bash tools/install-deps.sh $(DEB_PACKAGES)

browser-deps:
	@bash tools/install-deps.sh $(BROWSER_PACKAGES)

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-sanitize: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMEDVLM_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS)

fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEDVLM_FUZZ=ON -DMEDVLM_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build build-fuzz -j $(JOBS)
	bash fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=30

demo: build
	bash tools/demo.sh $(BUILD)/medvlm "$(MODEL)" "$(DATA)"

bench: build
	$(BUILD)/medvlm bench

compat: build
	bash tests/compat/run.sh $(BUILD)/medvlm

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check: deps
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-fuzz
