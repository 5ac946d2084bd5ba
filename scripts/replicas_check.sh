#!/usr/bin/env bash
# Two eft-server replicas behind nginx (examples/replicas/nginx.conf), as README's "Composing
# across machines" describes: both replicas become ready (grpc.health.v1 SERVING), requests
# through the balancer land on both, and after one replica is killed (SIGKILL) every request
# that had not started is served by the other. Needs nginx (apt-get install nginx).
#   scripts/replicas_check.sh [BUILD_DIR]   (default .build/debug: eft-server, eft-client, plugins)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-.build/debug}
dir=$(mktemp -d /tmp/eft-replicas-XXXXXX)
pids=()
nginx_pid=
# nginx's master is stopped with TERM (a fast shutdown that takes its worker along: a SIGKILLed
# master leaves the worker running, holding the script's output open).
cleanup() {
  [ -z "$nginx_pid" ] || { kill -TERM "$nginx_pid" 2> /dev/null; wait "$nginx_pid" 2> /dev/null; } || true
  for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
lb=$(free_port); r1=$(free_port); r2=$(free_port)

for i in 1 2; do
  port=$([ $i = 1 ] && echo "$r1" || echo "$r2")
  "$build/eft-server" examples/configs/facts.pbtxt --listen "tcp:$port" --log-requests 2> "$dir/replica$i.log" &
  pids+=($!)
done
# Readiness: each replica answers grpc.health.v1 SERVING once its models are loaded.
for port in "$r1" "$r2"; do
  for _ in $(seq 300); do "$build/eft-client" health --connect "tcp:$port" > /dev/null 2>&1 && break; sleep 0.1; done
  "$build/eft-client" health --connect "tcp:$port"
done

mkdir -p "$dir/tmp"
sed -e "s/@LB_PORT@/$lb/" -e "s/@REPLICA_1@/$r1/" -e "s/@REPLICA_2@/$r2/" examples/replicas/nginx.conf > "$dir/nginx.conf"
nginx -p "$dir" -c "$dir/nginx.conf" 2> "$dir/nginx.log" &
nginx_pid=$!
for _ in $(seq 100); do "$build/eft-client" health --connect "tcp:$lb" > /dev/null 2>&1 && break; sleep 0.1; done
"$build/eft-client" health --connect "tcp:$lb"

prompt='<|user|>\nWhere does Fenyar Balutam live?\n<|assistant|>\n'
ask() { "$build/eft-client" generate --connect "tcp:$lb" --timeout 60 -e --prompt "$prompt"; }
for _ in $(seq 8); do [ "$(ask)" = "The answer is Frostmoor." ]; done
n1=$(grep -c '^eft-server: generate' "$dir/replica1.log" || true)
n2=$(grep -c '^eft-server: generate' "$dir/replica2.log" || true)
echo "replicas: 8 requests through nginx: $n1 on replica 1, $n2 on replica 2"
[ "$n1" -ge 1 ] && [ "$n2" -ge 1 ] && [ $((n1 + n2)) -eq 8 ]

# Replica 1 dies; no request that had not started may be lost.
kill -9 "${pids[0]}"
wait "${pids[0]}" 2> /dev/null || true
for i in $(seq 12); do
  answer=$(ask) || { echo "request $i after the kill failed"; exit 1; }
  [ "$answer" = "The answer is Frostmoor." ]
done
m2=$(grep -c '^eft-server: generate' "$dir/replica2.log" || true)
echo "replicas: replica 1 killed; 12 more requests, all served (replica 2 now has $m2)"
[ "$m2" -eq $((n2 + 12)) ]
echo "replicas: load balancing and failover checked"
