#!/usr/bin/env bash
# The harness reports failures: small scripts that source lib.sh / fs_lib.sh
# exactly as the tests do fail in the body, in a check, in a pipeline, in a
# command substitution, in a waited background job, with cleanup hooks
# registered (also a hook that itself fails), with a soft_fail never
# finished, and by SIGTERM (as ctest's timeout sends) — and each must exit
# non-zero, while the passing script exits 0 and its cleanup hooks ran.
# Also refuses any test script that installs an EXIT trap of its own (the
# status-swallowing kind that runs a command before cleanup): tests use on_exit.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CASES=$T/cases
mkdir -p "$CASES"

# mk NAME LIB BODY: a case script sourcing LIB (lib.sh or fs_lib.sh).
mk() {
    printf '#!/usr/bin/env bash\nsource %q\n%s\n' "$HERE/$2" "$3" >"$CASES/$1.sh"
}

# expect_status NAME WANT: run case NAME; WANT is "0" or "nonzero" or a number.
expect_status() {
    local name=$1 want=$2 st=0
    TEST_TMPDIR=$T timeout 60 bash "$CASES/$name.sh" >"$T/$name.out" 2>&1 || st=$?
    [ "$st" != 124 ] || fail "case $name hung"
    case $want in
    0) [ "$st" = 0 ] || fail "case $name should pass, exited $st: $(tail -n 5 "$T/$name.out")" ;;
    nonzero) [ "$st" != 0 ] || fail "case $name must be reported as failed, but exited 0: $(tail -n 5 "$T/$name.out")" ;;
    *) [ "$st" = "$want" ] || fail "case $name exited $st, expected $want: $(tail -n 5 "$T/$name.out")" ;;
    esac
    log "case $name: exit $st (expected $want)"
}

mk pass lib.sh 'on_exit "touch $MARK"; log fine'
mk body_false lib.sh 'false; log "not reached"'
mk check_fail lib.sh 'fail "deliberate check failure"'
mk hook_then_fail lib.sh 'on_exit "echo undo; true"; on_exit "touch $MARK"; fail "deliberate"'
mk failing_hook lib.sh 'on_exit "false"; on_exit "exit 0"; fail "deliberate"'
mk pipeline lib.sh 'false | cat; log "not reached"'
mk subst lib.sh 'f() { false; echo ok; }; x=$(f); log "not reached: $x"'
mk bg_job lib.sh '(sleep 0.2; exit 3) & wait_job $! "deliberately failing job"; log "not reached"'
mk soft_unfinished lib.sh 'soft_fail "recorded, then the script forgot finish"; exit 0'
mk soft_finished lib.sh 'soft_fail "recorded"; finish'
mk sigterm lib.sh 'on_exit "touch $MARK"; kill -TERM $$; sleep 5; log "not reached"'
mk late_exit0 lib.sh 'fail "deliberate" || true; exit 0' # fail exits; "|| true" cannot catch it
mk fs_check_fail fs_lib.sh 'on_exit "echo own hook"; fail "deliberate, with fs_lib"'
mk fs_pass fs_lib.sh 'log fine'

for c in pass sigterm hook_then_fail; do
    rm -f "$T/$c.mark"
done
MARK=$T/pass.mark expect_status pass 0
[ -e "$T/pass.mark" ] || fail "on_exit hook of the passing case did not run"
expect_status body_false nonzero
grep -qF 'FAIL: `false` exited 1' "$T/body_false.out" ||
    fail "a command stopping the test through errexit is not named: $(cat "$T/body_false.out")"
expect_status check_fail 1
MARK=$T/hook_then_fail.mark expect_status hook_then_fail 1
[ -e "$T/hook_then_fail.mark" ] || fail "on_exit hook did not run on failure"
expect_status failing_hook 1
expect_status pipeline nonzero
expect_status subst nonzero
expect_status bg_job 1
expect_status soft_unfinished 1
expect_status soft_finished 1
MARK=$T/sigterm.mark expect_status sigterm 143
[ -e "$T/sigterm.mark" ] || fail "on_exit hook did not run on SIGTERM"
expect_status late_exit0 1
expect_status fs_check_fail 1
expect_status fs_pass 0
export -n MARK 2>/dev/null || true

# No test installs its own EXIT trap (lib.sh owns it; tests use on_exit).
bad=$(grep -lE "^[^#]*\btrap\b[^#]*\bEXIT\b" "$HERE"/*.sh | grep -vE '/(lib|harness_selftest)\.sh$' || true)
[ -z "$bad" ] || fail "these scripts install an EXIT trap of their own (use on_exit): $bad"
log "every failure mode is reported; no script overrides the EXIT trap"
