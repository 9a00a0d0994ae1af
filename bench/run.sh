#!/bin/sh
# run.sh - what `make bench` runs: every benchmark in bench/, one after the
# other, on loopback.  Arguments are passed to each (e.g. --quick, --install).
# Results go to bench/results/; nothing here is a test and nothing asserts.
# Shared modules are not benchmarks: *lib.py (benchlib.py) is skipped, and
# report.py runs last: it gathers the results into results/latest.json and
# rewrites the goals table and plots in docs/BENCHMARKS.md.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
for b in "$here"/*.py; do
    case "$(basename "$b")" in
        *lib.py|_*|report.py) continue ;;
    esac
    echo "== $(basename "$b")"
    python3 "$b" "$@"
done
echo "== report.py"
python3 "$here/report.py" "$@"
