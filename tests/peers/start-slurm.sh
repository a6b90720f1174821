#!/usr/bin/env bash
# Start a throwaway single-node SLURM cluster (munged + slurmctld + slurmd) with everything
# (config, state, logs, sockets, pid files) under DIR; nothing system-wide is touched.
#   tests/peers/start-slurm.sh DIR        # then: export SLURM_CONF=DIR/slurm.conf
#   tests/peers/stop-slurm.sh DIR
# Ports: SLURMCTLD_PORT (default 6817) and SLURMD_PORT (6818); set both when two clusters
# may run at once. Needs root and: scripts/install-peers (slurmctld slurmd slurm-client munge).
# Memory: with a cgroup v1 memory controller (/sys/fs/cgroup/memory), task/cgroup enforces each
# job's --mem and a job that outgrows it ends OUT_OF_MEMORY; SLURM_CGROUP=no turns that off
# (and it is off where there is no such controller). FirstJobId is random, so two clusters on
# one machine never share a job's cgroup.
set -euo pipefail
D=${1:?usage: start-slurm.sh DIR}
mkdir -p "$D"
D=$(cd "$D" && pwd)   # absolute: the daemons chdir
mkdir -p "$D"/{state,spool,log,munge,out}
chmod 700 "$D/munge"
NCPU=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
FIRST_JOB_ID=${SLURM_FIRST_JOB_ID:-$(( (RANDOM * 32768 + RANDOM) % 50000000 + 1000 ))}

if [ "${SLURM_CGROUP:-auto}" != no ] && [ -w /sys/fs/cgroup/memory ] \
   && [ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
  CGROUP=yes
  PLUGIN_LINES="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/cgroup"
  cat > "$D/cgroup.conf" <<CG
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
ConstrainCores=no
ConstrainDevices=no
CG
else
  CGROUP=no
  PLUGIN_LINES="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none"
  rm -f "$D/cgroup.conf"
fi

# munge: a private key and socket
if [ ! -f "$D/munge/munge.key" ]; then
  dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$D/munge/munge.key"
fi
/usr/sbin/munged --force \
  --key-file="$D/munge/munge.key" --socket="$D/munge/munge.socket" \
  --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" \
  --seed-file="$D/munge/munged.seed"

cat > "$D/slurm.conf" <<CONF
ClusterName=testcluster
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
$PLUGIN_LINES
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
OverTimeLimit=0
MinJobAge=300
FirstJobId=$FIRST_JOB_ID
MaxArraySize=1001
NodeName=localhost CPUs=$NCPU RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$D/slurm.conf"
/usr/sbin/slurmctld -f "$D/slurm.conf" -i            # -i: start from empty state; daemonizes
/usr/sbin/slurmd -f "$D/slurm.conf" -N localhost     # -N: the node's name in slurm.conf

st=unknown
for _ in $(seq 1 150); do                            # up to 30 s for the node to be idle
  st=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
  [ "$st" = "idle" ] && break
  sleep 0.2
done
echo "SLURM_CONF=$D/slurm.conf  node state: $st  cgroup: $CGROUP"
[ "$st" = "idle" ]
