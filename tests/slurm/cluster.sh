#!/bin/sh
# cluster.sh: a real one-node Slurm 22.05 cluster for the slurm tests, all of
# it (configs, munge key and socket, state, spool, pid files, logs) under one
# state directory, so that it never touches /etc/slurm, /etc/munge or a Slurm
# the machine may already run (non-default ports, ClusterName=genietest).
#
#   cluster.sh start  STATE_DIR PLUGIN REPO_ROOT   write configs, start munged,
#                                                  slurmctld, slurmd; wait idle
#   cluster.sh stop   STATE_DIR                    end what start started
#   cluster.sh status STATE_DIR                    daemons and sinfo; 0 if up
#
# PLUGIN is genie_spank.so; the word "none" leaves plugstack.conf empty (for
# debugging the fixture itself, never used by the tests).  REPO_ROOT gives
# configs/cli_filter.lua and configs/genie.conf, copied into STATE_DIR.
#
# Environment: GENIE_SLURMCTLD_PORT, GENIE_SLURMD_PORT (default: the first
# free pair of 16817/16818, 16819/16820, ...; another tree's test cluster or
# a developer's may hold the first), GENIE_SLURM_START_TIMEOUT (60 s),
# GENIE_SLURM_OWNER_WAIT (300 s: how long start waits for another ctest run
# that holds the same state dir, below).
#
# Exit status: 0 done, 1 failed (daemon log tails printed), 77 skipped (not
# root, Slurm or munge missing, plugin not built): CTest's SKIP_RETURN_CODE.
#
# Facts about this Slurm that the config relies on (design.md, "Real
# components"): daemons run as root with SlurmUser=root; linuxproc and
# task/none because there is no usable cgroup here; fake GPUs must be
# character devices listed by File= (Count= alone is refused); CPUs=32 with
# config_overrides lets 10+ tasks share 2 cores.

set -u

usage() {
    echo "usage: $0 start STATE_DIR PLUGIN REPO_ROOT | stop STATE_DIR | status STATE_DIR" >&2
    exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
state=$2
case "$state" in
    /*) ;;
    *) state=$(pwd)/$state ;;
esac
# Everything below is removed and rewritten on start: refuse a state dir that
# is obviously not ours.
case "$state" in
    / | /tmp | /tmp/ | /root | /work | /work/ | "$HOME" | "$HOME"/)
        echo "cluster.sh: refusing state dir '$state'" >&2; exit 2 ;;
esac

start_timeout=${GENIE_SLURM_START_TIMEOUT:-60}
owner_wait=${GENIE_SLURM_OWNER_WAIT:-300}
conf=$state/slurm.conf
logs=$state/log
mungedir=$state/munge

export SLURM_CONF="$conf"

skip() {
    echo "skipped: $*"
    exit 77
}

# pid_of NAME: the pid in STATE_DIR's pid file for NAME, if that process is
# alive and is ours (its command line names the state dir: every daemon is
# started with a path inside it).  A recycled pid is never taken for ours.
pid_of() {
    pidfile=$state/$1.pid
    [ "$1" = munged ] && pidfile=$mungedir/munged.pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    case "$pid" in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$state/" || return 1
    echo "$pid"
}

# stepds: slurmstepd processes of this cluster (they inherit slurmd's
# SLURM_CONF, which names our state dir).
stepds() {
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
        { tr '\0' '\n' < "$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$conf" || continue
        echo "${p#/proc/}"
    done
}

# stop_pids PID...: TERM all, then KILL whichever is left after 5 s.
stop_pids() {
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null
    i=0
    while [ $i -lt 50 ]; do
        alive=
        for p in "$@"; do
            kill -0 "$p" 2>/dev/null && alive="$alive $p"
        done
        [ -n "$alive" ] || return 0
        sleep 0.1; i=$((i + 1))
    done
    echo "cluster.sh: pid(s)$alive ignored SIGTERM for 5 s; SIGKILL" >&2
    kill -KILL $alive 2>/dev/null
    return 0
}

# Two ctest runs of one build tree (two people, or a run started while
# another goes on) would share this state dir: the second start would stop
# the first run's daemons, and its cleanup fixture (run even when its setup
# fails) would too.  So a start under ctest records that ctest's pid in
# STATE_DIR/owner, and while that ctest lives, start of another waits for
# it and stop of another leaves the cluster alone.  Leftovers of a ctest
# that is gone, or of a start by hand, are stopped as usual.
parent_is_ctest() {
    [ "$(cat /proc/$PPID/comm 2>/dev/null)" = ctest ]
}

# owner_busy: the cluster belongs to a live ctest other than our parent;
# sets owner.
owner_busy() {
    owner=$(cat "$state/owner" 2>/dev/null) || return 1
    case "$owner" in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "$owner" != "$PPID" ] && [ "$(cat /proc/$owner/comm 2>/dev/null)" = ctest ]
}

do_stop() {
    # Cancel jobs first so that their steps end through Slurm; then the
    # daemons; then any slurmstepd still around (a step that outlived its
    # slurmd would keep its tasks and ports).
    if pid_of slurmctld > /dev/null; then
        timeout 10 scancel --quiet --user=root 2>/dev/null
        i=0
        while [ -n "$(stepds)" ] && [ $i -lt 50 ]; do
            sleep 0.1; i=$((i + 1))
        done
    fi
    # slurmd and slurmctld together (each takes about 2 s to go), munged
    # last: the others talk to it while they shut down.
    stop_pids $(pid_of slurmd) $(pid_of slurmctld)
    stop_pids $(stepds)
    stop_pids $(pid_of munged)
    rm -f "$state/up" "$mungedir/munge.socket" "$mungedir/munge.socket.lock" \
          "$state/slurmctld.pid" "$state/slurmd.pid" "$mungedir/munged.pid"
    return 0
}

do_status() {
    up=0
    for d in munged slurmctld slurmd; do
        if pid=$(pid_of $d); then
            echo "$d: running, pid $pid"
        else
            echo "$d: not running"; up=1
        fi
    done
    [ $up -eq 0 ] || return 1
    echo "SLURM_CONF=$conf"
    timeout 10 sinfo -N -o '%N %T %C %G' || return 1
    return 0
}

tail_logs() {
    for f in "$mungedir/munged.log" "$logs/slurmctld.log" "$logs/slurmd.log" \
             "$logs/slurmctld.out" "$logs/slurmd.out"; do
        [ -s "$f" ] || continue
        echo "----- tail $f"
        tail -n 25 "$f"
    done
}

fail() {
    echo "cluster.sh: $*" >&2
    tail_logs >&2
    do_stop
    exit 1
}

# port_busy PORT: something listens on TCP PORT.
port_busy() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# pick_ports: ctld_port and slurmd_port, as given or the first free pair.
pick_ports() {
    if [ -n "${GENIE_SLURMCTLD_PORT:-}${GENIE_SLURMD_PORT:-}" ]; then
        ctld_port=${GENIE_SLURMCTLD_PORT:-16817}
        slurmd_port=${GENIE_SLURMD_PORT:-16818}
        for p in $ctld_port $slurmd_port; do
            if port_busy $p; then
                port_problem="port $p (GENIE_SLURMCTLD_PORT/GENIE_SLURMD_PORT) is in use"
                return 1
            fi
        done
        return 0
    fi
    ctld_port=16817
    while [ $ctld_port -lt 16857 ]; do
        slurmd_port=$((ctld_port + 1))
        port_busy $ctld_port || port_busy $slurmd_port || return 0
        ctld_port=$((ctld_port + 2))
    done
    port_problem="no free port pair in 16817..16856; set GENIE_SLURMCTLD_PORT and GENIE_SLURMD_PORT"
    return 1
}

write_configs() {
    plugin=$1 repo=$2 host=$3
    # slurm.conf; nofilter/slurm.conf is the same less CliFilterPlugins (the
    # test of "the cli_filter off" points SLURM_CONF at it; the daemons read
    # only the first).
    cat > "$conf.tmp" <<EOF
# Written by tests/slurm/cluster.sh; rewritten on every start.
# MinJobAge=10: sbatch --wait sleeps 2 s, then 4 times longer while below
# 32 s and MinJobAge/2, so it polls at 2, 10, 18, 26 ... s here; at 60 it
# polled at 2, 10, 42 s and a 16 s job took 42 s.
ClusterName=genietest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$mungedir/munge.socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=pmix
SlurmdParameters=config_overrides
PlugStackConfig=$state/plugstack.conf
CliFilterPlugins=cli_filter/lua
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=60
SlurmctldTimeout=60
InactiveLimit=0
KillWait=2
MinJobAge=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=32 RealMemory=1000 Gres=gpu:8 State=UNKNOWN
PartitionName=genie Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$conf.tmp" "$conf" || return 1
    grep -v '^CliFilterPlugins=' "$conf" > "$state/nofilter/slurm.conf" || return 1

    printf 'AutoDetect=off\nName=gpu File=%s/fakegpu[0-7]\n' "$state/dev" > "$state/gres.conf"
    for i in 0 1 2 3 4 5 6 7; do
        # Character devices (the null device's numbers): slurmd refuses
        # plain files as GPU files.
        mknod "$state/dev/fakegpu$i" c 1 3 || return 1
    done

    if [ "$plugin" = none ]; then
        : > "$state/plugstack.conf"
    else
        echo "required $plugin config=$state/genie.conf allowed_phases=prefill,decode,vision max_slices=8" \
            > "$state/plugstack.conf"
    fi
    # cli_filter/lua reads cli_filter.lua next to slurm.conf.
    if [ -f "$repo/configs/cli_filter.lua" ]; then
        cp "$repo/configs/cli_filter.lua" "$state/cli_filter.lua" || return 1
    else
        # cli_filter/lua refuses to run without a script: a pass-through one
        # keeps the cluster usable; the tests of the sizing will fail.
        echo "cluster.sh: warning: $repo/configs/cli_filter.lua missing; using a pass-through script" >&2
        cat > "$state/cli_filter.lua" <<'LUA'
function slurm_cli_setup_defaults(options, early_pass) return slurm.SUCCESS end
function slurm_cli_pre_submit(options, pack_offset) return slurm.SUCCESS end
function slurm_cli_post_submit(offset, job_id, step_id) return slurm.SUCCESS end
LUA
    fi
    if [ -f "$repo/configs/genie.conf" ]; then
        cp "$repo/configs/genie.conf" "$state/genie.conf" || return 1
    else
        : > "$state/genie.conf"
    fi
    return 0
}

do_start() {
    [ $# -eq 4 ] || usage
    plugin=$3 repo=$4
    waited=0
    while owner_busy; do
        [ $waited -eq 0 ] && echo "cluster.sh: $state is in use by ctest pid $owner; waiting up to ${owner_wait}s"
        [ $waited -lt "$owner_wait" ] \
            || { echo "cluster.sh: $state still in use by ctest pid $owner" >&2; exit 1; }
        sleep 1; waited=$((waited + 1))
    done
    mkdir -p "$state" || exit 1
    rm -f "$state/owner"
    parent_is_ctest && echo $PPID > "$state/owner"
    # Leftovers of an earlier run go first, also when this run skips: the
    # cases must not find an old cluster and take it for this one.
    do_stop
    [ "$(id -u)" = 0 ] || skip "the test cluster runs its daemons as root (uid is $(id -u))"
    for p in munged mungekey slurmctld slurmd srun sbatch sinfo scontrol scancel runuser; do
        command -v $p > /dev/null 2>&1 || skip "$p not found (packages slurm-wlm, slurmctld, slurmd, munge)"
    done
    id munge > /dev/null 2>&1 || skip "no user munge (package munge)"
    if [ "$plugin" != none ] && [ ! -f "$plugin" ]; then
        skip "SPANK plugin $plugin does not exist (build the genie_spank target)"
    fi

    # Fresh state every time: job ids, node state and spool of an earlier run
    # must not matter.  Only our own subdirectories are removed.
    mkdir -p "$state" || exit 1
    rm -rf "$state/ctld" "$state/slurmd" "$state/dev" "$state/log" "$state/nofilter" "$mungedir"
    mkdir -p "$state/ctld" "$state/slurmd" "$state/dev" "$logs" "$state/nofilter" "$mungedir" || exit 1
    # munged refuses group/world-writable directories on its paths and must
    # own the directory it creates its socket in; clients (root) reach it.
    chmod 0755 "$state" "$mungedir" "$state/nofilter"
    chown munge:munge "$mungedir" || exit 1
    pick_ports || fail "$port_problem"
    host=$(hostname -s)
    write_configs "$plugin" "$repo" "$host" || fail "could not write the configs in $state"

    mungekey --create --keyfile="$mungedir/munge.key" --bits=1024 > /dev/null 2>&1 \
        || dd if=/dev/urandom of="$mungedir/munge.key" bs=128 count=1 2>/dev/null \
        || fail "could not create the munge key"
    chown munge:munge "$mungedir/munge.key" && chmod 0400 "$mungedir/munge.key" || exit 1

    # munged forks into the background; --force because parent directories
    # of a build tree may be group-writable, which munged otherwise refuses.
    runuser -u munge -- munged --force \
        --socket="$mungedir/munge.socket" --key-file="$mungedir/munge.key" \
        --log-file="$mungedir/munged.log" --pid-file="$mungedir/munged.pid" \
        --seed-file="$mungedir/munged.seed" > "$logs/munged.out" 2>&1 \
        || fail "munged did not start: $(cat "$logs/munged.out")"

    # -c: cold start, no state from an earlier run.
    slurmctld -c -f "$conf" > "$logs/slurmctld.out" 2>&1 \
        || fail "slurmctld did not start"
    slurmd -f "$conf" > "$logs/slurmd.out" 2>&1 \
        || fail "slurmd did not start"

    # Up when the node is idle; a node that came up down/drained (left
    # over reason) is resumed once.
    deadline=$(( $(date +%s) + start_timeout ))
    resumed=0
    while :; do
        st=$(timeout 10 sinfo -h -n "$host" -o %T 2>/dev/null | head -n 1)
        case "$st" in
            idle) break ;;
            down* | drain* | fail*)
                if [ $resumed -eq 0 ]; then
                    scontrol update nodename="$host" state=resume > /dev/null 2>&1
                    resumed=1
                fi ;;
        esac
        [ "$(date +%s)" -lt "$deadline" ] \
            || fail "node $host not idle after $start_timeout s (state: '${st:-no answer}')"
        for d in munged slurmctld slurmd; do
            pid_of $d > /dev/null || fail "$d exited during start-up"
        done
        sleep 0.5
    done
    # The cases tell "fixture skipped" (no file: they skip) from "cluster
    # died" (file there, no answer: they fail) by this file.
    date > "$state/up"
    echo "slurm test cluster up: SLURM_CONF=$conf"
}

case "$cmd" in
    start) do_start "$@" ;;
    stop)
        if owner_busy; then
            echo "slurm test cluster left running: it belongs to ctest pid $owner ($state/owner)"
            exit 0
        fi
        do_stop
        parent_is_ctest && rm -f "$state/owner"
        echo "slurm test cluster stopped ($state)" ;;
    status) do_status ;;
    *) usage ;;
esac
