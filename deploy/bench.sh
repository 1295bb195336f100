#!/usr/bin/env bash
# The standard bursar-bench scenarios on this machine: starts its own redis-server (AOF everysec,
# as in production) and 1 or 3 bursard instances (release builds), runs each scenario with the
# audit on, and prints one Markdown table (also written to bench-results/table.md with every run's
# JSON beside it).
#
#   deploy/bench.sh            the full set, including the 10-minute memory run (about 17 minutes)
#   deploy/bench.sh --quick    every scenario shortened (about 3 minutes; figures are rougher)
#
# Environment: BENCH_BURSARD_ARGS (extra flags for every bursard, e.g. '--latency-target-ms 25'),
# BENCH_HARNESS_ARGS (extra flags for every bursar-bench run, e.g. '--loops 1'), BENCH_OUT (default bench-results), BENCH_MEMORY_SECONDS (default 600, --quick 30),
# BENCH_MEMORY_KEYS (default 100000), BENCH_CONFIG (release, the default and the only one whose figures mean anything, or debug: CI
# runs `--quick` on the debug build to keep the script honest), BENCH_SCRATCH (the build directory,
# default .build), BENCH_JOBS (build jobs, default swift build's), BENCH_ONLY (space-separated
# scenario names or globs, e.g. 'overload-*': run only those; default every scenario).
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
scratch=${BENCH_SCRATCH:-.build}
build=(swift build -c "$config" --scratch-path "$scratch" ${BENCH_JOBS:+-j "$BENCH_JOBS"})
"${build[@]}" --product bursard >/dev/null
"${build[@]}" --product bursar-bench >/dev/null
bin=$scratch/$config

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
    "$bin/bursard" --redis "$redis_url" --listen "127.0.0.1:$port" --ops 127.0.0.1:0 --log-level warning ${BENCH_BURSARD_ARGS:-} >"$out/logs/bursard-$launched.log" 2>&1 &
    local pid=$!
    pids+=("$pid"); bursard_pids+=("$pid")
    targets+=(--target "127.0.0.1:$port"); target_pids+=(--target-pid "$pid")
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  done
}

# selected NAME: whether BENCH_ONLY (if set) names the scenario.
selected() {
  [[ -z "${BENCH_ONLY:-}" ]] && return 0
  local pattern
  for pattern in $BENCH_ONLY; do
    # shellcheck disable=SC2053 # a glob on purpose
    [[ "$1" == $pattern ]] && return 0
  done
  return 1
}

# run NAME BAR ARGS...: one scenario; its JSON goes to $out/NAME.json.
run() {
  local name=$1 bar=$2; shift 2
  selected "$name" || return 0
  rm -f "$out/$name.json"
  # The command as run (BENCH_HARNESS_ARGS included), for the log and the table's command list.
  local shown="$*${BENCH_HARNESS_ARGS:+ $BENCH_HARNESS_ARGS}"
  echo "== $name: bursar-bench $shown" >&2
  "$bin/bursar-bench" --redis "$redis_url" --audit --json "$@" ${BENCH_HARNESS_ARGS:-} >"$out/$name.json" || true
  printf '%s\t%s\t%s\n' "$name" "$bar" "$shown" >>"$out/scenarios.tsv"
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

# Overload: three fresh instances, one hot key that nothing can deny (no key, project or org
# limit within reach: no project caps, a loose key budget, credits for years), so every answer
# other than allow is the server's own: overloaded, store_unavailable. First capacity (12 x 8),
# then eight times the concurrency, then an open loop at twice the capacity measured.
if selected 'overload-*'; then
  start_bursards 3
  hot=(--keys 1 --projects 1 --deny-share 0)
  run overload-12x8 "capacity (the goodput reference)" "${targets[@]}" "${target_pids[@]}" \
    --connections 12 --pipeline 8 --duration "$dur" --warmup "$warm" "${hot[@]}"
  run overload-96x8 "goodput >= 0.9 x 12x8; store_unavailable <= 0.1%; overloaded p99 <= 5 ms" "${targets[@]}" "${target_pids[@]}" \
    --connections 96 --pipeline 8 --duration "$dur" --warmup "$warm" "${hot[@]}"
  rate=$(python3 -c 'import json, sys; print(round(2 * json.load(open(sys.argv[1]))["bursard"]["goodput_per_s"]))' \
    "$out/overload-12x8.json" 2>/dev/null || echo 0)
  if ((rate > 0)); then
    run overload-open-2x "at 2 x the 12x8 goodput: goodput >= 0.9 x 12x8; store_unavailable <= 0.1%; overloaded p99 <= 5 ms" "${targets[@]}" "${target_pids[@]}" \
      --rate "$rate" --connections 12 --duration "$dur" --warmup "$warm" "${hot[@]}"
  elif selected overload-open-2x; then
    echo "== overload-open-2x: not run, no goodput from overload-12x8" >&2
    rm -f "$out/overload-open-2x.json"
    printf '%s\t%s\t%s\n' overload-open-2x "at 2 x the 12x8 goodput" "(not run: no goodput from overload-12x8)" >>"$out/scenarios.tsv"
  fi
fi
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
def load(name):
    return json.load(open(os.path.join(out, name + ".json")))
try:
    reference = load("overload-12x8")["bursard"]["goodput_per_s"]
except Exception:
    reference = None
overload = []
costs = []
cpus = os.cpu_count()
print(f"bursar-bench, {datetime.date.today().isoformat()}, {cpus} cores, bursard + Redis 7 (AOF everysec) + harness on one machine"
      + (" (--quick: short runs)" if quick else "") + ("" if config == "release" else f" ({config} build: figures not comparable)"))
print()
print("| scenario | mode | decisions/s | p50 µs | p99 µs | p99.9 µs | CPU µs/decision | RSS start→end MiB | audit | bar | verdict |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---|")
for name, bar, args in rows:
    try:
        data = load(name)
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
    elif name.startswith("overload") and b:
        overload.append((name, b))
        goodput, share, p99 = b["goodput_per_s"], b["store_unavailable_share"], b["overloaded_p99_us"]
        if name == "overload-12x8":
            verdict = f"goodput {goodput:,.0f}/s"
        else:
            bars = []
            # The issue's bars: goodput under overload (closed 96 x 8, and open at twice capacity)
            # at least 90% of the 12 x 8 capacity.
            if True:
                ratio = goodput / reference if reference else None
                bars.append((f"goodput {'—' if ratio is None else f'{ratio:.2f}'} x 12x8", ratio is not None and ratio >= 0.9))
            bars.append((f"store_unavailable {share * 100:.2f}%", b["decisions"] > 0 and share <= 0.001))
            bars.append((f"overloaded p99 {p99 / 1000:.1f} ms", p99 <= 5000))
            verdict = ", ".join(f"{text} {'met' if ok else 'NOT met'}" for text, ok in bars) + (" — met" if all(ok for _, ok in bars) else " — NOT met")
    elif name.startswith("memory") and b and b.get("rss_growth_percent") is not None:
        verdict = f"{b['rss_growth_percent']:+.1f}% — " + ("met" if abs(b["rss_growth_percent"]) <= 10 else "NOT met")
    for label, r in (("bursard", b), ("direct floor", d)):
        if not r: continue
        costs.append((name, label, r))
        cpu = r.get("cpu_s_per_1000_decisions")
        rss = "—" if r.get("rss_start_kib") is None else f"{r['rss_start_kib']/1024:.1f}→{r['rss_end_kib']/1024:.1f}"
        audit = r.get("audit_verdict") or "—"
        if audit in ("FAILED", "—"): broken.append(f"{name} ({label}): audit {audit}")
        a = r.get("audit") or {}
        bad = sum(a.get(k, 0) for k in ("over_admitted_spend", "over_admitted_requests", "over_admitted_tokens", "lost_debits", "double_debits"))
        if name.startswith(("hot", "zipf")) and label == "bursard":
            verdict = "met" if audit == "passed" and bad == 0 else "NOT met"
        no_answer = r.get("no_answer", 0)
        extra = (f" (errors {r['errors']}, unanswered {r['unanswered']}, shed {r['shed']}, no answer {no_answer})"
                 if r["errors"] or r["unanswered"] or r["shed"] or no_answer else "")
        print(f"| {name} | {label} | {f(r['decisions_per_s'])} | {f(r['p50_us'])} | {f(r['p99_us'])} | {f(r['p999_us'])} | "
              f"{f(None if cpu is None else cpu*1000, 1)} | {rss} | {audit}{extra} | {bar if label == 'bursard' else ''} | {verdict if label == 'bursard' else ''} |")
if overload:
    print()
    print("Overload figures (measured CHECK answers; goodput = allowed + denied by a limit, reasons 1-15):")
    print()
    print("| scenario | load | answers/s | goodput/s | overloaded | overloaded p50 µs | overloaded p99 µs | store_unavailable | share | no answer | harness CPU µs/decision |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in overload:
        harness = r.get("harness_cpu_s_per_1000_decisions")
        print(f"| {name} | {r['load']}, {r['connections']} connections | {f(r['decisions_per_s'])} | {f(r['goodput_per_s'])} | "
              f"{f(r['overloaded'])} | {f(r['overloaded_p50_us'])} | {f(r['overloaded_p99_us'])} | {f(r['store_unavailable'])} | "
              f"{r['store_unavailable_share'] * 100:.2f}% | {f(r['no_answer'])} | {f(None if harness is None else harness * 1000, 1)} |")
if costs:
    print()
    print("Cost per decision (a CHECK and its SETTLE or RELEASE; Redis's from INFO commandstats and INFO cpu over the measured period,")
    print("every call inside a script counted besides the script call; the direct floor has no bursard: its Redis client runs inside the harness):")
    print()
    print("| scenario | mode | bursard CPU µs | Redis commands | of them script calls | Redis CPU µs | harness CPU µs | bar | verdict |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for name, label, r in costs:
        us = lambda k: None if r.get(k) is None else r[k] * 1000
        cpu, redis_cpu, harness = us("cpu_s_per_1000_decisions"), us("redis_cpu_s_per_1000_decisions"), us("harness_cpu_s_per_1000_decisions")
        commands, scripts = r.get("redis_commands_per_decision"), r.get("redis_scripts_per_decision")
        bar = verdict = ""
        if name == "closed-1x" and label == "bursard":
            # The bars of the issue on the cost of a decision, at 8 x 16 on one bursard.
            bar = "<= 12 Redis commands, bursard <= 15 µs, Redis <= 40 µs"
            checks = [(f"{f(commands, 1)} commands", commands is not None and commands <= 12),
                      (f"bursard {f(cpu, 1)} µs", cpu is not None and cpu <= 15),
                      (f"Redis {f(redis_cpu, 1)} µs", redis_cpu is not None and redis_cpu <= 40)]
            verdict = ", ".join(f"{t} {'met' if ok else 'NOT met'}" for t, ok in checks) + (" — met" if all(ok for _, ok in checks) else " — NOT met")
        print(f"| {name} | {label} | {f(cpu, 1) if label == 'bursard' else '—'} | {f(commands, 1)} | {f(scripts, 2)} | {f(redis_cpu, 1)} | {f(harness, 1)} | {bar} | {verdict} |")
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
