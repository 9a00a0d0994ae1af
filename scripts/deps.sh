#!/bin/sh
# deps.sh - make sure the Debian packages ferry builds and tests with are
# installed.  As root it installs what is missing with apt-get; otherwise it
# prints the exact command to run and fails.  The list, and why each package
# is there, is in docs/DESIGN.md.
set -eu

PACKAGES="pkg-config libjansson-dev libssl-dev libcmocka-dev libedit2 libxxhash-dev python3 clang rdate tmux vim less procps mandoc systemd strace zsh pdsh clustershell iproute2 build-essential dpkg-dev debhelper lintian ansible-core sudo"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >&2
else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run:  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
