#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for testing the SLURM profile.
#
#   scripts/slurm_cluster.sh install        # root + apt-get: Debian's slurm, munge, mariadb
#   scripts/slurm_cluster.sh start DIR [--no-accounting]
#                                           # a fresh cluster: state, logs, pid files under DIR;
#                                           # --no-accounting: no slurmdbd/MariaDB, sacct fails
#   scripts/slurm_cluster.sh stop DIR
#   scripts/slurm_cluster.sh check          # exit 0 if this machine can run it, else says why
#
# Daemons are started directly (no systemd, no cgroups): proctrack/linuxproc, task/none,
# select/cons_tres, everything on 127.0.0.1, MariaDB on its Unix socket only. The node
# advertises 8 CPUs, 32 GB and 2 GPUs (GRES on plain files: enough to check what jobs ask
# for; nothing here runs on a GPU) whatever the machine has (SlurmdParameters=config_overrides).
# Partitions: `cpu` (default) and `gpu`, both on the one node. Accounting goes through
# slurmdbd into MariaDB, so sacct works.
#
# The configuration goes to /etc/slurm (state, logs and pid files to DIR): the SLURM plugin's
# job step removes SLURM_CONF from the environment of its inner `srun`, so a cluster whose
# slurm.conf is not in the default place fails every job ("fetch_config: DNS SRV lookup
# failed"). A /etc/slurm/slurm.conf that this script did not write is never overwritten.
set -euo pipefail
# The daemons live in sbin, which a non-login shell's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
CLUSTER=lltax
CONF_DIR=/etc/slurm
MARKER="# written by lltax scripts/slurm_cluster.sh"
NODE_CPUS=8
NODE_MEMORY_MB=32000
NODE_GPUS=2

die() { echo "slurm_cluster: $*" >&2; exit 1; }

can_run() {
    [[ $(id -u) == 0 ]] || { echo "not root (the daemons and MariaDB need root)"; return 1; }
    for cmd in slurmctld slurmd slurmdbd munged mysqld sbatch sacct; do
        command -v "$cmd" > /dev/null || { echo "$cmd is not installed (scripts/slurm_cluster.sh install)"; return 1; }
    done
}

install() {
    [[ $(id -u) == 0 ]] || die "install needs root"
    command -v apt-get > /dev/null || die "install needs apt-get (Debian/Ubuntu)"
    local missing=()
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2> /dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    ((${#missing[@]})) || { echo "slurm_cluster: packages already installed"; return 0; }
    apt-get update -qq
    # policy-rc.d in containers stops the packages' services from starting: we start them.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for ((i = 0; i < seconds * 5; i++)); do
        "$@" > /dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "timed out after ${seconds}s waiting for $what"
}

start() {
    local dir=$1 accounting=${2:-}
    why=$(can_run) || die "$why"
    mkdir -p "$dir"/{state,spool,log,gpu} "$CONF_DIR"
    dir=$(cd "$dir" && pwd)
    if [[ -f $CONF_DIR/slurm.conf ]] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf"; then
        die "$CONF_DIR/slurm.conf exists and is not ours: is this machine part of a real cluster?"
    fi
    # A cluster this script started before (its state folder is named in the marker line) is
    # stopped first: two slurmctlds cannot share the ports.
    local previous
    previous=$(sed -n "s|^$MARKER (state in \(.*\))\$|\1|p" "$CONF_DIR/slurm.conf" 2> /dev/null || true)
    [[ -n $previous && -d $previous ]] && stop "$previous"
    for daemon in slurmctld slurmd slurmdbd; do
        pgrep -x -r D,R,S,T "$daemon" > /dev/null && die "$daemon is already running (not started by this script): stop it first"
    done
    local host
    host=$(hostname -s)
    for ((i = 0; i < NODE_GPUS; i++)); do touch "$dir/gpu/nvidia$i"; done

    cat > "$CONF_DIR/slurm.conf" << EOF
$MARKER (state in $dir)
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# squeue keeps finished jobs this long: the squeue status command needs to see them end.
MinJobAge=600
KillWait=5
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
$(if [[ $accounting == --no-accounting ]]; then
    echo "AccountingStorageType=accounting_storage/none"
else
    echo "AccountingStorageType=accounting_storage/slurmdbd"
    echo "AccountingStorageHost=127.0.0.1"
    echo "AccountingStorageTRES=gres/gpu"
    echo "# sacct shows the comment snakemake gives each job (its rule and wildcards)."
    echo "AccountingStoreFlags=job_comment"
fi)
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$NODE_MEMORY_MB Gres=gpu:$NODE_GPUS State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
    echo "NodeName=$host Name=gpu File=$dir/gpu/nvidia[0-$((NODE_GPUS - 1))]" > "$CONF_DIR/gres.conf"
    cat > "$CONF_DIR/slurmdbd.conf" << EOF
$MARKER
AuthType=auth/munge
DbdHost=$host
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db_$CLUSTER
EOF
    chmod 600 "$CONF_DIR/slurmdbd.conf"
    unset SLURM_CONF

    # munge: the packages' key; run as its own user like the service would.
    mkdir -p /run/munge && chown munge:munge /run/munge
    pgrep -x munged > /dev/null || runuser -u munge -- munged
    wait_for 10 munge munge -n

    if [[ $accounting != --no-accounting ]]; then
        start_accounting "$dir"
    fi
    slurmctld
    wait_for 30 slurmctld scontrol ping
    slurmd
    wait_for 30 "the node to come up" bash -c "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'"
    echo "slurm_cluster: up (config $CONF_DIR/slurm.conf, state and logs in $dir${accounting:+, $accounting})"
}

start_accounting() {
    local dir=$1
    # MariaDB on its socket only; root authenticates by the Unix socket (Debian's default).
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if ! mysqladmin --socket=/run/mysqld/mysqld.sock ping > /dev/null 2>&1; then
        (mysqld --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
            > "$dir/log/mysqld.log" 2>&1 &)
    fi
    wait_for 30 MariaDB mysqladmin --socket=/run/mysqld/mysqld.sock ping
    # A fresh cluster numbers its jobs from 1 again: start its accounting from empty too.
    mysql --socket=/run/mysqld/mysqld.sock -e "DROP DATABASE IF EXISTS slurm_acct_db_$CLUSTER"

    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" > /dev/null 2>&1 || true
}

stop() {
    local dir
    dir=$(cd "$1" && pwd)
    local pids=()
    for daemon in slurmd slurmctld slurmdbd; do
        [[ -f $dir/$daemon.pid ]] && pids+=("$(cat "$dir/$daemon.pid")")
    done
    ((${#pids[@]})) || return 0
    kill "${pids[@]}" 2> /dev/null || true
    for ((i = 0; i < 100; i++)); do  # until they are gone (their ports free), at most 20 s
        ps -o stat= -p "${pids[*]}" 2> /dev/null | grep -qv "^Z" || break
        sleep 0.2
    done
    rm -f "$dir"/{slurmd,slurmctld,slurmdbd}.pid
    # MariaDB and munge stay up: cheap, and another cluster directory may use them.
    return 0
}

case ${1:-} in
    install) install ;;
    start)
        [[ $# == 2 || ($# == 3 && $3 == --no-accounting) ]] || die "usage: $0 start DIR [--no-accounting]"
        start "$2" "${3:-}" ;;
    stop) [[ $# == 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
    check) can_run ;;
    *) die "usage: $0 install | start DIR [--no-accounting] | stop DIR | check" ;;
esac
