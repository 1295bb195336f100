#!/usr/bin/env bash
# Throughput on a Redis Cluster of 1 master and of 3 masters, on this machine (release builds).
# For each size: a fresh cluster on loopback (AOF everysec, no replicas; the nodes joined with
# CLUSTER MEET, the slots split evenly), then K bursar-bench processes at once, each seeding its
# own organization. An organization is one hash tag, so one slot, so one master: K organizations
# is how load spreads over masters. First the floor (bursar's scripts straight to the cluster,
# --direct), then the same through one bursard. Also measured: the Redis CPU time per decision
# (user + system of every master, from /proc), which gives what one master can decide per second
# of a core of its own: the scaling model's input on a machine (like this 2-core one) too small to
# give each master, bursard and the harness their own cores. Prints a Markdown table; every run's
# JSON goes to $BENCH_OUT.
#
#   deploy/cluster-bench.sh            10 s runs, K=3 (about 70 seconds after the build)
#   CLUSTER_BENCH_SECONDS=4 CLUSTER_BENCH_PROCS=3 deploy/cluster-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${CLUSTER_BENCH_SECONDS:-10}
procs=${CLUSTER_BENCH_PROCS:-3}
out=${BENCH_OUT:-bench-results/cluster}
config=${BENCH_CONFIG:-release}
command -v redis-cli >/dev/null || { echo "cluster-bench.sh: redis-cli not found (run deploy/install-deps.sh)" >&2; exit 1; }
swift build -c "$config" --product bursard >/dev/null
swift build -c "$config" --product bursar-bench >/dev/null
bin=.build/$config
mkdir -p "$out"
source deploy/lib.sh

# start_cluster N: N masters; sets cluster_url and node_ports.
start_cluster() {
  node_ports=(); bus_ports=(); node_pids=()
  local addrs=()
  for i in $(seq "$1"); do
    local port bus dir
    port=$(free_port); bus=$(free_port); dir="$work/c$1-$i"; mkdir -p "$dir"
    redis-server --port "$port" --cluster-port "$bus" --bind 127.0.0.1 --dir "$dir" --save '' --logfile "$dir/redis.log" \
      --cluster-enabled yes --cluster-config-file nodes.conf --appendonly yes --appendfsync everysec &
    pids+=($!); node_pids+=($!)
    node_ports+=("$port"); bus_ports+=("$bus"); addrs+=("127.0.0.1:$port")
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  # Join the nodes and split the 16384 slots evenly (redis-cli --cluster create wants 3 masters at least).
  local per=$((16384 / $1)) n=0
  for i in "${!node_ports[@]}"; do
    local p=${node_ports[$i]} low=$((i * per)) high=$(((i + 1) * per - 1))
    ((i == $1 - 1)) && high=16383
    [ "$i" -gt 0 ] && redis-cli -p "${node_ports[0]}" cluster meet 127.0.0.1 "$p" "${bus_ports[$i]}" >/dev/null
    redis-cli -p "$p" cluster addslotsrange "$low" "$high" >/dev/null
  done
  for _ in $(seq 200); do
    local ok=1
    for p in "${node_ports[@]}"; do redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || ok=0; done
    ((ok)) && break
    sleep 0.1
  done
  cluster_url="redis+cluster://127.0.0.1:${node_ports[0]}"
}

# redis_ticks: user + system clock ticks of every node so far.
redis_ticks() {
  local t=0
  for p in "${node_pids[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}

# bench NAME ARGS…: K bench processes at once; prints the summed decisions/s and the worst p99 (µs).
bench() {
  local name=$1; shift
  local bpids=() t0
  t0=$(redis_ticks)
  for k in $(seq "$procs"); do
    "$bin/bursar-bench" --redis "$cluster_url" --json --audit --duration "$dur" --warmup 1 --keys 200 --projects 4 \
      --deny-share 0.1 --connections 4 --pipeline 16 "$@" >"$out/$name-$k.json" 2>"$out/$name-$k.err" &
    bpids+=($!)
  done
  for p in "${bpids[@]}"; do wait "$p" || true; done
  python3 - "$out" "$name" "$procs" "$(( $(redis_ticks) - t0 ))" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
out, name, procs, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
total, p99, verdicts, decisions = 0.0, 0, [], 0
for k in range(1, procs + 1):
    d = json.load(open(f"{out}/{name}-{k}.json"))
    r = d.get("bursard") or d.get("direct") or d
    total += r["decisions_per_s"]; p99 = max(p99, int(r["p99_us"])); verdicts.append(str(r.get("audit_verdict", "?")))
    decisions += r["decisions"]
# Redis CPU over the whole phase (warmup and drain included) per measured decision: an upper bound.
us = ticks * 1e6 / hz / decisions if decisions else 0
print(f"{total:.0f}\t{p99}\t{','.join(verdicts)}\t{us:.0f}")
EOF
}

printf '| masters | organizations on | floor: scripts straight to Redis, decisions/s (worst p99) | Redis CPU µs per decision | through one bursard, decisions/s (worst p99) | Redis CPU µs per decision | audits |\n|---|---|---|---|---|---|---|\n' >"$out/table.md"
for masters in 1 3; do
  start_cluster "$masters"
  IFS=$'\t' read -r floor floor_p99 floor_audit floor_cpu < <(bench "direct-$masters" --direct "$cluster_url")
  port=$(free_port)
  "$bin/bursard" --redis "$cluster_url" --listen "127.0.0.1:$port" --ops 127.0.0.1:0 --log-level warning >"$work/bursard-$masters.log" 2>&1 &
  bpid=$!; pids+=("$bpid")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  IFS=$'\t' read -r through through_p99 through_audit through_cpu < <(bench "bursard-$masters" --target "127.0.0.1:$port" --target-pid "$bpid")
  kill "$bpid"; wait "$bpid" 2>/dev/null || true
  # Which masters the organizations' slots landed on (masters holding any key).
  used=0
  for p in "${node_ports[@]}"; do [ "$(redis-cli -p "$p" dbsize)" -gt 0 ] && used=$((used + 1)); done
  printf '| %s | %s of %s | %s (%s µs) | %s | %s (%s µs) | %s | %s; %s |\n' "$masters" "$used" "$masters" "$floor" "$floor_p99" "$floor_cpu" "$through" "$through_p99" "$through_cpu" "$floor_audit" "$through_audit" >>"$out/table.md"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
done
cat "$out/table.md"
