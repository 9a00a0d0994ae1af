#!/bin/sh
# build-deb.sh - `make deb`: the Debian packages (debian/) built out of the
# tree.  dpkg-buildpackage builds in the source directory and writes the
# packages to its parent, so the tree is copied first, as it is in the work
# tree (uncommitted changes too, nothing git ignores), to
# build-deb/ferry-VERSION/; the .deb, .changes and .buildinfo files land in
# build-deb/ and the source tree stays clean.  scripts/check-deb.sh then
# checks them.
#
# The packages' own build runs the unit tests unless DEB_BUILD_OPTIONS says
# otherwise; `make deb` passes nocheck by default, as `make test` runs every
# test anyway (DEB_BUILD_OPTIONS= make deb runs them).
set -eu
cd "$(dirname "$0")/.."

out=build-deb
version=$(dpkg-parsechangelog -S Version)
stage="$out/ferry-$version"
rm -rf "$out"
mkdir -p "$stage"

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked files that were deleted are listed too: tar skips them.
    git ls-files -z --cached --others --exclude-standard |
        tar --null --verbatim-files-from -T - --ignore-failed-read -cf - 2>/dev/null |
        tar -xf - -C "$stage"
else
    tar --exclude=./build --exclude='./build-*' --exclude=./ferry-root -cf - . |
        tar -xf - -C "$stage"
fi

DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS-nocheck}
case " $DEB_BUILD_OPTIONS " in
*" parallel="*) ;;
*) DEB_BUILD_OPTIONS="$DEB_BUILD_OPTIONS parallel=$(nproc 2>/dev/null || echo 2)" ;;
esac
export DEB_BUILD_OPTIONS
profiles=
case " $DEB_BUILD_OPTIONS " in
*" nocheck "*) profiles=-Pnocheck ;;
esac

log="$out/dpkg-buildpackage.log"
echo "deb: building ferry $version in $stage (log: $log)"
# shellcheck disable=SC2086
if ! (cd "$stage" && dpkg-buildpackage -us -uc -b $profiles) >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "deb: dpkg-buildpackage failed (the whole log: $log)" >&2
    exit 1
fi
ls -1 "$out"/*.deb
