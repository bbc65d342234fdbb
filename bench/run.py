#!/usr/bin/env python3
"""The wxgate benchmark (issue 9): floor vs wxgate, side by side, in one run.

Run through `bench/run`, which builds the release binaries and installs wrk.
Each (workload, server) pair gets a fresh server process: readiness, idle RSS,
a correctness probe, a wrk warm-up, then the measured wrk run, during which the
server's CPU time (/proc/PID/stat), peak RSS (VmHWM), the simulator's call
counters (/sim/stats) and wxgate's push counters (/metrics) are read.

Environment: BENCH_DURATION (s, default 10), BENCH_WARMUP (s, default 2),
BENCH_CONNECTIONS (64), BENCH_SERVER_CPU (0), BENCH_LOAD_CPU (1),
BENCH_W3_POOL (the measured run's pool of encrypted pushes, W3 and W8; default sized
so the run never wraps),
BENCH_RESULTS (output file, default bench/RESULTS.md; "-" prints only),
BENCH_ONLY (e.g. "W1,W4" to run some workloads), BENCH_ROWS
(default "floor,axum,wxgate-1w,wxgate-default"), BENCH_QUIET_WAIT (s to wait for
other processes to go quiet before each measurement, default 120),
BENCH_PROFILE=1 (record `perf record --call-graph dwarf` of the wxgate rows'
measured runs and write `perf report` summaries next to the logs; BENCH_PROFILE=all
the floor and axum rows' too, to compare where the kernel's time goes), BENCH_CALLGRIND=1
(run the floor and wxgate servers under `valgrind --tool=callgrind`, count the
instructions of the measured run only, and report instructions per request,
which, unlike time, do not move with the machine's load; the table's req/s are
then valgrind's, not the server's), BENCH_KEEP=1
(keep request data, large logs, perf data and the SQLite file),
BENCH_SERVER_ENV="RUST_LOG=warn …" (extra environment for the wxgate servers only),
BENCH_BASE=/path/to/other/target/release (a baseline: another commit's release
directory; each wxgate row of BENCH_ROWS gets a `base-` twin, e.g. base-1w, run
right after it with that directory's `wxgate` and the same settings, so two commits
are measured side by side in one run; the sim, floor and data generator stay this
tree's, and the report adds the current row's change against the base),
BENCH_HISTORY_FILE (default bench/history.tsv) and BENCH_HISTORY=0: a run with
BENCH_CALLGRIND=1 appends one line to the history file (date, commit, dirty,
duration, instructions per request per workload and row; see bench/README.md),
also with BENCH_RESULTS=-; BENCH_HISTORY=0 does not.
"""

import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
LUA = os.path.join(BENCH, "lua")
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", "")
RELEASE = os.path.join(TARGET_DIR or os.path.join(ROOT, "target"), "release")
WXGATE = os.path.join(RELEASE, "wxgate")
FLOOR = os.path.join(RELEASE, "wxgate-bench-floor")
GEN = os.path.join(RELEASE, "wxgate-bench-gen")

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1")
ONLY = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w]
ROWS = [r for r in os.environ.get("BENCH_ROWS", "floor,axum,wxgate-1w,wxgate-default").split(",") if r]
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(BENCH, "RESULTS.md"))
QUIET_WAIT = float(os.environ.get("BENCH_QUIET_WAIT", "120"))
PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0")
PROFILE_FLOOR = os.environ.get("BENCH_PROFILE") == "all"
CALLGRIND = os.environ.get("BENCH_CALLGRIND", "") not in ("", "0")
KEEP = os.environ.get("BENCH_KEEP", "") not in ("", "0")
HISTORY = os.environ.get("BENCH_HISTORY_FILE", os.path.join(BENCH, "history.tsv"))
HISTORY_ON = os.environ.get("BENCH_HISTORY", "1") not in ("", "0")
# Extra environment for the wxgate servers only, for experiments: "RUST_LOG=warn LD_PRELOAD=…".
SERVER_ENV = dict(kv.split("=", 1) for kv in os.environ.get("BENCH_SERVER_ENV", "").split() if "=" in kv)
# A baseline release directory (another commit's): each wxgate-X row gets a base-X twin run with its wxgate.
BASE = os.environ.get("BENCH_BASE", "")
BASE_WXGATE = os.path.join(BASE, "wxgate") if BASE else ""
if BASE:
    ROWS = [x for r in ROWS if not r.startswith("base-")
            for x in ([r, "base-" + r[len("wxgate-"):]] if r.startswith("wxgate-") else [r])]

PLAIN_APPID = "wxbenchplain00001"
SAFE_APPID = "wxbenchsafe000001"
PLAIN_SECRET = "benchplainsecret0000000000000001"
SAFE_SECRET = "benchsafesecret00000000000000001"
SERVER_TOKEN = "bench-server-token"
AES_KEY = "wxgateBenchKey0123456789abcdefghijklmnopqrs"
CLIENT_KEY = "bench-client-key"
# The WeCom app of W8 (its callbacks use the same token and EncodingAESKey as the safe app).
CORPID = "wwbenchcorp000001"
AGENTID = 1000002
WECOM_SECRET = "benchwecomsecret0000000000000001"
OPENID = "oBenchUser0000000000000000000"
RULE_REPLY = "Thanks for benchmarking wxgate."
JSSDK_URL = "https://www.example.com/page?x=1"

CLK_TCK = os.sysconf("SC_CLK_TCK")
DB_PATH = "wxgate.db"  # set by main(): one SQLite file for every wxgate start

# Targets (issue 9): ratio of wxgate's single-core req/s to the floor's, same run.
RATIO_TARGETS = {"W1": 0.85, "W2": 0.70, "W3": 0.60, "W4": 0.85, "W5": 0.80, "W8": 0.60}
# Issue 30: W1-W3 judged on the CPU ratio (floor CPU µs/req ÷ wxgate 1w's) instead of req/s.
CPU_RATIO_TARGETS = {"W1": 0.85, "W2": 0.70, "W3": 0.60}
# Issue 30: instructions per request of the 1w row (BENCH_CALLGRIND=1): a limit, or
# (factor, workload, row): at most that multiple of another (workload, row)'s count.
INSTR_TARGETS = {"W1": (1.5, "W1", "floor"), "W2": 45_000, "W3": 55_000, "W4": (1.3, "W4", "floor"),
                 "W7": (1.5, "W6", "wxgate-1w")}
P99_TARGET_US = 2000
P99_CONNECTIONS = 64
PEAK_RSS_SECONDS = 60  # the peak RSS target holds at the full rate for 60 s
PEAK_RSS_TARGET_KB = 30 * 1024
IDLE_RSS_TARGET_KB = 15 * 1024
READY_TARGET_MS = 50.0

WORKLOADS = {
    "W1": "GET ownership check (`GET /wx/{appid}`, signature over a pool of 1,000 signed queries)",
    "W2": "plain text push -> keyword rule reply (pool of distinct signed pushes)",
    "W3": "safe-mode text push -> encrypted rule reply (pool of distinct encrypted bodies)",
    "W4": "client API `GET /v1/apps/{appid}/access_token`",
    "W5": "JS-SDK signature `POST /v1/apps/{appid}/jssdk/signature`",
    "W6": "proxied `GET /proxy/{appid}/cgi-bin/user/info` to the simulator (floor: the same call straight to the simulator)",
    "W7": "façade `GET /cgi-bin/user/info?access_token=…` (an SDK whose base URL is wxgate) to the simulator (floor: the same call straight to the simulator)",
    "W8": "WeCom text callback `POST /wecom/{corpid}/{agentid}` -> encrypted rule reply (pool of distinct "
          "encrypted bodies)",
}

# Workloads whose floor is the same API call sent straight to the simulator.
UPSTREAM = ("W6", "W7")
# Workloads sending a pre-generated pool of distinct pushes (wrk script w3.lua): plain (W2),
# encrypted (W3, W8).
POOLED = {"W2": "w2.txt", "W3": "w3.txt", "W8": "w8.txt"}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc readings


def cpu_ticks(pid):
    """utime + stime of a whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def status_kb(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def system_busy_ticks():
    """Busy ticks over all CPUs (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return sum(parts[:8]) - parts[3] - parts[4]


def machine():
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        model = m.group(1).strip() if m else ""
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": open("/proc/loadavg").read().split()[:3],
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        .split(" Copyright")[0].strip(),
        "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
        "commit": git("rev-parse", "--short", "HEAD"),
        # Modified tracked files, the harness's own outputs (RESULTS.md, the history) left out.
        "dirty": len([l for l in git("status", "--porcelain", "--untracked-files=no").splitlines()
                      if l.strip() and l[3:] not in ("bench/RESULTS.md", "bench/history.tsv")]),
        "base_commit": git("-C", BASE, "rev-parse", "--short", "HEAD") if BASE else "",
    }


def git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def wait_quiet(own_pids):
    """Waits (up to BENCH_QUIET_WAIT s) until other processes use < 10% of a CPU."""
    deadline = time.time() + QUIET_WAIT
    said = 0.0
    while True:
        busy0, own0 = system_busy_ticks(), sum(cpu_ticks(p) for p in own_pids)
        time.sleep(1.0)
        busy1, own1 = system_busy_ticks(), sum(cpu_ticks(p) for p in own_pids)
        other = ((busy1 - busy0) - (own1 - own0)) / CLK_TCK
        if other < 0.10:
            return other
        if time.time() > deadline:
            log(f"   other processes still use {other:.0%} of a CPU; measuring anyway")
            return other
        if time.time() - said >= 10:
            log(f"   waiting: other processes use {other:.0%} of a CPU")
            said = time.time()


# ---------------------------------------------------------------- HTTP helpers


def fetch(url, method="GET", path=None, body=None, headers=None, timeout=5):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path or (u.path or "/") + (("?" + u.query) if u.query else ""),
                     body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics_counts(base):
    """wxgate_pushes_total by outcome, summed over apps and types."""
    try:
        status, text = fetch(base + "/metrics")
    except OSError:
        return {}
    counts = {}
    for line in text.splitlines():
        if line.startswith("wxgate_pushes_total{"):
            m = re.search(r'outcome="([^"]+)"\}\s+(\S+)', line)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + int(float(m.group(2)))
    return counts


# ---------------------------------------------------------------- processes


class Server:
    """A server process; `ready_ms` is spawn to first 200 from `ready_path`. A `measured` one
    runs under callgrind when BENCH_CALLGRIND=1."""

    def __init__(self, name, argv, env, pin, port, logdir, ready_path="/healthz", measured=False):
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        full_env = dict(os.environ)
        full_env.pop("TOKIO_WORKER_THREADS", None)
        full_env.update(env)
        if CALLGRIND and measured:
            # Instrumentation starts off; it is switched on for the measured run only,
            # whose counts are dumped to `{callgrind_out}.1`.
            self.callgrind_out = os.path.join(logdir, f"callgrind-{name}.out")
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={self.callgrind_out}"] + argv
        cmd = (["taskset", "-c", pin] if pin else []) + argv
        self.stderr = open(os.path.join(logdir, f"{name}.log"), "ab")
        self.line_ms = None
        started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE,
                                     stderr=self.stderr, start_new_session=True)
        self.pid = self.proc.pid  # taskset execs the server: same pid
        threading.Thread(target=self._read_stdout, args=(started,), daemon=True).start()
        self.ready_ms = self._wait_ready(started, port, ready_path)

    def _read_stdout(self, started):
        for line in self.proc.stdout:
            if self.line_ms is None and b"listening on" in line:
                self.line_ms = (time.perf_counter() - started) * 1000
        self.proc.stdout.close()

    def _wait_ready(self, started, port, path):
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        deadline = started + (60 if CALLGRIND else 10)
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.stderr.name}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(request)
                    head = s.recv(64)
                if head.startswith(b"HTTP/1.1 200"):
                    return (time.perf_counter() - started) * 1000
            except OSError:
                pass
            time.sleep(0.0005)
        raise RuntimeError(f"{self.name} not ready within 10 s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def start_sim(tmp):
    """`wxgate sim` on the load generator's CPU (it only serves W6, W7 and token/ticket fetches)."""
    port = free_port()
    argv = [WXGATE, "sim", "--listen", f"127.0.0.1:{port}",
            "--app", f"{PLAIN_APPID}:{PLAIN_SECRET}", "--app", f"{SAFE_APPID}:{SAFE_SECRET}",
            "--corp", f"{CORPID}:{AGENTID}:{WECOM_SECRET}"]
    return Server("sim", argv, {}, LOAD_CPU, port, tmp, ready_path="/sim/stats")


def write_config(tmp, sim_url, port):
    path = os.path.join(tmp, f"wxgate-{port}.toml")
    key_sha = hashlib.sha256(CLIENT_KEY.encode()).hexdigest()
    with open(path, "w") as f:
        f.write(f"""
[server]
listen = "127.0.0.1:{port}"
[store]
backend = "sqlite"
path = "{DB_PATH}"
[upstream]
base_url = "{sim_url}"
wecom_base_url = "{sim_url}"
[[apps]]
appid = "{PLAIN_APPID}"
secret = "{PLAIN_SECRET}"
token = "{SERVER_TOKEN}"
mode = "plain"
js_domains = ["example.com"]
[[apps.rules]]
keyword = "bench"
reply = {{ text = "{RULE_REPLY}" }}
[[apps]]
appid = "{SAFE_APPID}"
secret = "{SAFE_SECRET}"
token = "{SERVER_TOKEN}"
encoding_aes_key = "{AES_KEY}"
mode = "safe"
[[apps.rules]]
keyword = "bench"
reply = {{ text = "{RULE_REPLY}" }}
[[wecom]]
corpid = "{CORPID}"
agentid = {AGENTID}
secret = "{WECOM_SECRET}"
token = "{SERVER_TOKEN}"
encoding_aes_key = "{AES_KEY}"
[[wecom.rules]]
keyword = "bench"
reply = {{ text = "{RULE_REPLY}" }}
[[clients]]
name = "bench"
key_sha256 = "{key_sha}"
apps = ["*"]
""")
    return path


# ---------------------------------------------------------------- workloads


class Context:
    def __init__(self, tmp, sim):
        self.tmp = tmp
        self.sim = sim
        self.data = os.path.join(tmp, "data")
        self.generation = 0  # distinct MsgId bases for W2, W3 and W8

    def generate(self, pool, wid=None):
        """Fresh signed data (timestamps now); every call gets new MsgIds. The pool of `wid`
        (W2, W3 or W8) holds `pool` pushes, the others a single push."""
        self.generation += 1
        base = int(time.time()) % 1_000_000 * 100 + self.generation % 100
        subprocess.run([GEN, "--out", self.data, "--timestamp", str(int(time.time())), "--token", SERVER_TOKEN,
                        "--plain-appid", PLAIN_APPID, "--safe-appid", SAFE_APPID,
                        "--corpid", CORPID, "--agentid", str(AGENTID), "--aes-key", AES_KEY,
                        "--pool", str(pool if wid == "W3" else 1),
                        "--wecom-pool", str(pool if wid == "W8" else 1),
                        "--plain-pool", str(pool if wid == "W2" else 1), "--queries", "1000",
                        "--msgid-base", str(base)],
                       check=True)

    def first_line(self, name, last=False):
        with open(os.path.join(self.data, name)) as f:
            lines = f.read().splitlines()
        return lines[-1] if last else lines[0]


AUTH = f"Authorization: Bearer {CLIENT_KEY}"


def workload(ctx, wid, target, token=None):
    """(script, args(offset), probe) for a workload against `target`.

    `args` is a function of the pool offset (W3, W8) so the warm-up and the measured
    run send different pushes; `probe` is (method, path, body, headers, check).
    """
    expect_floor = lambda status, body: status == 200 and body == "success"
    floor = target == "floor"
    data = ctx.data
    if wid == "W1":
        path = ctx.first_line("w1.txt")
        echostr = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["echostr"][0]
        check = expect_floor if floor else (lambda s, b: s == 200 and b == echostr)
        return "w1.lua", lambda off: [os.path.join(data, "w1.txt")], ("GET", path, None, {}, check)
    if wid == "W2":
        # Plain mode: each pool entry a signed query with its own body, never reused with another
        # (wxgate binds a plain push's first body to its signed query and refuses any other).
        path, body = ctx.first_line("w2.txt").split("\t", 1)
        check = expect_floor if floor else (lambda s, b: s == 200 and RULE_REPLY in b)
        return ("w3.lua", lambda off: [os.path.join(data, "w2.txt"), str(off)],
                ("POST", path, body, {"Content-Type": "text/xml"}, check))
    if wid in POOLED:
        # W3 (an Official Account in safe mode) and W8 (a WeCom app): an encrypted reply envelope.
        name = POOLED[wid]
        path, body = ctx.first_line(name).split("\t", 1)
        check = expect_floor if floor else (
            lambda s, b: s == 200 and "<Encrypt><![CDATA[" in b and "<MsgSignature>" in b)
        return ("w3.lua", lambda off: [os.path.join(data, name), str(off)],
                ("POST", path, body, {"Content-Type": "text/xml"}, check))
    if wid == "W4":
        path = f"/v1/apps/{PLAIN_APPID}/access_token"
        check = expect_floor if floor else (lambda s, b: s == 200 and '"access_token"' in b)
        return ("static.lua", lambda off: ["GET", path, "-", AUTH],
                ("GET", path, None, {"Authorization": f"Bearer {CLIENT_KEY}"}, check))
    if wid == "W5":
        path = f"/v1/apps/{PLAIN_APPID}/jssdk/signature"
        body = json.dumps({"url": JSSDK_URL})
        check = expect_floor if floor else (lambda s, b: s == 200 and '"signature"' in b)
        return ("static.lua", lambda off: ["POST", path, body, AUTH, "Content-Type: application/json"],
                ("POST", path, body, {"Authorization": f"Bearer {CLIENT_KEY}",
                                      "Content-Type": "application/json"}, check))
    if wid == "W6":
        query = f"openid={OPENID}&lang=zh_CN"
        if floor:  # straight to the simulator, with the token wxgate holds
            path = f"/cgi-bin/user/info?access_token={token}&{query}"
            check = lambda s, b: s == 200 and '"subscribe":1' in b
            return "static.lua", lambda off: ["GET", path, "-"], ("GET", path, None, {}, check)
        path = f"/proxy/{PLAIN_APPID}/cgi-bin/user/info?{query}"
        check = lambda s, b: s == 200 and '"subscribe":1' in b
        return ("static.lua", lambda off: ["GET", path, "-", AUTH],
                ("GET", path, None, {"Authorization": f"Bearer {CLIENT_KEY}"}, check))
    if wid == "W7":
        # The same request either way: with the token wxgate holds, to wxgate or to the simulator.
        path = f"/cgi-bin/user/info?access_token={token}&openid={OPENID}&lang=zh_CN"
        check = lambda s, b: s == 200 and '"subscribe":1' in b
        return "static.lua", lambda off: ["GET", path, "-"], ("GET", path, None, {}, check)
    raise ValueError(wid)


def run_wrk(url, script, args, seconds, on_start=None):
    """Runs wrk; `on_start` is called once wrk's threads are set up (its `Running` line),
    so CPU readings leave out the scripts' `init` (W3 pre-formats its whole pool there)."""
    cmd = ["taskset", "-c", LOAD_CPU, "stdbuf", "-oL", "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s",
           "--timeout", "5s", "-s", script, url, "--"] + args
    proc = subprocess.Popen(cmd, cwd=LUA, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, wrk_ticks_at_start = [], None
    for line in proc.stdout:
        lines.append(line)
        if wrk_ticks_at_start is None and line.startswith("Running"):
            wrk_ticks_at_start = cpu_ticks(proc.pid)  # taskset and stdbuf exec: wrk's pid
            if on_start:
                on_start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read()
    out = "".join(lines)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr}{out}")
    line = next((l for l in lines if l.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{out}\n{stderr}")
    result = json.loads(line[len("BENCH_JSON "):])
    result["wrk_cpu_s"] = usage.ru_utime + usage.ru_stime - (wrk_ticks_at_start or 0) / CLK_TCK
    return result


def sim_stats(sim):
    status, body = fetch(sim.url + "/sim/stats")
    return json.loads(body)


def diff_calls(before, after):
    calls = {}
    for path, n in after.get("endpoint_calls", {}).items():
        d = n - before.get("endpoint_calls", {}).get(path, 0)
        if d:
            calls[path] = d
    return calls


def measure(ctx, wid, row, results, token=None):
    """One (workload, row) measurement with a fresh server."""
    log(f"== {wid} {row}")
    sim = ctx.sim
    rec = {"workload": wid, "row": row, "other_before": round(wait_quiet([sim.pid]), 2)}
    if wid == "W1" or wid in POOLED:
        # W2's, W3's and W8's warm-up pool; the measured run gets its own pool, sized after the warm-up.
        ctx.generate(max(5000, 50000 * WARMUP) if wid in POOLED else 1, wid)
    server = None
    if wid in UPSTREAM and row == "floor":
        target, url, pid = "floor", sim.url, sim.pid
    else:
        port = free_port()
        if row in ("floor", "axum"):
            server = Server(f"{row}-{wid}", [FLOOR, f"127.0.0.1:{port}"] + (["--axum"] if row == "axum" else []),
                            {"TOKIO_WORKER_THREADS": "1"}, SERVER_CPU, port, ctx.tmp, ready_path="/",
                            measured=True)
        else:
            cfg = write_config(ctx.tmp, sim.url, port)
            env = dict(SERVER_ENV, **({"TOKIO_WORKER_THREADS": "1"} if row.endswith("-1w") else {}))
            pin = SERVER_CPU if row.endswith("-1w") else None
            binary = BASE_WXGATE if row.startswith("base-") else WXGATE
            server = Server(f"{row}-{wid}", [binary, "serve", "-c", cfg], env, pin, port, ctx.tmp, measured=True)
        target, url, pid = ("floor" if row in ("floor", "axum") else "wxgate"), server.url, server.pid
    perf = None
    try:
        if server:
            rec["ready_ms"] = round(server.ready_ms, 1)
            rec["listening_line_ms"] = round(server.line_ms, 1) if server.line_ms else None
            time.sleep(0.3)
            rec["idle_rss_kb"] = status_kb(pid, "VmRSS")
        script, args, probe = workload(ctx, wid, target, token)
        method, path, body, headers, check = probe
        stats0 = sim_stats(sim)
        pushes0 = metrics_counts(url) if target == "wxgate" else {}
        status, answer = fetch(url, method, path, body, headers)
        rec["probe_ok"] = bool(check(status, answer))
        if not rec["probe_ok"]:
            log(f"   probe FAILED: {status} {answer[:300]}")
        # The probe sent the pool's first push (W3, W8): the warm-up starts at the second.
        warm = run_wrk(url, script, args(1), WARMUP) if WARMUP > 0 else {"requests": 0, "duration_us": 1}
        offset = 0
        if wid in POOLED:
            # Distinct pushes for the whole measured run (50% headroom over the warm-up's rate).
            warm_rps = warm["requests"] / (warm["duration_us"] / 1e6)
            pool = int(os.environ.get("BENCH_W3_POOL", "0")) or \
                min(max(5000, int(warm_rps * DURATION * 1.5) + 2000), 500_000)
            ctx.generate(pool, wid)
            rec["pool"] = pool
        else:
            offset = warm["requests"] + CONNECTIONS
        own = [sim.pid] + ([pid] if pid != sim.pid else [])
        rec["other_before"] = max(rec["other_before"], round(wait_quiet(own), 2))
        start = {}

        def on_start():
            nonlocal perf
            if PROFILE and (target == "wxgate" or PROFILE_FLOOR):
                perf = subprocess.Popen(
                    ["taskset", "-c", LOAD_CPU, "perf", "record", "-F", "499", "--call-graph", "dwarf,16384",
                     "-p", str(pid), "-o", os.path.join(ctx.tmp, f"perf-{wid}-{row}.data"),
                     "--", "sleep", str(max(DURATION - 1, 1))],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if CALLGRIND and server:
                subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True, check=True)
            start.update(cpu=cpu_ticks(pid), busy=system_busy_ticks(), sim=cpu_ticks(sim.pid))

        run = run_wrk(url, script, args(offset), DURATION, on_start)
        if CALLGRIND and server:
            subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
            subprocess.run(["callgrind_control", "-i", "off", str(pid)], capture_output=True, check=True)
        cpu0, busy0, sim_cpu0 = start["cpu"], start["busy"], start["sim"]
        cpu1, busy1 = cpu_ticks(pid), system_busy_ticks()
        sim_cpu1 = cpu_ticks(sim.pid)
        stats1 = sim_stats(sim)
        pushes1 = metrics_counts(url) if target == "wxgate" else {}
        secs = run["duration_us"] / 1e6
        n = max(run["requests"], 1)
        server_cpu_s = (cpu1 - cpu0) / CLK_TCK
        sim_cpu_s = (sim_cpu1 - sim_cpu0) / CLK_TCK if pid != sim.pid else 0.0
        other_s = (busy1 - busy0) / CLK_TCK - server_cpu_s - sim_cpu_s - run["wrk_cpu_s"]
        errors = sum(run["errors"].values())
        rec.update({
            "requests": run["requests"],
            "rps": run["requests"] / secs,
            "p50_us": run["p50_us"], "p90_us": run["p90_us"], "p99_us": run["p99_us"], "max_us": run["max_us"],
            "errors": errors, "error_detail": run["errors"],
            "server_cpu_us_per_req": server_cpu_s * 1e6 / n,
            "server_cpu_util": server_cpu_s / secs,
            "wrk_cpu_util": run["wrk_cpu_s"] / secs,
            "sim_cpu_us_per_req": sim_cpu_s * 1e6 / n if sim_cpu_s else 0.0,
            "other_cpu_util": max(other_s, 0.0) / secs,
            "peak_rss_kb": status_kb(pid, "VmHWM"),
            "end_rss_kb": status_kb(pid, "VmRSS"),
            "upstream_calls": diff_calls(stats0, stats1),
            "warmup_requests": warm["requests"],
        })
        if target == "wxgate" and (wid == "W2" or wid in POOLED):
            rec["pushes"] = {k: pushes1.get(k, 0) - pushes0.get(k, 0) for k in pushes1
                             if pushes1.get(k, 0) - pushes0.get(k, 0)}
        log(f"   {rec['rps']:.0f} req/s  p50 {rec['p50_us']} us  p99 {rec['p99_us']} us  "
            f"cpu {rec['server_cpu_us_per_req']:.1f} us/req ({rec['server_cpu_util']:.0%})  "
            f"wrk {rec['wrk_cpu_util']:.0%}  peak {rec['peak_rss_kb'] / 1024:.1f} MB  errors {errors}  "
            f"upstream {rec['upstream_calls']}  {rec.get('pushes', '')}")
    finally:
        if perf:
            perf.wait()
        if server:
            server.stop()
            if CALLGRIND and rec.get("requests"):
                rec["instructions_per_req"] = callgrind_summary(server.callgrind_out + ".1", rec["requests"],
                                                                os.path.join(ctx.tmp, f"callgrind-{wid}-{row}.txt"))
                log(f"   {rec['instructions_per_req']:,.0f} instructions per request (user space)")
            # Logs live on tmpfs (RAM): keep a flagged row's, drop the rest unless BENCH_KEEP=1.
            flagged = rec.get("errors") or not rec.get("probe_ok", False)
            if not flagged and not KEEP and os.path.getsize(server.stderr.name) > 1 << 20:
                os.remove(server.stderr.name)
    if perf:
        data = os.path.join(ctx.tmp, f"perf-{wid}-{row}.data")
        for kind, extra in (("self", ["--no-children"]), ("children", ["--children"])):
            out = os.path.join(ctx.tmp, f"perf-{wid}-{row}-{kind}.txt")
            with open(out, "w") as f:
                subprocess.run(["perf", "report", "-i", data, "--stdio", "--percent-limit", "0.7",
                                "-g", "none", *extra], stdout=f, stderr=subprocess.DEVNULL)
        out = os.path.join(ctx.tmp, f"perf-{wid}-{row}-buckets.txt")
        with open(out, "w") as f:
            f.write(perf_buckets(data))
        log(f"   perf reports: {ctx.tmp}/perf-{wid}-{row}-{{self,children,buckets}}.txt")
    results.append(rec)
    return rec


# ---------------------------------------------------------------- profiles


def callgrind_summary(data, requests, out):
    """Instructions per request of a callgrind run, with `callgrind_annotate` (inclusive) in `out`."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=98", data],
                          capture_output=True, text=True, check=True).stdout
    with open(out, "w") as f:
        f.write(text)
    total = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text)
    return int(total.group(1).replace(",", "")) / requests

# Where a request's time goes: the share of samples whose stack holds a frame
# matching each pattern (inclusive, so nested rows overlap), or, for the last
# row, whose leaf is the allocator.
PERF_BUCKETS = [
    ("kernel: TCP send (loopback: includes delivery to wrk)", r"^tcp_sendmsg$"),
    ("kernel: TCP receive", r"^tcp_recvmsg$"),
    ("kernel: write(2) (log lines to stderr)", r"^ksys_write$"),
    ("hyper: parse request", r"Server as hyper::proto::h1::Http1Transaction>::parse"),
    ("hyper: encode response", r"Server as hyper::proto::h1::Http1Transaction>::encode"),
    ("tracing: events (format + write)", r"tracing_core::event::Event::dispatch"),
    ("tracing: span creation (fmt layer formats its fields)", r"tracing::span::Span::(new|make_with)"),
    ("tracing: span enter/exit/close", r"(on_enter|on_exit|on_close|try_close|Dispatch::enter|Dispatch::exit)"),
    ("observe: metrics (prometheus-client)", r"prometheus_client"),
    ("observe: request id (rand + hex)", r"observe::request_id|rand::rng|ThreadRng|hex::encode"),
    ("AppState::clone", r"AppState as core::clone::Clone>::clone"),
    ("axum: routing", r"PathRouter<S,_>::call_with_state"),
    ("axum: Query extraction", r"axum::extract::query::Query<T>"),
    ("client key check", r"client_api::Client as axum_core::extract::FromRequestParts"),
    ("wechat::open (signatures, decrypt, parse)", r"wxgate_gateway::http::wechat::open$"),
    ("  signature checks", r"verify_signature|verify_msg_signature"),
    ("  xml::parse", r"wxgate_proto::xml::parse$"),
    ("  MessageCrypto::decrypt", r"MessageCrypto::decrypt"),
    ("  Push::parse", r"wxgate_proto::message::Push::parse$"),
    ("Dispatcher::answer", r"wxgate_gateway::message::Dispatcher::answer"),
    ("  dedupe map", r"dedupe::Dedupe::answer"),
    ("  spawned handling task", r"answer_once_across_instances|Dispatcher::handle"),
    ("seal_reply (encrypt + sign)", r"wxgate_proto::envelope::seal_reply"),
    ("client_api::get", r"client_api::get"),
    ("TokenCenter::get", r"TokenCenter::get"),
    ("JSON answer", r"axum::json::Json<T> as axum_core::response::into_response"),
    ("jssdk::signature", r"wxgate_gateway::http::jssdk::signature"),
    ("proxy: Proxy::forward", r"wxgate_gateway::proxy::Proxy::forward"),
    ("proxy: reqwest", r"reqwest::"),
]
ALLOC_LEAF = re.compile(r"^(_int_malloc|_int_free|malloc|cfree|free|__GI___libc_malloc|__GI___libc_free|"
                        r"malloc_consolidate|tcache_put|_int_realloc|realloc|unlink_chunk|sysmalloc)")


def perf_buckets(data):
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], capture_output=True, text=True).stdout
    samples, cur = [], []
    for line in out.splitlines():
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = []
            continue
        parts = line.strip().split(None, 1)
        sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1] if len(parts) > 1 else "?")
        cur.append(sym.replace(" (inlined)", ""))
    if cur:
        samples.append(cur)
    total = max(len(samples), 1)
    lines = [f"{len(samples)} samples; share of samples with the frame on the stack"]
    for name, pattern in PERF_BUCKETS:
        rx = re.compile(pattern)
        k = sum(1 for st in samples if any(rx.search(f) for f in st))
        if k / total >= 0.005:
            lines.append(f"{100 * k / total:5.1f}%  {name}")
    k = sum(1 for st in samples if st and ALLOC_LEAF.search(st[0]))
    lines.append(f"{100 * k / total:5.1f}%  malloc/free (self)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- report


def fmt_ms(us):
    return f"{us / 1000:.2f}"


def verdict(ok):
    return "met" if ok else "**missed**"


def report(info, results, sim_totals, command, history=()):
    by = {(r["workload"], r["row"]): r for r in results}
    lines = []
    w = lines.append
    w(f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, Linux {info['kernel']}; "
      f"{info['rustc']}; {info['wrk']}.  ")
    w(f"Date: {info['date']}. Load average before the run: {' '.join(info['load_before'])}. "
      f"Code: commit {info['commit']}" + (f" plus {info['dirty']} modified tracked files (the working tree)"
                                          if info['dirty'] else "") +
      (f"; base rows (`base-`): `{BASE_WXGATE}`" + (f", commit {info['base_commit']}" if info.get('base_commit') else "")
       if BASE else "") + ".  ")
    w(f"Command: `{command}` (duration {DURATION} s after a {WARMUP} s warm-up, {CONNECTIONS} connections, "
      f"`wrk -t1` pinned to CPU {LOAD_CPU}).")
    w("")
    w("Rows: **floor** = the minimal hyper server (`bench/floor`), 1 tokio worker, pinned to CPU "
      f"{SERVER_CPU}, driven by the same wrk script as the wxgate row (W6, W7: the same call straight to "
      "the simulator); **axum** = the same floor binary with `--axum`: the fixed answer through an axum "
      "`Router` with wxgate's route shapes, 1 worker, pinned (not run for W6, W7); **1w** = `wxgate serve` (SQLite), `TOKIO_WORKER_THREADS=1`, pinned to CPU "
      f"{SERVER_CPU}; **default** = `wxgate serve` with the default runtime (2 workers) and no pinning, "
      f"sharing the machine with wrk. The simulator runs on CPU {LOAD_CPU} beside wrk.")
    w("")
    w("| workload | row | req/s | ratio | ratio to axum | CPU µs/req | CPU ratio | server CPU | wrk CPU | p50 ms | "
      "p99 ms | idle RSS MB | peak RSS MB | errors | upstream calls |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for wid in WORKLOADS:
        floor = by.get((wid, "floor"))
        for row in ROWS:
            r = by.get((wid, row))
            if not r:
                continue
            ratio = cpu_ratio = to_axum = ""
            axum = by.get((wid, "axum"))
            if floor and row in ("wxgate-1w", "base-1w", "axum"):
                ratio = f"{r['rps'] / floor['rps']:.2f}"
                ratio = f"**{ratio}**" if row == "wxgate-1w" else ratio
                cpu_ratio = f"{floor['server_cpu_us_per_req'] / r['server_cpu_us_per_req']:.2f}"
            if axum and row in ("wxgate-1w", "base-1w"):
                to_axum = f"{r['rps'] / axum['rps']:.2f}"
            calls = ", ".join(f"{p} {n}" for p, n in sorted(r["upstream_calls"].items())) or "0"
            if wid in UPSTREAM and row == "floor":
                calls = f"(direct) {calls}"
            label = {"floor": "floor" if wid not in UPSTREAM else "sim direct", "axum": "axum", "wxgate-1w": "1w",
                     "wxgate-default": "default", "base-1w": "base 1w", "base-default": "base default"}[row]
            err = str(r["errors"]) if not r["errors"] else f"**{r['errors']}** {r['error_detail']}"
            if not r.get("probe_ok", True):
                err += " (probe failed)"
            cpu = f"{r['server_cpu_us_per_req']:.1f}"
            if r.get("sim_cpu_us_per_req"):
                cpu += f" (+sim {r['sim_cpu_us_per_req']:.1f})"
            w(f"| {wid} | {label} | {r['rps']:,.0f} | {ratio} | {to_axum} | {cpu} | {cpu_ratio} | "
              f"{r['server_cpu_util']:.0%} | {r['wrk_cpu_util']:.0%} | {fmt_ms(r['p50_us'])} | {fmt_ms(r['p99_us'])} | "
              f"{r['idle_rss_kb'] / 1024:.1f} | {r['peak_rss_kb'] / 1024:.1f} | {err} | {calls} |"
              if "idle_rss_kb" in r else
              f"| {wid} | {label} | {r['rps']:,.0f} | {ratio} | {to_axum} | {cpu} | {cpu_ratio} | "
              f"{r['server_cpu_util']:.0%} | {r['wrk_cpu_util']:.0%} | {fmt_ms(r['p50_us'])} | {fmt_ms(r['p99_us'])} | "
              f"— | {r['peak_rss_kb'] / 1024:.1f} | {err} | {calls} |")
    w("")
    w("ratio = req/s ÷ floor req/s (for **1w**, the target's ratio; for **axum**, the most any axum "
      "application can reach: the framework's own ceiling); ratio to axum = wxgate 1w req/s ÷ axum req/s, "
      "the share of the framework's ceiling that wxgate's own work leaves. CPU ratio = floor CPU µs/req ÷ wxgate 1w CPU µs/req "
      "(server utime+stime from /proc/PID/stat over the measured run, divided by requests). "
      "server/wrk CPU = share of one CPU used during the run; a server below ~95% was not saturated "
      "(wrk was the bottleneck), so compare CPU µs/req. Peak RSS = VmHWM of a fresh process per row "
      "(warm-up and run included); idle RSS = VmRSS 0.3 s after ready.")
    w("")
    if any("instructions_per_req" in r for r in results):
        lines.extend(instructions_table(by, history, info["commit"]))
    if BASE:
        pairs = [(wid, row) for wid in WORKLOADS for row in ROWS
                 if row.startswith("base-") and (wid, row) in by and (wid, "wxgate-" + row[5:]) in by]
        if pairs:
            w("Current against the base (`BENCH_BASE`), same run: change of the current row's figure "
              "(negative CPU µs/req = less work per request):")
            w("")
            w("| workload | rows | req/s | CPU µs/req |")
            w("|---|---|---:|---:|")
            for wid, row in pairs:
                b, c = by[(wid, row)], by[(wid, "wxgate-" + row[5:])]
                w(f"| {wid} | wxgate-{row[5:]} vs {row} | {c['rps'] / b['rps'] - 1:+.1%} | "
                  f"{c['server_cpu_us_per_req'] / b['server_cpu_us_per_req'] - 1:+.1%} |")
            w("")
    pushes = [(r["workload"], r["row"], r["pushes"]) for r in results if r.get("pushes")]
    if pushes:
        w("Push outcomes counted by wxgate (`wxgate_pushes_total` deltas, probe + warm-up + run): " +
          "; ".join(f"{wid} {row}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(p.items()))
                    for wid, row, p in pushes) + ".")
        w("")
    pools = [f"{r['workload']} {r['row']} {r['pool']:,}" for r in results if r.get("pool")]
    if pools:
        w("W3/W8 measured-run pools (distinct encrypted pushes, sized from the warm-up's rate so the run "
          "does not wrap): " + ", ".join(pools) + ".")
        w("")
    ready = [r["ready_ms"] for r in results if r["row"].startswith("wxgate") and "ready_ms" in r]
    lines_ms = [r["listening_line_ms"] for r in results
                if r["row"].startswith("wxgate") and r.get("listening_line_ms")]
    idle = [r["idle_rss_kb"] for r in results if r["row"].startswith("wxgate") and "idle_rss_kb" in r]
    w(f"Upstream calls over the whole run (simulator `endpoint_calls`): " +
      (", ".join(f"{p} {n}" for p, n in sorted(sim_totals.items())) or "none") +
      f". Token fetches (`/cgi-bin/token` + `/cgi-bin/stable_token`): "
      f"{sim_totals.get('/cgi-bin/token', 0) + sim_totals.get('/cgi-bin/stable_token', 0)}, "
      f"WeCom (`/cgi-bin/gettoken`): {sim_totals.get('/cgi-bin/gettoken', 0)}, "
      f"for {len(ready)} `wxgate serve` starts on one SQLite file.")
    w("")
    if ready:
        w(f"`wxgate serve` ready (spawn to first `/healthz` 200, SQLite): first start {ready[0]:.1f} ms "
          f"(new database), then min {min(ready):.1f} / median {sorted(ready)[len(ready) // 2]:.1f} / "
          f"max {max(ready):.1f} ms over {len(ready)} starts; the `listening on` line came at median "
          f"{sorted(lines_ms)[len(lines_ms) // 2]:.1f} ms." if lines_ms else "")
        w("")
    # Targets. Time and memory are valgrind's under callgrind: those are judged only without it.
    w("| target | value | verdict |")
    w("|---|---|---|")
    if CALLGRIND:
        w("| CPU ratio, ratio, p99, peak and idle RSS, ready | valgrind's figures | not judged: under callgrind |")
    for wid, goal in RATIO_TARGETS.items() if not CALLGRIND else ():
        f, r = by.get((wid, "floor")), by.get((wid, "wxgate-1w"))
        if f and r:
            ratio = r["rps"] / f["rps"]
            cpu_ratio = f["server_cpu_us_per_req"] / r["server_cpu_us_per_req"]
            if wid in CPU_RATIO_TARGETS:
                goal = CPU_RATIO_TARGETS[wid]
                w(f"| {wid} CPU ratio ≥ {goal:.2f} | {cpu_ratio:.2f} (req/s ratio {ratio:.2f}) | "
                  f"{verdict(cpu_ratio >= goal)} |")
            else:
                w(f"| {wid} ratio ≥ {goal:.2f} | {ratio:.2f} (CPU ratio {cpu_ratio:.2f}) | {verdict(ratio >= goal)} |")
    for wid in RATIO_TARGETS if not CALLGRIND else ():
        r = by.get((wid, "wxgate-1w"))
        if r:
            w(f"| {wid} p99 ≤ 2 ms (1w, {P99_CONNECTIONS} conns) | {fmt_ms(r['p99_us'])} ms | " +
              (f"not judged: {CONNECTIONS} connections" if CONNECTIONS != P99_CONNECTIONS
               else verdict(r['p99_us'] <= P99_TARGET_US)) + " |")
    wx = [r for r in results if r["row"].startswith("wxgate")]
    if wx and not CALLGRIND:
        peak = max(wx, key=lambda r: r["peak_rss_kb"])
        w(f"| peak RSS ≤ 30 MB under every workload, full rate for {PEAK_RSS_SECONDS} s | "
          f"{peak['peak_rss_kb'] / 1024:.1f} MB (worst: {peak['workload']} {peak['row']}, {DURATION} s runs) | " +
          (f"not judged: run shorter than {PEAK_RSS_SECONDS} s" if DURATION < PEAK_RSS_SECONDS
           else verdict(peak['peak_rss_kb'] <= PEAK_RSS_TARGET_KB)) + " |")
    if idle and not CALLGRIND:
        w(f"| idle RSS ≤ 15 MB | {max(idle) / 1024:.1f} MB (max over starts) | "
          f"{verdict(max(idle) <= IDLE_RSS_TARGET_KB)} |")
    if ready and not CALLGRIND:
        med = sorted(ready)[len(ready) // 2]
        w(f"| `wxgate serve` ready ≤ 50 ms (SQLite) | median {med:.1f} ms, max {max(ready):.1f} ms | "
          f"{verdict(max(ready) <= READY_TARGET_MS)} |")
    lines.extend(instruction_targets(by))
    bad = [r for r in results if r["errors"] or not r.get("probe_ok", True)]
    if bad:
        w("")
        w("**Flagged** (errors or a failed correctness probe): " +
          ", ".join(f"{r['workload']} {r['row']}" for r in bad) + ".")
    busy = [r for r in results if r["other_cpu_util"] > 0.05]
    if busy:
        w("")
        w("Other processes used CPU during: " +
          ", ".join(f"{r['workload']} {r['row']} ({r['other_cpu_util']:.0%} of a CPU)" for r in busy) +
          " — those rows may be disturbed.")
    return "\n".join(lines)


def instructions_table(by, history=(), commit=""):
    """Lines of the instructions-per-request table (BENCH_CALLGRIND=1): each row's count, wxgate-1w ÷
    floor, the change against the base rows, and against the history's last line of another commit."""
    def last(wid):  # (count, commit) of the history's last line of another commit with a wxgate figure
        for line in reversed(history):
            if line.get("commit") != commit and line.get(f"{wid}.wxgate", "-") != "-":
                return int(line[f"{wid}.wxgate"]), line["commit"]
        return None
    out = ["Instructions per request (`BENCH_CALLGRIND=1`: callgrind over the measured run, user space "
           "only; the kernel's share is not counted, and valgrind's CPU model hides SHA extensions, so "
           "SHA-1/SHA-256 count as software; time, RSS and req/s figures above are valgrind's):", ""]
    vs_base = [r for r in ROWS if r.startswith("base-")]
    hist = history and any(last(wid) for wid in WORKLOADS)
    out.append("| workload | " + " | ".join(ROWS) + " | wxgate-1w ÷ floor |" +
               "".join(f" wxgate-{r[5:]} vs {r} |" for r in vs_base) + (" wxgate-1w vs history |" if hist else ""))
    out.append("|---|" + "---:|" * (len(ROWS) + 1 + len(vs_base) + bool(hist)))
    for wid in WORKLOADS:
        counts = {row: by.get((wid, row), {}).get("instructions_per_req") for row in ROWS}
        if not any(counts.values()):
            continue
        ratio = (f"{counts['wxgate-1w'] / counts['floor']:.2f}"
                 if counts.get("floor") and counts.get("wxgate-1w") else "")
        prev = last(wid) if hist else None
        out.append(f"| {wid} | " + " | ".join(f"{c:,.0f}" if c else "" for c in counts.values()) + f" | {ratio} |" +
                   "".join(f" {counts['wxgate-' + r[5:]] / counts[r] - 1:+.1%} |"
                           if counts.get(r) and counts.get("wxgate-" + r[5:]) else " |" for r in vs_base) +
                   ((f" {counts['wxgate-1w'] / prev[0] - 1:+.1%} ({prev[0]:,} at {prev[1]}) |"
                     if prev and counts.get("wxgate-1w") else " |") if hist else ""))
    out.append("")
    if hist:
        shown = os.path.relpath(HISTORY, ROOT) if HISTORY.startswith(ROOT + os.sep) else HISTORY
        out += [f"wxgate-1w vs history: the change against the last line of another commit in "
                f"`{shown}` with a figure for that workload.", ""]
    return out


def instruction_targets(by):
    """Target-table lines of the instruction targets (issue 30), for what was measured."""
    out = []
    count = lambda wid, row="wxgate-1w": by.get((wid, row), {}).get("instructions_per_req")
    for wid, goal in INSTR_TARGETS.items():
        if not count(wid):
            continue
        if isinstance(goal, tuple):
            times, ref_wid, ref_row = goal
            if count(ref_wid, ref_row):
                x = count(wid) / count(ref_wid, ref_row)
                ref = "the floor's" if ref_row == "floor" else f"{ref_wid}'s"
                out.append(f"| {wid} instructions/req (1w) ≤ {times}× {ref} | {count(wid):,.0f} = {x:.2f}× "
                           f"{count(ref_wid, ref_row):,.0f} | {verdict(x <= times)} |")
        else:
            out.append(f"| {wid} instructions/req (1w) ≤ {goal:,} | {count(wid):,.0f} | {verdict(count(wid) <= goal)} |")
    return out


BEGIN, END = "<!-- bench:begin (written by bench/run) -->", "<!-- bench:end -->"


def save(path, text):
    """Replaces the generated part of RESULTS.md, keeping hand-written notes around it."""
    old = open(path).read() if os.path.exists(path) else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = "# Benchmark results\n\n" + block + "\n" + (("\n" + old) if old else "")
    with open(path, "w") as f:
        f.write(new)


# ---------------------------------------------------------------- history

# The history (bench/history.tsv): one line per measured commit, tab-separated, a header line
# first. Columns: date (UTC, 2026-12-07T07:04Z), commit (short), dirty (modified tracked files,
# the harness's outputs left out; "-" unknown), duration (s of the measured run), then `W1.floor`,
# `W1.axum`, `W1.wxgate` (the wxgate-1w row) … `W8.wxgate`: instructions per request, rounded;
# "-" = not measured; note last (free text, e.g. BENCH_SERVER_ENV).
HISTORY_ROWS = {"floor": "floor", "axum": "axum", "wxgate": "wxgate-1w"}


def history_columns():
    return ["date", "commit", "dirty", "duration"] + [f"{w}.{r}" for w in WORKLOADS for r in HISTORY_ROWS] + ["note"]


def read_history(path):
    """(columns, lines as dicts by column) of a history file; ([], []) when there is none."""
    if not os.path.exists(path):
        return [], []
    with open(path) as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    return (rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]) if rows else ([], [])


def history_line(info, results):
    """This run's history line, a dict by column."""
    by = {(r["workload"], r["row"]): r.get("instructions_per_req") for r in results}
    date = info["date"].replace(" UTC", "Z").replace(" ", "T")
    env = dict(SERVER_ENV, **({"CARGO_TARGET_DIR": TARGET_DIR} if TARGET_DIR else {}))
    note = " ".join(f"{k}={v}" for k, v in env.items()).replace("\t", " ")
    cells = {"date": date, "commit": info["commit"] or "-", "dirty": str(info["dirty"]),
             "duration": str(DURATION), "note": note or "-"}
    for wid in WORKLOADS:
        for short, row in HISTORY_ROWS.items():
            n = by.get((wid, row))
            cells[f"{wid}.{short}"] = f"{n:.0f}" if n else "-"
    return cells


def append_history(path, cells):
    """Appends a line. A file with another header is rewritten in the current layout (columns it
    has beyond it kept before `note`), every line's cells moved by column name."""
    old, lines = read_history(path)
    columns = history_columns()
    columns = columns[:-1] + [c for c in old if c not in columns] + columns[-1:]
    fmt = lambda d: "\t".join(d.get(c, "-") for c in columns) + "\n"
    if old == columns:
        with open(path, "a") as f:
            f.write(fmt(cells))
    else:
        with open(path, "w") as f:
            f.write("\t".join(columns) + "\n")
            f.writelines(fmt(d) for d in lines + [cells])


def main():
    for binary in (WXGATE, FLOOR, GEN) + ((BASE_WXGATE,) if BASE else ()):
        if not os.path.exists(binary):
            sys.exit(f"missing {binary}: run bench/run (it builds the release binaries)")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run bench/run (it installs it)")
    command = os.environ.get("BENCH_COMMAND", "bench/run " + " ".join(sys.argv[1:])).strip()
    env_note = " ".join(f"{k}={os.environ[k]}" for k in sorted(os.environ)
                        if k.startswith("BENCH_") and k not in ("BENCH_COMMAND",))
    if env_note:
        command = f"{env_note} {command}"
    info = machine()
    log(f"machine: {info}")
    # Logs, request data and profiles on tmpfs, so their writeback cannot stall the servers;
    # the SQLite file on the disk, as in production.
    global DB_PATH
    tmp = tempfile.mkdtemp(prefix="wxgate-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    db_dir = tempfile.mkdtemp(prefix="wxgate-bench-db-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None)
    DB_PATH = os.path.join(db_dir, "wxgate.db")
    sim = start_sim(tmp)
    results = []
    try:
        ctx = Context(tmp, sim)
        stats_start = sim_stats(sim)
        token = None
        for wid in WORKLOADS:
            if ONLY and wid not in ONLY:
                continue
            if (wid == "W6" and "floor" in ROWS) or wid == "W7":
                # The floor of W6 and W7 calls the simulator with the token wxgate holds (no
                # upstream call); W7 presents that token to wxgate too.
                out = subprocess.run([WXGATE, "token", PLAIN_APPID, "-c", write_config(tmp, sim.url, free_port())],
                                     capture_output=True, text=True)
                m = re.search(r"^access_token=(\S+)$", out.stdout, re.M) if out.returncode == 0 else None
                token = m.group(1) if m else None
                if not token:
                    # No token stored yet (W4 skipped): let a short-lived wxgate fetch one.
                    port = free_port()
                    s = Server("token", [WXGATE, "serve", "-c", write_config(tmp, sim.url, port)], {}, None, port, tmp)
                    try:
                        _, body = fetch(s.url, "GET", f"/v1/apps/{PLAIN_APPID}/access_token", None,
                                       {"Authorization": f"Bearer {CLIENT_KEY}"})
                        token = json.loads(body)["access_token"]
                    finally:
                        s.stop()
            for row in ROWS:
                if row == "axum" and wid in UPSTREAM:
                    continue  # W6's and W7's floor is the simulator itself
                measure(ctx, wid, row, results, token)
        sim_totals = diff_calls(stats_start, sim_stats(sim))
    finally:
        sim.stop()
    history = read_history(HISTORY)[1] if CALLGRIND else []
    text = report(info, results, sim_totals, command, history)
    print(text)
    with open(os.path.join(tmp, "results.json"), "w") as f:
        json.dump({"machine": info, "results": results}, f, indent=1)
    if not KEEP:
        shutil.rmtree(ctx.data, ignore_errors=True)
        shutil.rmtree(db_dir, ignore_errors=True)
        for name in os.listdir(tmp):
            if name.endswith(".data"):
                os.remove(os.path.join(tmp, name))
    log(f"raw results (results.json), small server logs and profiles: {tmp}")
    if RESULTS != "-":
        save(RESULTS, text)
        log(f"wrote {RESULTS}")
    line = history_line(info, results)
    if CALLGRIND and HISTORY_ON and any(v != "-" for k, v in line.items() if k[:1] == "W"):
        append_history(HISTORY, line)
        log(f"appended a line to {HISTORY}")


if __name__ == "__main__":
    main()
