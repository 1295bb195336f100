#!/usr/bin/env bash
# The standard bursar-bench scenarios on this machine: starts its own redis-server (AOF everysec,
# as in production) and 1 or 3 bursard instances (release builds), runs each scenario with the
# audit on, and prints one Markdown table (also written to bench-results/table.md with every run's
# JSON beside it).
#
#   deploy/bench.sh            the full set, including the 10-minute memory run (about 15 minutes)
#   deploy/bench.sh --quick    every scenario shortened (about 2 minutes; figures are rougher)
#
# Environment: BENCH_OUT (default bench-results), BENCH_MEMORY_SECONDS (default 600, --quick 30),
# BENCH_MEMORY_KEYS (default 100000), BENCH_CONFIG (release, the default and the only one whose figures mean anything, or debug: CI
# runs `--quick` on the debug build to keep the script honest).
# Exits non-zero when a scenario produced no result or an audit FAILED; the performance bars are
# reported in the table, never turned into an exit code.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
out=${BENCH_OUT:-bench-results}
if ((quick)); then dur=4; warm=1; mem=${BENCH_MEMORY_SECONDS:-30}; memwarm=5; else dur=15; warm=3; mem=${BENCH_MEMORY_SECONDS:-600}; memwarm=60; fi

command -v redis-server >/dev/null || { echo "bench.sh: redis-server not found (run deploy/install-deps.sh)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench.sh: python3 not found (run deploy/install-deps.sh)" >&2; exit 1; }
config=${BENCH_CONFIG:-release}
swift build -c "$config" --product bursard >/dev/null
swift build -c "$config" --product bursar-bench >/dev/null
bin=.build/$config

mkdir -p "$out/logs"
launched=0
source deploy/lib.sh
start_redis --appendonly yes --appendfsync everysec

# start_bursards N: starts N instances; sets targets (--target flags) and target_pids (--target-pid flags).
bursard_pids=()
start_bursards() {
  for p in "${bursard_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  bursard_pids=(); targets=(); target_pids=()
  for i in $(seq "$1"); do
    local port; port=$(free_port)
    launched=$((launched + 1))
    # Kept in $out/logs (warnings and errors only), so a failed audit can be explained afterwards.
    "$bin/bursard" --redis "$redis_url" --listen "127.0.0.1:$port" --ops 127.0.0.1:0 --log-level warning >"$out/logs/bursard-$launched.log" 2>&1 &
    local pid=$!
    pids+=("$pid"); bursard_pids+=("$pid")
    targets+=(--target "127.0.0.1:$port"); target_pids+=(--target-pid "$pid")
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  done
}

# run NAME BAR ARGS...: one scenario; its JSON goes to $out/NAME.json.
run() {
  local name=$1 bar=$2; shift 2
  echo "== $name: bursar-bench $*" >&2
  "$bin/bursar-bench" --redis "$redis_url" --audit --json "$@" >"$out/$name.json" || true
  printf '%s\t%s\t%s\n' "$name" "$bar" "$*" >>"$out/scenarios.tsv"
}

: >"$out/scenarios.tsv"
start_bursards 1
run closed-1x "bursard >= 0.8 x direct floor" "${targets[@]}" "${target_pids[@]}" --direct "$redis_url" \
  --connections 8 --pipeline 16 --duration "$dur" --warmup "$warm" --keys 1000 --projects 10 --deny-share 0.1
run closed-1x-serial "latency at 1 in flight" "${targets[@]}" "${target_pids[@]}" --direct "$redis_url" \
  --connections 4 --pipeline 1 --duration "$dur" --warmup "$warm" --keys 1000 --projects 10 --deny-share 0.1
start_bursards 3
run open-5000-3x "p99 <= 1 ms, p99.9 <= 5 ms, <= 10 us CPU" "${targets[@]}" "${target_pids[@]}" \
  --rate 5000 --connections 12 --duration "$dur" --warmup "$warm" --keys 10000 --projects 10 --deny-share 0.1
run hot-key-3x "audit 0 (3 instances, one key)" "${targets[@]}" "${target_pids[@]}" \
  --connections 12 --pipeline 8 --duration "$dur" --warmup "$warm" --keys 1 --projects 1 --deny-share 0 \
  --project-rpm 6000 --project-tpm 1500000 --project-budget 20000000
run zipf-3x "audit 0 (skewed keys)" "${targets[@]}" "${target_pids[@]}" \
  --connections 12 --pipeline 8 --duration "$dur" --warmup "$warm" --keys 10000 --projects 10 --deny-share 0.2 --zipf 1.1
start_bursards 1
run memory-100k "RSS flat (+-10%) after warmup" "${targets[@]}" "${target_pids[@]}" \
  --rate 2000 --connections 4 --duration "$mem" --warmup "$memwarm" --keys "${BENCH_MEMORY_KEYS:-100000}" --projects 10 --deny-share 0.1

python3 - "$out" "$quick" "$config" >"$out/table.md" <<'PY' || status=$?
import json, sys, os, datetime, re
out, quick, config = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
broken = []
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "scenarios.tsv"))]
def f(x, d=0):
    return "—" if x is None else f"{x:,.{d}f}"
cpus = os.cpu_count()
print(f"bursar-bench, {datetime.date.today().isoformat()}, {cpus} cores, bursard + Redis 7 (AOF everysec) + harness on one machine"
      + (" (--quick: short runs)" if quick else "") + ("" if config == "release" else f" ({config} build: figures not comparable)"))
print()
print("| scenario | mode | decisions/s | p50 µs | p99 µs | p99.9 µs | CPU µs/decision | RSS start→end MiB | audit | bar | verdict |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---|")
for name, bar, args in rows:
    try:
        data = json.load(open(os.path.join(out, name + ".json")))
    except Exception as e:
        print(f"| {name} | — | failed to run: {e} | | | | | | | {bar} | not measured |")
        broken.append(f"{name}: no result")
        continue
    b, d = data.get("bursard"), data.get("direct")
    verdict = ""
    if name.startswith("closed-1x") and b and d:
        ratio = data.get("ratio_to_direct") or 0
        verdict = f"ratio {ratio:.2f}" + ("" if name.endswith("serial") else (" — met" if ratio >= 0.8 else " — NOT met"))
    elif name.startswith("open") and b:
        cpu = (b.get("cpu_s_per_1000_decisions") or 0) * 1000
        ok = b["decisions"] > 0 and not (b["errors"] or b["unanswered"] or b["shed"]) and b["p99_us"] <= 1000 and b["p999_us"] <= 5000 and cpu <= 10
        verdict = "met" if ok else "NOT met"
    elif name.startswith("memory") and b and b.get("rss_growth_percent") is not None:
        verdict = f"{b['rss_growth_percent']:+.1f}% — " + ("met" if abs(b["rss_growth_percent"]) <= 10 else "NOT met")
    for label, r in (("bursard", b), ("direct floor", d)):
        if not r: continue
        cpu = r.get("cpu_s_per_1000_decisions")
        rss = "—" if r.get("rss_start_kib") is None else f"{r['rss_start_kib']/1024:.1f}→{r['rss_end_kib']/1024:.1f}"
        audit = r.get("audit_verdict") or "—"
        if audit in ("FAILED", "—"): broken.append(f"{name} ({label}): audit {audit}")
        a = r.get("audit") or {}
        bad = sum(a.get(k, 0) for k in ("over_admitted_spend", "over_admitted_requests", "over_admitted_tokens", "lost_debits", "double_debits"))
        if name.startswith(("hot", "zipf")) and label == "bursard":
            verdict = "met" if audit == "passed" and bad == 0 else "NOT met"
        extra = f" (errors {r['errors']}, unanswered {r['unanswered']}, shed {r['shed']})" if r["errors"] or r["unanswered"] or r["shed"] else ""
        print(f"| {name} | {label} | {f(r['decisions_per_s'])} | {f(r['p50_us'])} | {f(r['p99_us'])} | {f(r['p999_us'])} | "
              f"{f(None if cpu is None else cpu*1000, 1)} | {rss} | {audit}{extra} | {bar if label == 'bursard' else ''} | {verdict if label == 'bursard' else ''} |")
print()
print("Commands (each also with --redis URL --audit --json):")
for name, bar, args in rows:
    args = re.sub(r"--target \S+", "--target HOST:PORT", args)
    args = re.sub(r"--target-pid \d+", "--target-pid PID", args)
    args = re.sub(r"--direct \S+", "--direct REDIS_URL", args)
    print(f"- {name}: `bursar-bench {args}`")
if broken:
    print()
    print("BROKEN: " + "; ".join(broken))
    sys.exit(1)
PY
status=${status:-0}
cat "$out/table.md"
exit "$status"
