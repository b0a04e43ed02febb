#!/usr/bin/env bash
# run.sh — the main job: install what is missing, build, and mount dhtfs on
# its embedded default (a private ring of three kvnodes on loopback, data in
# /var/lib/dhtfs as root) at ${DHTFS_MOUNT:-/mnt/dht}, then show a few shell
# commands in it. Unmount with
#   fusermount3 -u /mnt/dht      (the three kvnodes stop with it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mnt=${DHTFS_MOUNT:-/mnt/dht}
"$root/scripts/deps.sh" build
"$root/scripts/build.sh"
mkdir -p "$mnt"
if mountpoint -q "$mnt"; then
    echo "$mnt is already mounted:"
    findmnt -n "$mnt" || true
else
    # No --peer and no $DHT_PEER: dhtfs starts and owns its three kvnodes.
    env -u DHT_PEER "$root/build/fs/dhtfs" "$mnt"
fi
echo
echo "dhtfs mounted at $mnt:"
findmnt -n "$mnt"
df -h "$mnt"
echo
set -x
mkdir -p "$mnt/demo"
date > "$mnt/demo/hello.txt"
cp -r "$root/docs" "$mnt/demo/"
ls -la "$mnt/demo"
cat "$mnt/demo/hello.txt"
diff -r "$root/docs" "$mnt/demo/docs" && echo "copied tree reads back identical"
{ set +x; } 2>/dev/null
echo
echo "unmount with: fusermount3 -u $mnt   (its kvnodes stop with it; the files persist)"
