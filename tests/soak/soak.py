#!/usr/bin/env python3
"""Soak test: `visiongen serve` under a mix of valid jobs, invalid bodies,
cancels and disconnects for a while, from several client threads.

The warm-up lasts --warmup seconds and until the server's bounded memory
(results kept in memory, --keep-jobs jobs) has filled, at most 4x as long.
Fails (exit 1) on any 5xx answer, on file descriptors or threads that grew
after the warm-up, or on RSS growth of 5 % or more after the warm-up.
Prints the figures as JSON (also written to --json FILE).

  python3 tests/soak/soak.py --cli build/visiongen --model MODEL_DIR --seconds 300
"""
import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

VALID_GEN = {"prompt": "a red circle", "steps": 2, "width": 64, "height": 64}


def proc_stats(pid):
    """(RSS in KiB, open fds, threads) of process pid."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


class Soak:
    def __init__(self, port, seed):
        self.port = port
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {}
        self.server_errors = []
        self.deadline = float("inf")  # clients stop then

    def note(self, kind, status):
        with self.lock:
            key = f"{kind} {status}"
            self.counts[key] = self.counts.get(key, 0) + 1
            if isinstance(status, int) and status >= 500:
                self.server_errors.append(key)

    def request(self, method, path, body=None, headers=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def post_json(self, path, obj):
        return self.request("POST", path, json.dumps(obj), {"Content-Type": "application/json"})

    # the mix ---------------------------------------------------------------
    def valid_sync(self, rng):
        body = dict(VALID_GEN, seed=rng.randrange(1 << 31))
        status, _ = self.post_json("/v1/images/generations", {"prompt": body["prompt"], "size": "64x64",
                                                              "extra": {"steps": 2, "seed": body["seed"]}})
        self.note("openai_generation", status)
        if status not in (200, 429):
            raise AssertionError(f"valid OpenAI request answered {status}")

    def valid_job(self, rng):
        status, raw = self.post_json("/v1/jobs", dict(VALID_GEN, seed=rng.randrange(1 << 31)))
        self.note("job_submit", status)
        if status == 429:
            return
        if status != 202:
            raise AssertionError(f"valid job answered {status}")
        job = json.loads(raw)["id"]
        if rng.random() < 0.5:  # cancel right away
            status, _ = self.request("POST", f"/v1/jobs/{job}/cancel")
            self.note("job_cancel", status)
            return
        for _ in range(600):
            status, raw = self.request("GET", f"/v1/jobs/{job}")
            self.note("job_poll", status)
            if status != 200 or json.loads(raw)["status"] in ("completed", "failed", "cancelled"):
                return
            time.sleep(0.05)

    def invalid(self, rng):
        bodies = [
            b"{not json", b"[]", b"", b'{"prompt": 5}', b'{"prompt":"x","steps":"many"}',
            b'{"prompt":"x","width":-64}', b'{"prompt":"x","width":100000,"height":100000}',
            b'{"prompt":"x","no_such_field":1}', b"[" * 200 + b"]" * 200, b'{"prompt":"x","seed":1e999}',
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))),
        ]
        # A1111 ignores unknown fields and fills its defaults: only these are invalid there
        sdapi = [b"{not json", b"[]", b'{"prompt":"x","steps":"many"}', b'{"prompt":"x","width":-64}',
                 b'{"prompt":"x","steps":1e300}']
        # the OpenAI endpoint ignores fields it does not know, as OpenAI's does
        openai = [b"{not json", b"[]", b'{"prompt": 5}', b'{"prompt":"x","n":"many"}', b'{"prompt":"x","size":"huge"}',
                  b'{"prompt":"x","n":1e999}']
        path = rng.choice(["/v1/jobs", "/generate", "/v1/images/generations", "/sdapi/v1/txt2img"])
        body = rng.choice(sdapi if path.startswith("/sdapi") else openai if path.startswith("/v1/images") else bodies)
        status, _ = self.request("POST", path, body, {"Content-Type": "application/json"})
        if status < 400:
            raise AssertionError(f"invalid body {body[:60]!r} to {path} answered {status}")
        self.note("invalid_body", status)

    def reads(self, rng):
        path = rng.choice(["/health", "/v1/models", "/metrics", "/v1/jobs", "/sdapi/v1/samplers", "/nope",
                           "/v1/artifacts/" + "0" * 64, "/v1/jobs/nosuchjob"])
        status, _ = self.request("GET", path)
        self.note("get", status)

    def disconnect(self, rng):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            body = json.dumps(dict(VALID_GEN, seed=rng.randrange(1 << 31))).encode()
            head = (f"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            if rng.random() < 0.5:
                s.sendall(head + body[: len(body) // 2])  # half a body, then gone
            else:
                s.sendall(head + body)  # the whole request, gone before the answer
                time.sleep(rng.random() * 0.3)
        finally:
            s.close()
        self.note("disconnect", "sent")

    def results_made(self):
        """About how many images the server has made (synchronous ones, plus half the jobs: the rest are cancelled)."""
        with self.lock:
            return self.counts.get("openai_generation 200", 0) + self.counts.get("job_submit 202", 0) // 2

    def client(self, seed, failures):
        rng = random.Random(seed)
        actions = [(self.valid_sync, 25), (self.valid_job, 20), (self.invalid, 25), (self.reads, 20),
                   (self.disconnect, 10)]
        pool = [a for a, w in actions for _ in range(w)]
        while time.time() < self.deadline:
            try:
                rng.choice(pool)(rng)
            except (AssertionError, OSError, http.client.HTTPException) as e:
                failures.append(repr(e))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--warmup", type=float, default=0, help="seconds before the baseline (default: a fifth)")
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--keep-jobs", type=int, default=100,
                    help="the server's --keep-jobs: small, so the warm-up fills the job and artifact memory")
    ap.add_argument("--json")
    ap.add_argument("--server-log", help="write the server's stderr here")
    a = ap.parse_args()
    warmup = a.warmup or max(10.0, a.seconds / 5)
    log = open(a.server_log, "w") if a.server_log else subprocess.DEVNULL
    srv = subprocess.Popen([a.cli, "serve", "-m", a.model, "--port", "0", "-t", "1", "--max-queue", "8",
                            "--keep-jobs", str(a.keep_jobs)],
                           stdout=subprocess.PIPE, stderr=log, text=True)
    line = srv.stdout.readline()
    port = int(line.split("://")[1].split("/")[0].rsplit(":", 1)[1])
    soak = Soak(port, 1)
    failures = []
    t0 = time.time()
    soak.deadline = float("inf")
    threads = [threading.Thread(target=soak.client, args=(k, failures)) for k in range(a.clients)]
    for t in threads:
        t.start()
    # warm-up: the time asked, and until the server's bounded memory is full
    # (the 512 results it keeps in memory, the --keep-jobs jobs), at most 4x the time
    time.sleep(warmup)
    while soak.results_made() < 600 + a.keep_jobs and time.time() < t0 + 4 * warmup:
        time.sleep(1)
    warmup = time.time() - t0
    base = proc_stats(srv.pid)
    peak_rss = base[0]
    soak.deadline = time.time() + a.seconds
    while time.time() < soak.deadline:
        time.sleep(1)
        peak_rss = max(peak_rss, proc_stats(srv.pid)[0])
    for t in threads:
        t.join()
    if srv.poll() is not None:
        print(f"soak: FAILED: the server exited with {srv.returncode}", file=sys.stderr)
        return 1
    # quiet: let cancelled and disconnected jobs drain, and closed connections go
    for _ in range(120):
        status, raw = soak.request("GET", "/v1/jobs?status=running")
        queued = soak.request("GET", "/v1/jobs?status=queued")[1]
        if not json.loads(raw)["data"] and not json.loads(queued)["data"]:
            break
        time.sleep(0.5)
    time.sleep(3)
    end = proc_stats(srv.pid)
    srv.terminate()
    srv.wait(30)
    total = sum(v for k, v in soak.counts.items() if not k.startswith("job_poll"))
    report = {
        "seconds": a.seconds, "warmup_s": round(warmup, 1), "clients": a.clients, "requests": total,
        "by_kind": dict(sorted(soak.counts.items())), "5xx": len(soak.server_errors),
        "client_failures": failures[:10], "client_failure_count": len(failures),
        "rss_kib": {"after_warmup": base[0], "end": end[0], "peak": peak_rss,
                    "growth_pct": round(100.0 * (end[0] - base[0]) / base[0], 2)},
        "fds": {"after_warmup": base[1], "end": end[1]},
        "threads": {"after_warmup": base[2], "end": end[2]},
    }
    text = json.dumps(report, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    ok = (not soak.server_errors and not failures and end[1] <= base[1] and end[2] <= base[2]
          and end[0] < base[0] * 1.05)
    if not ok:
        print("soak: FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
