#!/usr/bin/env bash
# Stop what start-slurm.sh DIR started (slurmctld, slurmd, munged); waits until they are gone.
D=${1:?usage: stop-slurm.sh DIR}
export SLURM_CONF="$D/slurm.conf"
# alive PID: running, and not a zombie (an init that never reaps must not make us wait)
alive() { kill -0 "$1" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"; }
# stop_pid PIDFILE [now]: wait up to 5 s for the process to go (TERM first if "now"), TERM, KILL
stop_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  [ "${2:-}" = now ] && kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do alive "$pid" || return 0; sleep 0.1; done
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do alive "$pid" || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
# cancel every job first: a job step outlives slurmd otherwise
if scancel --user="$(id -un)" >/dev/null 2>&1; then
  for _ in $(seq 1 50); do
    [ -z "$(squeue -h -t RUNNING,COMPLETING,PENDING -o %i 2>/dev/null)" ] && break
    sleep 0.1
  done
fi
scontrol shutdown >/dev/null 2>&1 || true      # stops slurmctld and slurmd, not munged
stop_pid "$D/slurmctld.pid"
stop_pid "$D/slurmd.pid"
stop_pid "$D/munge/munged.pid" now
exit 0
