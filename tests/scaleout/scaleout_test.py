#!/usr/bin/env python3
"""Scale-out test: a real redis-server (AOF on), two `serve --queue`
front-ends and two `visiongen worker` processes on the tiny fixture models.

Checks, in order: 50 jobs through both front-ends complete exactly once with
the images a single local server gives for the same seeds; idempotency keys;
SSE progress through either front-end; a cancel stops within one step on
whichever worker runs the job; a worker killed with SIGKILL mid-job: the job
completes on the other worker, same image; a job that kills every worker
that runs it goes to the dead-letter stream and `queue retry-dead` brings it
back; Redis restarted between jobs: the queue resumes; a full queue answers
429 with Retry-After; routing: with model A on worker 1 and B on worker 2,
alternating A/B jobs cause no model load after warm-up.

  python3 tests/scaleout/scaleout_test.py --cli build/visiongen --models FIXTURES
  ... --bench     also prints jobs/s for 1 and 2 workers and the queue overhead per job
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

A, B = "sd1-tiny", "sdxl-tiny"
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, headers=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = json.dumps(body) if body is not None else None
    c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = c.getresponse()
    raw = r.read()
    c.close()
    try:
        payload = json.loads(raw) if raw.strip() else None
    except ValueError:
        payload = raw
    return r.status, dict(r.getheaders()), payload


class Cluster:
    def __init__(self, cli, models, tmp):
        self.cli, self.models, self.tmp = cli, models, tmp
        self.redis_port = free_port()
        self.url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis = None
        self.procs = []
        self.start_redis()

    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", self.tmp,
             "--appendonly", "yes", "--save", "", "--logfile", os.path.join(self.tmp, "redis.log")])
        for _ in range(100):
            if self.redis_cli("PING") == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop_redis(self):
        self.redis_cli("SHUTDOWN")  # writes the AOF out
        self.redis.wait(timeout=10)

    def redis_cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], capture_output=True, text=True)
        return r.stdout.strip()

    def frontend(self, *extra):
        p = subprocess.Popen([self.cli, "serve", "--queue", self.url, "--port", "0", "--models-dir", self.models,
                              "-m", os.path.join(self.models, A), "--max-queue", "200", *extra],
                             stdout=subprocess.PIPE, stderr=open(os.path.join(self.tmp, "fe.log"), "a"), text=True)
        line = p.stdout.readline()
        if "serving on" not in line:
            raise RuntimeError("front-end did not start: " + line)
        p.port = int(line.split("://")[1].split("/")[0].rsplit(":", 1)[1])
        self.procs.append(p)
        return p

    def worker(self, name, *extra, wait_ready=True):
        log = open(os.path.join(self.tmp, f"worker-{name}.log"), "a")
        p = subprocess.Popen([self.cli, "worker", "--queue", self.url, "--name", name, "--models-dir", self.models,
                              "-m", os.path.join(self.models, A), "--visibility-timeout", "3", "-t", "1", *extra],
                             stdout=subprocess.DEVNULL, stderr=log)
        p.name = name
        self.procs.append(p)
        if wait_ready:
            deadline = time.time() + 60
            while time.time() < deadline:
                w = self.workers().get(name)
                if w and w.get("ready") == 1:
                    return p
                time.sleep(0.1)
            raise RuntimeError(f"worker {name} did not get ready")
        return p

    def status(self):
        r = subprocess.run([self.cli, "queue", "status", "--queue", self.url, "--json"], capture_output=True, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def workers(self):
        s = self.status()
        return {w["name"]: w for w in s["workers"]} if s else {}

    def stop(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def close(self):
        for p in list(self.procs):
            self.stop(p, signal.SIGKILL)
        if self.redis and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait()


def submit(port, body, key=None):
    st, hdr, j = call(port, "POST", "/v1/jobs", body, {"Idempotency-Key": key} if key else None)
    if st != 202:
        raise RuntimeError(f"submit answered {st}: {j}")
    return j


def wait_job(port, job_id, timeout=120, until=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, _, j = call(port, "GET", "/v1/jobs/" + job_id)
        if st == 200 and (j["status"] in ("completed", "failed", "cancelled") or (until and until(j))):
            return j
        time.sleep(0.03)
    raise RuntimeError(f"job {job_id} did not finish in {timeout} s")


def job_body(i, model=None, steps=2, size=64):
    return {"prompt": f"a red circle, variant {i % 5}", "steps": steps, "width": size, "height": size, "seed": 1000 + i,
            "model": model or (A if i % 2 == 0 else B)}


def baseline(cli, models, bodies):
    """Artifact ids (sha256 of the PNG) a single local server gives."""
    p = subprocess.Popen([cli, "serve", "--port", "0", "--models-dir", models, "-m", os.path.join(models, A), "-t", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(p.stdout.readline().split("://")[1].split("/")[0].rsplit(":", 1)[1])
    try:
        ids = []
        for b in bodies:
            st, _, j = call(port, "POST", "/generate", b)
            if st != 200:
                raise RuntimeError(f"the single server answered {st}: {j}")
            ids.append(j["images"][0]["id"])
        return ids
    finally:
        p.terminate()
        p.wait()


def test_fifty_jobs(c, fe1, fe2, cli, models):
    bodies = [job_body(i) for i in range(50)]
    want = baseline(cli, models, bodies)
    before = c.status()["counters"].get("completed", 0)
    jobs = [submit((fe1 if i % 2 == 0 else fe2).port, b) for i, b in enumerate(bodies)]
    done = [wait_job((fe2 if i % 2 == 0 else fe1).port, j["id"]) for i, j in enumerate(jobs)]  # read through the other one
    check(all(d["status"] == "completed" for d in done), "all 50 jobs complete")
    got = [d["result"]["images"][0]["id"] if d["status"] == "completed" else None for d in done]
    check(got == want, f"the 50 images equal a single server's for the same seeds ({sum(a == b for a, b in zip(got, want))}/50)")
    check(all(d.get("attempts") == 1 for d in done), "each job ran once (attempts == 1)")
    check(len({d["id"] for d in done}) == 50, "50 distinct jobs")
    after = c.status()["counters"].get("completed", 0)
    check(after - before == 50, f"the queue counted 50 completions ({after - before})")
    st, _, png = call(fe2.port, "GET", "/v1/artifacts/" + got[0]) if got[0] else (0, 0, 0)
    check(st == 200, "a result is served by the front-end that did not queue it")
    used = {d["worker"] for d in done}
    print(f"fifty jobs: done, workers used {sorted(used)}", flush=True)


def test_idempotency(fe1, fe2):
    b = job_body(7)
    j1 = submit(fe1.port, b, key="retry-123")
    j2 = submit(fe2.port, b, key="retry-123")
    check(j1["id"] == j2["id"], "the same Idempotency-Key gives the same job through another front-end")
    wait_job(fe1.port, j1["id"])


def read_sse(port, job_id, out, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", f"/v1/jobs/{job_id}/events")
    r = c.getresponse()
    event = None
    for raw in r:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[6:])))
            if event in ("completed", "error", "cancelled"):
                break
    c.close()


def test_sse(fe1, fe2):
    for submit_fe, watch_fe in ((fe1, fe1), (fe1, fe2)):
        j = submit(submit_fe.port, job_body(3, model=A, steps=12))
        events = []
        read_sse(watch_fe.port, j["id"], events)
        steps = [d["step"] for e, d in events if e == "progress" and d.get("phase") == "denoise"]
        check(events and events[-1][0] == "completed", "SSE ends with 'completed'")
        check(len(steps) >= 6 and steps == sorted(steps), f"SSE carries the denoising steps in order ({steps})")


def test_cancel(fe1, fe2):
    j = submit(fe1.port, job_body(11, model=A, steps=400, size=128))
    wait_job(fe2.port, j["id"], until=lambda s: s["status"] == "running" and s["step"] >= 2)
    st, _, _ = call(fe2.port, "POST", f"/v1/jobs/{j['id']}/cancel")
    final = wait_job(fe1.port, j["id"], timeout=30)
    check(st == 200 and final["status"] == "cancelled",
          f"a running job cancelled through the other front-end ends cancelled ({final['status']})")
    check(final["step"] < 400, f"it stopped early (step {final['step']} of 400)")


def test_cancel_within_one_step(c, fe1):
    """The worker reads the cancel flag with every step's progress event."""
    j = submit(fe1.port, job_body(12, model=A, steps=400, size=128))
    wait_job(fe1.port, j["id"], until=lambda s: s["status"] == "running" and s["step"] >= 2)
    c.redis_cli("HSET", "vg:job:" + j["id"], "cancel", "1")
    flagged_at = int(c.redis_cli("HGET", "vg:job:" + j["id"], "step"))
    final = wait_job(fe1.port, j["id"], timeout=30)
    check(final["status"] == "cancelled", "the flagged job ends cancelled")
    check(final["step"] <= flagged_at + 2, f"it stopped within one step of the flag (flag at {flagged_at}, stopped at {final['step']})")


def test_kill_worker(c, fe1, fe2, workers, cli, models):
    body = job_body(21, model=A, steps=80, size=128)
    want = baseline(cli, models, [body])[0]
    j = submit(fe1.port, body)
    running = wait_job(fe1.port, j["id"], until=lambda s: s["status"] == "running" and s["step"] >= 3)
    victim = next(w for w in workers if w.name == running["worker"])
    c.stop(victim, signal.SIGKILL)
    final = wait_job(fe2.port, j["id"], timeout=120)
    check(final["status"] == "completed", f"the job of a killed worker completes ({final['status']})")
    check(final.get("worker") != victim.name, "on the other worker")
    check(final.get("attempts") == 2, f"after one reclaim (attempts {final.get('attempts')})")
    check(final["status"] == "completed" and final["result"]["images"][0]["id"] == want, "with the same image")
    workers.remove(victim)
    return victim.name


def test_dead_letter(c, fe1):
    """A job that every worker running it dies on goes to the dead-letter stream."""
    extra = ("--max-attempts", "2", "--models", A)
    j = submit(fe1.port, job_body(31, model=A, steps=400, size=128))
    for attempt in (1, 2):
        w = c.worker(f"poison{attempt}", *extra)
        wait_job(fe1.port, j["id"], until=lambda s: s["status"] == "running" and s.get("worker") == w.name and s["step"] >= 2)
        c.stop(w, signal.SIGKILL)
    w = c.worker("poison3", *extra)
    final = wait_job(fe1.port, j["id"], timeout=60)
    check(final["status"] == "failed" and "dead-letter" in final["error"]["message"],
          f"after 2 attempts the job fails into the dead-letter stream ({final.get('error')})")
    check(c.status()["dead_letters"] == 1, "queue status shows one dead letter")
    r = subprocess.run([c.cli, "queue", "retry-dead", "--queue", c.url], capture_output=True, text=True)
    check("1 job(s) queued again" in r.stdout, "queue retry-dead queues it again: " + r.stdout)
    c.redis_cli("HSET", "vg:job:" + j["id"], "cancel", "1")  # let it end (cancelled) rather than run 400 steps
    deadline = time.time() + 60
    while time.time() < deadline and c.redis_cli("HGET", "vg:job:" + j["id"], "status") not in ("cancelled", "completed"):
        time.sleep(0.1)
    check(c.redis_cli("HGET", "vg:job:" + j["id"], "status") in ("cancelled", "completed"), "the retried job ran again")
    check(c.status()["dead_letters"] == 0, "the dead-letter stream is empty after retry-dead")
    c.stop(w)


def test_other_apis(fe1, fe2):
    """OpenAI and A1111 endpoints answer through a front-end too."""
    st, _, j = call(fe1.port, "POST", "/v1/images/generations",
                    {"prompt": "a red circle", "model": A, "size": "64x64", "response_format": "b64_json"})
    check(st == 200 and j["data"] and j["data"][0].get("b64_json"), f"OpenAI images/generations through a front-end ({st})")
    st, _, j = call(fe2.port, "POST", "/sdapi/v1/txt2img", {"prompt": "a red circle", "steps": 2, "width": 64, "height": 64})
    check(st == 200 and j.get("images"), f"sdapi txt2img through a front-end ({st})")


def test_hand_back_and_health(c, fe1, survivor):
    """SIGTERM with --on-stop hand-back: the job goes back to the queue (no attempt counted) and runs elsewhere;
    a worker's /healthz, /readyz and /metrics."""
    port = free_port()
    w = c.worker("leaver", "--on-stop", "hand-back", "--models", A, "--port", str(port))
    st, _, ready = call(port, "GET", "/readyz")
    check(st == 200, f"a worker with its model loaded is ready ({st} {ready})")
    os.kill(survivor.pid, signal.SIGSTOP)  # only the leaver may take the job
    try:
        j = submit(fe1.port, job_body(81, model=A, steps=200, size=128))
        wait_job(fe1.port, j["id"], until=lambda s: s.get("worker") == "leaver" and s["step"] >= 2)
        c.stop(w, signal.SIGTERM)
    finally:
        os.kill(survivor.pid, signal.SIGCONT)
    final = wait_job(fe1.port, j["id"], timeout=120)
    check(final["status"] == "completed" and final.get("worker") == survivor.name and final.get("attempts") == 1,
          f"a handed-back job completes on another worker, its attempt not counted ({final.get('worker')}, {final.get('attempts')})")
    w2 = c.worker("metrics", "--models", A, "--port", str(port))
    st, _, text = call(port, "GET", "/metrics")
    check(st == 200 and b"visiongen_worker_model_loads_total 1" in text, "worker metrics on --port")
    st, _, _ = call(port, "GET", "/healthz")
    check(st == 200, "worker /healthz")
    c.stop(w2)


def test_drain(c, fe1):
    r = subprocess.run([c.cli, "queue", "drain", "--queue", c.url, "--timeout", "30"], capture_output=True, text=True)
    check(r.returncode == 0 and "drained" in r.stdout, "queue drain returns once the queue is empty: " + r.stdout + r.stderr)
    st, hdr, j = call(fe1.port, "POST", "/v1/jobs", job_body(90, model=A))
    check(st == 503 and j["error"]["code"] == "queue_unavailable" and hdr.get("Retry-After"),
          f"a draining queue refuses new jobs with 503 and Retry-After ({st})")
    subprocess.run([c.cli, "queue", "resume", "--queue", c.url], capture_output=True)
    st, _, _ = call(fe1.port, "POST", "/v1/jobs", job_body(91, model=A))
    check(st == 202, "after queue resume jobs are taken again")


def test_redis_restart(c, fe1, fe2):
    j1 = submit(fe1.port, job_body(41))
    d1 = wait_job(fe1.port, j1["id"])
    c.stop_redis()
    c.start_redis()
    j2 = submit(fe2.port, job_body(42))
    d2 = wait_job(fe2.port, j2["id"], timeout=60)
    check(d2["status"] == "completed", "after a Redis restart the queue takes and runs jobs")
    st, _, again = call(fe2.port, "GET", "/v1/jobs/" + j1["id"])
    check(st == 200 and again["status"] == "completed" and again["result"]["images"][0]["id"] == d1["result"]["images"][0]["id"],
          "a job from before the restart is still there (AOF)")


def test_full_queue(c):
    fe = c.frontend("--max-queue-per-model", "2")
    url1 = c.url[:-1] + "1"  # nobody works on database 1
    fe_idle = subprocess.Popen([c.cli, "serve", "--queue", url1, "--port", "0", "--models-dir", c.models,
                                "-m", os.path.join(c.models, A), "--max-queue-per-model", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(fe_idle.stdout.readline().split("://")[1].split("/")[0].rsplit(":", 1)[1])
    c.procs.append(fe_idle)
    for i in range(2):
        submit(port, job_body(50 + i, model=A))
    st, hdr, j = call(port, "POST", "/v1/jobs", job_body(52, model=A))
    check(st == 429 and hdr.get("Retry-After") and j["error"]["code"] == "busy",
          f"a full model queue answers 429 with Retry-After ({st}, {hdr.get('Retry-After')})")
    c.stop(fe_idle)
    c.stop(fe)


def test_routing(c, fe1):
    w1 = c.worker("route1", "--preload", A, "--route-wait", "60")
    w2 = c.worker("route2", "--preload", B, "--route-wait", "60")
    loads0 = {n: c.workers()[n]["model_loads"] for n in ("route1", "route2")}
    ran_on = {A: set(), B: set()}
    for pair in range(6):
        ja = submit(fe1.port, job_body(60 + 2 * pair, model=A))
        jb = submit(fe1.port, job_body(61 + 2 * pair, model=B))
        for j, m in ((ja, A), (jb, B)):
            d = wait_job(fe1.port, j["id"])
            ran_on[m].add(d.get("worker"))
    loads1 = {n: c.workers()[n]["model_loads"] for n in ("route1", "route2")}
    check(loads1 == loads0, f"no model loads after warm-up ({loads0} -> {loads1})")
    check(ran_on == {A: {"route1"}, B: {"route2"}}, f"each job ran where its model was loaded ({ran_on})")
    c.stop(w1)
    c.stop(w2)


def presign_like_botocore(url, key, secret, region):
    """The signature botocore (the AWS SDK for Python) computes for the same object at the URL's X-Amz-Date,
    and the URL's own signature."""
    import urllib.parse
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    parts = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(parts.query))
    auth = botocore.auth.S3SigV4QueryAuth(Credentials(key, secret), "s3", region, expires=int(q["X-Amz-Expires"]))
    req = AWSRequest(method="GET", url=f"{parts.scheme}://{parts.netloc}{parts.path}")
    req.context["timestamp"] = q["X-Amz-Date"]  # add_auth's steps, at the URL's time rather than now
    auth._modify_request_before_signing(req)
    canonical = auth.canonical_request(req)
    return auth.signature(auth.string_to_sign(req, canonical), req), q["X-Amz-Signature"]


def test_s3(c, s3rver):
    """Results in an S3-compatible store (s3rver): presigned URLs that botocore would sign the same."""
    port = free_port()
    data = os.path.join(c.tmp, "s3")
    os.makedirs(data)
    srv = subprocess.Popen([s3rver, "-d", data, "-p", str(port), "-a", "127.0.0.1", "--configure-bucket", "vgbucket"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    c.procs.append(srv)
    srv.stdout.readline()
    os.environ.update(AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER")
    s3 = ("--artifacts", "s3://vgbucket/results", "--s3-endpoint", f"http://127.0.0.1:{port}")
    fe = c.frontend(*s3)
    w = c.worker("s3worker", *s3)
    d = wait_job(fe.port, submit(fe.port, job_body(70, model=A))["id"])
    im = d["result"]["images"][0] if d["status"] == "completed" else {}
    check("url" in im and "X-Amz-Signature=" in im.get("url", ""), f"an S3 result carries a presigned URL ({im.get('url')})")
    if "url" in im:
        import hashlib
        import urllib.request
        body = urllib.request.urlopen(im["url"]).read()
        check(hashlib.sha256(body).hexdigest() == im["id"], "the presigned URL serves the result's bytes")
        want, got = presign_like_botocore(im["url"], "S3RVER", "S3RVER", "us-east-1")
        check(want == got, f"the presigned signature equals botocore's ({got} vs {want}; url {im['url']}; "
                           f"botocore again: {presign_like_botocore(im['url'], 'S3RVER', 'S3RVER', 'us-east-1')[0]})")
        st, _, png = call(fe.port, "GET", "/v1/artifacts/" + im["id"])
        check(st == 200 and hashlib.sha256(png).hexdigest() == im["id"], "the front-end serves the result from S3")
        check(os.path.exists(os.path.join(data, "vgbucket", "results", im["id"])) or
              any(im["id"] in f for _, _, fs in os.walk(data) for f in fs), "the object is in the bucket")
    c.stop(w)
    c.stop(fe)
    c.stop(srv)


def bench(c, fe1, n=40):
    """jobs/s for 1 and 2 workers, and the queue's overhead per job."""
    out = {}
    for count in (1, 2):
        ws = [c.worker(f"bench{count}-{i}", "--models", A) for i in range(count)]
        t0 = time.time()
        jobs = [submit(fe1.port, job_body(100 + i, model=A)) for i in range(n)]
        for j in jobs:
            wait_job(fe1.port, j["id"])
        out[f"jobs_per_s_{count}_worker"] = round(n / (time.time() - t0), 2)
        if count == 1:  # one at a time, /generate (answers when done): through the queue vs a local server
            local = subprocess.Popen([c.cli, "serve", "--port", "0", "--models-dir", c.models, "-m",
                                      os.path.join(c.models, A), "-t", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            local_port = int(local.stdout.readline().split("://")[1].split("/")[0].rsplit(":", 1)[1])
            lat = {"queue": [], "local": []}
            for i in range(30):
                for kind, port in (("queue", fe1.port), ("local", local_port)):
                    t = time.time()
                    st, _, j = call(port, "POST", "/generate", job_body(200 + i, model=A))
                    lat[kind].append((time.time() - t) * 1000 - j["result"]["elapsed_s"] * 1000)
            local.terminate()
            local.wait()
            q, l = statistics.median(lat["queue"]), statistics.median(lat["local"])
            out["sync_latency_beyond_run_ms_median"] = {"queue": round(q, 2), "local": round(l, 2)}
            out["queue_overhead_ms_per_job"] = round(q - l, 2)
        for w in ws:
            c.stop(w)
    print(json.dumps(out), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--s3rver", default=os.path.join(os.path.dirname(__file__), "../node/node_modules/.bin/s3rver"),
                    help="s3rver (npm; tests/node: npm ci)")
    a = ap.parse_args()
    if not shutil.which("redis-server"):
        print("redis-server is missing: run scripts/install-deps.sh --test", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="vg-scaleout-")
    models = os.path.join(tmp, "models")
    os.makedirs(models)
    # copies: a server follows no symlink out of its model folders
    shutil.copytree(os.path.join(a.fixtures, "sd1-tiny/models/sd1-tiny"), os.path.join(models, A))
    shutil.copytree(os.path.join(a.fixtures, "sdxl-tiny/models/sdxl-tiny"), os.path.join(models, B))
    c = Cluster(a.cli, models, tmp)
    try:
        if a.bench:
            fe1 = c.frontend()
            bench(c, fe1)
            return 0
        fe1, fe2 = c.frontend(), c.frontend()
        workers = [c.worker("w1"), c.worker("w2")]
        t0 = time.time()
        test_fifty_jobs(c, fe1, fe2, a.cli, models)
        test_idempotency(fe1, fe2)
        test_sse(fe1, fe2)
        test_cancel(fe1, fe2)
        test_cancel_within_one_step(c, fe1)
        test_kill_worker(c, fe1, fe2, workers, a.cli, models)
        test_redis_restart(c, fe1, fe2)
        test_other_apis(fe1, fe2)
        test_drain(c, fe1)
        test_hand_back_and_health(c, fe1, workers[0])
        for w in workers:
            c.stop(w)
        test_dead_letter(c, fe1)
        test_full_queue(c)
        test_routing(c, fe1)
        if check(os.path.exists(a.s3rver), f"s3rver at {a.s3rver} (run `npm ci` in tests/node)"):
            test_s3(c, a.s3rver)
        print(f"scale-out checks done in {time.time() - t0:.0f} s", flush=True)
    finally:
        c.close()
        if not FAILURES:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in", tmp)
    print("FAILED: " + "; ".join(FAILURES) if FAILURES else "all scale-out checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
