#!/bin/sh
# fuzz-smoke.sh BIN_DIR SECONDS - run every libFuzzer harness BIN_DIR/fuzz_*
# for SECONDS each, starting from its seed corpus fuzz/corpus/<name>/ (name
# without the fuzz_ prefix), with the dictionary fuzz/dict/<name>.dict (or
# the protocol's JSON tokens, fuzz/dict/json.dict).  The seeds are copied to
# a temporary directory first so the fuzzer's additions never land in the
# repository; FUZZ_KEEP=DIR keeps the corpora in DIR/<name> instead, so a
# long run can be resumed (docs/FUZZING.md).  Each harness's last line says
# how many inputs ran and the edge coverage (cov:) reached.  Exits non-zero
# if any harness crashes, leaks or fails to start; crash inputs are kept in
# BIN_DIR/../fuzz-artifacts/.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 BIN_DIR SECONDS" >&2
    exit 2
fi
bin_dir=$1
seconds=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
artifacts=$(cd "$bin_dir/.." && pwd)/fuzz-artifacts
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
corpora=${FUZZ_KEEP:-$work}
mkdir -p "$artifacts"

# A harness only sees the edges of what was built for coverage: every
# library beside BIN_DIR (libferry, the shared code, ferryd's and the
# client's modules) must carry libFuzzer's counters.
if [ -d "$bin_dir/../lib" ]; then
    for lib in "$bin_dir"/../lib/*.a; do
        [ -f "$lib" ] || continue
        if ! nm "$lib" 2>/dev/null | grep -q __sanitizer_cov; then
            echo "fuzz-smoke: $lib has no coverage instrumentation (__sanitizer_cov)" >&2
            exit 1
        fi
    done
fi

found=0
failed=""
for fuzzer in "$bin_dir"/fuzz_*; do
    [ -f "$fuzzer" ] && [ -x "$fuzzer" ] || continue
    found=$((found + 1))
    name=$(basename "$fuzzer")
    short=${name#fuzz_}
    corpus="$corpora/$short"
    mkdir -p "$corpus"
    seeds="$repo/fuzz/corpus/$short"
    if [ -d "$seeds" ]; then
        cp -R "$seeds/." "$corpus/"
    else
        echo "fuzz-smoke: $name: no seeds in $seeds, starting empty" >&2
    fi
    dict="$repo/fuzz/dict/$short.dict"
    [ -f "$dict" ] || dict="$repo/fuzz/dict/json.dict"

    echo "fuzz-smoke: $name for ${seconds}s"
    if "$fuzzer" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
            -dict="$dict" -artifact_prefix="$artifacts/$name-" "$corpus" \
            >"$work/$name.log" 2>&1; then
        grep -a -E '^#[0-9]+.*DONE' "$work/$name.log" | sed "s/^/fuzz-smoke: $name: /" || true
    else
        echo "fuzz-smoke: $name FAILED; last lines of its log:" >&2
        tail -n 40 "$work/$name.log" >&2
        failed="$failed $name"
    fi
done

if [ "$found" -eq 0 ]; then
    echo "fuzz-smoke: no fuzz_* programs in $bin_dir" >&2
    exit 1
fi
if [ -n "$failed" ]; then
    echo "fuzz-smoke: failed:$failed (inputs in $artifacts)" >&2
    exit 1
fi
echo "fuzz-smoke: $found harness(es) ran clean"
