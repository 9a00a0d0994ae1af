#!/bin/sh
# run.sh - what `make run` starts: ferryd in the foreground on 127.0.0.1:7171,
# serving at once.  On first run it creates the shared key at ferry's
# default path (~/.config/ferry/key), so the ferry client finds it without
# options; the daemon runs commands in your home directory as you and
# serves files from ./ferry-root (created if missing).
set -eu
bin="$(cd "$(dirname "$0")/../build/bin" && pwd)"
addr="${FERRY_RUN_ADDR:-127.0.0.1:7171}"
key="${FERRY_KEY_FILE:-${XDG_CONFIG_HOME:-$HOME/.config}/ferry/key}"
root="${FERRY_RUN_ROOT:-./ferry-root}"

if [ ! -e "$key" ]; then
    "$bin/ferry" keygen "$key" >/dev/null
    echo "make run: created a new key: $key"
fi

cat <<EOT
make run: ferryd is starting on $addr (key: $key, files: $root).
In another terminal, try:

    build/bin/ferry exec $addr uname -a
    build/bin/ferry exec $addr 'ls -l | head -5'
    printf 'b\na\n' | build/bin/ferry exec $addr -- sort
    build/bin/ferry put $addr README.md
    build/bin/ferry ls $addr
    build/bin/ferry get $addr README.md /tmp/
    build/bin/ferry shell $addr

Ctrl-C stops the daemon.
EOT
exec "$bin/ferryd" --listen "$addr" --key-file "$key" --root "$root"
