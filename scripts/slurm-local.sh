#!/bin/bash
# A one-node Slurm cluster on this machine, for trying and testing
# `hark cv --emit slurm` (Debian's slurm-wlm 22.05 and munge; run as root,
# no systemd needed).
#
#   scripts/slurm-local.sh run CMD [ARG...]  start, run CMD with SLURM_CONF
#                                            set, stop; exits with CMD's status
#   scripts/slurm-local.sh start             start and leave running
#   scripts/slurm-local.sh stop              stop what `start` started
#
# Packages (slurmctld, slurmd, slurm-client, munge) are installed when
# missing. Everything else lives in $HARK_SLURM_DIR (default
# /tmp/hark-slurm): the config, state, logs and the daemons' PID files.
# No cgroups and no accounting: proctrack/linuxproc and task/none, since
# slurmd 22.05 fails with CgroupPlugin=disabled but runs without cgroup.conf.
set -euo pipefail

DIR=${HARK_SLURM_DIR:-/tmp/hark-slurm}
CONF=$DIR/slurm.conf
NODE=hark-node
WAIT=${HARK_SLURM_WAIT:-30} # seconds, for every wait below

say() { echo "slurm-local: $*" >&2; }

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
        command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || { say "not root: cannot install slurm"; return 1; }
    say "installing slurmctld slurmd slurm-client munge"
    local pkgs=(slurmctld slurmd slurm-client munge)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >"$DIR/apt.log" 2>&1 ||
        { apt-get update -q >>"$DIR/apt.log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >>"$DIR/apt.log" 2>&1; } ||
        { say "apt-get failed; see $DIR/apt.log"; return 1; }
}

configure() {
    local cpus mem host
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
    host=$(hostname -s)
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat >"$CONF" <<EOF
ClusterName=hark
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
NodeName=$NODE NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

# Waits until `$@` succeeds, at most $WAIT seconds.
wait_for() {
    local what=$1 deadline=$((SECONDS + WAIT))
    shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            say "gave up waiting for $what after $WAIT s"
            return 1
        fi
        sleep 0.2
    done
}

node_idle() { [ "$(SLURM_CONF=$CONF sinfo -h -n "$NODE" -o %t)" = idle ]; }

start() {
    mkdir -p "$DIR"
    install
    configure
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        # munged runs as munge, so its PID file lives in its own /run/munge.
        runuser -u munge -- munged --pid-file=/run/munge/hark-munged.pid ||
            { say "munged did not start"; return 1; }
        # munged forks; its PID file is ours to stop it by.
        wait_for "munged" sh -c 'munge -n | unmunge'
        cp /run/munge/hark-munged.pid "$DIR/munged.pid"
    fi
    slurmctld -f "$CONF" || { say "slurmctld did not start; see $DIR/log/slurmctld.log"; return 1; }
    wait_for "slurmctld" env SLURM_CONF="$CONF" scontrol ping
    slurmd -f "$CONF" -N "$NODE" || { say "slurmd did not start; see $DIR/log/slurmd.log"; return 1; }
    wait_for "node $NODE to be idle" node_idle
    say "up: $(SLURM_CONF=$CONF sinfo -h -o '%P %a %D %t %C') (SLURM_CONF=$CONF)"
}

# Stops a daemon by the PID in `file`, waiting until it has gone.
stop_pid() {
    local file=$1 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if kill "$pid" 2>/dev/null; then
        wait_for "PID $pid to exit" sh -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop() {
    stop_pid "$DIR/slurmd.pid"
    stop_pid "$DIR/slurmctld.pid"
    stop_pid "$DIR/munged.pid" # only there when this script started munged
    say "stopped"
}

case ${1:-} in
start) start ;;
stop) stop ;;
run)
    shift
    [ $# -gt 0 ] || { say "run needs a command"; exit 2; }
    trap stop EXIT
    start
    SLURM_CONF=$CONF "$@"
    ;;
*)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
