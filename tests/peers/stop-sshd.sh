#!/usr/bin/env bash
# Stop what start-sshd.sh DIR started: the listening sshd and the sessions it forked.
D=${1:?usage: stop-sshd.sh DIR}
pid=$(cat "$D/sshd.pid" 2>/dev/null) || exit 0
[ -n "$pid" ] || exit 0
sessions=$(pgrep -P "$pid" 2>/dev/null || true)
kill "$pid" $sessions 2>/dev/null || true
# gone, or a zombie (an init that never reaps must not make us wait)
alive() { kill -0 "$1" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"; }
for _ in $(seq 1 50); do alive "$pid" || exit 0; sleep 0.1; done
kill -9 "$pid" 2>/dev/null || true
