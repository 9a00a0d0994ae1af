# ferry - the front door.  `make run` and `make test` are the two commands
# the README names; everything else is a convenience around CMake.
#
#   make            build everything into build/ (programs in build/bin/)
#   make run        build, then start ferryd in the foreground (scripts/run.sh)
#   make test       build and run every test but the heavy ones
#   make test-heavy the heavy tests: GiBs through the whole path, a
#                   benchmark's smoke run (CI runs them; see ferrytest.heavy)
#   make test-asan  the whole suite under ASan+UBSan  (build-asan/)
#   make test-tsan  the whole suite under TSan        (build-tsan/)
#   make test-poll  unit tests with the portable poll() loop backend (build-poll/)
#   make fuzz       build the libFuzzer harnesses and run a short smoke
#   make bench      build, then run the benchmarks in bench/ (bench/run.sh;
#                   BENCH_ARGS=--quick for a short run); not part of make test
#   make install    build, then install under PREFIX (default /usr/local;
#                   DESTDIR=DIR stages the tree under DIR, for packaging)
#   make uninstall  remove what the last `make install` wrote (an edited
#                   configuration file stays)
#   make deb        the Debian packages (debian/), built from a copy of the
#                   tree into build-deb/ and checked (scripts/check-deb.sh)
#   make clean

MAKEFLAGS += --no-print-directory
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
# Tests spend most of their time waiting for their servers (about half a
# core each on average; make test used 1.5 of 2 cores at -j4), so three
# times as many run at once as there are cores (-j6: 84-89 s against
# 103-105 s at -j4, 2026-12-07, 2 cores); the sanitized builds, several
# times heavier per test, keep twice as many.
TEST_JOBS ?= $(shell echo $$(( $(JOBS) * 3 )))
SAN_TEST_JOBS ?= $(shell echo $$(( $(JOBS) * 2 )))
CTEST  := ctest --output-on-failure --timeout 600 -j $(TEST_JOBS)
SAN_CTEST := ctest --output-on-failure --timeout 600 -j $(SAN_TEST_JOBS)
CMAKE_CONFIGURE = cmake -S . -B $(1) -DCMAKE_BUILD_TYPE=$(2) $(3) >/dev/null
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all build run test test-heavy test-asan test-tsan test-poll fuzz bench deps clean install uninstall deb

all: build

deps:
	@scripts/deps.sh

build: deps
	@$(call CMAKE_CONFIGURE,build,RelWithDebInfo,-DCMAKE_INSTALL_PREFIX=$(PREFIX))
	@cmake --build build -j $(JOBS)

# The prefix is fixed when build/ is configured (GNUInstallDirs derives
# etc and lib from it), so install goes through build with the same PREFIX.
install: build
	@DESTDIR="$(DESTDIR)" cmake --install build

uninstall:
	@DESTDIR="$(DESTDIR)" cmake -DMANIFEST=build/install_manifest.txt -P cmake/uninstall.cmake

deb: deps
	@scripts/build-deb.sh
	@scripts/check-deb.sh build-deb

run: build
	@scripts/run.sh

test: build
	@cd build && $(CTEST)

test-heavy: build
	@cd build && FERRY_HEAVY=only $(CTEST) -L integration

test-asan: deps
	@$(call CMAKE_CONFIGURE,build-asan,Debug,-DFERRY_SANITIZE=address -DFERRY_WERROR=ON)
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(SAN_CTEST)

test-tsan: deps
	@$(call CMAKE_CONFIGURE,build-tsan,Debug,-DFERRY_SANITIZE=thread -DFERRY_WERROR=ON)
	@cmake --build build-tsan -j $(JOBS)
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(SAN_CTEST)

test-poll: deps
	@$(call CMAKE_CONFIGURE,build-poll,Debug,-DFERRY_POLL_BACKEND=ON -DFERRY_WERROR=ON)
	@cmake --build build-poll -j $(JOBS)
	@cd build-poll && $(CTEST) -L unit

fuzz: deps
	@$(call CMAKE_CONFIGURE,build-fuzz,Debug,-DCMAKE_C_COMPILER=clang -DFERRY_FUZZ=ON -DBUILD_TESTING=OFF)
	@cmake --build build-fuzz -j $(JOBS)
	@scripts/fuzz-smoke.sh build-fuzz/bin $${FUZZ_SECONDS:-30}

bench: build
	@bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf build build-asan build-tsan build-poll build-fuzz build-deb
