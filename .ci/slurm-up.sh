#!/usr/bin/env bash
# Start a real single-node SLURM 22.05 cluster (Debian 12 packages) as root,
# without systemd.  Usage:  SLURM_ACCT=none|dbd bash slurm-up.sh
#   none (default): no accounting; Snakemake must use --slurm-status-command squeue
#   dbd           : slurmdbd + local MariaDB, so `sacct` works (plugin default)
# Switching modes: run slurm-down.sh first (running daemons are not restarted).
set -euo pipefail
MODE=${SLURM_ACCT:-none}
export DEBIAN_FRONTEND=noninteractive
H=$(hostname -s)
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2/1024*0.8}' /proc/meminfo)   # RealMemory a bit below the machine's
NCPU=$(nproc)
# true if the PID in pidfile $1 is a live (non-zombie) process; PID 1 here may not reap zombies
alive() { [ -s "$1" ] && [ -r /proc/$(cat "$1")/status ] && ! grep -q '^State:.*Z' /proc/$(cat "$1")/status; }

# --- 1. packages (slurm-client pulls slurm-wlm-basic-plugins; the slurm-wlm metapackage is not needed)
pkgs="slurmctld slurmd slurm-client munge"
[ "$MODE" = dbd ] && pkgs="$pkgs slurmdbd mariadb-server"
apt-get update -qq
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null

# --- 2. munge (the munge postinst normally creates the key already)
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
alive /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null

# --- 3. slurm.conf
install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
install -d /var/spool/slurmd
if [ "$MODE" = dbd ]; then
  ACCT="JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
  ACCT="JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none"
fi
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MailProg=/bin/true
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$ACCT
JobCompType=jobcomp/none
# keep finished jobs visible to squeue/scontrol for an hour: the plugin's squeue mode needs >= 3x its first
# poll interval, and tests/test_slurm.py reads every job of a run back from the controller afterwards
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$H NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF

# --- 4. accounting database (dbd mode only)
if [ "$MODE" = dbd ]; then
  alive /run/mysqld/mysqld.pid || /etc/init.d/mariadb start >/dev/null
  mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
  chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf
  alive /run/slurmdbd.pid || slurmdbd
  for i in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.5; done
  sacctmgr -i add cluster ci >/dev/null || true     # 'already exists' is fine; also creates account root
fi

# --- 5. slurmctld + slurmd (they daemonise themselves; PIDs in /run/*.pid)
alive /run/slurmctld.pid || slurmctld
alive /run/slurmd.pid || slurmd
for i in $(seq 1 60); do sinfo -h -o %T 2>/dev/null | grep -qx idle && break; sleep 0.5; done
sinfo
srun -N1 -n1 hostname
