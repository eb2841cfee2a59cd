#!/bin/sh
# run_checked.sh: run a test command and judge it by its exit status AND its
# pass line, so that a test cannot pass on what it prints alone (CTest's
# PASS_REGULAR_EXPRESSION ignores the exit status).  Used by the mpi and fault
# tests (tests/mpi/CMakeLists.txt, tests/fault/CMakeLists.txt).
#
#   run_checked.sh [--status FILE] --pass LINE -- CMD [ARGS...]
#       Runs CMD with its output shown as it comes.  Passes (exit 0) only if
#       CMD exits 0, some line of its output starts with LINE, and, with
#       --status, FILE holds "0": the exit status rank 0 recorded (below).
#       With --status, CMD's own exit status is shown but not judged: mpirun
#       --enable-recovery does not return rank 0's status, so the recorded one
#       counts instead.  FILE is removed before CMD starts.
#
#   run_checked.sh --record FILE -- CMD [ARGS...]
#       Rank 0's side: runs CMD, writes its exit status (128 + N if it died
#       of signal N) to FILE, and exits with it.  Open MPI identifies a rank
#       from its environment, so CMD is the MPI process and this shell is not.
#       If this shell is killed first, FILE is never written, and the check
#       above fails saying so.
#
# Ends with one line "run_checked: PASS ..." or "run_checked: FAIL: why".
set -u

usage() {
    echo "usage: run_checked.sh [--status FILE] --pass LINE -- CMD [ARGS...]" >&2
    echo "       run_checked.sh --record FILE -- CMD [ARGS...]" >&2
    exit 2
}

status=""
pass=""
record=""
while [ $# -gt 0 ]; do
    case "$1" in
        --status) [ $# -ge 2 ] || usage; status=$2; shift 2 ;;
        --pass) [ $# -ge 2 ] || usage; pass=$2; shift 2 ;;
        --record) [ $# -ge 2 ] || usage; record=$2; shift 2 ;;
        --) shift; break ;;
        *) usage ;;
    esac
done
[ $# -ge 1 ] || usage

if [ -n "$record" ]; then
    "$@"
    rc=$?
    # Through a temporary name and a rename, so that the checker sees either
    # no file or the whole number.
    printf '%s\n' "$rc" >"$record.tmp" && mv -f "$record.tmp" "$record"
    exit "$rc"
fi

[ -n "$pass" ] || usage
tmp=$(mktemp -d "${TMPDIR:-/tmp}/run_checked.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
if [ -n "$status" ]; then
    rm -f "$status" "$status.tmp"
fi

# The command's status comes out of the pipeline through a file: POSIX sh has
# no pipefail.
{ "$@"; echo "$?" >"$tmp/rc"; } 2>&1 | tee "$tmp/out"
rc=$(cat "$tmp/rc" 2>/dev/null || echo "none")

fail() {
    echo "run_checked: FAIL: $*"
    exit 1
}

if [ -n "$status" ]; then
    recorded=$(cat "$status" 2>/dev/null || echo "none")
    case "$recorded" in
        0) ;;
        none) fail "rank 0 recorded no exit status in $status (killed before it finished?); $1 exited with $rc" ;;
        *) fail "rank 0 exited with status $recorded ($1 exited with $rc)" ;;
    esac
elif [ "$rc" != 0 ]; then
    fail "$1 exited with status $rc"
fi
if ! awk -v want="$pass" 'index($0, want) == 1 { found = 1 } END { exit !found }' "$tmp/out"; then
    fail "no line starting with '$pass' in the output (exit status ${recorded:-$rc})"
fi
if [ -n "$status" ]; then
    echo "run_checked: PASS (rank 0 exited 0, $1 exited with $rc, '$pass' seen)"
else
    echo "run_checked: PASS (exit 0, '$pass' seen)"
fi
exit 0
