#!/usr/bin/env bash
# install.sh [--build DIR] [--prefix DIR] [--sbin DIR] [--uninstall]
#
# Installs dhtfs, kvnode and dhtctl from the build tree into PREFIX/bin
# (default /usr/local/bin) and mount.dhtfs as SBIN/mount.fuse.dhtfs
# (default /sbin), which is where mount(8) looks for the helper of type
# fuse.dhtfs. Running it again replaces the files with the current build;
# --uninstall removes exactly those four files.
#
# The helper is copied, not linked: an installed system must not depend on
# the source tree staying where it is. The copy finds dhtfs on PATH or in
# /usr/local/bin.
#
# Environment: DESTDIR is prepended to every installed path (packaging, or
# a dry run into a scratch directory).
set -euo pipefail

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
build=$(dirname "$here")/build
prefix=/usr/local
sbin=/sbin
action=install
destdir=${DESTDIR:-}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: install.sh [--build DIR] [--prefix DIR] [--sbin DIR] [--uninstall]" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --build)
        [ $# -ge 2 ] || usage
        build=$2
        shift 2
        ;;
    --prefix)
        [ $# -ge 2 ] || usage
        prefix=$2
        shift 2
        ;;
    --sbin)
        [ $# -ge 2 ] || usage
        sbin=$2
        shift 2
        ;;
    --uninstall)
        action=uninstall
        shift
        ;;
    -h | --help) usage ;;
    *)
        echo "install.sh: unknown argument '$1'" >&2
        usage
        ;;
    esac
done

bindir=$destdir$prefix/bin
sbindir=$destdir$sbin
helper=$sbindir/mount.fuse.dhtfs

# What goes where: source (in the build tree or here) and target.
sources=("$build/fs/dhtfs" "$build/kvnode/kvnode" "$build/kvnode/dhtctl" "$here/mount.dhtfs")
targets=("$bindir/dhtfs" "$bindir/kvnode" "$bindir/dhtctl" "$helper")

if [ "$action" = uninstall ]; then
    removed=0
    for t in "${targets[@]}"; do
        if [ -e "$t" ] || [ -L "$t" ]; then
            rm -f -- "$t" || die "cannot remove $t"
            echo "removed $t"
            removed=$((removed + 1))
        fi
    done
    [ "$removed" -gt 0 ] || echo "nothing to remove (no dhtfs files in $bindir or $sbindir)"
    exit 0
fi

missing=()
for s in "${sources[@]}"; do
    [ -f "$s" ] && [ -x "$s" ] || missing+=("$s")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: not built (or not executable):" >&2
    printf '  %s\n' "${missing[@]}" >&2
    die "build first: cmake -S $(dirname "$here") -B $build && cmake --build $build (or give --build DIR)"
fi

mkdir -p -- "$bindir" "$sbindir" || die "cannot create $bindir or $sbindir (run as root?)"
for i in "${!sources[@]}"; do
    # install(1) unlinks the old file before writing the new one, so a
    # running kvnode or dhtfs keeps its binary (no "text file busy").
    install -m 0755 -- "${sources[$i]}" "${targets[$i]}" || die "cannot install ${targets[$i]}"
    echo "installed ${targets[$i]}"
done
case ":$PATH:" in
*":$prefix/bin:"*) ;;
*) echo "note: $prefix/bin is not on PATH; mount.fuse.dhtfs also looks in /usr/local/bin" ;;
esac
