#!/usr/bin/env bash
# Stop the daemons started by slurm-up.sh, by their PID files (no pkill).
set -u
for pf in /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid; do
  [ -s "$pf" ] && { kill "$(cat "$pf")" 2>/dev/null && echo "stopped $(basename "$pf" .pid)"; rm -f "$pf"; }
done
sleep 1
[ -x /etc/init.d/mariadb ] && [ -s /run/mysqld/mysqld.pid ] && /etc/init.d/mariadb stop >/dev/null && echo "stopped mariadb"
[ -s /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null && echo "stopped munged"
true
