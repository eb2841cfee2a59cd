#!/bin/sh
# Self-test of tests/run_checked.sh (CTest: unit_run_checked): each verdict it
# must give, on commands whose exit status and output are known.  The mpi and
# fault tests rely on it to fail on a non-zero exit whatever they print.
set -u
here=$(cd "$(dirname "$0")" && pwd)
rc_=$here/run_checked.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/run_checked_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect WANT_RC WANT_VERDICT_PREFIX -- ARGS...: run run_checked.sh ARGS and
# check its exit status and its last line.
expect() {
    want=$1
    verdict=$2
    shift 3
    out=$(sh "$rc_" "$@" 2>&1)
    got=$?
    last=$(printf '%s\n' "$out" | tail -n 1)
    case "$last" in
        "$verdict"*) ok=1 ;;
        *) ok=0 ;;
    esac
    if [ "$got" -ne "$want" ] || [ "$ok" -ne 1 ]; then
        echo "FAIL: run_checked.sh $*: exit $got (want $want), last line '$last' (want '$verdict...')"
        failures=$((failures + 1))
    else
        echo "ok: exit $got, $last"
    fi
}

st=$tmp/status
expect 0 "run_checked: PASS" -- --pass "all good" -- sh -c 'echo "all good here"'
# the pass line printed, but a non-zero exit: a failure
expect 1 "run_checked: FAIL: sh exited with status 3" -- --pass "all good" -- \
    sh -c 'echo "all good"; exit 3'
# exit 0 but no pass line, or the pass line not at the start of a line
expect 1 "run_checked: FAIL: no line starting with 'all good'" -- --pass "all good" -- \
    sh -c 'echo "not all good"'
# killed by a signal
expect 1 "run_checked: FAIL: sh exited with status 137" -- --pass "x" -- sh -c 'echo x; kill -9 $$'
# --status: rank 0's recorded status counts, the runner's does not
expect 0 "run_checked: PASS (rank 0 exited 0, sh exited with 5" -- --status "$st" --pass "x" -- \
    sh -c "sh '$rc_' --record '$st' -- sh -c 'echo x'; exit 5"
expect 1 "run_checked: FAIL: rank 0 exited with status 4" -- --status "$st" --pass "x" -- \
    sh -c "sh '$rc_' --record '$st' -- sh -c 'echo x; exit 4'; exit 0"
# rank 0 never recorded (killed, or not run): a failure, also when a stale
# file of an earlier run is there
echo 0 >"$st"
expect 1 "run_checked: FAIL: rank 0 recorded no exit status" -- --status "$st" --pass "x" -- \
    sh -c 'echo x'
# bad usage
expect 2 "       run_checked.sh --record FILE" -- --bogus -- true

if [ "$failures" -ne 0 ]; then
    echo "run_checked_test: $failures FAILED"
    exit 1
fi
echo "run_checked_test: all passed"
