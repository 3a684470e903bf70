#!/usr/bin/env bash
# Stop the daemons started by scripts/slurm_up.sh, each by its pid file.
set -u
STATE=/var/lib/fmscale-slurm
for name in slurmd slurmctld slurmdbd mariadb; do
  pid_file="$STATE/$name.pid"
  if [ -s "$pid_file" ]; then
    kill "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file"
  fi
done
pkill -x munged 2>/dev/null || true
exit 0
