#!/bin/sh
# run.sh - what `make bench` runs: every benchmark in bench/, one after the
# other, on loopback.  Arguments are passed to each (e.g. --quick, --install).
# Results go to bench/results/; nothing here is a test and nothing asserts.
# Shared modules are not benchmarks: *lib.py (benchlib.py) is skipped.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
for b in "$here"/*.py; do
    case "$(basename "$b")" in
        *lib.py|_*) continue ;;
    esac
    echo "== $(basename "$b")"
    python3 "$b" "$@"
done
