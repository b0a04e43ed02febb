#!/usr/bin/env bash
# Registered with WILL_FAIL: ctest itself must see this deliberately failing
# script (a check fails after a cleanup hook was registered) as failed.
source "$(dirname "$0")/lib.sh"
on_exit "log 'cleanup hook ran'"
fail "deliberate failure: ctest must report this test's script as failed (WILL_FAIL)"
