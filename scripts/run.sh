#!/bin/sh
# run.sh - what `make run` starts.  Until ferryd exists this is the
# echo_upper server on 127.0.0.1, with a client talking to it once so you
# see it work, then the server in the foreground (Ctrl-C stops it).
set -eu
bin="$(dirname "$0")/../build/bin"
addr="${FERRY_RUN_ADDR:-127.0.0.1:8080}"
"$bin/echo_upper" --listen "$addr" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' INT TERM
# wait for readiness: the client retries connecting for a few seconds
echo "hello from make run" | "$bin/echo_client" --wait 5 "$addr"
echo "echo_upper is serving on $addr (try: build/bin/echo_client $addr). Ctrl-C stops it."
wait $server
