#!/usr/bin/env bash
# ringsim's JSON contract (issue 11): the fields the checks read are there;
# with the default tokens and probes the largest node holds <= 1.25 x the
# mean share and a join changes <= 1.2 x the ideal R/(N+1) of the replica
# sets; hop counts stay near 1/2 log2 N; one token and one probe is exactly
# the one-position ring (max_load_ratio equals max_load_ratio_one_id); bad
# flags are usage errors (exit 2).
source "$(dirname "$0")/lib.sh"
RINGSIM=$BUILD_DIR/ringlib/ringsim

for n in 5 100 1000; do
    out=$("$RINGSIM" --nodes "$n" --lookups 2000 --json) || fail "ringsim --nodes $n failed"
    jq -e '
        (.nodes | type) == "number" and (.avg_hops | type) == "number"
        and (.p99_hops | type) == "number" and (.max_load_ratio | type) == "number"
        and (.moved_on_join | type) == "number" and (.moved_on_join_ideal | type) == "number"' \
        <<<"$out" >/dev/null || fail "ringsim --nodes $n: fields missing: $out"
    jq -e '.max_load_ratio <= 1.25 and .max_copies_ratio <= 1.25' <<<"$out" >/dev/null ||
        fail "ringsim --nodes $n: max/mean above 1.25: $out"
    jq -e '.moved_on_join <= 1.2 * .moved_on_join_ideal and .moved_on_join > 0
        and .moved_on_leave <= 1.2 * .moved_on_leave_ideal' <<<"$out" >/dev/null ||
        fail "ringsim --nodes $n: moved fraction above 1.2 x ideal: $out"
    jq -e '.avg_hops <= .half_log2_n + 0.5' <<<"$out" >/dev/null ||
        fail "ringsim --nodes $n: hops far above 1/2 log2 N: $out"
done
log "N = 5, 100, 1000: fields present, max/mean <= 1.25, moved <= 1.2 x ideal, hops ~ 1/2 log2 N"

out=$("$RINGSIM" --nodes 100 --lookups 100 --tokens 1 --probes 1 --json)
jq -e '.max_load_ratio == .max_load_ratio_one_id and .max_load_ratio > 2' <<<"$out" >/dev/null ||
    fail "one token, one probe is not the one-position ring: $out"
out=$("$RINGSIM" --nodes 99 --lookups 100 --zones 3 --heavy 33 --json)
jq -e '.max_copies_ratio <= 1.25 and .heavy_ratio > 1.7 and .heavy_ratio < 2.3' <<<"$out" >/dev/null ||
    fail "zones and weights: $out"
log "one token and one probe = the one-position ring; 3 zones and weight 2 balanced"

for bad in "--tokens 0" "--probes 65" "--replicas 0" "--tokens x"; do
    st=0
    # shellcheck disable=SC2086
    "$RINGSIM" --nodes 5 --lookups 10 $bad >/dev/null 2>&1 || st=$?
    [ "$st" = 2 ] || fail "ringsim $bad exited $st, expected 2"
done
log "bad flags exit 2"
