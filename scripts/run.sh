#!/usr/bin/env bash
# run.sh — the main job: install what is missing, build, start a local
# 3-node ring on loopback and show it. Stop it with
#   mount-scripts/cluster.sh stop
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" build
"$root/scripts/build.sh"
"$root/mount-scripts/cluster.sh" start 3
echo
"$root/build/kvnode/dhtctl" --peer tcp://127.0.0.1:7000 ring
echo
echo "lookup of a key, recursive and iterative:"
"$root/build/kvnode/dhtctl" --peer tcp://127.0.0.1:7000 lookup hello --recursive
"$root/build/kvnode/dhtctl" --peer tcp://127.0.0.1:7000 lookup hello --iterative
echo
echo "ring running; stop it with: $root/mount-scripts/cluster.sh stop"
