#!/usr/bin/env bash
# install.sh [--build DIR] [--prefix DIR] [--sbin DIR] [--unitdir DIR] [--confdir DIR]
#            [--no-units] [--enable NAME]... [--uninstall]
#
# Installs dhtfs, kvnode and dhtctl from the build tree into PREFIX/bin
# (default /usr/local/bin) and mount.dhtfs as SBIN/mount.fuse.dhtfs
# (default /sbin), which is where mount(8) looks for the helper of type
# fuse.dhtfs. Running it again replaces the files with the current build;
# --uninstall removes those four files (and the units, see below).
#
# Unless --no-units: the systemd units from systemd/ go to UNITDIR
# (default /etc/systemd/system) with ExecStart pointing at PREFIX/bin:
# kvnode@.service (one ring node per /etc/dhtfs/NAME.conf) is replaced on
# every run (customize it with a drop-in, systemctl edit kvnode@NAME);
# the example mount unit mnt-dht.mount and CONFDIR/kvnode.conf.example
# (default /etc/dhtfs) are installed only where no such file exists, since
# an operator edits them. Nothing is enabled or started unless
# --enable NAME asks for kvnode@NAME (systemctl daemon-reload, then
# enable --now; CONFDIR/NAME.conf must exist). --uninstall also removes
# kvnode@.service, and mnt-dht.mount if it is unchanged; it never touches
# CONFDIR.
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
unitdir=/etc/systemd/system
confdir=/etc/dhtfs
units=1
enable=()
action=install
destdir=${DESTDIR:-}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: install.sh [--build DIR] [--prefix DIR] [--sbin DIR] [--unitdir DIR]" >&2
    echo "                  [--confdir DIR] [--no-units] [--enable NAME]... [--uninstall]" >&2
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
    --unitdir)
        [ $# -ge 2 ] || usage
        unitdir=$2
        shift 2
        ;;
    --confdir)
        [ $# -ge 2 ] || usage
        confdir=$2
        shift 2
        ;;
    --no-units)
        units=0
        shift
        ;;
    --enable)
        [ $# -ge 2 ] || usage
        [[ $2 =~ ^[A-Za-z0-9_.:-]+$ ]] || die "--enable: '$2' is not a unit instance name"
        enable+=("$2")
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
udir=$destdir$unitdir
cdir=$destdir$confdir
[ "$units" = 1 ] || [ ${#enable[@]} -eq 0 ] || die "--enable needs the units (drop --no-units)"

# unit_text FILE: a unit of systemd/ as installed (binaries under PREFIX/bin).
unit_text() {
    sed "s|/usr/local/bin/|$prefix/bin/|g" "$here/systemd/$1"
}

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
    if [ "$units" = 1 ]; then
        if [ -e "$udir/kvnode@.service" ]; then
            rm -f -- "$udir/kvnode@.service" || die "cannot remove $udir/kvnode@.service"
            echo "removed $udir/kvnode@.service"
            removed=$((removed + 1))
        fi
        if [ -e "$udir/mnt-dht.mount" ]; then
            if unit_text mnt-dht.mount | cmp -s - "$udir/mnt-dht.mount"; then
                rm -f -- "$udir/mnt-dht.mount" || die "cannot remove $udir/mnt-dht.mount"
                echo "removed $udir/mnt-dht.mount"
                removed=$((removed + 1))
            else
                echo "kept $udir/mnt-dht.mount (changed since installed)"
            fi
        fi
        [ ! -d "$cdir" ] || echo "kept $cdir (configuration)"
    fi
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

[ "$units" = 1 ] || exit 0
for f in kvnode@.service mnt-dht.mount kvnode.conf.example; do
    [ -f "$here/systemd/$f" ] || die "missing $here/systemd/$f (incomplete source tree?)"
done
mkdir -p -- "$udir" || die "cannot create $udir"
if [ ! -d "$cdir" ]; then
    mkdir -p -- "$cdir" || die "cannot create $cdir"
fi
# install_text FILE TARGET KEEP: systemd/FILE as installed (unit_text) to
# TARGET, through a temporary file and a rename (never half a unit); KEEP=1
# leaves an existing TARGET alone.
install_text() {
    local file=$1 target=$2 keep=$3 tmp
    if [ "$keep" = 1 ] && [ -e "$target" ]; then
        echo "kept $target (exists)"
        return 0
    fi
    tmp=$(mktemp "$target.XXXXXX") || die "cannot write in $(dirname "$target")"
    if ! unit_text "$file" >"$tmp" || ! chmod 0644 -- "$tmp" || ! mv -f -- "$tmp" "$target"; then
        rm -f -- "$tmp"
        die "cannot install $target"
    fi
    echo "installed $target"
}
install_text kvnode@.service "$udir/kvnode@.service" 0
install_text mnt-dht.mount "$udir/mnt-dht.mount" 1
install_text kvnode.conf.example "$cdir/kvnode.conf.example" 1

if [ ${#enable[@]} -gt 0 ]; then
    [ -z "$destdir" ] || die "--enable does not go with DESTDIR (nothing to start there)"
    command -v systemctl >/dev/null || die "--enable: systemctl not found"
    for name in "${enable[@]}"; do
        [ -f "$confdir/$name.conf" ] ||
            die "--enable $name: no $confdir/$name.conf (start from $confdir/kvnode.conf.example)"
    done
    systemctl daemon-reload || die "systemctl daemon-reload failed"
    for name in "${enable[@]}"; do
        systemctl enable --now "kvnode@$name.service" || die "cannot enable kvnode@$name"
        echo "enabled and started kvnode@$name"
    done
elif [ -z "$destdir" ] && [ -d /run/systemd/system ]; then
    echo "next: put a node's settings in $confdir/NAME.conf, then" \
        "systemctl daemon-reload && systemctl enable --now kvnode@NAME"
fi
