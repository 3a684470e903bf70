#!/usr/bin/env bash
# Stop the daemons started by scripts/slurm_up.sh, each by its pid file.
set -u
STATE=/var/lib/fmscale-slurm
for pid_file in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/slurmdbd.pid" /run/mysqld/mariadb.pid; do
  if [ -s "$pid_file" ]; then
    kill "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file"
  fi
done
pkill -x munged 2>/dev/null || true
exit 0
