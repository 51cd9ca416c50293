#!/bin/bash
# A real two-node Ray cluster confined to 127.0.0.1, then one command on it.
# Runs as: unshare --net --pid --fork --kill-child --mount-proc ray_cluster.sh TMP BIN CMD…
# A new network namespace has only a loopback interface, so every Ray process and port is
# on 127.0.0.1 (Ray 2.60 binds the machine's external interface otherwise, whatever
# --node-ip-address says). The PID namespace ends with this script: stopping the
# `unshare` process by its PID stops every Ray process with it.
set -u
TMP=$1; BIN=$2; shift 2
ip link set lo up
export RAY_USAGE_STATS_ENABLED=0
# No token auth on this loopback-only cluster, whatever ~/.ray/auth_token a local
# `ray.init()` left behind (with one, the head enables auth and the worker cannot join).
export RAY_AUTH_MODE=disabled
common=(--node-ip-address=127.0.0.1 --num-cpus=1 --disable-usage-stats)
# Ray's session sockets must fit AF_UNIX's 107 bytes: a short RAY_TMP, not pytest's.
"$BIN/ray" start --head --port=6390 --include-dashboard=false --temp-dir="${RAY_TMP:-$TMP/ray}" \
  "${common[@]}" >"$TMP/head.log" 2>&1 || { echo "head failed"; exit 90; }
ps -e -o pid= | sort >"$TMP/before_worker.pids"
"$BIN/ray" start --address=127.0.0.1:6390 "${common[@]}" >"$TMP/worker.log" 2>&1 \
  || { echo "worker failed"; exit 91; }
# the second node's own processes (its raylet and agents), for a test that kills that node
ps -e -o pid= | sort | comm -13 "$TMP/before_worker.pids" - | tr -d ' ' >"$TMP/worker_node.pids"
for _ in $(seq 60); do  # the worker node has registered
  "$BIN/ray" status --address=127.0.0.1:6390 >"$TMP/status.txt" 2>&1
  [ "$(grep -c ' node_' "$TMP/status.txt")" -ge 2 ] && break
  sleep 1
done
ss -ltnu >"$TMP/listening.txt"
"$@"
