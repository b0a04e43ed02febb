#!/usr/bin/env bash
# deps.sh [build|test] — install the Debian 12 packages dhtfs needs, only
# those missing. "build" is enough to compile and run; "test" adds the tools
# the test suite uses (jq, clang's libFuzzer and sanitizer runtimes; fio,
# attr, acl, python3, git, procps, sqlite3 and util-linux (flock) for the
# mount tests; strace for sec_ring's capture of the bytes on the wire;
# libmemcached's tools and pymemcache for kv_memcached, memcached for
# bench/mc-bench.sh; curl and prometheus's promtool for the metrics tests).
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libzmq3-dev libsodium-dev libcmocka-dev
    liblmdb-dev libfuse3-dev fuse3)
test_pkgs=(jq clang libclang-rt-14-dev iproute2
    fio attr acl python3 git procps strace sqlite3 util-linux
    libmemcached-tools python3-pymemcache memcached curl prometheus)

want=("${build_pkgs[@]}")
if [ "${1:-build}" = test ]; then
    want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
