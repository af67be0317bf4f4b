#!/usr/bin/env python3
"""Chaos benchmark of waterline-operator and waterline-router (Python 3 standard library).

Called by bench/chaos/run.sh after the build; runs alone on prebuilt binaries:

    python3 bench/chaos/chaos.py --root . --build build [--quick] [--seed N]

On its own local control plane (hack/controlplane.sh) with a kwok GPU fleet
(hack/fixtures/gpu-nodes.sh --profile fleet --nodes 40: 24 H100 nodes, 8 A100 MIG nodes,
4 H100 MIG nodes, 4 L4 time-sliced nodes over 4 regions), everything on loopback:

1. Operator chaos. Six CapacityPools (an Exclusive H100 pool per region, a MIG pool, a
   time-slicing pool) and eleven ModelDeployments (1, 2, 4 and 8 whole GPUs, MIG 3g.40gb
   and 1g.10gb, half a time-sliced GPU; Standard, DataZone and Global) start at 0-2
   replicas. One operator (leader election on, fixed identity, as a restarted pod keeps
   its name) is killed with SIGKILL --kills times (CHAOS_KILLS, default 22) and restarted
   at once. Each cycle applies the next scale-ups (+1..+3 replicas, in a seeded random
   order) and PTUReservation creations (some start immediately, some at a startTime a
   few seconds later, so that they activate while the operator is being killed), waits
   (half the time 0-50 ms, a quarter 50-300 ms, a quarter 0.3-1.2 s), then kills and
   restarts; in a random quarter of the cycles the restarted operator is killed again
   50-600 ms after its start (initial list, first pass) and restarted (counted as a
   kill too); after the restart is ready it waits a random 0.3-2.5 s before the next
   cycle. Before each kill the operator's /metrics is read: work queued
   or reconciles in flight at that moment are printed per kill. The last scale-ups bring
   every deployment to its final size (96 of 192 H100 GPUs, MIG and shares well within
   their pools, so everything fits). After the last restart: at most
   --converge-timeout s for every deployment to converge (observedGeneration current,
   Scheduled=True, status.scheduledReplicas = max(spec.replicas, the Active
   reservations' reservedReplicas), that many live, non-draining, Running workers) and
   every reservation to be Active. Checked on every worker pod (all namespaces): the
   GPUs named by waterline.dev/gpu-assignment (whole GPUs, MIG memory slots from the
   profile and start slot, share slices) held by two live pods at once, and the
   annotation's node against spec.nodeName. This check also runs after every restart
   during the kills; chaos_double_booked_gpus is the largest count seen at any sample.
   Duplicate workers: live workers beyond the expected replicas of their deployment
   after convergence.
2. Router chaos. An upstream (this process, a keep-alive HTTP/1.1 server answering after
   20-300 ms) behind waterline-router on a fixed loopback port; 8 client threads send
   requests back to back (keep-alive, reconnecting after errors, 15 s socket timeout)
   for --router-seconds while the router is killed --router-kills times at seeded random
   moments and restarted. Every request ends with an answer (an HTTP status), an error
   (attributed to a kill when the router was down during the request, or its
   connection was opened before a kill), or a timeout: chaos_requests_lost counts
   timeouts (no answer, no error).
3. PTU over-admission. A router whose routing table has one deployment with one
   reservation (100,000 tokens/min, burst 0, weights 1) in front of a recording
   upstream. For --ptu-seconds (>= 60) six threads send hostile requests: huge
   max_tokens / max_completion_tokens with n=128 (2^56 .. 2^64-1), negative and float
   values, nested junk, long prompts, requests without max_tokens, and a flood of small
   ones. The upstream answers honestly: per choice min(max_tokens, 4096) completion
   tokens (64 when the request sets none), n clamped to 1..128, prompt = ceil(chars/4)
   of the text. Admitted weighted tokens = the usage of every request the upstream
   received (only admitted requests reach it). Worst full minute: the largest sum over
   any window of 59.75 s starting at a receipt (0.25 s less than a minute, so that
   scheduling delay between the router's admission and the upstream's receipt is not
   read as over-admission). ptu_overadmission_pct_hostile = max(0, worst/limit - 1) x 100.
4. Worst-manifest churn. Hostile ModelDeployments (replicas --churn-replicas each, one
   whole GPU, Global) are applied while the operator runs: a template annotation
   waterline.dev/draining-since, a template label waterline.dev/deployment: other, a
   template label app.kubernetes.io/managed-by: someone-else, a template annotation
   waterline.dev/gpu-assignment naming a GPU, a 70-character name, an image with spaces,
   a negative CPU request, and a plain one for reference. A pod watch on their
   namespace counts ADDED events per owner for --churn-seconds; the figure is the most
   in any 60 s window. A manifest the apiserver rejects counts 0.
   Phases 2 and 3 run while phase 4 watches (they do not use the cluster).

Ends with RESULT lines and "GOAL MISSED: ..." for each goal not met; exits 0 unless the
harness failed (a setup step failed, a process did not start).
"""

import argparse
import atexit
import bisect
import http.client
import http.server
import json
import math
import os
import random
import re
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

T0 = time.monotonic()


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


class HarnessError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rfc3339(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ processes


class Procs:
    """Every process this run starts; all stopped on exit."""

    def __init__(self):
        self.procs = []
        self.lock = threading.Lock()

    def start(self, argv, logfile):
        f = open(logfile, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        f.close()
        with self.lock:
            self.procs.append(p)
        return p

    def kill9(self, p):
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()

    def stop_all(self):
        with self.lock:
            procs = list(self.procs)
        for p in procs:
            if p.poll() is None:
                try:
                    p.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def http_get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def wait_http_ok(url, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"{what} exited with status {proc.returncode}")
        try:
            st, _ = http_get(url, 1.0)
            if st == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise HarnessError(f"{what} not ready at {url} after {timeout} s")


def metric_sum(text, name, label_re=None):
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        key = line.split(" ", 1)[0]
        if key != name and not key.startswith(name + "{"):
            continue
        if label_re and not re.search(label_re, key):
            continue
        try:
            total += float(line.rsplit(" ", 1)[1])
            found = True
        except (ValueError, IndexError):
            pass
    return total if found else None


# ------------------------------------------------------------------ Kubernetes API


class Kube:
    def __init__(self, port, ca, token):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.token = token
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
            self.local.c = c
        return c

    def req(self, method, path, body=None, ctype="application/json"):
        for attempt in range(4):
            c = self._conn()
            try:
                headers = {"Authorization": "Bearer " + self.token, "Accept": "application/json"}
                data = None
                if body is not None:
                    data = body if isinstance(body, bytes) else json.dumps(body).encode()
                    headers["Content-Type"] = ctype
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
                try:
                    j = json.loads(raw) if raw else {}
                except ValueError:
                    j = {"raw": raw[:300].decode("utf-8", "replace")}
                return r.status, j
            except (OSError, http.client.HTTPException):
                c.close()
                self.local.c = None
                if attempt == 3:
                    raise
                time.sleep(0.5)

    def must(self, method, path, body=None, ok=(200, 201), ctype="application/json"):
        st, j = self.req(method, path, body, ctype)
        if st not in ok:
            raise HarnessError(f"{method} {path}: {st} {j.get('message', j)}")
        return j

    def list(self, path):
        return self.must("GET", path).get("items", [])


# ------------------------------------------------------------------ GPU claims


MIG_MEMORY_SLOTS = {"1g.5gb": 1, "1g.10gb": 1, "1g.12gb": 1, "1g.18gb": 1, "1g.20gb": 2, "1g.24gb": 2,
                    "2g.10gb": 2, "2g.20gb": 2, "2g.24gb": 2, "3g.20gb": 4, "3g.40gb": 4, "3g.47gb": 4,
                    "4g.20gb": 4, "4g.40gb": 4, "4g.47gb": 4, "7g.40gb": 8, "7g.80gb": 8, "7g.94gb": 8}


def parse_assignment(a):
    """'v1;node=N;gpus=0,1' | 'v1;node=N;gpu=3;mig=3g.40gb@4' | 'v1;node=N;gpu=2;share=4,5/8;mem=..'
    -> (node, [(gpu, kind, unit)]) with kind whole|mig|share; None when malformed."""
    parts = a.split(";")
    if not parts or parts[0] != "v1":
        return None
    f = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        f[k] = v
    node = f.get("node", "")
    claims = []
    try:
        if "gpus" in f:
            for g in f["gpus"].split(","):
                claims.append((int(g), "whole", None))
        elif "mig" in f:
            prof, _, start = f["mig"].partition("@")
            size = MIG_MEMORY_SLOTS.get(prof.replace("+me", ""), 1)
            for s in range(int(start), int(start) + size):
                claims.append((int(f["gpu"]), "mig", s))
        elif "share" in f:
            slices = f["share"].split("/")[0]
            for s in slices.split(","):
                claims.append((int(f["gpu"]), "share", int(s)))
        else:
            return None
    except ValueError:
        return None
    return node, claims


def gpu_check(pods):
    """-> dict: double_booked (GPUs with overlapping claims of two live pods), details,
    node_mismatch (annotation node != spec.nodeName), malformed."""
    per_gpu = {}  # (node, gpu) -> list of (pod, kind, unit)
    mismatch, malformed = [], []
    for p in pods:
        md = p["metadata"]
        if md.get("deletionTimestamp") or p.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        a = md.get("annotations", {}).get("waterline.dev/gpu-assignment")
        if not a:
            continue
        name = f"{md['namespace']}/{md['name']}"
        parsed = parse_assignment(a)
        if parsed is None:
            malformed.append(f"{name}: {a[:80]}")
            continue
        node, claims = parsed
        bound = p.get("spec", {}).get("nodeName", "")
        if bound and bound != node:
            mismatch.append(f"{name}: annotation node {node}, bound to {bound}")
        # The GPU is on the node the pod runs on; a pod not bound yet holds the annotated one.
        node = bound or node
        for gpu, kind, unit in claims:
            per_gpu.setdefault((node, gpu), []).append((name, kind, unit))
    booked = []
    for (node, gpu), cl in per_gpu.items():
        names = {c[0] for c in cl}
        if len(names) < 2:
            continue
        bad = set()
        if any(c[1] == "whole" for c in cl) or len({c[1] for c in cl}) > 1:
            bad = names  # a whole GPU, or MIG and shares on one GPU, with another pod
        else:
            holders = {}
            for name, kind, unit in cl:
                holders.setdefault((kind, unit), set()).add(name)
            for h in holders.values():
                if len(h) > 1:
                    bad |= h
        if bad:
            booked.append(f"{node}/gpu{gpu}: " + ", ".join(sorted(bad)))
    return {"double_booked": len(booked), "details": booked, "node_mismatch": mismatch, "malformed": malformed}


# ------------------------------------------------------------------ upstream (simulated worker)


class Upstream:
    """Keep-alive HTTP/1.1 OpenAI-style upstream: answers /v1/chat/completions and
    /v1/completions with usage after a delay; records every request it served."""

    def __init__(self, delay=(0.0, 0.0), seed=0, cap_per_choice=4096, default_output=64):
        self.delay = delay
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.cap = cap_per_choice
        self.default_output = default_output
        self.records = []  # (monotonic time received, prompt tokens, completion tokens, class)
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                b = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_GET(self):
                self._send(200, {"ok": True})

            def do_POST(self):
                t = time.monotonic()
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n > 0 else b""
                try:
                    body = json.loads(raw)
                    if not isinstance(body, dict):
                        raise ValueError
                except ValueError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                prompt, completion = outer.usage_for(body)
                with outer.lock:
                    outer.records.append((t, prompt, completion, self.headers.get("x-chaos-class", "")))
                lo, hi = outer.delay
                if hi > 0:
                    with outer.rng_lock:
                        d = outer.rng.uniform(lo, hi)
                    time.sleep(d)
                self._send(200, {"id": "chatcmpl-chaos", "object": "chat.completion", "model": str(body.get("model"))[:64],
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                              "finish_reason": "length"}],
                                 "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                           "total_tokens": prompt + completion}})

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 256

            def handle_error(self, request, client_address):
                pass  # a client (the router) killed mid-response: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def usage_for(self, body):
        def text_chars(c):
            if isinstance(c, str):
                return len(c)
            if isinstance(c, list):
                return sum(len(p["text"]) for p in c if isinstance(p, dict) and isinstance(p.get("text"), str))
            return 0

        chars = 0
        msgs = body.get("messages")
        if isinstance(msgs, list):
            chars = sum(text_chars(m.get("content")) for m in msgs if isinstance(m, dict))
        elif isinstance(body.get("prompt"), str):
            chars = len(body["prompt"])
        prompt = math.ceil(chars / 4)

        def as_int(v):
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        mt = as_int(body.get("max_completion_tokens"))
        if mt is None:
            mt = as_int(body.get("max_tokens"))
        per_choice = self.default_output if mt is None else max(0, min(mt, self.cap))
        n = as_int(body.get("n"))
        n = 1 if n is None or n < 1 else min(n, 128)
        return prompt, per_choice * n

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ router


def write_routes(path, upstream_port, deployment, model, reservations=None):
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    spec = {"deployment": {"namespace": "chaos", "name": deployment}, "model": model, "deploymentType": "Global",
            "tokenWeights": {"input": 1, "output": 1},
            "entries": [{"pool": "local", "region": "local", "dataZone": "LOCAL",
                         "endpoints": [f"127.0.0.1:{upstream_port}"], "capacityTokensPerMinute": 1e12,
                         "loadTokensPerMinute": 0, "utilization": 0, "maxUtilization": 1.0, "healthy": True,
                         "weight": 1, "heartbeatTime": now}]}
    if reservations:
        spec["reservations"] = reservations
    doc = {"apiVersion": "waterline.dev/v1alpha1", "kind": "RoutingTableList",
           "items": [{"apiVersion": "waterline.dev/v1alpha1", "kind": "RoutingTable",
                      "metadata": {"name": f"chaos.{deployment}"}, "spec": spec}]}
    with open(path, "w") as f:
        json.dump(doc, f)


class Router:
    def __init__(self, procs, binary, routes, port, logfile, seed):
        self.procs, self.binary, self.routes, self.port, self.logfile, self.seed = procs, binary, routes, port, logfile, seed
        self.p = None

    def start(self):
        self.p = self.procs.start([self.binary, f"--listen=127.0.0.1:{self.port}", "--threads=2",
                                   f"--routes-file={self.routes}", "--stale-after=0", "--log-level=warn",
                                   f"--seed={self.seed}"], self.logfile)
        wait_http_ok(f"http://127.0.0.1:{self.port}/readyz", self.p, 30, "waterline-router")

    def kill9(self):
        self.procs.kill9(self.p)

    def metrics(self):
        try:
            return http_get(f"http://127.0.0.1:{self.port}/metrics", 5)[1]
        except (OSError, http.client.HTTPException):
            return ""


# ------------------------------------------------------------------ phase 1: operator chaos

# name, gpu, type, region/dataZone, initial replicas, final replicas
DEPLOYMENTS = [
    ("w1-euw", {"count": 1}, "Standard", "eu-west", 1, 10),
    ("w1-use", {"count": 1}, "Standard", "us-east", 1, 10),
    ("w2-eu", {"count": 2}, "DataZone", "EU", 1, 6),
    ("w2-us", {"count": 2}, "DataZone", "US", 1, 6),
    ("w4-global", {"count": 4}, "Global", None, 1, 4),
    ("w8-usw", {"count": 8}, "Standard", "us-west", 2, 2),  # placed first: two whole nodes
    ("w1-global", {"count": 1}, "Global", None, 0, 8),
    ("w4-eun", {"count": 4}, "Standard", "eu-north", 1, 3),
    ("mig3", {"migProfile": "3g.40gb"}, "Standard", "eu-west", 1, 4),
    ("mig1", {"migProfile": "1g.10gb"}, "Standard", "eu-west", 1, 6),
    ("share2", {"sharesPerGpu": 2}, "Standard", "us-east", 1, 4),
]

# name, deployment, units (x 10,000 tokens/min = units/10 replicas of 100,000), scope, start delay (s)
RESERVATIONS = [
    ("ptu-a", "w1-euw", 20, {"type": "Regional", "region": "eu-west"}, 0),
    ("ptu-b", "w2-eu", 10, {"type": "DataZone", "dataZone": "EU"}, 12),
    ("ptu-c", "w1-use", 30, {"type": "Regional", "region": "us-east"}, 25),
    ("ptu-d", "w4-eun", 10, {"type": "Regional", "region": "eu-north"}, 0),
    ("ptu-e", "w2-us", 20, {"type": "DataZone", "dataZone": "US"}, 40),
    ("ptu-f", "w4-global", 10, {"type": "Global"}, 18),
]


def pool_objects():
    pools = []
    for region, dz in (("eu-west", "EU"), ("us-east", "US"), ("eu-north", "EU"), ("us-west", "US")):
        pools.append({"apiVersion": "waterline.dev/v1alpha1", "kind": "CapacityPool",
                      "metadata": {"name": f"h100-{region}"},
                      "spec": {"region": region, "dataZone": dz, "gpuProduct": "NVIDIA-H100-80GB-HBM3",
                               "nodeSelector": {"matchLabels": {"topology.kubernetes.io/region": region,
                                                                "waterline.dev/shape": "h100"}},
                               "sharing": {"mode": "Exclusive"}, "schedulingStrategy": "BinPack"}})
    pools.append({"apiVersion": "waterline.dev/v1alpha1", "kind": "CapacityPool", "metadata": {"name": "mig-eu-west"},
                  "spec": {"region": "eu-west", "dataZone": "EU", "gpuProduct": "NVIDIA-A100-SXM4-80GB",
                           "nodeSelector": {"matchLabels": {"topology.kubernetes.io/region": "eu-west",
                                                            "waterline.dev/shape": "a100mig"}},
                           "sharing": {"mode": "MIG", "migProfiles": ["1g.10gb", "2g.20gb", "3g.40gb"]}}})
    pools.append({"apiVersion": "waterline.dev/v1alpha1", "kind": "CapacityPool", "metadata": {"name": "ts-us-east"},
                  "spec": {"region": "us-east", "dataZone": "US", "gpuProduct": "NVIDIA-L4-SHARED",
                           "nodeSelector": {"matchLabels": {"topology.kubernetes.io/region": "us-east",
                                                            "waterline.dev/shape": "l4ts"}},
                           "sharing": {"mode": "TimeSlicing", "slicesPerGpu": 4}}})
    return pools


def md_object(name, ns, gpu, dtype, where, replicas, template_extra=None, spec_extra=None):
    spec = {"model": {"name": f"chaos/{name}"[:200], "version": "v1"}, "deploymentType": dtype,
            "template": {"spec": {"image": "vllm/vllm-openai:v0.6.3", "args": ["--model=chaos"],
                                  "ports": [{"name": "http", "containerPort": 8000}],
                                  "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}},
            "gpu": gpu, "replicas": replicas, "drainSeconds": 5,
            "throughput": {"tokensPerMinutePerReplica": 100000}}
    if dtype == "Standard":
        spec["region"] = where
    elif dtype == "DataZone":
        spec["dataZone"] = where
    if template_extra:
        for k, v in template_extra.items():
            if k == "metadata":
                spec["template"]["metadata"] = v
            else:
                spec["template"]["spec"].update(v)
    if spec_extra:
        spec.update(spec_extra)
    return {"apiVersion": "waterline.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def ptu_object(name, md, units, scope, start_delay):
    spec = {"deploymentRef": {"name": md}, "units": units, "tokensPerMinutePerUnit": 10000, "scope": scope}
    if start_delay > 0:
        spec["startTime"] = rfc3339(datetime.now(timezone.utc) + timedelta(seconds=start_delay))
    return {"apiVersion": "waterline.dev/v1alpha1", "kind": "PTUReservation",
            "metadata": {"name": name, "namespace": "chaos"}, "spec": spec}


MDS = "/apis/waterline.dev/v1alpha1/namespaces/{ns}/modeldeployments"
PTUS = "/apis/waterline.dev/v1alpha1/namespaces/{ns}/ptureservations"


def convergence(kube, ns="chaos"):
    """-> (problems: list of str, per-deployment summary, excess workers, reservation problems)."""
    mds = kube.list(MDS.format(ns=ns))
    ptus = kube.list(PTUS.format(ns=ns))
    pods = kube.list(f"/api/v1/namespaces/{ns}/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dwaterline")
    floor = {}
    ptu_problems = []
    for r in ptus:
        st = r.get("status", {})
        if st.get("phase") == "Active" and not r["metadata"].get("deletionTimestamp"):
            d = r["spec"]["deploymentRef"]["name"]
            floor[d] = floor.get(d, 0) + int(st.get("reservedReplicas") or 0)
        else:
            ptu_problems.append(f"{r['metadata']['name']}: phase {st.get('phase', '(none)')}")
    by_md = {}
    for p in pods:
        owner = next((o["name"] for o in p["metadata"].get("ownerReferences", []) if o.get("kind") == "ModelDeployment"),
                     p["metadata"].get("labels", {}).get("waterline.dev/deployment", "?"))
        by_md.setdefault(owner, []).append(p)
    problems, summary, excess = [], [], 0
    for m in mds:
        name = m["metadata"]["name"]
        st = m.get("status", {})
        want = max(int(m["spec"].get("replicas", 1)), floor.get(name, 0))
        live = [p for p in by_md.get(name, []) if not p["metadata"].get("deletionTimestamp")]
        active = [p for p in live if "waterline.dev/draining-since" not in p["metadata"].get("annotations", {})]
        running = [p for p in active if p.get("status", {}).get("phase") == "Running"]
        sched = next((c for c in st.get("conditions", []) if c.get("type") == "Scheduled"), {})
        why = []
        if st.get("observedGeneration") != m["metadata"].get("generation"):
            why.append(f"observedGeneration {st.get('observedGeneration')} != {m['metadata'].get('generation')}")
        if sched.get("status") != "True":
            why.append(f"Scheduled={sched.get('status')} {sched.get('reason', '')}: {sched.get('message', '')[:160]}")
        if st.get("scheduledReplicas") != want:
            why.append(f"scheduledReplicas {st.get('scheduledReplicas')} != {want}")
        if len(active) != want:
            why.append(f"{len(active)} live workers, want {want}")
        if len(running) != len(active):
            why.append(f"{len(active) - len(running)} workers not Running")
        excess += max(0, len(active) - want)
        summary.append(f"{name}: want {want} (spec {m['spec'].get('replicas')}, PTU floor {floor.get(name, 0)}), "
                       f"{len(active)} live workers ({len(live) - len(active)} draining), {len(running)} Running")
        if why:
            problems.append(f"{name}: " + "; ".join(why))
    return problems, summary, excess, ptu_problems


def all_worker_pods(kube):
    return kube.list("/api/v1/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dwaterline")


class Operator:
    def __init__(self, procs, binary, kubeconfig, port, logfile):
        self.procs, self.binary, self.kubeconfig, self.port, self.logfile = procs, binary, kubeconfig, port, logfile
        self.p = None
        self.starts = 0

    def start(self):
        self.starts += 1
        with open(self.logfile, "ab") as f:
            f.write(f"\n===== chaos: operator start #{self.starts} at {datetime.now(timezone.utc).isoformat()}\n".encode())
        self.p = self.procs.start([self.binary, "--kubeconfig", self.kubeconfig, "--bind-address", f"127.0.0.1:{self.port}",
                                   "--identity", "chaos-operator", "--leader-elect=true"], self.logfile)

    def wait_ready(self, timeout=60):
        wait_http_ok(f"http://127.0.0.1:{self.port}/readyz", self.p, timeout, "waterline-operator")

    def busy(self):
        """(queued keys, reconciles in flight) from /metrics; None when it does not answer."""
        try:
            text = http_get(f"http://127.0.0.1:{self.port}/metrics", 0.5)[1]
        except (OSError, http.client.HTTPException):
            return None
        q = metric_sum(text, "waterline_workqueue_depth") or 0
        a = metric_sum(text, "waterline_controller_active_workers") or 0
        return int(q), int(a)

    def kill9(self):
        self.procs.kill9(self.p)


def scale_steps(rng):
    """Scale-ups from initial to final replicas in steps of 1-3, interleaved in a seeded
    random order (each deployment's own steps stay increasing)."""
    per = []
    for name, _gpu, _t, _w, initial, final in DEPLOYMENTS:
        r, steps = initial, []
        while r < final:
            r = min(final, r + rng.randint(1, 3))
            steps.append((name, r))
        per.append(steps)
    out = []
    while any(per):
        i = rng.choice([k for k, s in enumerate(per) if s])
        out.append(per[i].pop(0))
    return out


def phase_operator(args, kube, procs, work, rng, R):
    log("phase 1: pools, deployments")
    for p in pool_objects():
        kube.must("POST", "/apis/waterline.dev/v1alpha1/capacitypools", p)
    for name, gpu, dtype, where, initial, _final in DEPLOYMENTS:
        kube.must("POST", MDS.format(ns="chaos"), md_object(name, "chaos", gpu, dtype, where, initial))
    op = Operator(procs, args.operator, args.kubeconfig, free_port(), os.path.join(work, "operator.log"))
    op.start()
    op.wait_ready()
    steps = scale_steps(rng)
    kills = args.kills
    # Spread the scale-ups over the first 80% of the cycles, reservations over the first half.
    plan = [[] for _ in range(kills)]
    span = kills
    for i, s in enumerate(steps):
        plan[min(span - 1, i * span // max(1, len(steps)))].append(("scale",) + s)
    for j, r in enumerate(RESERVATIONS):
        plan[min(kills - 1, j * max(1, kills // 2) // len(RESERVATIONS))].append(("ptu",) + r)
    kill_notes, samples_max, sample_details, extra_kills = [], 0, [], 0
    t_loop = time.monotonic()
    t_restart = t_loop
    for k in range(kills):
        for act in plan[k]:
            if act[0] == "scale":
                _, name, replicas = act
                kube.must("PATCH", MDS.format(ns="chaos") + "/" + name, {"spec": {"replicas": replicas}},
                          ctype="application/merge-patch+json")
            else:
                _, name, md, units, scope, delay = act
                kube.must("POST", PTUS.format(ns="chaos"), ptu_object(name, md, units, scope, delay))
        # The reconciles a change starts take tens of milliseconds on this fleet: half the
        # kills come within 50 ms of the change, a quarter within 50-300 ms, the rest later.
        u = rng.random()
        delay = rng.uniform(0, 0.05) if u < 0.5 else rng.uniform(0.05, 0.3) if u < 0.75 else rng.uniform(0.3, 1.2)
        time.sleep(delay)
        busy = op.busy()
        t = time.monotonic()
        op.kill9()
        op.start()
        what = ", ".join(f"{a[1]}->{a[2]}" if a[0] == "scale" else f"{a[1]} created" for a in plan[k]) or "no change"
        kill_notes.append((k + 1, t - t_loop, busy, f"{delay * 1000:.0f} ms after: {what}"))
        log(f"kill {k + 1}/{kills} at +{t - t_loop:.1f}s, {delay * 1000:.0f} ms after this cycle's changes ({what}): "
            f"{'queued %d, in flight %d' % busy if busy else 'metrics did not answer'}")
        if rng.random() < 0.25:
            # Also during the restart's initial list and first pass over every object.
            d2 = rng.uniform(0.05, 0.6)
            time.sleep(d2)
            busy = op.busy()
            t = time.monotonic()
            op.kill9()
            op.start()
            extra_kills += 1
            kill_notes.append((k + 1, t - t_loop, busy, f"{d2 * 1000:.0f} ms after the restart"))
            log(f"kill {k + 1}b at +{t - t_loop:.1f}s, {d2 * 1000:.0f} ms after the restart: "
                f"{'queued %d, in flight %d' % busy if busy else 'metrics did not answer yet'}")
        op.wait_ready()
        t_restart = time.monotonic()
        chk = gpu_check(all_worker_pods(kube))
        if chk["double_booked"] or chk["node_mismatch"] or chk["malformed"]:
            sample_details.append(f"after kill {k + 1}: {chk}")
            log(f"  after kill {k + 1}: {chk['double_booked']} GPUs double-booked {chk['details'][:5]}; "
                f"node mismatches {chk['node_mismatch'][:3]}; malformed {chk['malformed'][:3]}")
        samples_max = max(samples_max, chk["double_booked"])
        time.sleep(rng.uniform(0.3, 2.5))
    R["kills"] = kills + extra_kills
    R["kill_notes"] = kill_notes
    R["kills_busy"] = sum(1 for n in kill_notes if n[2] and (n[2][0] > 0 or n[2][1] > 0))
    R["kill_loop_s"] = time.monotonic() - t_loop
    # Reservations with a startTime still in the future: wait for it (they must activate).
    log(f"phase 1: {kills} kills in {R['kill_loop_s']:.0f} s; waiting for convergence (at most {args.converge_timeout} s)")
    t_last = t_restart  # the last restart's readiness
    deadline = time.monotonic() + args.converge_timeout
    problems, summary, excess, ptu_problems = convergence(kube)
    last_log = 0.0
    while (problems or ptu_problems) and time.monotonic() < deadline:
        if op.p.poll() is not None:
            raise HarnessError(f"operator exited by itself with status {op.p.returncode} (log {op.logfile})")
        if time.monotonic() - last_log > 15:
            log(f"  not converged yet: {(problems + ptu_problems)[:4]}")
            last_log = time.monotonic()
        time.sleep(1)
        problems, summary, excess, ptu_problems = convergence(kube)
        chk = gpu_check(all_worker_pods(kube))
        samples_max = max(samples_max, chk["double_booked"])
    R["converge_s"] = time.monotonic() - t_last
    R["converged"] = not problems and not ptu_problems
    final = gpu_check(all_worker_pods(kube))
    samples_max = max(samples_max, final["double_booked"])
    problems, summary, excess, ptu_problems = convergence(kube)
    R["unconverged"] = len(problems)
    R["unconverged_list"] = problems
    R["ptu_unconverged"] = ptu_problems
    R["summary"] = summary
    R["duplicates"] = excess
    R["double_booked"] = samples_max
    R["double_booked_final"] = final
    R["double_booked_samples"] = sample_details
    st, ev = kube.req("GET", "/api/v1/events?fieldSelector=reason%3DGpuConflict")
    R["gpu_conflict_events"] = sum(int(e.get("count") or 1) for e in ev.get("items", [])) if st == 200 else "unknown"
    with open(op.logfile, errors="replace") as f:
        R["conflict_log_lines"] = sum(1 for line in f if "assignment conflict" in line)
    log(f"phase 1: {'converged' if R['converged'] else 'NOT converged'} {R['converge_s']:.1f} s after the last "
        f"restart; double-booked GPUs (max over samples) {samples_max}; excess workers {excess}")
    return op


# ------------------------------------------------------------------ phase 2: router chaos


def phase_router_kills(args, procs, work, seed, R):
    rng = random.Random(seed)
    up = Upstream(delay=(0.02, 0.3), seed=seed)
    routes = os.path.join(work, "routes-kill.json")
    write_routes(routes, up.port, "llama", "chaos-model")
    router = Router(procs, args.router, routes, free_port(), os.path.join(work, "router-kill.log"), seed)
    router.start()
    body = json.dumps({"model": "chaos/llama", "messages": [{"role": "user", "content": "hello there"}],
                       "max_tokens": 16}).encode()
    stop = threading.Event()
    results = []  # (start, end, outcome, detail, conn_opened)
    lock = threading.Lock()
    timeout = 15.0

    def client(i):
        conn, opened = None, 0.0
        while not stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=timeout)
                opened = time.monotonic()
            t = time.monotonic()
            try:
                conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                out = ("answer", r.status)
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except socket.timeout:
                out = ("timeout", "no answer within %.0f s" % timeout)
                conn.close()
                conn = None
            except (OSError, http.client.HTTPException) as e:
                out = ("error", type(e).__name__)
                conn.close()
                conn = None
            with lock:
                results.append((t, time.monotonic(), out[0], out[1], opened))
            if out[0] == "error":
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
    for th in threads:
        th.start()
    t0 = time.monotonic()
    n = args.router_kills
    gap = args.router_seconds / (n + 1)
    kills = []
    for k in range(n):
        at = t0 + gap * (k + 0.5) + rng.uniform(0, gap)
        time.sleep(max(0.0, at - time.monotonic()))
        tk = time.monotonic()
        router.kill9()
        router.start()
        kills.append((tk, time.monotonic()))
        log(f"router kill {k + 1}/{n} at +{tk - t0:.1f}s, ready again after {kills[-1][1] - tk:.2f} s")
    time.sleep(max(0.0, t0 + args.router_seconds - time.monotonic()))
    stop.set()
    for th in threads:
        th.join(timeout + 5)
    router.kill9()
    up.stop()

    def attributable(s, e, opened):
        for tk, tr in kills:
            if s <= tr + 0.5 and e >= tk:  # the router was down (or just back) during the request
                return True
            if opened < tk <= e:  # the connection predates the kill: the kill closed it
                return True
        return False

    answered = sum(1 for r in results if r[2] == "answer")
    ok = sum(1 for r in results if r[2] == "answer" and r[3] == 200)
    errs = [r for r in results if r[2] == "error"]
    attributed = sum(1 for r in errs if attributable(r[0], r[1], r[4]))
    lost = [r for r in results if r[2] == "timeout"]
    codes = {}
    for r in results:
        if r[2] == "answer":
            codes[r[3]] = codes.get(r[3], 0) + 1
    kinds = {}
    for r in errs:
        kinds[r[3]] = kinds.get(r[3], 0) + 1
    R["router_kills"] = n
    R["router_requests"] = len(results)
    R["router_answered"] = answered
    R["router_ok"] = ok
    R["router_codes"] = codes
    R["router_errors"] = len(errs)
    R["router_errors_attributed"] = attributed
    R["router_errors_unattributed"] = [(round(r[0] - t0, 2), round(r[1] - t0, 2), r[3]) for r in errs
                                       if not attributable(r[0], r[1], r[4])]
    R["router_error_kinds"] = kinds
    R["router_lost"] = len(lost)
    R["router_lost_list"] = [(round(r[0] - t0, 2), round(r[1] - t0, 2)) for r in lost]
    R["router_restart_s"] = [round(b - a, 2) for a, b in kills]
    log(f"phase 2: {len(results)} requests, {answered} answered ({codes}), {len(errs)} errors "
        f"({attributed} during/after a kill), {len(lost)} lost")


# ------------------------------------------------------------------ phase 3: PTU over-admission

LIMIT = 100000
HUGE = [2 ** 56, 2 ** 57 + 3, 2 ** 61, 2305843009213693951, 9223372036854775807, 18446744073709551615]


def hostile_body(rng, klass):
    msg = [{"role": "user", "content": "Tell me everything. " * rng.randint(1, 5)}]
    if klass == "overflow":
        return {"model": "chaos/ptu", "messages": msg, "max_tokens": rng.choice(HUGE), "n": 128}
    if klass == "overflow_mct":
        return {"model": "chaos/ptu", "messages": msg, "max_completion_tokens": rng.choice(HUGE), "max_tokens": 1,
                "n": rng.choice([64, 127, 128, 1000, 2 ** 31])}
    if klass == "negative":
        return {"model": "chaos/ptu", "messages": msg,
                **rng.choice([{"max_tokens": -1}, {"n": -3}, {"max_tokens": -9223372036854775808, "n": 128},
                              {"max_completion_tokens": -5}, {"max_tokens": 1e300, "n": 128},
                              {"max_tokens": "999999999999", "n": "128"}, {"max_tokens": 4.5e18, "n": 2.0}])}
    if klass == "junk":
        nest = "x"
        for _ in range(rng.randint(5, 70)):
            nest = [nest] if rng.random() < 0.5 else {"k": nest}
        return {"model": "chaos/ptu", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                                              {"type": "junk", "junk": nest}]},
                                                   {"role": "assistant", "content": None, "extra": nest}],
                **rng.choice([{"max_tokens": {"nested": [HUGE[-1]]}}, {"n": [128]}, {"max_tokens": 8, "n": 128},
                              {"max_tokens": rng.choice(HUGE), "n": 128, "tools": nest}, {"stream_options": nest}])}
    if klass == "long_prompt":
        return {"model": "chaos/ptu", "messages": [{"role": "user", "content": "y" * rng.randint(4000, 40000)}],
                "max_tokens": 16}
    if klass == "no_max":
        return {"model": "chaos/ptu", "messages": msg}
    if klass == "honest_big":
        return {"model": "chaos/ptu", "messages": msg, "max_tokens": 4096}
    if klass == "n128_fit":
        return {"model": "chaos/ptu", "messages": msg, "max_tokens": rng.randint(100, 700), "n": 128}
    return {"model": "chaos/ptu", "messages": [{"role": "user", "content": "hi"}], "max_tokens": rng.randint(8, 64)}


HOSTILE_MIX = [("overflow", 6), ("overflow_mct", 3), ("negative", 2), ("junk", 2), ("long_prompt", 1),
               ("no_max", 1), ("honest_big", 1), ("n128_fit", 1)]


def phase_ptu(args, procs, work, seed, R):
    up = Upstream(delay=(0.005, 0.03), seed=seed + 1)
    routes = os.path.join(work, "routes-ptu.json")
    write_routes(routes, up.port, "ptu", "ptu-model",
                 [{"name": "hostile", "tokensPerMinute": LIMIT, "burstPercent": 0, "scope": {"type": "Global"}}])
    router = Router(procs, args.router, routes, free_port(), os.path.join(work, "router-ptu.log"), seed)
    router.start()
    stop = threading.Event()
    status = {}
    lock = threading.Lock()

    def sender(i):
        rng = random.Random(seed * 1000 + i)
        conn = None
        classes = [c for c, w in HOSTILE_MIX for _ in range(w)]
        while not stop.is_set():
            klass = "small" if i < 2 else rng.choice(classes)
            body = json.dumps(hostile_body(rng, klass)).encode()
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=30)
            try:
                conn.request("POST", "/v1/chat/completions", body=body,
                             headers={"Content-Type": "application/json", "x-chaos-class": klass})
                r = conn.getresponse()
                r.read()
                key = (klass, r.status)
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                key = (klass, type(e).__name__)
                conn.close()
                conn = None
            with lock:
                status[key] = status.get(key, 0) + 1
            time.sleep(0.02 if i < 2 else 0.05)

    threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(6)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    time.sleep(args.ptu_seconds)
    stop.set()
    for th in threads:
        th.join(35)
    t1 = time.monotonic()
    metrics = router.metrics()
    router.kill9()
    up.stop()
    recs = sorted((r[0], r[1] + r[2], r[3]) for r in up.records)
    window = 59.75
    worst, worst_at = 0, 0.0
    # Windows [t, t + 59.75) starting at the phase start and at each receipt, ending by t1.
    times = [r[0] for r in recs]
    prefix = [0]
    for r in recs:
        prefix.append(prefix[-1] + r[1])
    for st_ in [t0] + [t for t in times if t + window <= t1]:
        a, b = bisect.bisect_left(times, st_), bisect.bisect_left(times, st_ + window)
        if prefix[b] - prefix[a] > worst:
            worst, worst_at = prefix[b] - prefix[a], st_ - t0
    by_class = {}
    for t, tok, klass in recs:
        c = by_class.setdefault(klass, [0, 0])
        c[0] += 1
        c[1] += tok
    R["ptu_limit"] = LIMIT
    R["ptu_seconds"] = t1 - t0
    R["ptu_worst_tokens"] = worst
    R["ptu_worst_at"] = worst_at
    R["ptu_total_tokens"] = sum(r[1] for r in recs)
    R["ptu_overadmission_pct"] = max(0.0, worst / LIMIT - 1) * 100
    R["ptu_status"] = status
    R["ptu_admitted_by_class"] = by_class
    R["ptu_router_admitted"] = metric_sum(metrics, "waterline_router_ptu_admitted_total")
    R["ptu_router_throttled"] = metric_sum(metrics, "waterline_router_ptu_throttled_total")
    R["ptu_router_window"] = metric_sum(metrics, "waterline_router_ptu_window_tokens")
    R["ptu_router_limit"] = metric_sum(metrics, "waterline_router_ptu_limit_tokens")
    log(f"phase 3: {len(recs)} requests reached the upstream, worst {window} s window {worst} tokens "
        f"(limit {LIMIT}) starting at +{worst_at:.1f}s")


# ------------------------------------------------------------------ phase 4: worst-manifest churn


def hostile_manifests(n):
    ns = "chaos-hostile"
    g = {"count": 1}
    long_name = "h-long-name-" + "x" * 58  # 70 characters: a valid object name, not a label value
    return [
        ("control", md_object("h-control", ns, g, "Global", None, n)),
        ("draining-since annotation", md_object("h-draining", ns, g, "Global", None, n, {
            "metadata": {"annotations": {"waterline.dev/draining-since": "2020-01-01T00:00:00Z"}}})),
        ("deployment label 'other'", md_object("h-label", ns, g, "Global", None, n, {
            "metadata": {"labels": {"waterline.dev/deployment": "other"}}})),
        ("managed-by label", md_object("h-managed-by", ns, g, "Global", None, n, {
            "metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}}})),
        ("gpu-assignment annotation", md_object("h-gpu-assignment", ns, g, "Global", None, n, {
            "metadata": {"annotations": {"waterline.dev/gpu-assignment": "v1;node=chaos-h100-00000;gpus=0"}}})),
        ("70-character name", md_object(long_name, ns, g, "Global", None, n)),
        ("image with spaces", md_object("h-image", ns, g, "Global", None, n, {
            "spec": {"image": "vllm/vllm-openai:v0.6.3 with spaces "}})),
        ("negative CPU request", md_object("h-neg-cpu", ns, g, "Global", None, n, {
            "spec": {"resources": {"requests": {"cpu": "-1", "memory": "1Gi"}}}})),
    ]


def phase_churn(args, kube, work, R):
    ns = "chaos-hostile"
    n = args.churn_replicas
    lst = kube.must("GET", f"/api/v1/namespaces/{ns}/pods")
    rv = lst["metadata"]["resourceVersion"]
    events = []  # (t, owner, name)
    stop = threading.Event()
    werr = []

    def watch():
        nonlocal rv
        while not stop.is_set():
            # No read timeout mid-stream (it would lose a partial line): the server ends the
            # watch after timeoutSeconds and it resumes from the last resourceVersion.
            c = http.client.HTTPSConnection("127.0.0.1", kube.port, context=kube.ctx, timeout=90)
            try:
                c.request("GET", f"/api/v1/namespaces/{ns}/pods?watch=1&allowWatchBookmarks=true&resourceVersion={rv}"
                                 f"&timeoutSeconds=60", headers={"Authorization": "Bearer " + kube.token})
                r = c.getresponse()
                if r.status != 200:
                    werr.append(f"watch: {r.status}")
                    time.sleep(1)
                    continue
                while not stop.is_set():
                    line = r.readline()
                    if not line:
                        break
                    ev = json.loads(line)
                    obj = ev.get("object", {})
                    md = obj.get("metadata", {})
                    if md.get("resourceVersion"):
                        rv = md["resourceVersion"]
                    if ev.get("type") == "ERROR":
                        werr.append(f"watch error: {obj.get('message')}")
                        lst2 = kube.must("GET", f"/api/v1/namespaces/{ns}/pods")
                        rv = lst2["metadata"]["resourceVersion"]
                        break
                    if ev.get("type") == "ADDED":
                        owner = next((o["name"] for o in md.get("ownerReferences", [])
                                      if o.get("kind") == "ModelDeployment"), "?")
                        events.append((time.monotonic(), owner, md.get("name")))
            except (OSError, http.client.HTTPException, ValueError) as e:
                werr.append(f"watch: {type(e).__name__}")
                time.sleep(0.5)
            finally:
                c.close()

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    time.sleep(1)
    applied = {}
    t0 = time.monotonic()
    for label, obj in hostile_manifests(n):
        st, j = kube.req("POST", MDS.format(ns=ns), obj)
        applied[obj["metadata"]["name"]] = (label, st, j.get("message", "") if st >= 300 else "")
        log(f"phase 4: {label}: {'applied' if st < 300 else 'rejected %d: %s' % (st, j.get('message', '')[:200])}")
    time.sleep(args.churn_seconds)
    stop.set()
    t1 = time.monotonic()
    rows = []
    pods_now = kube.list(f"/api/v1/namespaces/{ns}/pods")
    for name, (label, st, msg) in applied.items():
        ts = sorted(t for t, o, _ in events if o == name)
        worst = 0
        for i, t in enumerate(ts):
            worst = max(worst, sum(1 for u in ts[i:] if u < t + 60))
        if st >= 300:
            worst = 0
        cond = ""
        if st < 300:
            s2, m = kube.req("GET", MDS.format(ns=ns) + "/" + name)
            if s2 == 200:
                c = next((c for c in m.get("status", {}).get("conditions", []) if c.get("type") == "Scheduled"), {})
                live = sum(1 for p in pods_now if not p["metadata"].get("deletionTimestamp") and any(
                    o.get("name") == name for o in p["metadata"].get("ownerReferences", [])))
                cond = f"Scheduled={c.get('status')} {c.get('reason', '')} '{c.get('message', '')[:80]}'; " \
                       f"status.replicas={m.get('status', {}).get('replicas')}, {live} pods exist at the end"
        rows.append((label, name, st, msg, len(ts), worst, cond))
    R["churn_rows"] = rows
    R["churn_worst"] = max((r[5] for r in rows), default=0)
    R["churn_worst_label"] = max(rows, key=lambda r: r[5])[0] if rows else ""
    R["churn_replicas"] = n
    R["churn_seconds"] = t1 - t0
    R["churn_watch_errors"] = werr
    R["churn_after"] = gpu_check(all_worker_pods(kube))
    log(f"phase 4: worst {R['churn_worst']} pod creations in a minute ({R['churn_worst_label']})")


# ------------------------------------------------------------------ setup and report


def setup_cluster(args, procs, work, R):
    cp = os.path.join(work, "cp")
    args.cp = cp
    log("control plane up")
    r = subprocess.run(["bash", os.path.join(args.root, "hack/controlplane.sh"), "up", "--dir", cp],
                       stdout=open(os.path.join(work, "controlplane.log"), "ab"), stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise HarnessError(f"control plane did not start (see {work}/controlplane.log)")
    ports = {}
    with open(os.path.join(cp, "ports.env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            ports[k] = v.strip('"')
    args.kubeconfig = os.path.join(cp, "kubeconfig")
    env = dict(os.environ, KUBECONFIG=args.kubeconfig)
    with open(os.path.join(cp, "pki/admin.token")) as f:
        token = f.read().strip()
    kube = Kube(int(ports["APISERVER_PORT"]), os.path.join(cp, "pki/ca.crt"), token)
    crds = os.path.join(args.root, "crds")
    for cmd in (["kubectl", "apply", "--server-side", "-f", crds],
                ["kubectl", "wait", "--for", "condition=Established", "--timeout=60s", "-f", crds]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise HarnessError(f"{' '.join(cmd)}: {r.stderr.strip()[:500]}")
    for ns in ("waterline-system", "chaos", "chaos-hostile"):
        kube.must("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    log("GPU nodes (fleet profile, 40 nodes)")
    r = subprocess.run(["bash", os.path.join(args.root, "hack/fixtures/gpu-nodes.sh"), "--profile", "fleet",
                        "--nodes", "40", "--prefix", "chaos", "--kubeconfig", args.kubeconfig],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise HarnessError(f"gpu-nodes.sh: {r.stderr.strip()[-500:]}")
    return kube


def report(args, R):
    out = []
    p = out.append
    p("")
    p(f"== Chaos benchmark (seed {args.seed}; {os.cpu_count()} cores, load average "
      f"{open('/proc/loadavg').read().split()[:3]}; {time.monotonic() - T0:.0f} s in all)")
    missed = []
    if "kills" in R:
        p(f"operator: {R['kills']} kill -9 in {R['kill_loop_s']:.0f} s, {R['kills_busy']} of them with work queued "
          f"or reconciles in flight at the kill")
        for k, t, busy, what in R["kill_notes"]:
            p(f"  cycle {k:2d} kill at +{t:5.1f}s  {('queued %3d, in flight %d' % busy) if busy else 'no /metrics answer':24s}  {what}")
        p(f"  converged {R['converge_s']:.1f} s after the last restart: {'yes' if R['converged'] else 'NO'}")
        for s in R["summary"]:
            p(f"  {s}")
        for s in R["unconverged_list"]:
            p(f"  UNCONVERGED {s}")
        for s in R["ptu_unconverged"]:
            p(f"  RESERVATION NOT ACTIVE {s}")
        f = R["double_booked_final"]
        p(f"  GPUs double-booked: {R['double_booked']} at the worst sample (after each restart and while "
          f"converging), {f['double_booked']} at the end {f['details'][:10]}")
        for s in R["double_booked_samples"][:10]:
            p(f"    {s}")
        if f["node_mismatch"] or f["malformed"]:
            p(f"  assignment annotation vs node binding: {f['node_mismatch'][:10]}; malformed: {f['malformed'][:10]}")
        p(f"  GpuConflict Events {R['gpu_conflict_events']}; operator 'assignment conflict' log lines "
          f"{R['conflict_log_lines']}")
    if "router_kills" in R:
        p(f"router: {R['router_kills']} kill -9 under load (restart to ready: {R['router_restart_s']} s); "
          f"{R['router_requests']} requests: {R['router_answered']} answered {R['router_codes']}, "
          f"{R['router_errors']} connection errors {R['router_error_kinds']} ({R['router_errors_attributed']} "
          f"attributed to a kill), {R['router_lost']} lost (no answer, no error in 15 s)")
        if R["router_errors_unattributed"]:
            p(f"  errors not attributable to a kill (start, end, kind): {R['router_errors_unattributed'][:20]}")
        if R["router_lost_list"]:
            p(f"  lost (start, end): {R['router_lost_list'][:20]}")
    if "ptu_limit" in R:
        p(f"PTU: reservation {R['ptu_limit']} tokens/min; {R['ptu_seconds']:.0f} s of hostile load; worst 59.75 s "
          f"window: {R['ptu_worst_tokens']} tokens admitted (starting +{R['ptu_worst_at']:.1f}s), "
          f"{R['ptu_total_tokens']} in all")
        p(f"  answers by class and status: {dict(sorted(R['ptu_status'].items(), key=str))}")
        p(f"  reached the upstream by class (requests, tokens): {R['ptu_admitted_by_class']}")
        p(f"  router metrics at the end: admitted {R['ptu_router_admitted']}, throttled {R['ptu_router_throttled']}, "
          f"window tokens {R['ptu_router_window']}, limit {R['ptu_router_limit']}")
    if "churn_rows" in R:
        p(f"hostile manifests: replicas {R['churn_replicas']} each, pod ADDED events watched for "
          f"{R['churn_seconds']:.0f} s (goal: <= {2 * R['churn_replicas']} in any minute)")
        for label, name, st, msg, total, worst, cond in R["churn_rows"]:
            state = f"rejected at apply ({st}: {msg[:120]})" if st >= 300 else cond
            p(f"  {label:28s} {total:5d} created, {worst:4d} in the worst minute; {state}")
        if R["churn_watch_errors"]:
            p(f"  watch errors: {R['churn_watch_errors'][:5]}")
        ca = R["churn_after"]
        p(f"  GPUs double-booked after the hostile manifests: {ca['double_booked']} {ca['details'][:5]}; "
          f"annotation/binding mismatches {len(ca['node_mismatch'])} {ca['node_mismatch'][:3]}")
    p("")

    def goal(ok, text):
        if not ok:
            missed.append(text)

    if "kills" in R:
        goal(R["kills"] >= 20, f"chaos_kills {R['kills']} < 20")
        goal(R["double_booked"] == 0, f"chaos_double_booked_gpus {R['double_booked']} != 0")
        goal(R["duplicates"] == 0, f"chaos_duplicate_workers {R['duplicates']} != 0")
        goal(R["unconverged"] == 0, f"chaos_unconverged_deployments {R['unconverged']} != 0")
        goal(not R["ptu_unconverged"], f"reservations not Active after convergence: {R['ptu_unconverged']}")
    if "router_kills" in R:
        goal(R["router_lost"] == 0, f"chaos_requests_lost {R['router_lost']} != 0")
    if "ptu_limit" in R:
        goal(R["ptu_overadmission_pct"] <= 2, f"ptu_overadmission_pct_hostile {R['ptu_overadmission_pct']:.1f} > 2")
    if "churn_rows" in R:
        goal(R["churn_worst"] <= 2 * R["churn_replicas"],
             f"pod_creates_per_min_worst_manifest {R['churn_worst']} > {2 * R['churn_replicas']} ({R['churn_worst_label']})")
    p(f"Goals: chaos_kills >= 20; double-booked GPUs, duplicate workers, unconverged deployments, lost requests = 0; "
      f"PTU over-admission <= 2 %; pod creations per minute <= 2 x replicas")
    for m in missed:
        p(f"GOAL MISSED: {m}")
    if "kills" in R:
        p(f"RESULT chaos_kills {R['kills']} kills")
        p(f"RESULT chaos_double_booked_gpus {R['double_booked']} gpus")
        p(f"RESULT chaos_duplicate_workers {R['duplicates']} pods")
        p(f"RESULT chaos_unconverged_deployments {R['unconverged']} deployments")
        p(f"RESULT chaos_converge_s {R['converge_s']:.1f} s")
    if "router_kills" in R:
        p(f"RESULT chaos_router_kills {R['router_kills']} kills")
        p(f"RESULT chaos_requests_lost {R['router_lost']} requests")
        p(f"RESULT chaos_requests_unattributed_errors {len(R['router_errors_unattributed'])} requests")
    if "ptu_limit" in R:
        p(f"RESULT ptu_overadmission_pct_hostile {R['ptu_overadmission_pct']:.1f} %")
    if "churn_rows" in R:
        p(f"RESULT pod_creates_per_min_worst_manifest {R['churn_worst']} pods/min "
          f"(replicas {R['churn_replicas']}, goal <= {2 * R['churn_replicas']}; worst: {R['churn_worst_label']})")
    print("\n".join(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true", help="6 operator kills, 2 router kills, shorter phases")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "0")) or None)
    ap.add_argument("--kills", type=int, default=None)
    ap.add_argument("--router-kills", type=int, default=int(os.environ.get("CHAOS_ROUTER_KILLS", "4")))
    ap.add_argument("--router-seconds", type=float, default=40)
    ap.add_argument("--ptu-seconds", type=float, default=float(os.environ.get("CHAOS_PTU_S", "75")))
    ap.add_argument("--churn-seconds", type=float, default=float(os.environ.get("CHAOS_CHURN_S", "120")))
    ap.add_argument("--churn-replicas", type=int, default=2)
    ap.add_argument("--converge-timeout", type=float, default=float(os.environ.get("CHAOS_CONVERGE_TIMEOUT", "180")))
    ap.add_argument("--phases", default="operator,router,ptu,churn", help="comma-separated subset")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little") % 1000000
    if args.kills is None:
        args.kills = int(os.environ.get("CHAOS_KILLS", "6" if args.quick else "22"))
    if args.quick:
        args.router_kills = min(args.router_kills, 2)
        args.router_seconds = 20
        args.churn_seconds = min(args.churn_seconds, 70)
        args.ptu_seconds = min(args.ptu_seconds, 65)
    args.ptu_seconds = max(args.ptu_seconds, 61)  # at least one full window
    build = os.path.abspath(args.build)
    args.operator = os.path.join(build, "operator/main/waterline-operator")
    args.router = os.path.join(build, "operator/router/waterline-router")
    phases = set(args.phases.split(","))
    need = ([args.operator] if phases & {"operator", "churn"} else []) + ([args.router] if phases & {"router", "ptu"} else [])
    for b in need:
        if not os.access(b, os.X_OK):
            raise SystemExit(f"error: {b} missing (build waterline-operator and waterline-router)")
    print(f"chaos bench: seed {args.seed} (CHAOS_SEED={args.seed} or --seed {args.seed} repeats the choices), "
          f"{args.kills} operator kills, {args.router_kills} router kills", flush=True)
    rng = random.Random(args.seed)
    work_root = os.environ.get("CHAOS_WORK_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "chaos-bench"))
    work = os.path.join(work_root, f"run-{os.getpid()}")
    os.makedirs(work, exist_ok=True)
    procs = Procs()
    failed = [True]
    cleaned = [False]

    def cleanup():
        if cleaned[0]:
            return
        cleaned[0] = True
        procs.stop_all()
        if getattr(args, "cp", None):
            subprocess.run(["bash", os.path.join(args.root, "hack/controlplane.sh"), "down", "--dir", args.cp, "--purge"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if failed[0] or os.environ.get("CHAOS_KEEP") == "1":
            print(f"chaos bench: logs kept in {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", work])

    atexit.register(cleanup)

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    R = {}
    try:
        kube = None
        if phases & {"operator", "churn"}:
            kube = setup_cluster(args, procs, work, R)
        op = None
        if "operator" in phases:
            op = phase_operator(args, kube, procs, work, rng, R)
        elif "churn" in phases:
            op = Operator(procs, args.operator, args.kubeconfig, free_port(), os.path.join(work, "operator.log"))
            op.start()
            op.wait_ready()
        side = []
        errors = []

        def guarded(fn, *a):
            try:
                fn(*a)
            except Exception as e:  # reported below; the harness fails
                errors.append(f"{fn.__name__}: {type(e).__name__}: {e}")

        if "router" in phases:
            side.append(threading.Thread(target=guarded, args=(phase_router_kills, args, procs, work, args.seed, R)))
        if "ptu" in phases:
            side.append(threading.Thread(target=guarded, args=(phase_ptu, args, procs, work, args.seed, R)))
        for th in side:
            th.start()
        if "churn" in phases:
            log(f"phase 4: hostile manifests (phases 2 and 3 run meanwhile)")
            if op.p.poll() is not None:
                raise HarnessError("operator exited before the hostile manifests")
            phase_churn(args, kube, work, R)
        for th in side:
            th.join()
        report(args, R)
        if errors:
            raise HarnessError("; ".join(errors))
        if op is not None and op.p.poll() is not None:
            raise HarnessError(f"operator exited by itself with status {op.p.returncode}")
        failed[0] = R.get("double_booked", 0) > 0 or R.get("router_lost", 0) > 0  # keep the logs of a real bug
        return 0
    except HarnessError as e:
        print(f"chaos bench: error: {e}", file=sys.stderr)
        if R:
            report(args, R)
        return 1
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
