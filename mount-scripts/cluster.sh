#!/usr/bin/env bash
# cluster.sh start [N] [--netns] [--secure] [--zones Z] | stop | status | env
#            | grant NAME [VOL...] | revoke NAME — a local N-node dhtfs ring.
#
# --secure (or DHTFS_CLUSTER_SECURE=1): CURVE on every socket. start makes
# DIR/keys (mode 0700) with one key per node (nodeK.key, .pub), an operator
# key (admin.key, a client key), peers.list (every node's public key,
# rewritten on each start) and clients.list (admin.key.pub; made once, add
# your clients' keys there and send the nodes SIGHUP). Node K is reached at
# tcp://HOST:PORT#KEY_K. `eval "$(cluster.sh env)"` sets DHT_PEER and
# DHT_KEY for dhtctl and dhtfs.
# grant NAME [VOL...] (secured cluster): a client key DIR/keys/NAME.key
# (made if missing) listed in clients.list, restricted to the volumes VOL
# (none: every volume); a NAME granted before gets the new volumes. revoke
# NAME: its line leaves clients.list and its key files are deleted. Both
# send SIGHUP to the running nodes and wait until each has re-read the
# lists. NAME: [A-Za-z0-9._-]; admin and nodeK are the cluster's own.
# A directory once started with --secure stays secured on later starts.
# --zones Z: node K runs with --zone zK%Z (failure domains for placement:
# the copies of a key go to distinct zones); kept for later starts of the
# same directory.
# Without it the nodes run without keys, reached at their plain endpoints
# (the command-line contract's `dhtctl ring` works as is); with --netns they
# then run with --insecure, which start says on stderr.
#
# Plain: nodes listen on tcp://127.0.0.1:BASE..BASE+N-1 (BASE=7000, so the
# default --peer of dhtctl and dhtfs reaches node 0).
# --netns (root): each node is a separate host — its own network namespace
# PREFIX-nK joined by a veth pair to a bridge PREFIX-br in this namespace,
# address SUBNET.(10+K)/24, listening on tcp://SUBNET.(10+K):BASE; the bridge
# is SUBNET.1, so dhtctl here reaches every node. stop removes the
# namespaces, links and bridge.
# Data, logs and pid files live in DIR/nodeK (root: /var/lib/dhtfs/cluster,
# others: $XDG_DATA_HOME/dhtfs/cluster); restarting on the same DIR keeps
# the data.
#
# Environment: DHTFS_CLUSTER_DIR, DHTFS_BASE_PORT, DHTFS_BIN (dir holding
# kvnode and dhtctl), KVNODE_ARGS (extra flags, e.g. "--replicas 3"),
# DHTFS_CLUSTER_SECURE (1: as --secure), DHTFS_METRICS_BASE (node K serves
# GET /metrics on NODE_HOST:BASE+K, kvnode --metrics),
# DHTFS_NETNS_PREFIX (default dhtfs), DHTFS_NETNS_SUBNET (default 10.231.0).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${DHTFS_BIN:-}" ]; then
    bin=$DHTFS_BIN
elif [ -x "$here/../build/kvnode/kvnode" ]; then
    bin=$here/../build/kvnode
else
    bin=$(dirname "$(command -v kvnode || echo /usr/local/bin/kvnode)")
fi
if [ "$(id -u)" -eq 0 ]; then
    default_dir=/var/lib/dhtfs/cluster
else
    default_dir=${XDG_DATA_HOME:-$HOME/.local/share}/dhtfs/cluster
fi
dir=${DHTFS_CLUSTER_DIR:-$default_dir}
base=${DHTFS_BASE_PORT:-7000}
prefix=${DHTFS_NETNS_PREFIX:-dhtfs}
subnet=${DHTFS_NETNS_SUBNET:-10.231.0}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

# alive PIDFILE: the process runs (a killed node nobody reaped yet is a
# zombie, which kill -0 still finds).
alive() {
    local pid state
    [ -f "$1" ] || return 1
    pid=$(cat "$1")
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Node i's endpoint host and port, and the command prefix that runs in its host.
node_host() { if [ -f "$dir/netns" ]; then echo "$subnet.$((10 + $1))"; else echo 127.0.0.1; fi; }
node_port() { if [ -f "$dir/netns" ]; then echo "$base"; else echo $(($base + $1)); fi; }

secured() { [ -f "$dir/secure" ]; }

# Node i's address: its endpoint, and on a secured cluster its public key.
node_addr() {
    local ep
    ep="tcp://$(node_host "$1"):$(node_port "$1")"
    if secured; then
        echo "$ep#$(cat "$dir/keys/node$1.key.pub")"
    else
        echo "$ep"
    fi
}

# dhtctl as the operator (admin key on a secured cluster).
ctl() {
    if secured; then
        "$bin/dhtctl" --key "$dir/keys/admin.key" "$@"
    else
        "$bin/dhtctl" "$@"
    fi
}

# make_keys N: a key per node and one for the operator, and the lists.
make_keys() {
    local n=$1 i k=$dir/keys
    mkdir -p "$k"
    chmod 700 "$k"
    for ((i = 0; i < n; i++)); do
        [ -f "$k/node$i.key" ] || "$bin/dhtctl" keygen "$k/node$i.key" >/dev/null
    done
    [ -f "$k/admin.key" ] || "$bin/dhtctl" keygen "$k/admin.key" >/dev/null
    {
        echo "# peers: the nodes of this cluster (rewritten by cluster.sh start)"
        for f in "$k"/node*.key.pub; do
            echo "$(cat "$f") # $(basename "$f" .key.pub)"
        done
    } >"$k/peers.list.tmp"
    mv "$k/peers.list.tmp" "$k/peers.list"
    if [ ! -f "$k/clients.list" ]; then
        {
            echo "# clients allowed to read and write keys; add one Z85 public key a line,"
            echo "# then: kill -HUP <kvnode pids>"
            echo "$(cat "$k/admin.key.pub") # admin"
        } >"$k/clients.list"
    fi
}

netns_up() {
    local n=$1 i br=$prefix-br
    [ "$(id -u)" -eq 0 ] || die "--netns needs root (network namespaces)"
    command -v ip >/dev/null || die "--netns needs iproute2 (ip)"
    ip link show "$br" >/dev/null 2>&1 || {
        ip link add "$br" type bridge
        ip addr add "$subnet.1/24" dev "$br"
        ip link set "$br" up
    }
    for ((i = 0; i < n; i++)); do
        local ns=$prefix-n$i veth=$prefix-v$i
        ip netns list | grep -qw "^$ns" && continue
        ip netns add "$ns"
        ip link add "$veth" type veth peer name eth0 netns "$ns"
        ip link set "$veth" master "$br" up
        ip -n "$ns" addr add "$subnet.$((10 + i))/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" route add default via "$subnet.1"
    done
}

netns_down() {
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-n[0-9]*$"); do
        ip netns del "$ns" # its eth0 goes, and with it the veth's other end
    done
    ip link del "$prefix-br" 2>/dev/null || true
}

usage_die() {
    echo "cluster.sh: $*" >&2
    exit 2
}

# reload_nodes: SIGHUP every running node, then wait (bounded) until each
# logged that it re-read its key lists, or that it kept the previous ones.
reload_nodes() {
    local f logs=() ok=() bad=() i j n=0 left
    for f in "$dir"/node*/pid; do
        alive "$f" || continue
        logs[n]=$(dirname "$f")/log
        ok[n]=$(grep -c "SIGHUP: key lists re-read" "${logs[n]}" 2>/dev/null || true)
        bad[n]=$(grep -c "previous lists stay in force" "${logs[n]}" 2>/dev/null || true)
        kill -HUP "$(cat "$f")"
        n=$((n + 1))
    done
    if ((n == 0)); then
        echo "no node running; the lists apply from the next start"
        return 0
    fi
    for ((i = 0; i < 50; i++)); do
        left=0
        for ((j = 0; j < n; j++)); do
            if (($(grep -c "previous lists stay in force" "${logs[j]}" || true) > bad[j])); then
                die "$(dirname "${logs[j]}") kept its previous lists: $(grep "previous lists" "${logs[j]}" | tail -n 1)"
            fi
            (($(grep -c "SIGHUP: key lists re-read" "${logs[j]}" || true) > ok[j])) || left=$((left + 1))
        done
        ((left == 0)) && break
        sleep 0.1
    done
    if ((left > 0)); then
        # Not fatal: a node run with --log-level warn does not say it.
        echo "cluster.sh: $left of $n node(s) did not log re-reading the lists; see $dir/node*/log" >&2
    else
        echo "$n running node(s) re-read the lists"
    fi
}

# client_name NAME: refuse names that are not a client's.
client_name() {
    [[ $1 =~ ^[A-Za-z0-9._-]{1,64}$ ]] || usage_die "bad client name '$1' (1-64 of A-Za-z0-9._-)"
    [[ $1 != admin && ! $1 =~ ^node[0-9]+$ ]] || usage_die "'$1' is the cluster's own key, not a client"
    secured || die "grant and revoke need a secured cluster (cluster.sh start N --secure)"
}

# without_key PUB: clients.list without PUB's lines, on stdout.
without_key() {
    awk -v pub="$1" '$1 != pub' "$dir/keys/clients.list"
}

grant() {
    (($# >= 1)) || usage_die "usage: cluster.sh grant NAME [VOL...]"
    local name=$1 v k=$dir/keys pub
    shift
    client_name "$name"
    for v in "$@"; do
        [[ $v =~ ^[A-Za-z0-9._-]{1,64}$ ]] || usage_die "bad volume name '$v' (1-64 of A-Za-z0-9._-)"
    done
    [ -f "$k/$name.key" ] || "$bin/dhtctl" keygen "$k/$name.key" >/dev/null
    pub=$(cat "$k/$name.key.pub")
    {
        without_key "$pub"
        echo "$pub${*:+ $*} # $name"
    } >"$k/clients.list.tmp"
    mv "$k/clients.list.tmp" "$k/clients.list"
    echo "$name: key $k/$name.key, ${*:-every volume}"
    reload_nodes
}

revoke() {
    (($# == 1)) || usage_die "usage: cluster.sh revoke NAME"
    local name=$1 k=$dir/keys pub
    client_name "$name"
    [ -f "$k/$name.key.pub" ] || die "no client key $k/$name.key.pub"
    pub=$(cat "$k/$name.key.pub")
    without_key "$pub" >"$k/clients.list.tmp"
    mv "$k/clients.list.tmp" "$k/clients.list"
    rm -f "$k/$name.key" "$k/$name.key.pub"
    echo "$name: revoked, key deleted"
    reload_nodes
}

start() {
    local n=3 netns='' secure=${DHTFS_CLUSTER_SECURE:-0} zones='' i a
    while (($#)); do
        a=$1
        shift
        case $a in
        --netns) netns=1 ;;
        --secure) secure=1 ;;
        --zones)
            zones=${1:-}
            shift || true
            [[ $zones =~ ^[0-9]+$ ]] && ((zones >= 1 && zones <= 64)) ||
                die "--zones takes a zone count 1..64, got '$zones'"
            ;;
        *) [[ $a =~ ^[0-9]+$ ]] || die "unknown option '$a' (only N, --netns, --secure, --zones Z)"
            n=$a ;;
        esac
    done
    ((n >= 1 && n <= 64)) || die "node count must be 1..64, got '$n'"
    [ -x "$bin/kvnode" ] || die "kvnode not found in $bin (build first, or set DHTFS_BIN)"
    mkdir -p "$dir"
    # Once secured, a cluster directory stays so: a restart never drops the keys.
    [ -f "$dir/secure" ] && secure=1
    rm -f "$dir/insecure"
    # The zones stay those of the directory's first start with --zones.
    if [ -n "$zones" ]; then
        echo "$zones" >"$dir/zones"
    elif [ -f "$dir/zones" ]; then
        zones=$(cat "$dir/zones")
    fi
    local sec=()
    if [ "$secure" = 1 ]; then
        make_keys "$n"
        echo 1 >"$dir/secure"
    fi
    if [ -n "$netns" ]; then
        netns_up "$n"
        echo "$prefix" >"$dir/netns"
        secured || echo "cluster.sh: nodes on non-loopback addresses without keys (--insecure); --secure adds CURVE" >&2
    fi
    local first
    first=$(node_addr 0)
    for ((i = 0; i < n; i++)); do
        local d=$dir/node$i ep join=() run=()
        ep="tcp://$(node_host "$i"):$(node_port "$i")"
        if secured; then
            sec=(--key "$dir/keys/node$i.key" --peer-keys "$dir/keys/peers.list"
                --client-keys "$dir/keys/clients.list")
        elif [ -f "$dir/netns" ]; then
            sec=(--insecure) # no --secure: the bridge is this machine's own
        fi
        local extra=()
        if [ -n "$zones" ]; then
            extra+=(--zone "z$((i % zones))")
        fi
        if [ -n "${DHTFS_METRICS_BASE:-}" ]; then
            extra+=(--metrics "$(node_host "$i"):$((DHTFS_METRICS_BASE + i))")
        fi
        mkdir -p "$d"
        if alive "$d/pid"; then
            echo "node$i already running (pid $(cat "$d/pid"))"
            continue
        fi
        if ((i > 0)); then
            join=(--join "$first")
        fi
        if [ -f "$dir/netns" ]; then
            run=(ip netns exec "$prefix-n$i")
        fi
        # shellcheck disable=SC2086
        setsid "${run[@]}" "$bin/kvnode" --listen "$ep" "${join[@]}" --data "$d/data" \
            "${sec[@]}" "${extra[@]}" ${KVNODE_ARGS:-} </dev/null >>"$d/log" 2>&1 &
        echo $! >"$d/pid"
        echo "node$i: $ep pid $! (log $d/log)"
        sleep 0.3
        kill -0 "$(cat "$d/pid")" 2>/dev/null || die "node$i exited at once; see $d/log"
    done
    # Wait until the ring has all nodes linked (bounded).
    for ((i = 0; i < 100; i++)); do
        local count
        count=$(ctl --peer "$first" --timeout-ms 500 ring --json 2>/dev/null |
            grep -o '"addr"' | wc -l || true)
        if [ "$count" = "$n" ]; then
            echo "ring of $n nodes is up"
            return 0
        fi
        sleep 0.1
    done
    echo "cluster.sh: ring not yet converged to $n nodes; check 'cluster.sh status'" >&2
}

stop() {
    local any=0 f
    for f in "$dir"/node*/pid; do
        [ -f "$f" ] || continue
        if alive "$f"; then
            local pid
            pid=$(cat "$f")
            kill -TERM "$pid"
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            echo "stopped $(basename "$(dirname "$f")") (pid $pid)"
            any=1
        fi
        rm -f "$f"
    done
    [ "$any" = 1 ] || echo "no node running under $dir"
    if [ -f "$dir/netns" ]; then
        netns_down
        rm -f "$dir/netns"
        echo "removed the network namespaces and bridge"
    fi
}

status() {
    local f running=0
    for f in "$dir"/node*/pid; do
        [ -f "$f" ] || continue
        if alive "$f"; then
            echo "$(basename "$(dirname "$f")"): running (pid $(cat "$f"))"
            running=$((running + 1))
        else
            echo "$(basename "$(dirname "$f")"): stopped"
        fi
    done
    if ((running > 0)); then
        ctl --peer "$(node_addr 0)" ring || true
    else
        echo "no node running under $dir"
        return 3
    fi
}

# env: shell lines that point dhtctl and dhtfs at this cluster.
env_lines() {
    [ -f "$dir/node0/pid" ] || [ -d "$dir/node0" ] || die "no cluster under $dir (start one first)"
    printf "export DHT_PEER='%s'\n" "$(node_addr 0)"
    if secured; then
        printf "export DHT_KEY='%s'\n" "$dir/keys/admin.key"
    else
        echo "unset DHT_KEY"
    fi
}

case "${1:-}" in
start)
    shift
    start "$@"
    ;;
stop) stop ;;
status) status ;;
env) env_lines ;;
grant)
    shift
    grant "$@"
    ;;
revoke)
    shift
    revoke "$@"
    ;;
*)
    echo "usage: cluster.sh start [N] [--netns] [--secure] | stop | status | env" \
        "| grant NAME [VOL...] | revoke NAME" >&2
    exit 2
    ;;
esac
