# Top-level commands. On a fresh Debian machine, `make demo` and `make test`
# install the Debian packages they need when run as root; otherwise they print
# the apt-get line to run.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= 2
PREFIX     ?= /usr/local
CASES      ?=

PACKAGES := build-essential cmake pkg-config python3 libcmocka-dev \
            libmsgpack-dev libssl-dev gnuplot-nox clang libclang-rt-14-dev \
            libzmq3-dev

.PHONY: all deps build demo test test-asan bench install clean

all: build

deps:
	@sh tools/deps.sh $(PACKAGES)

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMP_WERROR=ON

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	@sh examples/run-demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

$(ASAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMP_WERROR=ON \
	  -DMP_SANITIZE=ON -DMP_BUILD_BENCH=OFF -DMP_BUILD_EXAMPLES=OFF

test-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900

bench: build
	@sh bench/run-bench.sh $(BUILD) "$(CASES)"

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
