#!/usr/bin/env python3
"""Where Redis spends its time in bursar's scripts: replays the batch CHECK and batch SETTLE
scripts, exactly as a bursard loaded them, inside a fresh redis-server, and reports Redis's own
time per decision (a CHECK and its SETTLE) from INFO commandstats: the script calls' total, the
commands they made, and the rest (Lua and its bridge to Redis); and of the total, the CHECK calls'
and the SETTLE calls' (INFO read between them). A build that loads them as Redis
Functions libraries (FUNCTION LOAD, FCALL) is replayed so; one that loads scripts (SCRIPT LOAD,
EVALSHA), so.

    deploy/lua-profile/profile.py --bin .build/release [--base-bin OTHER/release] [--variant F.py ...]
                          [--runs 5] [--calls 1000] [--steps 16] [--aof]

It starts redis-server on a free port, a bursard from --bin, and bursar-bench for a few seconds
(1,000 keys, 10 projects: the closed-1x world) while it reads MONITOR, which shows every script
as the bursard loaded it and the arguments of real steps. Then it replays: each call a batch of
--steps CHECKs of keys drawn at random (fresh reservation ids, random estimates), then one batch
SETTLE of those admitted. --base-bin also captures another build's scripts into the same world.
Beside the script calls' own time, the table gives Redis's process CPU per decision over each
replay (INFO cpu: every thread, the network and the AOF included, less the time of the INFO
commands the replay itself sends between the calls); --aof runs the server with
the AOF on (everysec, as deploy/bench.sh does), so that what the steps write costs what it costs
there: each write a step makes is appended to the AOF, and what it appends grows the file
that Redis rewrites when it has doubled.
A variant is a Python file run with `c` and `s` (the CHECK and SETTLE scripts' bytes) in scope,
which it may rewrite (for example, to make a function return at once); its name is the file's.
The machine's noise moves every figure by ±10%: compare minima over several runs.
"""
import argparse, glob, hashlib, os, random, re, socket, struct, subprocess, sys, tempfile, threading, time

def unescape(s):
    """A MONITOR argument's bytes (it prints them C-escaped)."""
    out, i = bytearray(), 0
    while i < len(s):
        if s[i] == '\\':
            n = s[i + 1]
            if n == 'x':
                out.append(int(s[i + 2:i + 4], 16)); i += 4; continue
            out += {'n': b'\n', 'r': b'\r', 't': b'\t', '"': b'"', '\\': b'\\', 'a': b'\a', 'b': b'\b'}[n]; i += 2; continue
        out += s[i].encode(); i += 1
    return bytes(out)

def monitor_args(line):
    return [unescape(m) for m in re.findall(r'"((?:[^"\\]|\\.)*)"', line)]

class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port))
        self.file = self.sock.makefile('rb')

    def send(self, *args):
        parts = [b'*%d\r\n' % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b'$%d\r\n%s\r\n' % (len(a), a))
        self.sock.sendall(b''.join(parts))

    def cmd(self, *args):
        self.send(*args)
        reply = self.read()
        if isinstance(reply, RuntimeError):
            raise reply
        return reply

    def read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b'+': return rest
        if kind == b'-': return RuntimeError(rest.decode())
        if kind == b':': return int(rest)
        if kind == b'$':
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b'*':
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f'unexpected reply {line!r}')

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def wait_port(port, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(('127.0.0.1', port)).close(); return
        except OSError:
            time.sleep(0.05)
    sys.exit(f'lua-profile: nothing listens on {port} after {seconds} s')

def capture(redis_port, bin_dir, bench_seconds, tmp):
    """Starts a bursard from bin_dir (and, if bench_seconds, bursar-bench against it) while
    reading MONITOR; returns the MONITOR lines."""
    lines, stop = [], threading.Event()
    mon = Redis(redis_port)
    mon.send('MONITOR'); mon.read()
    def reader():
        while not stop.is_set():
            l = mon.file.readline()
            if not l: break
            lines.append(l.decode('utf-8', 'replace'))
    t = threading.Thread(target=reader, daemon=True); t.start()
    port = free_port()
    log = open(os.path.join(tmp, f'bursard-{port}.log'), 'w')
    d = subprocess.Popen([os.path.join(bin_dir, 'bursard'), '--redis', f'redis://127.0.0.1:{redis_port}', '--listen', f'127.0.0.1:{port}',
                          '--ops', '127.0.0.1:0', '--log-level', 'warning'], stdout=log, stderr=log)
    try:
        wait_port(port)
        if bench_seconds:
            bench = subprocess.run([os.path.join(bin_dir, 'bursar-bench'), '--redis', f'redis://127.0.0.1:{redis_port}', '--target', f'127.0.0.1:{port}',
                                    '--connections', '8', '--pipeline', '16', '--duration', str(bench_seconds), '--warmup', '0',
                                    '--keys', '1000', '--projects', '10', '--deny-share', '0.1'], capture_output=True, text=True)
            if bench.returncode != 0:
                sys.exit(f'lua-profile: bursar-bench failed ({bench.returncode}): {bench.stderr.strip() or bench.stdout.strip()}')
        else:
            time.sleep(2)
    finally:
        d.terminate(); d.wait()
        stop.set(); mon.sock.close()
    return lines

LIBRARY_NAME = re.compile(rb'^#!lua name=(\w+)')

def scripts_of(lines):
    """The batch CHECK and batch SETTLE scripts (or libraries) a bursard loaded, by their source files."""
    check = settle = None
    for l in lines:
        if '"SCRIPT" "LOAD"' in l or '"FUNCTION" "LOAD"' in l:
            src = monitor_args(l)[2]
            if b'-- main-batch.lua' in src and b'-- check.lua' in src: check = src
            if b'-- main-batch.lua' in src and b'-- settle.lua' in src: settle = src
    if not (check and settle):
        sys.exit('lua-profile: MONITOR showed no batch CHECK and SETTLE scripts being loaded')
    return check, settle

def load(r, src):
    """Loads a script (its SHA-1) or a library (under a name of its own text's SHA-1, so that a
    variant's library never meets the original's name); returns the command head that calls it."""
    m = LIBRARY_NAME.match(src)
    if not m:
        return ['EVALSHA', r.cmd('SCRIPT', 'LOAD', src)]
    name = b'lp_' + hashlib.sha1(src).hexdigest().encode()
    r.cmd('FUNCTION', 'LOAD', 'REPLACE', src.replace(m.group(1), name))
    return ['FCALL', name]

def step_templates(lines, check):
    """Each key's CHECK arguments, from the batch CHECK calls MONITOR showed."""
    m = LIBRARY_NAME.match(check)
    call = f'"FCALL" "{m.group(1).decode()}"' if m else f'"EVALSHA" "{hashlib.sha1(check).hexdigest()}"'
    steps, prefix = {}, None
    for l in lines:
        if call in l:
            a = monitor_args(l)
            n = int(a[2]); keys = a[3:3 + n]; argv = a[3 + n:]
            prefix, pos = argv[0], 1
            for k in keys:
                c = int(argv[pos]); steps[k] = argv[pos + 1:pos + 1 + c]; pos += c + 1
    if not steps:
        sys.exit('lua-profile: MONITOR showed no batch CHECK call')
    return steps, prefix

SCRIPT_CALLS = ('evalsha', 'fcall')

def stats(r):
    info = r.cmd('INFO', 'commandstats').decode()
    return {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(r'cmdstat_([a-z|]+):calls=(\d+),usec=(\d+)', info)}

next_sequence = random.randrange(1 << 40, 1 << 50)

def script_usec(r):
    """The µs Redis has spent in script calls since its stats were reset."""
    st = stats(r)
    return sum(st.get(name, (0, 0))[1] for name in SCRIPT_CALLS)

def process_cpu(r):
    """Redis's used_cpu_user + used_cpu_sys, seconds (every thread of the server)."""
    info = r.cmd('INFO', 'cpu').decode()
    return sum(float(m.group(1)) for m in re.finditer(r'used_cpu_(?:user|sys):([\d.]+)', info))

def replay(r, steps, prefix, check, settle, calls, per_call, seed):
    """Redis µs per decision: (the script calls', of it their commands', of it the CHECK calls',
    of it the SETTLE calls', the process's CPU). The two calls' shares are read from INFO between
    them (an INFO is counted under its own name, not the scripts')."""
    ccall, scall = load(r, check), load(r, settle)
    rnd, keys = random.Random(seed), sorted(steps)
    # Sequences never used before in this Redis (a used one is fenced: nothing would run).
    global next_sequence
    seq = next_sequence
    next_sequence += calls * per_call
    r.cmd('CONFIG', 'RESETSTAT')
    cpu0 = process_cpu(r)
    admissions, refusals = 0, {}
    check_us = settle_us = 0
    for _ in range(calls):
        chosen = [rnd.choice(keys) for _ in range(per_call)]
        argv, seqs = [prefix], []
        for k in chosen:
            a = list(steps[k]); seq += 1
            a[4], a[6] = str(rnd.randrange(10, 90)).encode(), str(seq).encode()   # estimate (nano-USD), sequence
            seqs.append(a[6]); argv += [str(len(a)).encode()] + a
        before = script_usec(r)
        replies = r.cmd(*ccall, len(chosen), *chosen, *argv)
        after = script_usec(r)
        check_us += after - before
        for x in replies:
            if isinstance(x, RuntimeError):
                sys.exit(f'lua-profile: a CHECK step failed: {x}')
        replies = [list(struct.unpack('>%dq' % (len(x) // 8), x)) if isinstance(x, bytes) and len(x) % 8 == 0 else
                   x for x in replies]   # a decided CHECK's reply is one string: 18 big-endian 64-bit slots
        admitted = [seqs[i] for i, x in enumerate(replies) if isinstance(x, list) and x and x[0] == 1]   # 1: admitted (CheckOutcome)
        admissions += len(admitted)
        for x in replies:
            if isinstance(x, list) and x and x[0] != 1:
                refusals[x[1]] = refusals.get(x[1], 0) + 1
        if admitted:
            sargv = [prefix]
            for _ in admitted: sargv += [b'3', b'settle', b'230', str(rnd.randrange(5, 9)).encode()]   # tokens, actual cost
            settled = r.cmd(*scall, len(admitted), *[prefix + b'r:' + s for s in admitted], *sargv)
            settle_us += script_usec(r) - after
            for x in settled:
                if isinstance(x, bytes) and len(x) == 32:   # applied: status, deltas and alerts packed into one string
                    x = list(struct.unpack('>4q', x))
                if isinstance(x, RuntimeError) or not isinstance(x, list) or x[0] != 0:   # 0: applied (ReservationStatus)
                    sys.exit(f'lua-profile: a SETTLE step was not applied: {x}')
    if admissions < calls * per_call // 2:
        sys.exit(f'lua-profile: only {admissions} of {calls * per_call} CHECKs were admitted (refusals by DenyReason: {refusals}): the replay measures refusals')
    cpu = process_cpu(r) - cpu0
    st = stats(r)
    decisions = calls * per_call
    total = sum(st.get(name, (0, 0))[1] for name in SCRIPT_CALLS)
    nested = sum(u for name, (_, u) in st.items() if name not in SCRIPT_CALLS + ('config|resetstat', 'script|load', 'function|load', 'info'))
    # The replay's own INFO calls (three per call) are not the steps' cost.
    cpu_us = cpu * 1e6 - st.get('info', (0, 0))[1]
    return total / decisions, nested / decisions, check_us / decisions, settle_us / decisions, cpu_us / decisions

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--bin', required=True, help='a build directory with bursard and bursar-bench')
    ap.add_argument('--base-bin', help="another build's directory: its scripts are replayed beside")
    ap.add_argument('--variant', action='append', default=[], help='a Python file that rewrites c and s')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--calls', type=int, default=1000)
    ap.add_argument('--steps', type=int, default=16, help='CHECKs per call')
    ap.add_argument('--aof', action='store_true', help='the server with the AOF on (everysec), as deploy/bench.sh runs it')
    o = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='lua-profile-')
    port = free_port()
    aof = ['--appendonly', 'yes', '--appendfsync', 'everysec'] if o.aof else ['--appendonly', 'no']
    server = subprocess.Popen(['redis-server', '--port', str(port), '--save', '', *aof, '--dir', tmp],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        r = Redis(port)
        lines = capture(port, o.bin, 3, tmp)
        check, settle = scripts_of(lines)
        steps, prefix = step_templates(lines, check)
        variants = {'this build': (check, settle)}
        if o.base_bin:
            variants['base build'] = scripts_of(capture(port, o.base_bin, 0, tmp))
        for f in o.variant:
            ns = {'c': check, 's': settle}
            exec(open(f).read(), ns)
            variants[os.path.basename(f).rsplit('.', 1)[0]] = (ns['c'], ns['s'])
        results = {name: [] for name in variants}
        for run in range(o.runs):
            for name, (c, s) in variants.items():
                results[name].append(replay(r, steps, prefix, c, s, o.calls, o.steps, run))
        print(f'Redis µs per decision ({o.steps} CHECKs per call, {o.calls} calls, {o.runs} runs, AOF {"on" if o.aof else "off"}; min / median):')
        print('| scripts | per decision | of it in the commands | of it Lua and its bridge | of it the CHECK calls | of it the SETTLE calls | process CPU |')
        print('|---|---:|---:|---:|---:|---:|---:|')
        for name, v in results.items():
            tot = sorted(x[0] for x in v); cmds = sorted(x[1] for x in v); lua = sorted(x[0] - x[1] for x in v)
            chk = sorted(x[2] for x in v); stl = sorted(x[3] for x in v); cpu = sorted(x[4] for x in v)
            m = len(v) // 2
            print(f'| {name} | {tot[0]:.1f} / {tot[m]:.1f} | {cmds[0]:.1f} / {cmds[m]:.1f} | {lua[0]:.1f} / {lua[m]:.1f} '
                  f'| {chk[0]:.1f} / {chk[m]:.1f} | {stl[0]:.1f} / {stl[m]:.1f} | {cpu[0]:.1f} / {cpu[m]:.1f} |')
        r.cmd('CONFIG', 'RESETSTAT')
        for name, (c, s) in variants.items():
            calls = [load(r, x) for x in (c, s)]
            empty = []
            for call in calls:
                r.cmd('CONFIG', 'RESETSTAT')
                for _ in range(2000): r.cmd(*call, 0, prefix)
                empty.append(sum(stats(r).get(n, (0, 0))[1] for n in SCRIPT_CALLS) / 2000)
            empty_check, empty_settle = empty
            print(f'{name}: a call with no step costs {empty_check:.1f} µs (batch CHECK), {empty_settle:.1f} µs (batch SETTLE)')
    finally:
        server.terminate(); server.wait()

if __name__ == '__main__':
    main()
