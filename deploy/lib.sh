# Shared by the deploy/ scripts that start their own processes (bench.sh, api-fuzz.sh). Source it
# after `set -euo pipefail`: it makes a work directory ($work), kills every process recorded in
# $pids and removes $work on exit, and starts a throwaway redis-server.

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A free loopback TCP port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_redis [redis-server flags…]: a redis-server on a free loopback port in $work, no RDB
# snapshots; waits until it answers. Sets redis_port and redis_url.
start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --logfile "$work/redis.log" "$@" &
  pids+=($!)
  redis_url="redis://127.0.0.1:$redis_port"
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$(basename "$0"): redis-server did not start: $(tail -n 3 "$work/redis.log")" >&2
  return 1
}
