#!/bin/sh
# check-deb.sh DIR - check the Debian packages `make deb` built into DIR
# (build-deb/) from what they hold, without installing them: each
# package's files and their modes (dpkg-deb -c), its control data
# (dpkg-deb -I, -e), the version against include/ferry/version.h,
# libferry's soname, ferryd's units (present, not enabled, not started),
# its configuration (a conffile holding no key) and no world-readable key
# anywhere; then lintian, which must report no error.  Prints each failure
# and exits 1 if there was one.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build-deb}

vh=include/ferry/version.h
version=$(sed -n 's/^#define FERRY_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' "$vh" |
          paste -sd.)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "check-deb: $*" >&2
    failed=1
}

# The .deb of package $1 (the version is version.h's, so a changelog that
# disagrees shows as missing packages).
deb() {
    echo "$dir/${1}_${version}_${arch}.deb"
}

# has PACKAGE MODE PATH...: each PATH is in PACKAGE with MODE ("-rw-r--r--",
# or "l" for a symbolic link).
has() {
    pkg=$1 mode=$2
    shift 2
    for p in "$@"; do
        line=$(grep -E " \./${p#/}( -> .*)?\$" "$tmp/$pkg.list" || true)
        if [ -z "$line" ]; then
            fail "$pkg: no $p"
        elif [ "$mode" = l ]; then
            case $line in l*) ;; *) fail "$pkg: $p is not a symbolic link" ;; esac
        else
            case $line in "$mode "*) ;; *) fail "$pkg: $p: want $mode, got: $line" ;; esac
        fi
    done
}

[ "$(dpkg-parsechangelog -S Version)" = "$version" ] ||
    fail "debian/changelog says $(dpkg-parsechangelog -S Version), $vh says $version"

for pkg in ferry ferryd libferry0 libferry-dev; do
    f=$(deb $pkg)
    if [ ! -f "$f" ]; then
        fail "no $f"
        : >"$tmp/$pkg.list"
        continue
    fi
    dpkg-deb -c "$f" >"$tmp/$pkg.list"
    dpkg-deb -e "$f" "$tmp/$pkg.control"
    [ "$(dpkg-deb -f "$f" Version)" = "$version" ] || fail "$pkg: not version $version"
done
[ "$failed" = 0 ] || exit 1

exe=-rwxr-xr-x
doc=-rw-r--r--
man=/usr/share/man
lib=/usr/lib/$multiarch

has ferry $exe /usr/bin/ferry
has ferry $doc $man/man1/ferry.1.gz $man/man5/ferry-config.5.gz \
    /usr/share/bash-completion/completions/ferry /usr/share/zsh/vendor-completions/_ferry \
    /usr/share/doc/ferry/examples/config /usr/share/doc/ferry/copyright \
    /usr/share/ansible/plugins/connection/ferry.py

has ferryd $exe /usr/sbin/ferryd
has ferryd $doc $man/man8/ferryd.8.gz /lib/systemd/system/ferryd.service \
    /lib/systemd/system/ferryd.socket /usr/lib/sysusers.d/ferry.conf \
    /usr/lib/tmpfiles.d/ferry.conf /etc/ferry/ferryd.conf /usr/share/doc/ferryd/README.Debian
grep -qx /etc/ferry/ferryd.conf "$tmp/ferryd.control/conffiles" 2>/dev/null ||
    fail "ferryd: /etc/ferry/ferryd.conf is not a conffile"

has libferry0 l "$lib/libferry.so.0"
has libferry0 -rw-r--r-- "$lib/libferry.so.$version"
has libferry-dev l "$lib/libferry.so"
has libferry-dev $doc "$lib/libferry.a" "$lib/pkgconfig/ferry.pc" $man/man3/libferry.3.gz
for h in include/ferry/*.h; do
    has libferry-dev $doc "/usr/$h"
done
# The runtime library alone in the runtime package (Policy 8.2).
others=$(grep -v -E " \./(usr/share/doc/libferry0/.*|${lib#/}/libferry\.so\.[0-9.]+( -> .*)?|.*/)?\$" \
         "$tmp/libferry0.list" || true)
[ -z "$others" ] || fail "libferry0 holds more than the library: $others"

# The soname, the shlibs and symbols files, and the -dev package's pin.
dpkg-deb -x "$(deb libferry0)" "$tmp/libferry0.root"
soname=$(objdump -p "$tmp/libferry0.root$lib/libferry.so.$version" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = libferry.so.0 ] || fail "libferry0: soname '$soname', want libferry.so.0"
grep -q '^libferry 0 libferry0' "$tmp/libferry0.control/shlibs" 2>/dev/null ||
    fail "libferry0: no shlibs entry for libferry 0"
grep -q '^libferry.so.0 libferry0 ' "$tmp/libferry0.control/symbols" 2>/dev/null ||
    fail "libferry0: no symbols file"
dpkg-deb -f "$(deb libferry-dev)" Depends | grep -q "libferry0 (= $version)" ||
    fail "libferry-dev does not depend on libferry0 (= $version)"

# ferryd's units: installed, none enabled or started by the package.  An
# enabled unit would be a symbolic link under /etc/systemd/system; the
# scripts debhelper writes for --no-enable enable a unit only if it was
# enabled before (debian-installed, was-enabled), and none starts one.
if grep -q ' \./etc/systemd/' "$tmp/ferryd.list"; then
    fail "ferryd ships files under /etc/systemd (an enabled unit?)"
fi
dpkg-deb -x "$(deb ferryd)" "$tmp/ferryd.root"
grep -qx 'ExecStart=/usr/sbin/ferryd -f /etc/ferry/ferryd.conf' \
    "$tmp/ferryd.root/lib/systemd/system/ferryd.service" ||
    fail "ferryd.service: ExecStart is not /usr/sbin/ferryd -f /etc/ferry/ferryd.conf"
for unit in ferryd.service ferryd.socket; do
    grep -q "deb-systemd-helper debian-installed '$unit'" "$tmp/ferryd.control/postinst" ||
        fail "ferryd: postinst may enable $unit (no --no-enable guard)"
done
if grep -q -E 'was-enabled defaults to true|deb-systemd-invoke (start|restart)|systemctl (enable|start)' \
        "$tmp/ferryd.control/postinst"; then
    fail "ferryd: postinst enables or starts a unit"
fi

# No key shipped or made by a maintainer script, nothing world-readable
# that could hold one; the configuration names a key, it holds none.
for pkg in ferry ferryd libferry0 libferry-dev; do
    awk '{ print $1, $6 }' "$tmp/$pkg.list" | while read -r mode path; do
        case $path in
        */key|*/keys|*.key|*.pem|*/key.*)
            case $mode in
            ???????r*) echo "check-deb: $pkg: $path is world-readable ($mode)" ;;
            esac ;;
        esac
    done >"$tmp/keys"
    [ ! -s "$tmp/keys" ] || { cat "$tmp/keys" >&2; failed=1; }
done
if grep -q -E '(^|[^0-9a-fA-F])[0-9a-fA-F]{64}([^0-9a-fA-F]|$)' "$tmp/ferryd.root/etc/ferry/ferryd.conf"; then
    fail "ferryd: /etc/ferry/ferryd.conf holds a key"
fi
for s in postinst preinst; do
    if [ -f "$tmp/ferryd.control/$s" ] && grep -q -E 'keygen|/etc/ferry/key' "$tmp/ferryd.control/$s"; then
        fail "ferryd: $s makes a key (it must not: README.Debian)"
    fi
done

# lintian: no errors.  Warnings we keep are explained in docs/DESIGN.md
# ("The Debian packages").
changes=$(ls "$dir"/ferry_"${version}"_*.changes 2>/dev/null | head -n 1)
if [ -z "$changes" ]; then
    fail "no .changes in $dir"
elif ! lintian --fail-on error --tag-display-limit 0 "$changes" >"$tmp/lintian" 2>&1; then
    cat "$tmp/lintian" >&2
    fail "lintian reports errors on $changes"
else
    cat "$tmp/lintian"
fi

if [ "$failed" != 0 ]; then
    echo "check-deb: FAILED" >&2
    exit 1
fi
echo "check-deb: ferry, ferryd, libferry0, libferry-dev $version: all checks passed"
